"""Identity (Keystone v3) through the front door: the real `openstack` CLI,
openstacksdk and raw HTTP against a running `nimbus up`.

Each CLI call costs 1-2 s of Python start-up, so related commands are grouped
into one test and quick checks go over raw HTTP.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
import requests


# --------------------------------------------------------------------------- helpers

def http(method: str, url: str, **kw) -> requests.Response:
    """Raw request; every Nimbus response must carry a request id."""
    kw.setdefault("timeout", 30)
    r = requests.request(method, url, **kw)
    rid = r.headers.get("x-openstack-request-id")
    assert rid, f"{method} {url} -> {r.status_code} has no x-openstack-request-id header"
    assert rid.startswith("req-"), f"request id {rid!r} does not look like req-<uuid>"
    return r


def assert_error(r: requests.Response, code: int, title: str | None = None) -> dict:
    assert r.status_code == code, f"expected {code}, got {r.status_code}: {r.text[:500]}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err.get("message"), str) and err["message"], body
    if title is not None:
        assert err["title"] == title, body
    return err


def failed(proc, *needles: str) -> None:
    """A CLI run that must have failed, with each needle in its stderr."""
    assert proc.returncode != 0, f"expected failure, got rc=0\nstdout={proc.stdout}"
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in stderr:\n{proc.stderr}"


def validate(cloud, admin_tok: str, subject: str) -> requests.Response:
    return http("GET", f"{cloud.v3}/auth/tokens",
                headers={"X-Auth-Token": admin_tok, "X-Subject-Token": subject})


def role_names(token_body: dict) -> set[str]:
    return {r["name"] for r in token_body["token"].get("roles", [])}


@pytest.fixture(scope="module")
def admin_tok(cloud):
    return cloud.admin_token()


# --------------------------------------------------------------------------- bootstrap

def test_clouds_yaml_written(cloud):
    path = cloud.clouds_yaml
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    clouds = cloud.clouds()
    assert {"nimbus", "nimbus-demo"} <= set(clouds)
    for name, user, project in (("nimbus", "admin", "admin"), ("nimbus-demo", "demo", "demo")):
        c = clouds[name]
        assert c["auth"]["auth_url"] == cloud.auth_url
        assert c["auth"]["username"] == user
        assert c["auth"]["project_name"] == project
        assert c["auth"]["password"]
        assert str(c["identity_api_version"]) == "3"
        assert c["region_name"] == "RegionOne"
    assert clouds["nimbus"]["auth"]["password"] != clouds["nimbus-demo"]["auth"]["password"]


def test_version_discovery(cloud):
    r = http("GET", cloud.auth_url)
    assert r.status_code in (200, 300), r.text
    body = r.json()
    versions = body["versions"]["values"] if "versions" in body else [body["version"]]
    v3 = [v for v in versions if v["id"].startswith("v3")]
    assert v3, body
    assert v3[0]["status"] == "stable"
    assert any(l["rel"] == "self" and l["href"].rstrip("/").endswith("/identity/v3")
               for l in v3[0]["links"]), v3[0]
    r = http("GET", cloud.v3)
    assert r.status_code == 200, r.text
    assert r.json()["version"]["id"].startswith("v3")


def test_token_issue_admin_and_demo(cloud, ids):
    tok = cloud.openstack("token", "issue")
    assert tok["id"]
    assert tok["project_id"] == ids["project:admin"]
    assert tok["user_id"] == ids["user:admin"]
    assert tok["expires"]

    tok = cloud.openstack("token", "issue", cloud="nimbus-demo")
    assert tok["project_id"] == ids["project:demo"]
    assert tok["user_id"] == ids["user:demo"]


def test_token_roles_and_implied_roles(cloud):
    a = cloud.cloud_auth("nimbus-demo")
    r = cloud.password_token(a["username"], a["password"], "demo")
    assert r.status_code == 201, r.text
    assert r.headers.get("X-Subject-Token")
    assert r.headers.get("x-openstack-request-id")
    body = r.json()
    names = role_names(body)
    assert {"member", "reader"} <= names, f"member implies reader: {names}"
    assert "admin" not in names
    t = body["token"]
    assert t["project"]["name"] == "demo" and t["project"]["domain"]["id"] == "default"
    assert t["user"]["name"] == "demo" and t["user"]["domain"]["name"] == "Default"
    assert "password" in t["methods"]
    assert t["expires_at"] and t["issued_at"]
    assert any(s["type"] == "identity" for s in t["catalog"])

    a = cloud.cloud_auth("nimbus")
    r = cloud.password_token(a["username"], a["password"], "admin")
    assert r.status_code == 201, r.text
    assert {"admin", "member", "reader"} <= role_names(r.json())


def test_system_scope(cloud):
    a = cloud.cloud_auth("nimbus")
    r = cloud.password_token(a["username"], a["password"], system=True)
    assert r.status_code == 201, r.text
    t = r.json()["token"]
    assert t.get("system") == {"all": True}, t
    assert "admin" in role_names(r.json())

    d = cloud.cloud_auth("nimbus-demo")
    r = cloud.password_token(d["username"], d["password"], system=True)
    assert_error(r, 401)


def test_catalog_list(cloud):
    catalog = cloud.openstack("catalog", "list")
    identity = [s for s in catalog if s["Type"] == "identity"]
    assert len(identity) == 1, catalog
    eps = identity[0]["Endpoints"]
    assert {e["interface"] for e in eps} == {"public", "internal", "admin"}, eps
    for e in eps:
        assert e["url"].startswith(f"{cloud.base_url}/identity"), e
        assert (e.get("region_id") or e.get("region")) == "RegionOne", e


def test_region_service_endpoint_list(cloud):
    regions = cloud.openstack("region", "list")
    assert "RegionOne" in [r["Region"] for r in regions], regions

    services = cloud.openstack("service", "list")
    identity = [s for s in services if s["Type"] == "identity"]
    assert len(identity) == 1, services
    assert identity[0]["Name"] == "keystone"

    endpoints = cloud.openstack("endpoint", "list", "--service", "identity")
    assert {e["Interface"] for e in endpoints} == {"public", "internal", "admin"}, endpoints
    for e in endpoints:
        assert e["Region"] == "RegionOne", e
        assert e["Enabled"] is True, e
        assert e["Service Type"] == "identity", e
        assert e["URL"].startswith(f"{cloud.base_url}/identity"), e


# --------------------------------------------------------------------------- projects

def test_project_lifecycle(cloud):
    name = cloud.name("proj")
    p = cloud.openstack("project", "create", "--domain", "default",
                        "--description", "first", "--property", "color=blue", name)
    assert p["name"] == name
    assert p["description"] == "first"
    assert p["enabled"] is True
    assert p["domain_id"] == "default"
    assert p.get("color") == "blue", p
    pid = p["id"]

    listed = cloud.openstack("project", "list")
    assert {"ID": pid, "Name": name} in listed, listed

    dup = cloud.openstack("project", "create", "--domain", "default", name, check=False)
    failed(dup, "409")

    cloud.openstack("project", "set", "--description", "second", "--disable",
                    "--property", "size=large", name)
    shown = cloud.openstack("project", "show", pid)
    assert shown["description"] == "second"
    assert shown["enabled"] is False
    assert shown.get("size") == "large", shown
    assert shown.get("color") == "blue", shown

    cloud.openstack("project", "set", "--enable", pid)
    shown = cloud.openstack("project", "show", name)
    assert shown["enabled"] is True
    assert shown["id"] == pid

    cloud.openstack("project", "delete", name)
    gone = cloud.openstack("project", "show", pid, check=False)
    failed(gone)
    assert name not in [p["Name"] for p in cloud.openstack("project", "list")]


# --------------------------------------------------------------------------- users and roles

def test_user_role_and_member_login(cloud, ids):
    uname, pw = cloud.name("alice"), "alice-secret-1"
    u = cloud.openstack("user", "create", "--domain", "default", "--password", pw,
                        "--project", "demo", "--email", "alice@example.org", uname)
    assert u["name"] == uname
    assert u["domain_id"] == "default"
    assert u["default_project_id"] == ids["project:demo"]
    assert u["enabled"] is True
    assert "password" not in u

    cloud.openstack("role", "add", "--project", "demo", "--user", uname, "member")

    as_alice = cloud.user_args(uname, pw, "demo")
    tok = cloud.openstack("token", "issue", cloud=None, auth=as_alice)
    assert tok["project_id"] == ids["project:demo"]
    assert tok["user_id"] == u["id"]

    # Unfiltered `project list` is refused with 403; the CLI then falls back to
    # GET /v3/users/{id}/projects and shows only the member's own projects.
    own = cloud.openstack("project", "list", cloud=None, auth=as_alice)
    assert [p["Name"] for p in own] == ["demo"], own
    # A filtered list has no fallback: the 403 surfaces.
    refused = cloud.openstack("project", "list", "--enabled", cloud=None, auth=as_alice,
                              check=False)
    failed(refused, "403")

    ras = cloud.openstack("role", "assignment", "list", "--names", "--user", uname)
    assert len(ras) == 1, ras
    ra = ras[0]
    assert ra["Role"] == "member"
    assert ra["User"] == f"{uname}@Default"
    assert ra["Project"] == "demo@Default"
    assert ra["Group"] == "" and ra["Domain"] == "" and ra["System"] == ""

    ras = cloud.openstack("role", "assignment", "list", "--user", uname)
    assert ras == [{"Role": ids["role:member"], "User": u["id"], "Group": "",
                    "Project": ids["project:demo"], "Domain": "", "System": "",
                    "Inherited": False}], ras


def test_role_assignment_names_bootstrap(cloud):
    ras = cloud.openstack("role", "assignment", "list", "--names")
    rows = {(r["Role"], r["User"], r["Project"], r["System"]) for r in ras}
    assert ("admin", "admin@Default", "admin@Default", "") in rows, rows
    assert ("member", "demo@Default", "demo@Default", "") in rows, rows
    assert ("admin", "admin@Default", "", "all") in rows, rows


def test_password_change_and_disable(cloud, admin_tok):
    uname, pw1, pw2 = cloud.name("bob"), "bob-pass-one", "bob-pass-two"
    cloud.openstack("user", "create", "--domain", "default", "--password", pw1, uname)
    cloud.openstack("role", "add", "--project", "demo", "--user", uname, "member")

    r = cloud.password_token(uname, pw1, "demo")
    assert r.status_code == 201, r.text
    old = r.headers["X-Subject-Token"]
    assert validate(cloud, admin_tok, old).status_code == 200

    cloud.openstack("user", "set", "--password", pw2, uname)
    assert_error(validate(cloud, admin_tok, old), 404)
    assert_error(cloud.password_token(uname, pw1, "demo"), 401, "Unauthorized")
    r = cloud.password_token(uname, pw2, "demo")
    assert r.status_code == 201, r.text
    current = r.headers["X-Subject-Token"]

    cloud.openstack("user", "set", "--disable", uname)
    assert_error(cloud.password_token(uname, pw2, "demo"), 401)
    assert_error(validate(cloud, admin_tok, current), 404)
    blocked = cloud.openstack("token", "issue", cloud=None,
                              auth=cloud.user_args(uname, pw2, "demo"), check=False)
    failed(blocked, "401")


def test_token_revoke(cloud, admin_tok):
    tok = cloud.openstack("token", "issue")["id"]
    # The token works for token-auth before it is revoked...
    again = cloud.openstack("token", "issue", cloud=None, auth=cloud.token_args(tok, "admin"))
    assert again["id"] and again["id"] != tok
    assert validate(cloud, admin_tok, tok).status_code == 200

    cloud.openstack("token", "revoke", tok)

    # ...and not after.
    proc = cloud.openstack("token", "issue", cloud=None, auth=cloud.token_args(tok, "admin"),
                           check=False)
    failed(proc)
    assert "401" in proc.stderr or "404" in proc.stderr, proc.stderr
    assert_error(validate(cloud, admin_tok, tok), 404)
    r = http("GET", f"{cloud.v3}/projects", headers={"X-Auth-Token": tok})
    assert_error(r, 401)


def test_application_credential(cloud, ids, admin_tok):
    name = cloud.name("appcred")
    ac = cloud.openstack("application", "credential", "create", "--description", "ci", name,
                         cloud="nimbus-demo")
    assert ac["Name"] == name
    assert ac["Secret"], ac
    assert ac["Project ID"] == ids["project:demo"]
    assert {"member", "reader"} <= {r["name"] for r in ac["Roles"]}, ac["Roles"]
    ac_auth = ["--os-auth-type", "v3applicationcredential", "--os-auth-url", cloud.auth_url,
               "--os-identity-api-version", "3", "--os-region-name", "RegionOne",
               "--os-application-credential-id", ac["ID"],
               "--os-application-credential-secret", ac["Secret"]]

    tok = cloud.openstack("token", "issue", cloud=None, auth=ac_auth)
    assert tok["project_id"] == ids["project:demo"]
    assert tok["user_id"] == ids["user:demo"]
    r = validate(cloud, admin_tok, tok["id"])
    assert r.status_code == 200, r.text
    t = r.json()["token"]
    assert "application_credential" in t["methods"], t["methods"]
    assert t["application_credential"]["id"] == ac["ID"]

    wrong = {"auth": {"identity": {"methods": ["application_credential"],
                                   "application_credential": {"id": ac["ID"],
                                                              "secret": "wrong"}}}}
    assert_error(http("POST", f"{cloud.v3}/auth/tokens", json=wrong), 401)

    listed = cloud.openstack("application", "credential", "list", cloud="nimbus-demo")
    assert name in [a["Name"] for a in listed], listed

    cloud.openstack("application", "credential", "delete", name, cloud="nimbus-demo")
    proc = cloud.openstack("token", "issue", cloud=None, auth=ac_auth, check=False)
    failed(proc, "401")
    # Deleting the credential also revokes the tokens it issued.
    assert_error(validate(cloud, admin_tok, tok["id"]), 404)


def test_group_role(cloud, ids):
    uname, pw, gname = cloud.name("carol"), "carol-pass", cloud.name("grp")
    u = cloud.openstack("user", "create", "--domain", "default", "--password", pw, uname)
    # No role yet: a project-scoped login is refused.
    assert_error(cloud.password_token(uname, pw, "demo"), 401)

    g = cloud.openstack("group", "create", "--domain", "default", "--description", "ci", gname)
    assert g["name"] == gname and g["domain_id"] == "default"
    cloud.openstack("group", "add", "user", gname, uname)
    cloud.openstack("role", "add", "--group", gname, "--project", "demo", "member")

    r = cloud.password_token(uname, pw, "demo")
    assert r.status_code == 201, r.text
    assert "member" in role_names(r.json())

    # --effective expands group membership and implied roles (member -> reader),
    # as Keystone does.
    eff = cloud.openstack("role", "assignment", "list", "--effective", "--names",
                          "--user", uname)
    assert sorted((a["Role"], a["User"], a["Group"], a["Project"]) for a in eff) == [
        ("member", f"{uname}@Default", "", "demo@Default"),
        ("reader", f"{uname}@Default", "", "demo@Default")], eff
    direct = cloud.openstack("role", "assignment", "list", "--group", gname)
    assert [(a["Role"], a["Group"], a["Project"]) for a in direct] == \
        [(ids["role:member"], g["id"], ids["project:demo"])], direct
    assert u["id"]


def test_domain_lifecycle(cloud):
    name = cloud.name("dom")
    d = cloud.openstack("domain", "create", "--description", "ci domain", name)
    assert d["name"] == name and d["enabled"] is True
    assert name in [x["Name"] for x in cloud.openstack("domain", "list")]

    # Keystone refuses to delete an enabled domain.
    failed(cloud.openstack("domain", "delete", name, check=False))

    cloud.openstack("domain", "set", "--disable", name)
    assert cloud.openstack("domain", "show", d["id"])["enabled"] is False
    cloud.openstack("domain", "delete", name)
    assert name not in [x["Name"] for x in cloud.openstack("domain", "list")]


def test_role_create_delete(cloud):
    name = cloud.name("role")
    r = cloud.openstack("role", "create", name)
    assert r["name"] == name and r["id"]
    assert name in [x["Name"] for x in cloud.openstack("role", "list")]
    cloud.openstack("role", "delete", name)
    names = [x["Name"] for x in cloud.openstack("role", "list")]
    assert name not in names
    assert {"admin", "member", "reader"} <= set(names)


# --------------------------------------------------------------------------- openstacksdk

def test_sdk_projects_crud(conn, cloud, ids):
    import openstack.exceptions

    names = {p.name for p in conn.identity.projects()}
    assert {"admin", "demo"} <= names

    name = cloud.name("sdkproj")
    p = conn.identity.create_project(name=name, description="from sdk", domain_id="default")
    assert p.id and p.name == name
    got = conn.identity.get_project(p.id)
    assert got.name == name and got.description == "from sdk" and got.is_enabled is True
    conn.identity.update_project(p, description="updated", is_enabled=False)
    got = conn.identity.get_project(p.id)
    assert got.description == "updated" and got.is_enabled is False
    assert conn.identity.find_project(name).id == p.id
    conn.identity.delete_project(p)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.identity.get_project(p.id)
    assert conn.identity.find_project(name) is None


def test_sdk_find_user_and_authorize(conn, demo_conn, cloud, ids, admin_tok):
    import openstack.exceptions

    u = conn.identity.find_user("demo")
    assert u is not None and u.id == ids["user:demo"]
    assert u.name == "demo" and u.domain_id == "default"
    assert conn.identity.find_user(cloud.name("nobody")) is None

    token = conn.authorize()
    assert isinstance(token, str) and token
    r = validate(cloud, admin_tok, token)
    assert r.status_code == 200, r.text
    assert r.json()["token"]["user"]["name"] == "admin"

    with pytest.raises(openstack.exceptions.ForbiddenException):
        list(demo_conn.identity.projects())
    mine = [p.name for p in demo_conn.identity.user_projects(ids["user:demo"])]
    assert mine == ["demo"]


# --------------------------------------------------------------------------- raw HTTP, bad input

def test_wrong_password_401(cloud):
    r = cloud.password_token("admin", "definitely-not-the-password", "admin")
    assert r.headers.get("x-openstack-request-id")
    assert_error(r, 401, "Unauthorized")
    assert "definitely-not-the-password" not in r.text
    # An unknown user looks the same as a wrong password.
    r = cloud.password_token(cloud.name("ghost"), "whatever", "admin")
    assert_error(r, 401, "Unauthorized")


def test_malformed_json_400(cloud, admin_tok):
    h = {"X-Auth-Token": admin_tok, "Content-Type": "application/json"}
    r = http("POST", f"{cloud.v3}/projects", data=b'{"project": {"name": ', headers=h)
    assert_error(r, 400, "Bad Request")
    r = http("POST", f"{cloud.v3}/auth/tokens", data=b"not json at all",
             headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    # Well-formed JSON of the wrong shape is a 400 too.
    r = http("POST", f"{cloud.v3}/projects", json={"project": "oops"}, headers=h)
    assert_error(r, 400)
    r = http("POST", f"{cloud.v3}/projects", json={"project": {"name": ""}}, headers=h)
    assert_error(r, 400)


def test_project_name_too_long_400(cloud, admin_tok):
    h = {"X-Auth-Token": admin_tok}
    r = http("POST", f"{cloud.v3}/projects", json={"project": {"name": "x" * 65}}, headers=h)
    assert_error(r, 400, "Bad Request")
    ok = http("POST", f"{cloud.v3}/projects",
              json={"project": {"name": cloud.name("y" * 50)[:64]}}, headers=h)
    assert ok.status_code == 201, ok.text
    http("DELETE", f"{cloud.v3}/projects/{ok.json()['project']['id']}", headers=h)


def test_unknown_project_404(cloud, admin_tok):
    r = http("GET", f"{cloud.v3}/projects/0123456789abcdef0123456789abcdef",
             headers={"X-Auth-Token": admin_tok})
    assert_error(r, 404, "Not Found")


def test_no_token_401_and_bad_token_401(cloud):
    assert_error(http("GET", f"{cloud.v3}/projects"), 401)
    assert_error(http("GET", f"{cloud.v3}/projects", headers={"X-Auth-Token": "garbage"}), 401)


def test_revoked_token_validation_404(cloud, admin_tok):
    a = cloud.cloud_auth("nimbus-demo")
    r = cloud.password_token(a["username"], a["password"], "demo")
    assert r.status_code == 201
    tok = r.headers["X-Subject-Token"]
    assert validate(cloud, admin_tok, tok).status_code == 200
    assert http("HEAD", f"{cloud.v3}/auth/tokens",
                headers={"X-Auth-Token": admin_tok, "X-Subject-Token": tok}).status_code == 200
    r = http("DELETE", f"{cloud.v3}/auth/tokens",
             headers={"X-Auth-Token": admin_tok, "X-Subject-Token": tok})
    assert r.status_code == 204, r.text
    assert_error(validate(cloud, admin_tok, tok), 404, "Not Found")
    # Garbage is refused too (Keystone: 404, or 400 for an unparsable token).
    assert validate(cloud, admin_tok, "gAAAAABnotatoken").status_code in (400, 404)


def test_unknown_route_404(cloud):
    assert http("GET", f"{cloud.v3}/no-such-collection").status_code == 404
    assert http("GET", f"{cloud.base_url}/no-such-service/v1").status_code == 404


def test_wrong_method_405(cloud, admin_tok):
    r = http("PATCH", f"{cloud.v3}/auth/tokens", json={},
             headers={"X-Auth-Token": admin_tok})
    assert r.status_code == 405, f"{r.status_code}: {r.text[:300]}"


def test_body_over_1mib_413(cloud):
    body = json.dumps({"auth": {"pad": "x" * (1024 * 1024 + 10)}}).encode()
    r = http("POST", f"{cloud.v3}/auth/tokens", data=body,
             headers={"Content-Type": "application/json"})
    assert r.status_code == 413, f"{r.status_code}: {r.text[:300]}"
    # The server is still fine afterwards.
    assert http("GET", cloud.v3).status_code == 200


def test_request_id_on_success(cloud, admin_tok):
    r1 = http("GET", f"{cloud.v3}/projects", headers={"X-Auth-Token": admin_tok})
    r2 = http("GET", f"{cloud.v3}/projects", headers={"X-Auth-Token": admin_tok})
    assert r1.status_code == r2.status_code == 200
    assert r1.headers["x-openstack-request-id"] != r2.headers["x-openstack-request-id"]


@pytest.mark.skipif(not os.environ.get("NIMBUS_FRONTDOOR_SLOW"),
                    reason="set NIMBUS_FRONTDOOR_SLOW=1 to also check many logins in a row")
def test_many_logins(cloud):
    a = cloud.cloud_auth("nimbus-demo")
    for _ in range(20):
        assert cloud.password_token(a["username"], a["password"], "demo").status_code == 201
