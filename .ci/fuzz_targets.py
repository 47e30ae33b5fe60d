"""Real ids of the seeded demo tenant for the schema fuzzer, as a schemathesis.toml.

Without them every /{id}/ operation only ever meets 404, and the actions
(acknowledge, reprocess, test send, revoke, expire) are never exercised. The
fuzzer gets its own targets so it cannot lock itself out: it revokes a key made
for that purpose, never the key it authenticates with.

    .venv/bin/python .ci/fuzz_targets.py FUZZ_KEY_PREFIX path/to/schemathesis.toml
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingwatch.settings")

import django  # noqa: E402

django.setup()

from alerts.channels import create_channel, send_test  # noqa: E402
from anomalies.models import ACTIVE_STATUSES, Anomaly  # noqa: E402
from tenants.keys import issue_key  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.scope import tenant_scope  # noqa: E402
from webhooks.models import SigningSecret, StripeEvent, WebhookEndpoint  # noqa: E402


def targets(fuzz_key_prefix: str) -> dict[str, dict[str, str]]:
    """path regex -> {path parameter: value}."""
    tenant = Tenant.objects.get(slug="demo")
    with tenant_scope(tenant):
        anomaly = Anomaly.objects.filter(status__in=ACTIVE_STATUSES).order_by("-last_seen_at").first()
        failed = StripeEvent.objects.order_by("-received_at").first()
        StripeEvent.objects.filter(pk=failed.pk).update(status="failed", available_at=None, last_error="fuzz")
        endpoint = WebhookEndpoint.objects.first()
        secret = SigningSecret.objects.create(endpoint=endpoint, secret="whsec_fuzz_target_0123456789abcdef")
        channel = create_channel(name="Fuzz mail", kind="email", config={"to": ["fuzz@example.com"]})
        send_test(channel.public_id)  # one delivery to read
        delivery = channel.deliveries.first()
        spare, _ = issue_key(tenant, "fuzz target (revoked by the fuzzer)")
        assert spare.prefix != fuzz_key_prefix
    return {
        r"^/api/v1/anomalies/\{id\}/": {"id": str(anomaly.public_id)},
        r"^/api/v1/events/\{id\}/": {"id": failed.stripe_id},
        r"^/api/v1/endpoints/\{id\}/": {"id": endpoint.token, "secret_id": secret.fingerprint},
        r"^/api/v1/channels/\{id\}/": {"id": str(channel.public_id)},
        r"^/api/v1/deliveries/\{id\}/": {"id": str(delivery.public_id)},
        r"^/api/v1/keys/\{id\}/": {"id": spare.prefix},
    }


def as_toml(found: dict[str, dict[str, str]]) -> str:
    lines = []
    for regex, parameters in found.items():
        escaped = regex.replace("\\", "\\\\")
        values = ", ".join(f'"path.{name}" = "{value}"' for name, value in parameters.items())
        lines += ["[[operations]]", f'include-path-regex = "{escaped}"', f"parameters = {{ {values} }}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    # A file, not stdout: the console e-mail backend prints the test message there.
    Path(sys.argv[2]).write_text(as_toml(targets(sys.argv[1])))
