"""Image (Glance v2) through the front door: the real `openstack` CLI,
openstacksdk and raw HTTP against a running `nimbus up`.

The image API is served at <base>/image and is in the catalog as type `image`.
Each CLI call costs ~1 s of Python start-up, so CLI calls are kept to the
commands under test and the checks after them go over raw HTTP.
The quota checks run on a second Nimbus of their own (like test_restart.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import own_cloud

MiB = 1024 * 1024
PATCH_CT = "application/openstack-images-v2.1-json-patch"


# --------------------------------------------------------------------------- helpers

def http(method: str, url: str, **kw) -> requests.Response:
    """Raw request; every Nimbus response must carry a request id."""
    kw.setdefault("timeout", 60)
    r = requests.request(method, url, **kw)
    rid = r.headers.get("x-openstack-request-id")
    assert rid, f"{method} {url} -> {r.status_code} has no x-openstack-request-id header"
    assert rid.startswith("req-"), f"request id {rid!r} does not look like req-<uuid>"
    return r


def assert_fault(r: requests.Response, code: int) -> dict:
    """A Glance-style fault: {"code": "404 Not Found", "title": "Not Found", "message": ...}."""
    assert r.status_code == code, \
        f"{r.request.method} {r.url}: expected {code}, got {r.status_code}: {r.text[:500]}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("code"), str) and body["code"].startswith(f"{code} "), body
    assert body["code"] == f"{code} {body.get('title')}", body
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


def failed(proc, *needles: str) -> None:
    """A CLI run that must have failed, with each needle in its stderr."""
    assert proc.returncode != 0, f"expected failure, got rc=0\nstdout={proc.stdout}"
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in stderr:\n{proc.stderr}"


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def sha512(b: bytes) -> str:
    return hashlib.sha512(b).hexdigest()


def qemu_img(*args: str) -> None:
    exe = shutil.which("qemu-img")
    if exe is None:
        pytest.fail("qemu-img not found: apt-get install qemu-utils (it is in the Makefile's "
                    "APT_PACKAGES; `make deps` installs it)")
    subprocess.run([exe, *args], check=True, capture_output=True)


class Glance:
    """Raw-HTTP helper bound to one token."""

    def __init__(self, base: str, token: str):
        self.base = base.rstrip("/")
        self.v2 = f"{self.base}/v2"
        self.token = token

    def h(self, **extra: str) -> dict[str, str]:
        return {"X-Auth-Token": self.token, **extra}

    def req(self, method: str, path: str, headers: dict | None = None, **kw) -> requests.Response:
        return http(method, f"{self.v2}{path}", headers={**self.h(), **(headers or {})}, **kw)

    def create(self, **body) -> dict:
        body.setdefault("disk_format", "raw")
        body.setdefault("container_format", "bare")
        r = self.req("POST", "/images", json=body)
        assert r.status_code == 201, f"POST /v2/images {body} -> {r.status_code} {r.text}"
        return r.json()

    def get(self, image_id: str) -> requests.Response:
        return self.req("GET", f"/images/{image_id}")

    def show(self, image_id: str) -> dict:
        r = self.get(image_id)
        assert r.status_code == 200, f"GET /v2/images/{image_id} -> {r.status_code} {r.text}"
        return r.json()

    def upload(self, image_id: str, data: bytes) -> requests.Response:
        return self.req("PUT", f"/images/{image_id}/file", data=data,
                        headers={"Content-Type": "application/octet-stream"})

    def download(self, image_id: str, **headers: str) -> requests.Response:
        return self.req("GET", f"/images/{image_id}/file", headers=headers)

    def patch(self, image_id: str, ops: list, content_type: str = PATCH_CT) -> requests.Response:
        return self.req("PATCH", f"/images/{image_id}", data=json.dumps(ops),
                        headers={"Content-Type": content_type})

    def list_ids(self, **params) -> list[str]:
        """All image ids the caller sees, following `next` links."""
        out: list[str] = []
        url = f"{self.v2}/images"
        for _ in range(1000):
            r = http("GET", url, headers=self.h(), params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            out += [i["id"] for i in body["images"]]
            nxt = body.get("next")
            if not nxt:
                return out
            # `next` is relative to the API root: /v2/images?marker=...
            url = f"{self.base}{nxt}" if nxt.startswith("/") else nxt
            params = None
        raise AssertionError("more than 1000 pages")

    def delete(self, image_id: str) -> requests.Response:
        return self.req("DELETE", f"/images/{image_id}")


def wait_status(g: Glance, image_id: str, want: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    img = g.show(image_id)
    while img["status"] != want and time.monotonic() < deadline:
        if img["status"] in ("killed", "deleted"):
            break
        time.sleep(0.2)
        img = g.show(image_id)
    assert img["status"] == want, f"image {image_id} ended {img['status']}, want {want}: {img}"
    return img


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def image_url(cloud) -> str:
    return f"{cloud.base_url}/image"


@pytest.fixture(scope="module")
def admin_g(cloud, image_url) -> Glance:
    return Glance(image_url, cloud.admin_token())


@pytest.fixture(scope="module")
def demo_g(cloud, image_url) -> Glance:
    a = cloud.cloud_auth("nimbus-demo")
    r = cloud.password_token(a["username"], a["password"], "demo")
    assert r.status_code == 201, r.text
    return Glance(image_url, r.headers["X-Subject-Token"])


@pytest.fixture(scope="module")
def files(cloud) -> dict[str, Path]:
    d = cloud.workdir / "image-files"
    d.mkdir(exist_ok=True)
    raw = d / "disk.raw"
    raw.write_bytes(os.urandom(MiB + 12345))          # odd size on purpose
    qcow = d / "disk.qcow2"
    qemu_img("create", "-f", "qcow2", str(qcow), "64M")
    base = d / "base.qcow2"
    qemu_img("create", "-f", "qcow2", str(base), "16M")
    top = d / "top.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(top))
    return {"raw": raw, "qcow2": qcow, "base": base, "top": top}


@pytest.fixture(scope="module")
def created(cloud, files) -> dict[str, dict]:
    """The two images `openstack image create --file` made (the CLI's JSON output)."""
    s = cloud.suffix
    raw = cloud.openstack("image", "create", "--file", str(files["raw"]),
                          "--disk-format", "raw", "--container-format", "bare",
                          "--property", f"nimbus_k=v-{s}", "--tag", f"t-{s}",
                          cloud.name("raw"))
    qcow = cloud.openstack("image", "create", "--file", str(files["qcow2"]),
                           "--disk-format", "qcow2", "--container-format", "bare",
                           "--property", f"nimbus_k=other-{s}", "--tag", f"q-{s}",
                           cloud.name("qcow2"))
    return {"raw": raw, "qcow2": qcow}


# --------------------------------------------------------------------------- discovery

def test_catalog_and_versions(cloud, image_url, admin_g):
    tok = cloud.openstack("token", "issue")
    assert tok["id"]
    r = http("GET", f"{cloud.v3}/auth/catalog", headers={"X-Auth-Token": admin_g.token})
    assert r.status_code == 200, r.text
    images = [s for s in r.json()["catalog"] if s["type"] == "image"]
    assert len(images) == 1, r.json()
    public = [e["url"] for e in images[0]["endpoints"] if e["interface"] == "public"]
    assert [u.rstrip("/") for u in public] == [image_url], images

    r = http("GET", f"{image_url}/")
    assert r.status_code in (200, 300), r.text
    versions = r.json()["versions"]
    cur = [v for v in versions if v["status"] == "CURRENT"]
    assert len(cur) == 1 and cur[0]["id"].startswith("v2."), versions

    r = admin_g.req("GET", "/schemas/image")
    assert r.status_code == 200, r.text
    schema = r.json()
    assert schema.get("name") == "image", schema.get("name")
    for prop in ("id", "name", "status", "visibility", "checksum", "os_hash_value",
                 "virtual_size", "tags", "protected"):
        assert prop in schema["properties"], f"{prop} missing from image schema"

    r = admin_g.req("GET", "/info/import")
    assert r.status_code == 200, r.text
    assert "glance-direct" in r.json()["import-methods"]["value"], r.json()


# --------------------------------------------------------------------------- create / show

def test_create_raw_with_file(cloud, files, created, admin_g):
    data = files["raw"].read_bytes()
    img = cloud.openstack("image", "show", created["raw"]["id"])
    assert img["status"] == "active", img
    assert img["name"] == cloud.name("raw")
    assert img["size"] == len(data)
    assert img["checksum"] == md5(data)
    assert img["disk_format"] == "raw" and img["container_format"] == "bare"
    props = img["properties"]
    assert props["os_hash_algo"] == "sha512", props
    assert props["os_hash_value"] == sha512(data), props
    assert props["nimbus_k"] == f"v-{cloud.suffix}", props
    assert img["tags"] == [f"t-{cloud.suffix}"], img
    # Raw view of the same image: properties are top-level keys.
    raw = admin_g.show(img["id"])
    assert raw["virtual_size"] == len(data), raw
    assert raw["nimbus_k"] == f"v-{cloud.suffix}", raw
    assert raw["os_hash_value"] == sha512(data)
    assert raw["file"] == f"/v2/images/{img['id']}/file", raw
    assert raw["self"] == f"/v2/images/{img['id']}", raw


def test_create_qcow2_with_file(cloud, files, created):
    data = files["qcow2"].read_bytes()
    img = cloud.openstack("image", "show", created["qcow2"]["id"])
    assert img["status"] == "active", img
    assert img["disk_format"] == "qcow2"
    assert img["size"] == len(data)
    assert img["virtual_size"] == 64 * MiB, img
    assert img["checksum"] == md5(data)
    assert img["properties"]["os_hash_algo"] == "sha512"
    assert img["properties"]["os_hash_value"] == sha512(data)


# --------------------------------------------------------------------------- list

def test_list_filters(cloud, created, admin_g):
    s = cloud.suffix
    raw_id, qcow_id = created["raw"]["id"], created["qcow2"]["id"]
    queued = admin_g.create(name=cloud.name("queued"))
    assert queued["status"] == "queued"

    def ids(*args: str) -> set[str]:
        rows = cloud.openstack("image", "list", *args)
        return {row["ID"] for row in rows}

    got = ids("--property", f"nimbus_k=v-{s}")
    assert raw_id in got and qcow_id not in got, got

    got = ids("--tag", f"t-{s}")
    assert got == {raw_id}, got

    rows = cloud.openstack("image", "list", "--status", "active")
    got = {r["ID"] for r in rows}
    assert {raw_id, qcow_id} <= got and queued["id"] not in got, rows
    assert {r["Status"] for r in rows} == {"active"}, rows

    rows = cloud.openstack("image", "list", "--name", cloud.name("qcow2"))
    assert [(r["ID"], r["Name"]) for r in rows] == [(qcow_id, cloud.name("qcow2"))], rows

    # The same filters server-side, over raw HTTP.
    assert set(admin_g.list_ids(status="queued")) >= {queued["id"]}
    assert raw_id not in admin_g.list_ids(status="queued")
    assert admin_g.list_ids(tag=f"q-{s}") == [qcow_id]
    assert admin_g.list_ids(name=cloud.name("raw")) == [raw_id]


def test_list_paging(cloud, conn, admin_g):
    tag = f"page-{cloud.suffix}"
    made = [admin_g.create(name=cloud.name(f"page{i}"), tags=[tag])["id"] for i in range(3)]

    # Raw: limit=1 gives one image and a `next` link.
    r = admin_g.req("GET", "/images", params={"tag": tag, "limit": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 1, body
    assert "marker=" in body.get("next", ""), body

    # CLI: --limit 1, then --marker until nothing is left.
    seen: list[str] = []
    marker = None
    for _ in range(5):
        args = ["image", "list", "--tag", tag, "--limit", "1"]
        if marker:
            args += ["--marker", marker]
        rows = cloud.openstack(*args)
        assert len(rows) <= 1, rows
        if not rows:
            break
        marker = rows[0]["ID"]
        seen.append(marker)
    assert sorted(seen) == sorted(made) and len(seen) == 3, seen

    # SDK: images(limit=1) follows `next` links, same order as the CLI walk.
    sdk_ids = [i.id for i in conn.image.images(tag=tag, limit=1)]
    assert sdk_ids == seen, (sdk_ids, seen)

    # Everything the admin sees, one per page == one big page.
    all_paged = [i.id for i in conn.image.images(limit=1)]
    assert len(all_paged) == len(set(all_paged)), "duplicates while paging"
    big = admin_g.req("GET", "/images", params={"limit": 1000}).json()["images"]
    assert all_paged == [i["id"] for i in big]


# --------------------------------------------------------------------------- download

def test_save_byte_identical(cloud, files, created):
    for kind in ("raw", "qcow2"):
        out = cloud.workdir / f"saved.{kind}"
        cloud.openstack("image", "save", "--file", str(out), created[kind]["id"])
        want = files[kind].read_bytes()
        got = out.read_bytes()
        assert len(got) == len(want), (kind, len(got), len(want))
        assert got == want, f"{kind}: saved bytes differ"
        assert sha512(got) == created[kind]["properties"]["os_hash_value"]


def test_download_range(files, created, admin_g):
    data = files["raw"].read_bytes()
    r = admin_g.download(created["raw"]["id"])
    assert r.status_code == 200, r.text[:300]
    assert r.content == data
    assert r.headers.get("Content-MD5") in (None, md5(data))

    r = admin_g.download(created["raw"]["id"], Range="bytes=0-9")
    assert r.status_code == 206, f"{r.status_code} {r.headers}"
    assert r.content == data[:10]
    assert r.headers.get("Content-Range") == f"bytes 0-9/{len(data)}", r.headers

    r = admin_g.download(created["raw"]["id"], Range="bytes=100-")
    assert r.status_code == 206, r.status_code
    assert r.content == data[100:]


# --------------------------------------------------------------------------- update

def test_set_unset(cloud, admin_g):
    img = admin_g.create(name=cloud.name("settable"), a="initial")
    iid = img["id"]

    cloud.openstack("image", "set", "--property", "a=b", "--property", "c=d", iid)
    shown = admin_g.show(iid)
    assert (shown.get("a"), shown.get("c")) == ("b", "d"), shown

    cloud.openstack("image", "set", "--name", cloud.name("renamed"), iid)
    assert admin_g.show(iid)["name"] == cloud.name("renamed")

    cloud.openstack("image", "unset", "--property", "a", iid)
    shown = admin_g.show(iid)
    assert "a" not in shown and shown.get("c") == "d", shown

    cloud.openstack("image", "set", "--tag", "x", iid)
    assert "x" in admin_g.show(iid)["tags"]
    cloud.openstack("image", "unset", "--tag", "x", iid)
    assert "x" not in admin_g.show(iid)["tags"]

    # The CLI's view agrees.
    img = cloud.openstack("image", "show", iid)
    assert img["name"] == cloud.name("renamed")
    assert img["properties"].get("c") == "d" and "a" not in img["properties"], img


def test_patch_errors(created, admin_g):
    iid = created["raw"]["id"]
    r = admin_g.patch(iid, [{"op": "replace", "path": "/status", "value": "active"}])
    assert_fault(r, 403)
    r = admin_g.patch(iid, [{"op": "replace", "path": "/name", "value": "x"}],
                      content_type="application/json")
    assert_fault(r, 415)
    assert admin_g.show(iid)["name"] != "x"


# --------------------------------------------------------------------------- sharing

def test_sharing(cloud, ids, admin_g, demo_g):
    demo_pid = ids["project:demo"]
    img = admin_g.create(name=cloud.name("shared"), visibility="private")
    iid = img["id"]
    assert admin_g.upload(iid, b"shared bytes").status_code == 204
    assert_fault(demo_g.get(iid), 404)        # private: demo cannot see it

    cloud.openstack("image", "set", "--shared", iid)
    assert admin_g.show(iid)["visibility"] == "shared"

    m = cloud.openstack("image", "add", "project", iid, "demo", fmt=True)
    assert m["member_id"] == demo_pid and m["status"] == "pending", m
    assert iid not in demo_g.list_ids(), "pending share must not be in demo's default list"

    cloud.openstack("image", "set", "--accept", iid, cloud="nimbus-demo")
    shown = cloud.openstack("image", "show", iid, cloud="nimbus-demo")
    assert shown["id"] == iid and shown["visibility"] == "shared", shown
    assert iid in demo_g.list_ids()
    r = demo_g.download(iid)
    assert r.status_code == 200 and r.content == b"shared bytes", r.status_code
    # A member cannot change the image.
    assert_fault(demo_g.patch(iid, [{"op": "replace", "path": "/name", "value": "mine"}]), 403)

    members = cloud.openstack("image", "member", "list", iid)
    assert [(m["Member ID"], m["Status"]) for m in members] == [(demo_pid, "accepted")], members

    # A third project's user sees nothing.
    pname, uname, pw = cloud.name("img-third"), cloud.name("img-third-user"), "third-Passw0rd"
    cloud.openstack("project", "create", "--domain", "default", pname)
    cloud.openstack("user", "create", "--domain", "default", "--project", pname,
                    "--password", pw, uname)
    cloud.openstack("role", "add", "--project", pname, "--user", uname, "member")
    third = cloud.openstack("image", "show", iid, cloud=None, check=False,
                            auth=cloud.user_args(uname, pw, pname))
    failed(third, "No Image found")
    r = cloud.password_token(uname, pw, pname)
    assert r.status_code == 201, r.text
    third_g = Glance(admin_g.base, r.headers["X-Subject-Token"])
    assert_fault(third_g.get(iid), 404)
    assert_fault(third_g.download(iid), 404)
    assert iid not in third_g.list_ids()
    assert_fault(third_g.req("GET", f"/images/{iid}/members"), 404)

    cloud.openstack("image", "remove", "project", iid, "demo")
    assert_fault(demo_g.get(iid), 404)
    assert iid not in demo_g.list_ids()


def test_other_projects_private_image_is_404(cloud, admin_g, demo_g):
    img = admin_g.create(name=cloud.name("private"), visibility="private")
    body = assert_fault(demo_g.get(img["id"]), 404)
    assert body["title"] == "Not Found"
    assert_fault(demo_g.download(img["id"]), 404)
    assert_fault(demo_g.delete(img["id"]), 404)
    assert img["id"] not in demo_g.list_ids()
    assert admin_g.show(img["id"])["visibility"] == "private"


# --------------------------------------------------------------------------- protect / delete

def test_protected_then_delete(cloud, admin_g):
    img = cloud.openstack("image", "create", "--protected", cloud.name("protected"))
    iid = img["id"]
    assert img["protected"] is True, img
    p = cloud.openstack("image", "delete", iid, check=False)
    assert p.returncode != 0, "deleting a protected image must fail"
    assert_fault(admin_g.delete(iid), 403)
    assert admin_g.show(iid)["protected"] is True

    cloud.openstack("image", "set", "--unprotected", iid)
    cloud.openstack("image", "delete", iid)
    assert_fault(admin_g.get(iid), 404)


def test_delete(cloud, admin_g):
    img = admin_g.create(name=cloud.name("doomed"))
    iid = img["id"]
    assert admin_g.upload(iid, b"x" * 1000).status_code == 204
    cloud.openstack("image", "delete", iid)
    failed(cloud.openstack("image", "show", iid, check=False), "No Image found")
    assert_fault(admin_g.get(iid), 404)
    assert_fault(admin_g.download(iid), 404)
    assert iid not in admin_g.list_ids()


# --------------------------------------------------------------------------- import

def test_create_with_import(cloud, files, admin_g):
    data = files["raw"].read_bytes()
    # openstacksdk only imports when POST /v2/images advertises the method.
    r = admin_g.req("POST", "/images", json={"name": cloud.name("probe")})
    assert r.status_code == 201, r.text
    methods = r.headers.get("OpenStack-image-import-methods", "")
    assert "glance-direct" in methods.split(","), \
        f"POST /v2/images lacks OpenStack-image-import-methods: glance-direct: {dict(r.headers)}"
    admin_g.delete(r.json()["id"])
    img = cloud.openstack("image", "create", "--import", "--file", str(files["raw"]),
                          "--disk-format", "raw", "--container-format", "bare",
                          cloud.name("imported"))
    shown = wait_status(admin_g, img["id"], "active")
    assert shown["size"] == len(data)
    assert shown["checksum"] == md5(data)
    assert shown["os_hash_value"] == sha512(data)
    r = admin_g.download(img["id"])
    assert r.status_code == 200 and r.content == data


def test_stage_and_import_raw_http(cloud, files, admin_g):
    data = files["qcow2"].read_bytes()
    img = admin_g.create(name=cloud.name("staged"), disk_format="qcow2")
    r = admin_g.req("PUT", f"/images/{img['id']}/stage", data=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert admin_g.show(img["id"])["status"] == "uploading"
    r = admin_g.req("POST", f"/images/{img['id']}/import",
                    json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202, r.text
    shown = wait_status(admin_g, img["id"], "active")
    assert shown["checksum"] == md5(data)
    assert shown["virtual_size"] == 64 * MiB


# --------------------------------------------------------------------------- upload errors

def test_upload_format_mismatch(cloud, files, admin_g):
    img = admin_g.create(name=cloud.name("liar"), disk_format="raw")
    r = admin_g.upload(img["id"], files["qcow2"].read_bytes())
    assert_fault(r, 400)
    shown = admin_g.show(img["id"])
    assert shown["status"] == "queued", shown
    assert shown["size"] is None and shown["checksum"] is None, shown
    r = admin_g.download(img["id"])                      # no data: Glance says 204
    assert r.status_code == 204 and not r.content, (r.status_code, r.content[:50])
    # The image is still usable: a real raw upload works afterwards.
    assert admin_g.upload(img["id"], b"\0" * 4096).status_code == 204
    assert admin_g.show(img["id"])["status"] == "active"


def test_upload_qcow2_with_backing_file(cloud, files, admin_g):
    img = admin_g.create(name=cloud.name("backed"), disk_format="qcow2")
    r = admin_g.upload(img["id"], files["top"].read_bytes())
    assert_fault(r, 400)
    shown = admin_g.show(img["id"])
    assert shown["status"] == "queued" and shown["size"] is None, shown


def test_upload_to_active_image(created, admin_g):
    iid = created["raw"]["id"]
    before = admin_g.show(iid)
    assert_fault(admin_g.upload(iid, b"again"), 409)
    after = admin_g.show(iid)
    assert (after["status"], after["size"], after["checksum"]) == \
        (before["status"], before["size"], before["checksum"])


def test_concurrent_uploads_one_wins(cloud, admin_g):
    img = admin_g.create(name=cloud.name("race"))
    iid = img["id"]
    bodies = [os.urandom(8 * MiB), os.urandom(8 * MiB)]
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def put(i: int) -> None:
        barrier.wait()
        try:
            results[i] = admin_g.upload(iid, bodies[i])
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=put, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for res in results:
        assert isinstance(res, requests.Response), f"upload raised: {res!r}"
    codes = [r.status_code for r in results]
    assert sorted(codes) == [204, 409], f"expected one 204 and one 409, got {codes}: " + \
        " | ".join(r.text[:200] for r in results)
    loser = results[codes.index(409)]
    assert_fault(loser, 409)
    winner = bodies[codes.index(204)]
    shown = admin_g.show(iid)
    assert shown["status"] == "active", shown
    assert shown["size"] == len(winner)
    assert shown["checksum"] == md5(winner), "checksum is not the winner's"
    assert shown["os_hash_value"] == sha512(winner)
    r = admin_g.download(iid)
    assert r.status_code == 200 and r.content == winner, "stored bytes are not the winner's"


def test_expect_100_continue_upload(cloud, admin_g):
    """curl sends `Expect: 100-continue` for bodies over 1 MiB and waits for the interim
    response before sending; the server must answer it before any body byte arrives."""
    import socket
    from urllib.parse import urlsplit
    iid = admin_g.create(name=cloud.name("expect"))["id"]
    body = os.urandom(2 * MiB)
    url = urlsplit(f"{cloud.base_url}/image/v2/images/{iid}/file")
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall((f"PUT {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nX-Auth-Token: {admin_g.token}\r\n"
                      f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
                      "Expect: 100-continue\r\n\r\n").encode())
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim[:200]
        sock.sendall(body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 204"), reply[:300]
    shown = admin_g.show(iid)
    assert (shown["status"], shown["size"], shown["checksum"], shown["os_hash_value"]) == \
        ("active", len(body), md5(body), sha512(body))


def test_errors_carry_request_id(cloud, admin_g, image_url):
    for method, path, hdrs in (("GET", "/v2/images/does-not-exist", admin_g.h()),
                               ("GET", "/v2/images", {}),
                               ("DELETE", "/v2/images/does-not-exist", admin_g.h())):
        r = http(method, f"{image_url}{path}", headers=hdrs)   # http() checks the id
        assert r.status_code in (401, 404), r.status_code
        assert_fault(r, r.status_code)


# --------------------------------------------------------------------------- quotas

@pytest.fixture(scope="module")
def quota_cloud():
    with own_cloud("nimbus-imgquota-", extra_args=["--image-quota-bytes", str(MiB), "--image-quota-count", "2"]) as c:
        yield c


def test_quotas(quota_cloud):
    c = quota_cloud
    g = Glance(f"{c.base_url}/image", c.admin_token())
    a = g.create(name="quota-a")
    # 2 MiB > 1 MiB quota: 413, and nothing is kept.
    assert_fault(g.upload(a["id"], os.urandom(2 * MiB)), 413)
    shown = g.show(a["id"])
    assert shown["status"] == "queued", shown
    assert shown["size"] is None and shown["checksum"] is None, shown
    r = g.download(a["id"])
    assert r.status_code == 204 and not r.content, (r.status_code, r.content[:50])

    # Under quota it works; the bytes then count against the quota.
    small = os.urandom(600 * 1024)
    assert g.upload(a["id"], small).status_code == 204
    assert g.show(a["id"])["checksum"] == md5(small)

    b = g.create(name="quota-b")                         # 2nd image: still allowed
    assert_fault(g.upload(b["id"], os.urandom(600 * 1024)), 413)   # 600K+600K > 1 MiB
    assert g.show(b["id"])["status"] == "queued"

    r = g.req("POST", "/images", json={"name": "quota-c", "disk_format": "raw",
                                       "container_format": "bare"})
    assert_fault(r, 413)
    names = [i["name"] for i in g.req("GET", "/images").json()["images"]]
    assert sorted(names) == ["quota-a", "quota-b"], names

    # Deleting frees count and bytes.
    assert g.delete(a["id"]).status_code == 204
    c3 = g.create(name="quota-c")
    assert g.upload(b["id"], small).status_code == 204
    assert g.show(b["id"])["status"] == "active"
    assert c3["status"] == "queued"
