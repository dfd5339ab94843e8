"""Restart: state survives a stop/start on the same state dir.

Uses its own Nimbus (own state dir and port) so the shared one is not disturbed.
By default it uses --bcrypt-cost 4 like the rest of the suite; set
NIMBUS_FRONTDOOR_DEFAULT_COST=1 to run this module with the server's default cost.
"""

from __future__ import annotations

import os
import stat

import pytest
import requests

from conftest import own_cloud


@pytest.fixture(scope="module")
def restart_cloud():
    cost = None if os.environ.get("NIMBUS_FRONTDOOR_DEFAULT_COST") else 4
    with own_cloud("nimbus-restart-", bcrypt_cost=cost) as c:
        yield c


def test_state_survives_restart(restart_cloud):
    c = restart_cloud
    name = c.name("persist")
    p = c.openstack("project", "create", "--domain", "default", "--description", "kept", name)
    clouds_before = c.clouds_yaml.read_bytes()
    token_before = c.admin_token()
    log_offset = len(c.server.log_text())

    c.server.assert_stops_cleanly()
    # Nothing answers while it is down.
    with pytest.raises(requests.ConnectionError):
        requests.get(c.auth_url, timeout=5)

    c.server.start()
    assert "Nimbus is ready" in c.server.log_text()[log_offset:]

    # clouds.yaml is reused as-is (same admin password), still private.
    assert c.clouds_yaml.read_bytes() == clouds_before
    assert stat.S_IMODE(c.clouds_yaml.stat().st_mode) == 0o600

    shown = c.openstack("project", "show", name)
    assert shown["id"] == p["id"]
    assert shown["description"] == "kept"

    # Bootstrap did not run twice: exactly one of each bootstrap resource.
    tok = c.admin_token()
    h = {"X-Auth-Token": tok}
    for kind, n in (("projects", "admin"), ("projects", "demo"), ("users", "admin"),
                    ("users", "demo"), ("roles", "member")):
        r = requests.get(f"{c.v3}/{kind}", params={"name": n}, headers=h, timeout=30)
        assert r.status_code == 200, r.text
        assert len(r.json()[kind]) == 1, (kind, n, r.json())
    r = requests.get(f"{c.v3}/domains", headers=h, timeout=30)
    assert [d["id"] for d in r.json()["domains"] if d["name"] == "Default"] == ["default"]

    # Token signing keys are persistent too: a token issued before the restart
    # still validates.
    r = requests.get(f"{c.v3}/auth/tokens",
                     headers={"X-Auth-Token": tok, "X-Subject-Token": token_before}, timeout=30)
    assert r.status_code == 200, f"pre-restart token: {r.status_code} {r.text}"

    demo = c.openstack("token", "issue", cloud="nimbus-demo")
    assert demo["id"]
