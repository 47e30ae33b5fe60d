import pytest
from tests.dashboard.conftest import url
from tests.anomalies.events import T0, event, store, process
from tests.api.conftest import make_anomaly

pytestmark = pytest.mark.django_db

def test_smoke(acme, owner):
    t = acme.tenant
    r = owner.get(url(t)); assert r.status_code == 200, r.content[:3000]
    assert b"Welcome" in r.content
    store(t, event("charge.succeeded", T0)); process()
    a = make_anomaly(t)
    for p in ["", "?mode=test", "anomalies/", f"anomalies/{a.public_id}/", "events/", "webhooks/", "detectors/", "members/", "alerts/", "anomalies/export.csv", "events/export.csv", "alerts/new/?kind=email"]:
        r = owner.get(url(t, p))
        assert r.status_code == 200, (p, r.content[:3000])
    r = owner.post(url(t, f"webhooks/{acme.endpoint.token}/test/"))
    assert r.status_code == 302, r.content
    r = owner.get(r.url); assert b"evt_bwtest_" in r.content
