"""Compute (Nova v2.1) through the front door: the real `openstack` CLI,
openstacksdk and raw HTTP against a running `nimbus up --driver fake`.

The compute API is in the catalog as type `compute` at <base>/compute/v2.1.

Most tests share one module cloud with two fake hosts (`cc`); every test on it
deletes all servers afterwards (fixture `env`), so quota and weighing start
from an empty cloud each time. Tests that need other `nimbus up` flags
(failing hosts, quota) start a Nimbus of their own.

Speed: each CLI call costs ~1 s of Python start-up, and the CLI's `--wait`
polls every 5 s. So `--wait` is used only where the brief asks for it
(create, delete, resize); everything else polls `GET /servers/{id}` over raw
HTTP every 0.25 s with a 60 s deadline, and checks after a CLI command go
over raw HTTP too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import Cloud, own_cloud

MiB = 1024 * 1024
POLL = 0.25
DEADLINE = 60.0
FAKE = ["--driver", "fake"]
TWO_HOSTS = ["fake-0", "fake-1"]

# id -> (name, vcpus, ram MB, disk GB), as seeded.
SEEDED = {
    "42": ("m1.nano", 1, 128, 1),
    "84": ("m1.micro", 1, 192, 1),
    "1": ("m1.tiny", 1, 512, 1),
    "2": ("m1.small", 1, 2048, 20),
    "3": ("m1.medium", 2, 4096, 40),
    "4": ("m1.large", 4, 8192, 80),
}


# --------------------------------------------------------------------------- helpers

def http(method: str, url: str, **kw) -> requests.Response:
    """Raw request; every Nimbus response must carry a request id."""
    kw.setdefault("timeout", 60)
    r = requests.request(method, url, **kw)
    rid = r.headers.get("x-openstack-request-id")
    assert rid, f"{method} {url} -> {r.status_code} has no x-openstack-request-id header"
    assert rid.startswith("req-"), f"request id {rid!r} does not look like req-<uuid>"
    return r


def nova_fault(r: requests.Response, code: int, key: str) -> str:
    """A Nova-style fault: {"<key>": {"message": ..., "code": <code>}}. Returns the message."""
    where = f"{r.request.method} {r.url}"
    assert r.status_code == code, f"{where}: expected {code}, got {r.status_code}: {r.text[:500]}"
    assert r.headers.get("content-type", "").startswith("application/json"), \
        f"{where}: content-type {r.headers.get('content-type')!r}: {r.text[:300]}"
    body = r.json()
    assert list(body) == [key], f"{where}: expected a {{{key!r}: ...}} fault, got {body}"
    inner = body[key]
    assert inner.get("code") == code, f"{where}: fault code {inner.get('code')!r} != {code}: {body}"
    assert isinstance(inner.get("message"), str) and inner["message"], f"{where}: {body}"
    return inner["message"]


def failed(proc, *needles: str) -> None:
    """A CLI run that must have failed, with each needle in its stderr."""
    assert proc.returncode != 0, f"expected failure, got rc=0\nstdout={proc.stdout}"
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in stderr:\n{proc.stderr}"


def json_tail(text: str) -> Any:
    """JSON printed by the CLI, skipping anything (e.g. `Progress: N`) before it."""
    starts = [p for p in (text.find("{"), text.find("[")) if p >= 0]
    assert starts, f"no JSON in CLI output:\n{text}"
    return json.loads(text[min(starts):])


def mv_tuple(v: str) -> tuple[int, int]:
    major, minor = v.split(".")
    return int(major), int(minor)


def flavor_name(f: Any) -> str:
    """Flavor name from a server's `flavor`: embedded (>= 2.47), {"id": ...}, or CLI 'name (id)'."""
    if isinstance(f, dict):
        if f.get("original_name"):
            return f["original_name"]
        fid = str(f.get("id"))
        return SEEDED[fid][0] if fid in SEEDED else fid
    return str(f).split(" (")[0]


def row_by_id(rows: list[dict], rid: str, key: str = "ID") -> dict:
    got = [r for r in rows if r.get(key) == rid]
    assert len(got) == 1, f"expected one row with {key}={rid}: {rows}"
    return got[0]


def md5_fingerprint(public_key: str) -> str:
    blob = base64.b64decode(public_key.split()[1])
    h = hashlib.md5(blob).hexdigest()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


class Nova:
    """Raw-HTTP helper for the compute API, bound to one token."""

    def __init__(self, url: str, token: str, mv: str):
        self.url = url.rstrip("/")
        self.token = token
        self.mv = mv

    def h(self, mv: str | None = None, **extra: str) -> dict[str, str]:
        return {"X-Auth-Token": self.token,
                "OpenStack-API-Version": f"compute {mv or self.mv}", **extra}

    def req(self, method: str, path: str, mv: str | None = None,
            headers: dict | None = None, **kw) -> requests.Response:
        return http(method, f"{self.url}{path}", headers={**self.h(mv), **(headers or {})}, **kw)

    def get(self, sid: str) -> dict:
        r = self.req("GET", f"/servers/{sid}")
        assert r.status_code == 200, f"GET /servers/{sid} -> {r.status_code} {r.text[:500]}"
        return r.json()["server"]

    def wait(self, sid: str, status: str, timeout: float = DEADLINE) -> dict:
        """Poll until `status` with no task in progress. Stops early on an unexpected ERROR."""
        deadline = time.monotonic() + timeout
        seen: list[tuple] = []
        while True:
            s = self.get(sid)
            state = (s["status"], s.get("OS-EXT-STS:task_state"))
            if not seen or seen[-1] != state:
                seen.append(state)
            if s["status"] == status and not s.get("OS-EXT-STS:task_state"):
                return s
            if s["status"] == "ERROR" and status != "ERROR":
                raise AssertionError(f"server {sid} went ERROR waiting for {status}: "
                                     f"fault={s.get('fault')} states={seen}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server {sid} not {status} within {timeout:.0f}s; "
                                     f"(status, task_state) seen: {seen}; last: {s}")
            time.sleep(POLL)

    def wait_gone(self, sid: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while True:
            r = self.req("GET", f"/servers/{sid}")
            if r.status_code == 404:
                return
            assert r.status_code == 200, f"GET /servers/{sid} -> {r.status_code} {r.text[:300]}"
            if time.monotonic() > deadline:
                raise AssertionError(f"server {sid} still there {timeout:.0f}s after delete: "
                                     f"{r.json()['server'].get('status')}")
            time.sleep(POLL)

    def server_ids(self, all_tenants: bool = False, **params) -> list[str]:
        if all_tenants:
            params["all_tenants"] = "1"
        r = self.req("GET", "/servers", params=params)
        assert r.status_code == 200, f"GET /servers -> {r.status_code} {r.text[:500]}"
        return [s["id"] for s in r.json()["servers"]]

    def action(self, sid: str, body: dict) -> requests.Response:
        return self.req("POST", f"/servers/{sid}/action", json=body)


@dataclass
class Compute:
    """A cloud with the compute API looked up, an image, and admin/demo raw clients."""

    c: Cloud
    admin: Nova
    demo: Nova
    image: str
    image_name: str
    placement: str | None
    admin_project: str
    demo_project: str

    @property
    def mv(self) -> str:
        return self.admin.mv

    def mv_at_least(self, v: str) -> bool:
        return mv_tuple(self.mv) >= mv_tuple(v)

    def boot(self, name: str, *extra: str, cloud: str = "nimbus", flavor: str = "m1.nano") -> str:
        """`openstack server create` without --wait; returns the id."""
        out = self.c.openstack("server", "create", "--image", self.image, "--flavor", flavor,
                               *extra, name, cloud=cloud)
        assert out.get("id"), out
        assert out.get("name") == name, out
        return out["id"]

    def body(self, **over: Any) -> dict:
        """A valid POST /servers body (raw HTTP)."""
        s: dict[str, Any] = {"name": self.c.name("raw"), "imageRef": self.image, "flavorRef": "42"}
        if self.mv_at_least("2.37"):
            s["networks"] = "none"
        s.update(over)
        return {"server": s}

    def host(self, sid: str) -> str:
        return self.admin.get(sid).get("OS-EXT-SRV-ATTR:host")

    def placement_get(self, path: str) -> requests.Response:
        assert self.placement, "no `placement` service in the catalog"
        return http("GET", f"{self.placement}{path}",
                    headers={"X-Auth-Token": self.admin.token,
                             "OpenStack-API-Version": "placement 1.0"})

    def provider_usages(self, name: str) -> dict:
        r = self.placement_get(f"/resource_providers?name={name}")
        assert r.status_code == 200, r.text
        rps = r.json()["resource_providers"]
        assert len(rps) == 1, f"expected one resource provider named {name}: {rps}"
        r = self.placement_get(f"/resource_providers/{rps[0]['uuid']}/usages")
        assert r.status_code == 200, r.text
        return r.json()["usages"]

    def tidy(self) -> None:
        """Delete every server in every project and wait until they are gone."""
        ids = self.admin.server_ids(all_tenants=True)
        for sid in ids:
            r = self.admin.req("DELETE", f"/servers/{sid}")
            assert r.status_code in (204, 404), f"cleanup DELETE {sid} -> {r.status_code} {r.text}"
        for sid in ids:
            self.admin.wait_gone(sid)


def _catalog_url(catalog: list[dict], kind: str) -> str | None:
    svc = [s for s in catalog if s["type"] == kind]
    if not svc:
        return None
    public = [e["url"] for e in svc[0]["endpoints"] if e["interface"] == "public"]
    return public[0].rstrip("/") if public else None


def _raw_image(c: Cloud, token: str, image_url: str, name: str) -> str:
    """A public 1 MiB raw image over raw Glance HTTP (faster than the CLI)."""
    h = {"X-Auth-Token": token}
    r = http("POST", f"{image_url}/v2/images", headers=h, json={
        "name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public"})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    r = http("PUT", f"{image_url}/v2/images/{iid}/file", data=os.urandom(MiB),
             headers={**h, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 30
    while http("GET", f"{image_url}/v2/images/{iid}", headers=h).json()["status"] != "active":
        assert time.monotonic() < deadline, "image did not go active"
        time.sleep(0.1)
    return iid


def setup_compute(c: Cloud, cli_image: bool = False) -> Compute:
    a = c.cloud_auth("nimbus")
    r = c.password_token(a["username"], a["password"], "admin")
    assert r.status_code == 201, r.text
    admin_tok, admin_project = r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]
    catalog = r.json()["token"]["catalog"]
    d = c.cloud_auth("nimbus-demo")
    r = c.password_token(d["username"], d["password"], "demo")
    assert r.status_code == 201, r.text
    demo_tok, demo_project = r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]

    compute_url = _catalog_url(catalog, "compute")
    assert compute_url == f"{c.base_url}/compute/v2.1", \
        f"compute endpoint {compute_url!r}, want {c.base_url}/compute/v2.1: {catalog}"
    r = http("GET", compute_url)
    assert r.status_code == 200, f"GET {compute_url} -> {r.status_code} {r.text[:300]}"
    mv = r.json()["version"]["version"]

    name = c.name("cirros")
    if cli_image:
        f = c.workdir / "disk.raw"
        f.write_bytes(os.urandom(MiB))
        img = c.openstack("image", "create", "--file", str(f), "--disk-format", "raw",
                          "--container-format", "bare", "--public", name)
        assert img["status"] == "active", img
        image = img["id"]
    else:
        image = _raw_image(c, admin_tok, _catalog_url(catalog, "image"), name)
    return Compute(c=c, admin=Nova(compute_url, admin_tok, mv), demo=Nova(compute_url, demo_tok, mv),
                   image=image, image_name=name, placement=_catalog_url(catalog, "placement"),
                   admin_project=admin_project, demo_project=demo_project)


@contextlib.contextmanager
def compute_cloud(prefix: str, extra_args: list[str]):
    with own_cloud(prefix, extra_args=FAKE + extra_args) as c:
        yield setup_compute(c)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def cc():
    """The module's compute cloud: fake driver, two fake hosts, an image."""
    with own_cloud("nimbus-compute-", extra_args=FAKE + ["--fake-hosts", "2"]) as c:
        yield setup_compute(c, cli_image=True)


@pytest.fixture
def env(cc):
    """`cc`, emptied of servers after the test."""
    yield cc
    cc.tidy()


# --------------------------------------------------------------------------- discovery

def test_catalog_and_versions(env):
    e = env
    root = f"{e.c.base_url}/compute"
    r = http("GET", f"{root}/")
    assert r.status_code in (200, 300), f"GET {root}/ -> {r.status_code} {r.text[:300]}"
    versions = r.json()["versions"]
    v21 = [v for v in versions if v["id"] == "v2.1"]
    assert len(v21) == 1 and v21[0]["status"] == "CURRENT", versions
    assert v21[0]["min_version"] == "2.1", v21
    assert mv_tuple(v21[0]["version"]) >= (2, 1), v21

    r = http("GET", e.admin.url)
    doc = r.json()["version"]
    assert doc["id"] == "v2.1" and doc["version"] == v21[0]["version"], doc
    print(f"compute max microversion: {doc['version']}")

    # Microversion negotiation: the chosen version is echoed; too high is 406.
    r = e.admin.req("GET", "/servers", mv="2.1")
    assert r.status_code == 200, r.text
    assert r.headers.get("OpenStack-API-Version") == "compute 2.1", r.headers
    r = e.admin.req("GET", "/servers")
    assert r.headers.get("OpenStack-API-Version") == f"compute {e.mv}", r.headers
    r = e.admin.req("GET", "/servers", mv="9.99")
    assert r.status_code == 406, f"microversion 9.99 -> {r.status_code} {r.text[:300]}"


# --------------------------------------------------------------------------- 1. lifecycle

def test_server_create_list_show_delete(env):
    e, c = env, env.c
    name = c.name("life")
    out = c.openstack("server", "create", "--image", e.image, "--flavor", "m1.nano", "--wait",
                      name, "-f", "json", fmt=False)
    srv = json_tail(out)
    sid = srv["id"]
    assert srv["name"] == name, srv
    assert srv["status"] == "ACTIVE", srv
    assert srv["OS-EXT-STS:vm_state"] == "active", srv
    assert srv["OS-EXT-STS:power_state"] in (1, "Running"), srv
    assert not srv.get("OS-EXT-STS:task_state"), srv
    assert srv.get("adminPass"), f"create response carries no adminPass: {srv}"
    assert e.image in str(srv["image"]), srv
    assert flavor_name(srv["flavor"]) == "m1.nano", srv
    assert srv.get("OS-EXT-SRV-ATTR:host") in TWO_HOSTS, srv
    assert srv.get("OS-EXT-SRV-ATTR:hypervisor_hostname") == srv["OS-EXT-SRV-ATTR:host"], srv
    assert srv.get("OS-EXT-AZ:availability_zone") == "nova", srv
    # Without --nic the CLI asks for "auto": admin's project has no network, so the shared one.
    shared = srv.get("addresses", {}).get("shared")
    assert shared and shared[0].startswith("192.168.233."), srv
    host = srv["OS-EXT-SRV-ATTR:host"]

    row = row_by_id(c.openstack("server", "list"), sid)
    assert (row["Name"], row["Status"]) == (name, "ACTIVE"), row
    assert row["Image"] == e.image_name, row
    assert row.get("Flavor") == "m1.nano" or row.get("Flavor Name") == "m1.nano", row
    assert "shared" in str(row["Networks"]), row

    row = row_by_id(c.openstack("server", "list", "--long"), sid)
    assert row["Status"] == "ACTIVE", row
    assert row["Power State"] in (1, "Running"), row
    assert not row["Task State"], row
    assert row["Image ID"] == e.image, row
    assert row["Availability Zone"] == "nova", row
    assert row["Host"] == host, row

    shown = c.openstack("server", "show", name)
    assert shown["id"] == sid and shown["status"] == "ACTIVE", shown
    assert shown["OS-EXT-SRV-ATTR:host"] == host, shown
    assert shown["project_id"] == e.admin_project, shown
    assert shown.get("hostId"), shown

    # `--nic none` is accepted too.
    sid2 = e.boot(c.name("nonic"), "--nic", "none")
    s2 = e.admin.wait(sid2, "ACTIVE")
    assert not s2.get("addresses"), s2

    c.openstack("server", "delete", "--wait", name)
    nova_fault(e.admin.req("GET", f"/servers/{sid}"), 404, "itemNotFound")
    failed(c.openstack("server", "show", name, check=False), "No Server found for")
    assert sid not in e.admin.server_ids()
    assert sid2 in e.admin.server_ids()


# --------------------------------------------------------------------------- 2. actions

def test_server_actions(env):
    e, c = env, env.c
    sid = e.boot(c.name("act"))
    e.admin.wait(sid, "ACTIVE")

    def act(*args: str, status: str, vm_state: str, power_state: int | None = None) -> dict:
        c.openstack("server", *args, sid)
        s = e.admin.wait(sid, status)
        assert s["OS-EXT-STS:vm_state"] == vm_state, (args, s)
        if power_state is not None:
            assert s["OS-EXT-STS:power_state"] == power_state, (args, s)
        return s

    act("reboot", status="ACTIVE", vm_state="active", power_state=1)
    act("reboot", "--hard", status="ACTIVE", vm_state="active", power_state=1)

    # Wrong state: 409 with Nova's message.
    failed(c.openstack("server", "unpause", sid, check=False),
           f"Cannot 'unpause' instance {sid} while it is in vm_state active", "409")

    act("stop", status="SHUTOFF", vm_state="stopped", power_state=4)
    failed(c.openstack("server", "stop", sid, check=False),
           f"Cannot 'stop' instance {sid} while it is in vm_state stopped")
    act("start", status="ACTIVE", vm_state="active", power_state=1)
    act("pause", status="PAUSED", vm_state="paused", power_state=3)
    act("unpause", status="ACTIVE", vm_state="active", power_state=1)
    act("suspend", status="SUSPENDED", vm_state="suspended")
    act("resume", status="ACTIVE", vm_state="active", power_state=1)

    # Resize + confirm.
    c.openstack("server", "resize", "--flavor", "m1.micro", "--wait", sid)
    s = e.admin.get(sid)
    assert (s["status"], s["OS-EXT-STS:vm_state"]) == ("VERIFY_RESIZE", "resized"), \
        f"after `server resize --wait`: {s['status']}/{s['OS-EXT-STS:vm_state']} " \
        f"task={s.get('OS-EXT-STS:task_state')} (want VERIFY_RESIZE/resized)"
    assert flavor_name(s["flavor"]) == "m1.micro", s["flavor"]
    c.openstack("server", "resize", "confirm", sid)
    s = e.admin.wait(sid, "ACTIVE")
    assert s["OS-EXT-STS:vm_state"] == "active" and flavor_name(s["flavor"]) == "m1.micro", s
    shown = c.openstack("server", "show", sid)
    assert flavor_name(shown["flavor"]) == "m1.micro", shown["flavor"]

    # Resize + revert: back to the old flavor.
    c.openstack("server", "resize", "--flavor", "m1.tiny", sid)
    s = e.admin.wait(sid, "VERIFY_RESIZE")
    assert flavor_name(s["flavor"]) == "m1.tiny", s["flavor"]
    c.openstack("server", "resize", "revert", sid)
    s = e.admin.wait(sid, "ACTIVE")
    assert flavor_name(s["flavor"]) == "m1.micro", f"after revert: {s['flavor']}"
    assert s["OS-EXT-STS:power_state"] == 1, s

    # Every action is in the instance-action log.
    rows = c.openstack("server", "event", "list", sid)
    actions = {r["Action"] for r in rows}
    want = {"create", "reboot", "stop", "start", "pause", "unpause", "suspend", "resume",
            "resize", "confirmResize", "revertResize"}
    assert want <= actions, f"missing instance actions {want - actions}: {rows}"
    assert {r["Server ID"] for r in rows} == {sid}, rows


def test_lock_blocks_non_admin_delete(env):
    e, c = env, env.c
    sid = e.boot(c.name("locked"), cloud="nimbus-demo")
    e.demo.wait(sid, "ACTIVE")
    c.openstack("server", "lock", sid, cloud="nimbus-demo")
    assert e.admin.get(sid).get("locked") is True, e.admin.get(sid)

    failed(c.openstack("server", "delete", sid, cloud="nimbus-demo", check=False), "409")
    msg = nova_fault(e.demo.req("DELETE", f"/servers/{sid}"), 409, "conflictingRequest")
    assert "locked" in msg, msg
    nova_fault(e.demo.action(sid, {"reboot": {"type": "SOFT"}}), 409, "conflictingRequest")
    assert e.demo.get(sid)["status"] == "ACTIVE"

    c.openstack("server", "unlock", sid, cloud="nimbus-demo")
    assert e.admin.get(sid).get("locked") is False
    c.openstack("server", "delete", sid, cloud="nimbus-demo")
    e.demo.wait_gone(sid)


# --------------------------------------------------------------------------- 3. server groups

def test_anti_affinity_group(env):
    e, c = env, env.c
    g = c.openstack("server", "group", "create", "--policy", "anti-affinity", c.name("grp"))
    gid = g["id"]
    assert g.get("policy") == "anti-affinity" or "anti-affinity" in (g.get("policies") or []), g

    s1 = e.boot(c.name("aa1"), "--hint", f"group={gid}")
    e.admin.wait(s1, "ACTIVE")
    s2 = e.boot(c.name("aa2"), "--hint", f"group={gid}")
    e.admin.wait(s2, "ACTIVE")
    h1 = c.openstack("server", "show", s1)["OS-EXT-SRV-ATTR:host"]
    h2 = c.openstack("server", "show", s2)["OS-EXT-SRV-ATTR:host"]
    assert sorted([h1, h2]) == TWO_HOSTS, f"anti-affinity servers on {h1}, {h2}"

    s3 = e.boot(c.name("aa3"), "--hint", f"group={gid}")
    e.admin.wait(s3, "ERROR")
    shown = c.openstack("server", "show", s3)
    assert shown["status"] == "ERROR", shown
    fault = shown.get("fault")
    assert isinstance(fault, dict) and "No valid host" in fault.get("message", ""), \
        f"third anti-affinity server: fault {fault!r}"
    assert fault.get("code") == 500, fault
    assert not shown.get("OS-EXT-SRV-ATTR:host"), shown

    g = c.openstack("server", "group", "show", gid)
    assert {s1, s2} <= set(g["members"]), g


# --------------------------------------------------------------------------- 6. services, hypervisors

def test_compute_services_and_hypervisors(env):
    e, c = env, env.c
    rows = c.openstack("compute", "service", "list")
    computes = sorted((r["Host"], r["Zone"]) for r in rows if r["Binary"] == "nova-compute")
    assert computes == [("fake-0", "nova"), ("fake-1", "nova")], rows
    binaries = {r["Binary"] for r in rows}
    assert {"nova-scheduler", "nova-conductor"} <= binaries, rows
    for r in rows:
        assert (r["Status"], r["State"]) == ("enabled", "up"), r

    # Capacity as configured (2.1 still has the resource fields).
    r = e.admin.req("GET", "/os-hypervisors/detail", mv="2.1")
    assert r.status_code == 200, r.text
    for hv in r.json()["hypervisors"]:
        assert (hv["vcpus"], hv["memory_mb"], hv["local_gb"]) == (16, 32768, 400), hv
        assert hv["service"]["host"] == hv["hypervisor_hostname"], hv

    # Placement inventory with the allocation ratios.
    r = e.placement_get("/resource_providers?name=fake-1")
    assert r.status_code == 200, r.text
    rps = r.json()["resource_providers"]
    assert len(rps) == 1, rps
    r = e.placement_get(f"/resource_providers/{rps[0]['uuid']}/inventories")
    assert r.status_code == 200, r.text
    inv = r.json()["inventories"]
    got = {k: (inv[k]["total"], float(inv[k]["allocation_ratio"]))
           for k in ("VCPU", "MEMORY_MB", "DISK_GB") if k in inv}
    assert got == {"VCPU": (16, 4.0), "MEMORY_MB": (32768, 1.0), "DISK_GB": (400, 1.0)}, inv

    # The CLI last: `hypervisor show` also lists aggregates.
    rows = c.openstack("hypervisor", "list")
    assert sorted(r["Hypervisor Hostname"] for r in rows) == TWO_HOSTS, rows
    assert {r["State"] for r in rows} == {"up"}, rows
    h = c.openstack("hypervisor", "show", "fake-0")
    assert h["hypervisor_hostname"] == "fake-0", h
    assert (h["state"], h["status"]) == ("up", "enabled"), h
    assert h.get("service_host") == "fake-0", h


def test_disabled_compute_service_gets_no_servers(env):
    e, c = env, env.c
    c.openstack("compute", "service", "set", "--disable", "--disable-reason", "maintenance",
                "fake-0", "nova-compute")
    try:
        rows = c.openstack("compute", "service", "list", "--long", "--host", "fake-0")
        r = row_by_id(rows, "nova-compute", key="Binary")
        assert (r["Status"], r["Disabled Reason"]) == ("disabled", "maintenance"), r
        a = e.boot(c.name("dis1"))
        b = e.boot(c.name("dis2"))
        e.admin.wait(a, "ACTIVE")
        e.admin.wait(b, "ACTIVE")
        assert (e.host(a), e.host(b)) == ("fake-1", "fake-1"), "server placed on disabled fake-0"
    finally:
        c.openstack("compute", "service", "set", "--enable", "fake-0", "nova-compute")
    rows = c.openstack("compute", "service", "list", "--host", "fake-0")
    assert row_by_id(rows, "nova-compute", key="Binary")["Status"] == "enabled", rows
    # fake-0 now has the most free RAM: the next server goes there.
    x = e.boot(c.name("dis3"))
    e.admin.wait(x, "ACTIVE")
    assert e.host(x) == "fake-0", "enabled fake-0 (most free RAM) was not chosen"


# --------------------------------------------------------------------------- 7. usage

def test_usage_show(env):
    e, c = env, env.c
    sid = e.boot(c.name("used"), cloud="nimbus-demo")
    e.demo.wait(sid, "ACTIVE")
    time.sleep(1.5)
    u = c.openstack("usage", "show", "--project", "demo")
    assert u["Project"] in ("demo", e.demo_project), u
    servers = u["Servers"]
    if isinstance(servers, list):
        assert sid in {s.get("instance_id") for s in servers}, servers
    else:
        assert int(servers) >= 1, u
    for k in ("CPU Hours", "RAM MB-Hours", "Disk GB-Hours"):
        assert float(u[k]) > 0, f"{k} is {u[k]!r} after a server ran 1.5 s: {u}"
    # The owner can see its own usage too.
    mine = c.openstack("usage", "show", cloud="nimbus-demo")
    assert float(mine["CPU Hours"]) > 0, mine


# --------------------------------------------------------------------------- 8. keypairs

def _ssh_keygen(path: Path, kind: str) -> str:
    exe = shutil.which("ssh-keygen")
    if exe is None:
        pytest.fail("ssh-keygen not found: apt-get install openssh-client")
    args = [exe, "-q", "-t", kind, "-N", "", "-C", f"{kind}@nimbus", "-f", str(path)]
    if kind == "rsa":
        args[4:4] = ["-b", "2048"]
    subprocess.run(args, check=True, capture_output=True)
    return Path(f"{path}.pub").read_text().strip()


def test_keypairs(env):
    e, c = env, env.c
    k1, k2 = c.name("k1"), c.name("k2")
    pub = _ssh_keygen(c.workdir / "id_ed25519", "ed25519")
    fp = md5_fingerprint(pub)

    kp = c.openstack("keypair", "create", "--public-key", str(c.workdir / "id_ed25519.pub"), k1)
    assert kp["name"] == k1 and kp["fingerprint"] == fp, (kp, fp)
    assert kp.get("type") == "ssh", kp
    r = e.admin.req("POST", "/os-keypairs", json={"keypair": {"name": k1, "public_key": pub}})
    assert "already exists" in nova_fault(r, 409, "conflictingRequest")

    row = row_by_id(c.openstack("keypair", "list"), k1, key="Name")
    assert row["Fingerprint"] == fp, row
    shown = c.openstack("keypair", "show", k1)
    assert (shown["name"], shown["fingerprint"]) == (k1, fp), shown
    got_pub = c.openstack("keypair", "show", "--public-key", k1, fmt=False)
    assert got_pub.strip() == pub, (got_pub, pub)

    # Keypairs belong to the user: demo does not see admin's.
    r = e.demo.req("GET", "/os-keypairs")
    assert r.status_code == 200, r.text
    assert k1 not in {k["keypair"]["name"] for k in r.json()["keypairs"]}, r.json()
    nova_fault(e.demo.req("GET", f"/os-keypairs/{k1}"), 404, "itemNotFound")

    sid = e.boot(c.name("keyed"), "--key-name", k1)
    assert e.admin.wait(sid, "ACTIVE")["key_name"] == k1

    # Without a key the CLI generates one and prints the private key.
    out = c.openstack("keypair", "create", k2, fmt=False)
    assert "PRIVATE KEY-----" in out, out
    r = e.admin.req("GET", f"/os-keypairs/{k2}")
    assert r.status_code == 200, r.text
    assert r.json()["keypair"]["public_key"].startswith("ssh-ed25519 "), r.json()

    # An RSA key through the SDK.
    rsa = _ssh_keygen(c.workdir / "id_rsa", "rsa")
    conn = c.sdk("nimbus")
    try:
        k3 = conn.compute.create_keypair(name=c.name("k3"), public_key=rsa)
        assert k3.fingerprint == md5_fingerprint(rsa), (k3.fingerprint, md5_fingerprint(rsa))
        conn.compute.delete_keypair(k3)
    finally:
        conn.close()

    c.openstack("keypair", "delete", k1, k2)
    nova_fault(e.admin.req("GET", f"/os-keypairs/{k1}"), 404, "itemNotFound")
    r = e.admin.req("GET", "/os-keypairs")
    names = {k["keypair"]["name"] for k in r.json()["keypairs"]}
    assert not names & {k1, k2, c.name("k3")}, names


# --------------------------------------------------------------------------- 9. flavors

def test_flavors(env):
    e, c = env, env.c
    rows = {r["ID"]: r for r in c.openstack("flavor", "list")}
    for fid, (name, vcpus, ram, disk) in SEEDED.items():
        assert fid in rows, f"seeded flavor {fid} ({name}) missing: {sorted(rows)}"
        r = rows[fid]
        assert (r["Name"], r["VCPUs"], r["RAM"], r["Disk"], r["Is Public"]) == \
            (name, vcpus, ram, disk, True), r

    f1 = c.name("f1")
    f = c.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1",
                    "--private", f1)
    fid = f["id"]
    assert f["os-flavor-access:is_public"] is False, f
    c.openstack("flavor", "set", "--property", "hw:cpu_cores=1", f1)
    shown = c.openstack("flavor", "show", f1)
    assert (shown["id"], shown["ram"], shown["disk"], shown["vcpus"]) == (fid, 256, 1, 1), shown
    assert shown["properties"] == {"hw:cpu_cores": "1"}, shown
    assert not shown["access_project_ids"], shown

    def listed(nova: Nova, **params) -> set[str]:
        r = nova.req("GET", "/flavors/detail", params=params)
        assert r.status_code == 200, r.text
        return {f["id"] for f in r.json()["flavors"]}

    # What `flavor list` / `flavor list --all` ask for.
    assert fid not in listed(e.admin), "private flavor in the admin's default (public) list"
    assert fid in listed(e.admin, is_public="None")

    # demo can't see it until it is given access.
    failed(c.openstack("flavor", "show", f1, cloud="nimbus-demo", check=False), "No Flavor found")
    assert fid not in listed(e.demo, is_public="None")
    nova_fault(e.demo.req("GET", f"/flavors/{fid}"), 404, "itemNotFound")
    c.openstack("flavor", "set", "--project", "demo", f1)
    assert c.openstack("flavor", "show", f1)["access_project_ids"] == [e.demo_project]
    assert c.openstack("flavor", "show", f1, cloud="nimbus-demo")["id"] == fid
    assert fid in listed(e.demo, is_public="None")

    c.openstack("flavor", "delete", f1)
    failed(c.openstack("flavor", "show", f1, check=False))
    nova_fault(e.admin.req("GET", f"/flavors/{fid}"), 404, "itemNotFound")


# --------------------------------------------------------------------------- 10. openstacksdk

def test_sdk_create_list_page_delete(env):
    e, c = env, env.c
    conn = c.sdk("nimbus")
    try:
        prefix = c.name("sdk")
        made = [conn.compute.create_server(name=f"{prefix}-{i}", image_id=e.image, flavor_id="42",
                                           networks="auto") for i in range(3)]
        for s in made:
            s = conn.compute.wait_for_server(s, interval=0.5, wait=DEADLINE)
            assert s.status == "ACTIVE" and s.vm_state == "active", s
            assert s.compute_host in TWO_HOSTS, s.compute_host
        ids = [s.id for s in made]

        full = [s.id for s in conn.compute.servers(details=True)]
        paged = [s.id for s in conn.compute.servers(details=True, limit=1)]
        assert paged == full, f"limit=1 paging {paged} != one page {full}"
        assert sorted(full) == sorted(ids), (full, ids)
        named = {s.id for s in conn.compute.servers(name=f"^{prefix}-")}
        assert named == set(ids), named

        # Raw: limit + marker and the `next` link.
        walked, marker = [], None
        for _ in range(10):
            params = {"limit": 1, **({"marker": marker} if marker else {})}
            r = e.admin.req("GET", "/servers/detail", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["servers"]) <= 1, body
            if not body["servers"]:
                break
            marker = body["servers"][0]["id"]
            walked.append(marker)
            nxt = [lk for lk in body.get("servers_links", []) if lk.get("rel") == "next"]
            assert nxt and f"marker={marker}" in nxt[0]["href"], body
        assert walked == full, (walked, full)

        gone = made[0]
        conn.compute.delete_server(gone)
        conn.compute.wait_for_delete(gone, interval=0.5, wait=DEADLINE)
        assert conn.compute.find_server(gone.id) is None
        assert [s.id for s in conn.compute.servers()] == [i for i in full if i != gone.id]
    finally:
        conn.close()


# --------------------------------------------------------------------------- 11. bad input

def test_bad_input(env):
    e, c = env, env.c
    r = e.admin.req("POST", "/servers", json=e.body(name=c.name("good")))
    assert r.status_code == 202, f"valid POST /servers -> {r.status_code} {r.text[:500]}"
    good = r.json()["server"]
    assert good.get("adminPass"), good
    sid = good["id"]
    e.admin.wait(sid, "ACTIVE")
    before = sorted(e.admin.server_ids(all_tenants=True))
    assert before == [sid], before

    def bad(method: str, path: str, code: int, key: str, needle: str | None = None,
            nova: Nova | None = None, **kw) -> None:
        r = (nova or e.admin).req(method, path, **kw)
        msg = nova_fault(r, code, key)
        if needle:
            assert needle.lower() in msg.lower(), f"{method} {path}: {needle!r} not in {msg!r}"
        after = sorted(e.admin.server_ids(all_tenants=True))
        assert after == before, f"{method} {path} ({code}) left servers behind: {after}"

    post = lambda code, key, needle=None, **kw: bad("POST", "/servers", code, key, needle, **kw)  # noqa: E731
    post(400, "badRequest", "flavor", json=e.body(flavorRef="99999"))
    post(400, "badRequest", "image", json=e.body(imageRef=str(uuid.uuid4())))
    post(400, "badRequest", json=e.body(imageRef="not-a-uuid"))
    post(400, "badRequest", json=e.body(name="x" * 256))
    post(400, "badRequest", json=e.body(name=""))
    post(400, "badRequest", json=e.body(min_count=-1))
    post(400, "badRequest", json=e.body(max_count=0))
    post(400, "badRequest", json=e.body(min_count=3, max_count=2))
    post(400, "badRequest", json=e.body(no_such_field=1))
    post(400, "badRequest", json={"srv": e.body()["server"]})
    post(400, "badRequest", data='{"server": {"name": ', headers={"Content-Type": "application/json"})
    if e.mv_at_least("2.37"):
        post(400, "badRequest", json=e.body(networks="bogus"))

    bad("GET", "/servers/not-a-uuid", 404, "itemNotFound")
    bad("GET", f"/servers/{uuid.uuid4()}", 404, "itemNotFound")
    bad("GET", "/servers", 400, "badRequest", params={"marker": str(uuid.uuid4())})
    bad("POST", f"/servers/{sid}/action", 400, "badRequest", json={"frobnicate": None})

    # Another project's server does not exist for demo.
    bad("GET", f"/servers/{sid}", 404, "itemNotFound", nova=e.demo)
    bad("DELETE", f"/servers/{sid}", 404, "itemNotFound", nova=e.demo)
    bad("POST", f"/servers/{sid}/action", 404, "itemNotFound", nova=e.demo,
        json={"reboot": {"type": "HARD"}})
    assert sid not in e.demo.server_ids()

    # Wrong state.
    bad("POST", f"/servers/{sid}/action", 409, "conflictingRequest",
        f"Cannot 'unpause' instance {sid} while it is in vm_state active", json={"unpause": None})

    # Other resources.
    bad("POST", "/flavors", 409, "conflictingRequest", "already exists",
        json={"flavor": {"name": "m1.nano", "ram": 64, "vcpus": 1, "disk": 1}})
    bad("POST", "/flavors", 403, "forbidden", nova=e.demo,
        json={"flavor": {"name": c.name("nope"), "ram": 64, "vcpus": 1, "disk": 1}})
    bad("POST", "/os-keypairs", 400, "badRequest",
        json={"keypair": {"name": c.name("kbad"), "public_key": "ssh-ed25519 not-a-key"}})

    assert e.admin.get(sid)["status"] == "ACTIVE"
    r = e.admin.req("GET", "/limits")
    assert r.status_code == 200, r.text
    ab = r.json()["limits"]["absolute"]
    assert (ab["maxTotalInstances"], ab["maxTotalCores"], ab["maxTotalRAMSize"]) == (10, 20, 51200), ab
    assert (ab["totalInstancesUsed"], ab["totalCoresUsed"], ab["totalRAMUsed"]) == (1, 1, 128), ab


# --------------------------------------------------------------------------- 4. reschedule

def test_failing_host_reschedules():
    with compute_cloud("nimbus-resched-", ["--fake-hosts", "2", "--fake-failing-hosts", "fake-0"]) as e:
        c = e.c
        sids = [e.boot(c.name(f"re{i}")) for i in range(2)]
        for sid in sids:
            s = e.admin.wait(sid, "ACTIVE")
            assert s["OS-EXT-SRV-ATTR:host"] == "fake-1", s
        # fake-0's failed claims were released; fake-1 holds both servers.
        assert not any(e.provider_usages("fake-0").values()), e.provider_usages("fake-0")
        assert e.provider_usages("fake-1").get("MEMORY_MB") == 2 * 128, e.provider_usages("fake-1")

        rows = c.openstack("server", "event", "list", sids[0])
        assert [r["Action"] for r in rows] == ["create"], rows
        req_id = rows[0]["Request ID"]
        assert req_id.startswith("req-"), rows
        ev = c.openstack("server", "event", "show", sids[0], req_id)
        assert (ev["action"], ev["request_id"]) == ("create", req_id), ev
        assert ev["events"], f"create action has no events: {ev}"
        for x in ev["events"]:
            assert x.get("event") and x.get("start_time"), ev["events"]
        hosts = {x.get("host") for x in ev["events"]} - {None, ""}
        if hosts:  # admin sees event hosts (2.62+): the build was tried on both
            assert hosts >= {"fake-0", "fake-1"}, ev["events"]


def test_all_hosts_failing_goes_error():
    with compute_cloud("nimbus-allfail-", ["--fake-hosts", "2", "--fake-failing-hosts", "fake-0,fake-1",
                                           "--scheduler-max-attempts", "3"]) as e:
        c = e.c
        sid = e.boot(c.name("doomed"))
        s = e.admin.wait(sid, "ERROR")
        fault = s.get("fault") or {}
        assert fault.get("message") and fault.get("code") == 500, s
        for h in TWO_HOSTS:
            assert not any(e.provider_usages(h).values()), (h, e.provider_usages(h))
        # An ERROR server can be deleted, and then it is gone.
        c.openstack("server", "delete", sid)
        e.admin.wait_gone(sid)


# --------------------------------------------------------------------------- 5. quota

def test_instance_quota():
    with compute_cloud("nimbus-quota-", ["--fake-hosts", "1", "--quota-instances", "2"]) as e:
        c = e.c

        def quota(project: str) -> dict:
            r = e.admin.req("GET", f"/os-quota-sets/{project}")
            assert r.status_code == 200, r.text
            return r.json()["quota_set"]

        q = quota(e.admin_project)
        assert (q["instances"], q["cores"], q["ram"]) == (2, 20, 51200), q
        assert quota(e.demo_project)["instances"] == 2

        sids = [e.boot(c.name(f"q{i}")) for i in range(2)]
        for sid in sids:
            e.admin.wait(sid, "ACTIVE")
        msg = "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
        failed(c.openstack("server", "create", "--image", e.image, "--flavor", "m1.nano",
                           c.name("q2"), check=False), msg, "403")
        r = e.admin.req("POST", "/servers", json=e.body())
        assert msg in nova_fault(r, 403, "forbidden")
        assert sorted(e.admin.server_ids()) == sorted(sids), "a refused server was created"

        c.openstack("quota", "set", "--instances", "5", "admin")
        assert quota(e.admin_project)["instances"] == 5
        assert quota(e.demo_project)["instances"] == 2
        # max_count beyond the quota: as many as fit are created.
        r = e.admin.req("POST", "/servers", json=e.body(min_count=1, max_count=5))
        assert r.status_code == 202, f"min_count 1 max_count 5 with 3 left -> {r.status_code} {r.text}"
        assert len(e.admin.server_ids()) == 5, e.admin.server_ids()
        r = e.admin.req("POST", "/servers", json=e.body())
        assert "already used 5 of 5 instances" in nova_fault(r, 403, "forbidden")
        for sid in e.admin.server_ids():
            e.admin.wait(sid, "ACTIVE")
