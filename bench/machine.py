"""What every benchmark here needs to know about this machine: logging, CPU use from /proc,
waiting for an idle machine, a CPU speed check, and throwaway database URLs.

The machine is a shared 2-core VM whose speed varies with its neighbours, so each
benchmark waits until it is idle, measures who used the cores, and reports a CPU
speed check next to its numbers (docs/performance.md).
"""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import urlsplit, urlunsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def cpu_ticks(pid: int, which: str = "both") -> int:
    """utime + stime (or only "user" / "system") of a process, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        user, system = int(fields[11]), int(fields[12])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0
    return user if which == "user" else system if which == "system" else user + system


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, all cores."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time (already in user)
    return total - idle, total


def wait_for_idle(max_wait: float, busy_limit: float = 0.15) -> float:
    """Wait (at most max_wait s) until the machine is idle over one second; returns its busy share."""
    deadline = time.monotonic() + max_wait
    while True:
        busy0, total0 = machine_ticks()
        time.sleep(1.0)
        busy1, total1 = machine_ticks()
        share = (busy1 - busy0) / max(1, total1 - total0)
        if share <= busy_limit or time.monotonic() >= deadline:
            return share
        log(f"machine {share * 100:.0f} % busy, waiting for it to calm down")


def cpu_calibration(iterations: int = 5_000_000) -> float:
    """CPU seconds a plain Python loop takes here: this machine's speed varies with its neighbours."""
    start = time.process_time()
    total = 0
    for i in range(iterations):
        total += i
    return time.process_time() - start


def postgres_pids() -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as fh:
                    if fh.read().strip() == "postgres":
                        pids.append(int(name))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return pids
