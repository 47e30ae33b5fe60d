import pytest
from django.core.management import CommandError, call_command

from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


def test_issue_api_key_prints_a_working_key(acme, capsys):
    call_command("issue_api_key", "--tenant", acme.tenant.slug, "--name", "fuzz", "--read-only")
    key = capsys.readouterr().out.strip()
    client = client_for(key)
    assert client.get("/api/v1/status/").status_code == 200
    assert client.post("/api/v1/keys/", {"name": "x"}, format="json").status_code == 403


def test_issue_api_key_for_an_unknown_tenant_fails(db):
    with pytest.raises(CommandError, match="no tenant"):
        call_command("issue_api_key", "--tenant", "nope")
