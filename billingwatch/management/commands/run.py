"""`manage.py run`: the embedded BillingWatch in one command (what `make run` calls).

Migrates, makes sure the admin user and the demo tenant exist, then runs
gunicorn and one worker side by side until Ctrl-C, which stops both.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from billingwatch.demo import ensure_demo


class Command(BaseCommand):
    help = "Run BillingWatch: web server (gunicorn) and one worker, with the demo tenant."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.environ.get("BILLINGWATCH_BIND", "127.0.0.1:8000"))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))

    def handle(self, *args, bind: str, web_workers: int, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write("Preparing the demo tenant (the first run imports 30 days of simulated history)…")
        self.stdout.flush()
        info = ensure_demo()
        base = f"http://{bind}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "billingwatch.wsgi", "--bind", bind,
                 "--workers", str(web_workers), "--access-logfile", "-", "--graceful-timeout", "10"]
            ),
            subprocess.Popen([sys.executable, "manage.py", "worker"], cwd=settings.BASE_DIR),
        ]
        password = info.admin_password or "(changed; not shown)"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "BillingWatch is running (Ctrl-C stops the web server and the worker).",
                    f"  Dashboard:    {base}/t/{info.tenant.slug}/",
                    f"  Admin:        {base}/admin/",
                    f"  Login:        {info.admin_username} / {password}",
                    f"  Demo tenant:  {info.tenant.name} ({info.tenant.slug})",
                    f"  Webhook URL:  {base}{info.webhook_path}",
                    f"  Signing secret of the demo endpoint: {info.webhook_secret}",
                    f"  Health:       {base}/healthz",
                    "",
                ]
            )
        )
        self._wait(processes)

    def _wait(self, processes):
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.2)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if not stopping:
            failed = [p.args[2] if len(p.args) > 2 else p.args for p in processes if p.returncode]
            self.stderr.write(f"a process exited unexpectedly: {failed}")
            sys.exit(1)
