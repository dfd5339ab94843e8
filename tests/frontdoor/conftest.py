"""Front-door fixtures: a real `nimbus up` process driven by the real clients.

Environment:
  NIMBUS_BIN        path of the nimbus binary (default: <repo>/.build/debug/nimbus)
  NIMBUS_OPENSTACK  path of the openstack CLI (default: <repo>/.venv/bin/openstack)
  NIMBUS_READY_TIMEOUT  seconds to wait for "Nimbus is ready" (default 60)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
NIMBUS_BIN = Path(os.environ.get("NIMBUS_BIN", REPO / ".build" / "debug" / "nimbus"))
OPENSTACK_CLI = Path(
    os.environ.get(
        "NIMBUS_OPENSTACK",
        Path(sys.executable).parent / "openstack"
        if (Path(sys.executable).parent / "openstack").exists()
        else REPO / ".venv" / "bin" / "openstack",
    )
)
READY_TIMEOUT = float(os.environ.get("NIMBUS_READY_TIMEOUT", "60"))
READY_MARKER = "Nimbus is ready"
STOP_TIMEOUT = 10.0

# Words after which the openstack CLI accepts `-f json`.
_FORMATTABLE_VERBS = {"list", "show", "create", "issue"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CLIError(AssertionError):
    pass


class NimbusServer:
    """One `nimbus up` process on a state dir. Can be stopped and started again."""

    def __init__(self, state_dir: Path, port: int | None = None, bcrypt_cost: int | None = 4,
                 extra_args: list[str] | None = None):
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.bcrypt_cost = bcrypt_cost
        # More `nimbus up` flags, e.g. ["--image-quota-bytes", "1048576"].
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.log_path = self.state_dir.parent / f"{self.state_dir.name}-server.log"
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/identity"

    @property
    def clouds_yaml(self) -> Path:
        return self.state_dir / "clouds.yaml"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log>"

    def start(self) -> None:
        if not NIMBUS_BIN.exists():
            pytest.fail(f"nimbus binary not found at {NIMBUS_BIN} (build it, or set NIMBUS_BIN)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(NIMBUS_BIN), "up", "--state-dir", str(self.state_dir),
               "--listen", f"127.0.0.1:{self.port}"]
        if self.bcrypt_cost is not None:
            cmd += ["--bcrypt-cost", str(self.bcrypt_cost)]
        cmd += self.extra_args
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"\n===== start #{self.starts}: {' '.join(cmd)}\n")
        log.flush()
        self._log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.state_dir.parent)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path, errors="replace") as f:
                f.seek(self._log_offset)
                if READY_MARKER in f.read():
                    return
            if self.proc.poll() is not None:
                rc, self.proc = self.proc.returncode, None
                pytest.fail(f"nimbus exited with {rc} before it was ready.\n"
                            f"--- server log ---\n{self.log_text()}")
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        pytest.fail(f"nimbus did not print {READY_MARKER!r} within {READY_TIMEOUT:.0f}s.\n"
                    f"--- server log ---\n{self.log_text()}")

    def stop(self) -> int:
        """SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit code."""
        assert self.proc is not None, "server not started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"nimbus did not exit within {STOP_TIMEOUT:.0f}s of SIGTERM (killed).\n"
                    f"--- server log (tail) ---\n{self.log_text()[-4000:]}")
        rc = self.proc.returncode
        self.proc = None
        return rc

    def assert_stops_cleanly(self) -> None:
        rc = self.stop()
        assert rc == 0, (f"nimbus exited with {rc} after SIGTERM (expected 0).\n"
                         f"--- server log (tail) ---\n{self.log_text()[-4000:]}")


@dataclass
class Cloud:
    """What the tests get: a running Nimbus and ways to talk to it."""

    server: NimbusServer
    workdir: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    # --- facts -------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.server.state_dir

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def auth_url(self) -> str:
        return self.server.auth_url

    @property
    def v3(self) -> str:
        return f"{self.server.auth_url}/v3"

    @property
    def clouds_yaml(self) -> Path:
        return self.server.clouds_yaml

    def clouds(self) -> dict[str, Any]:
        return yaml.safe_load(self.clouds_yaml.read_text())["clouds"]

    def cloud_auth(self, cloud: str = "nimbus") -> dict[str, Any]:
        return self.clouds()[cloud]["auth"]

    def name(self, prefix: str) -> str:
        """A name unique to this test session."""
        return f"{prefix}-{self.suffix}"

    # --- the openstack CLI -------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.clouds_yaml)
        env["OS_CLIENT_SECURE_FILE"] = str(self.workdir / "no-secure.yaml")
        env["PYTHONWARNINGS"] = "ignore"
        return env

    def user_args(self, username: str, password: str, project: str | None = None,
                  domain: str = "Default") -> list[str]:
        """CLI flags to log in as a user without clouds.yaml (use with cloud=None)."""
        args = ["--os-auth-url", self.auth_url, "--os-identity-api-version", "3",
                "--os-region-name", "RegionOne", "--os-username", username,
                "--os-password", password, "--os-user-domain-name", domain]
        if project:
            args += ["--os-project-name", project, "--os-project-domain-name", domain]
        return args

    def token_args(self, token: str, project: str | None = None) -> list[str]:
        args = ["--os-auth-type", "token", "--os-token", token, "--os-auth-url", self.auth_url,
                "--os-identity-api-version", "3", "--os-region-name", "RegionOne"]
        if project:
            args += ["--os-project-name", project, "--os-project-domain-name", "Default"]
        return args

    def openstack(self, *args: str, cloud: str | None = "nimbus", check: bool = True,
                  fmt: bool | None = None, auth: list[str] | None = None,
                  timeout: float = 120) -> Any:
        """Run `openstack [--os-cloud CLOUD] [AUTH...] ARGS [-f json]`.

        check=True: raise CLIError on a non-zero exit; return parsed JSON when
        the command was formatted as JSON (and printed something), else stdout.
        check=False: return the CompletedProcess (with .data = parsed JSON or None).
        fmt=None adds `-f json` when the command is a list/show/create/issue.
        """
        cmd = [str(OPENSTACK_CLI)]
        if cloud is not None:
            cmd += ["--os-cloud", cloud]
        cmd += list(auth or [])
        cmd += list(args)
        if fmt is None:
            fmt = any(a in _FORMATTABLE_VERBS for a in args[:3])
        if fmt:
            cmd += ["-f", "json"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self._env(),
                              stdin=subprocess.DEVNULL, timeout=timeout, cwd=self.workdir)
        elapsed = time.monotonic() - t0
        shown = " ".join(_redact(cmd[1:]))
        print(f"$ openstack {shown}  [{elapsed:.1f}s, rc={proc.returncode}]")
        data = None
        if fmt and proc.returncode == 0 and proc.stdout.strip():
            data = json.loads(proc.stdout)
        if not check:
            proc.data = data  # type: ignore[attr-defined]
            return proc
        if proc.returncode != 0:
            raise CLIError(f"`openstack {shown}` failed with exit {proc.returncode}\n"
                           f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
        return data if fmt else proc.stdout

    # --- raw HTTP and the SDK ----------------------------------------------
    def password_token(self, username: str, password: str, project: str | None = "admin",
                       domain: str = "default", system: bool = False) -> requests.Response:
        scope: dict[str, Any] | None = None
        if system:
            scope = {"system": {"all": True}}
        elif project:
            scope = {"project": {"name": project, "domain": {"id": domain}}}
        body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": username, "domain": {"id": domain}, "password": password}}}}}
        if scope:
            body["auth"]["scope"] = scope
        r = requests.post(f"{self.v3}/auth/tokens", json=body, timeout=30)
        assert r.headers.get("x-openstack-request-id"), \
            f"POST /v3/auth/tokens -> {r.status_code} has no x-openstack-request-id"
        return r

    def admin_token(self) -> str:
        a = self.cloud_auth("nimbus")
        r = self.password_token(a["username"], a["password"], a.get("project_name", "admin"))
        assert r.status_code == 201, f"admin login failed: {r.status_code} {r.text}"
        return r.headers["X-Subject-Token"]

    def sdk(self, cloud: str = "nimbus"):
        import openstack
        import openstack.config

        config = openstack.config.OpenStackConfig(
            config_files=[str(self.clouds_yaml)], secure_files=[], vendor_files=[],
            load_envvars=False)
        return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def _redact(args: list[str]) -> list[str]:
    out, hide = [], False
    for a in args:
        out.append("***" if hide else a)
        hide = a in ("--os-password", "--os-token", "--os-application-credential-secret",
                     "--password", "--secret")
    return out


@contextlib.contextmanager
def own_cloud(prefix: str, bcrypt_cost: int | None = 4, extra_args: list[str] | None = None):
    """A Nimbus with its own state dir and port; checks it stops cleanly, then removes its state."""
    tmp_root = Path(tempfile.mkdtemp(prefix=prefix))
    server = NimbusServer(tmp_root / "state", bcrypt_cost=bcrypt_cost, extra_args=extra_args)
    try:
        server.start()
        yield Cloud(server=server, workdir=tmp_root)
    finally:
        try:
            if server.proc is not None:
                server.assert_stops_cleanly()
        finally:
            # Bridges, namespaces, dnsmasq and nftables outlive the process (as Neutron's agents'
            # do); a test's cloud takes them with it.
            # Guests of a test that failed midway must not outlive it (they cost CPU under TCG).
            subprocess.run(["pkill", "-9", "-f", f"qemu-system-x86_64 .*{server.state_dir}/"], check=False)
            if (server.state_dir / "network").exists():
                subprocess.run([str(NIMBUS_BIN), "network-cleanup", "--state-dir", str(server.state_dir)],
                               check=False, timeout=60)
            if os.environ.get("NIMBUS_KEEP_STATE"):
                print(f"state kept in {tmp_root}")
            else:
                shutil.rmtree(tmp_root, ignore_errors=True)


@pytest.fixture(scope="session")
def cloud():
    """The shared Nimbus for the front-door suite (bcrypt cost 4 for speed). Its host is fake: it
    boots nothing, and must not wire a dataplane beside the QEMU clouds' in the same namespace
    (their nftables tables and the `public` gateway address would collide)."""
    with own_cloud("nimbus-frontdoor-", extra_args=["--driver", "fake"]) as c:
        yield c


@pytest.fixture(scope="session")
def conn(cloud):
    """openstacksdk connection as the admin (cloud `nimbus`)."""
    c = cloud.sdk("nimbus")
    yield c
    c.close()


@pytest.fixture(scope="session")
def demo_conn(cloud):
    """openstacksdk connection as the demo user (cloud `nimbus-demo`)."""
    c = cloud.sdk("nimbus-demo")
    yield c
    c.close()


@pytest.fixture
def sdk_connect(cloud):
    """Factory: openstack.connect-style connection for any cloud in clouds.yaml."""
    made = []

    def make(cloud_name: str = "nimbus"):
        c = cloud.sdk(cloud_name)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="session")
def ids(cloud):
    """Ids of the bootstrap resources, looked up once over raw HTTP."""
    tok = cloud.admin_token()
    h = {"X-Auth-Token": tok}
    out = {}
    for kind, names in (("projects", ("admin", "demo")), ("users", ("admin", "demo")),
                        ("roles", ("admin", "member", "reader"))):
        for n in names:
            r = requests.get(f"{cloud.v3}/{kind}", params={"name": n}, headers=h, timeout=30)
            assert r.status_code == 200, r.text
            items = r.json()[kind]
            assert len(items) == 1, f"expected one {kind[:-1]} named {n}: {items}"
            out[f"{kind[:-1]}:{n}"] = items[0]["id"]
    return out


@pytest.fixture(scope="session")
def nimbus(cloud):
    """Alias of `cloud`."""
    return cloud
