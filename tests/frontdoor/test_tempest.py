"""OpenStack's own API tests (Tempest, from PyPI) against a running Nimbus.

Tempest runs unchanged against a Nimbus of its own: every identity, image, compute and network
test that the RefStack 2020.06 interop guideline requires, and the rest of Tempest's Glance v2
tests (tempest/*.txt say which). Tempest makes its own projects, users and networks through the
admin APIs, as it does on any cloud, and removes them after.

Compute and network run on a cloud that boots the tiny guest under QEMU and wires the real
dataplane (Tempest waits for router ports to go ACTIVE, which takes a dataplane); identity and
image on one whose host is fake. Tempest's image list tests upload random bytes, so they run with
`raw` as the only disk format: content that is not raw cannot claim to be, and Nimbus refuses it
(Tempest's image_format_enforcement).
"""

from __future__ import annotations

import configparser
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from conftest import own_cloud
from test_qemu import GUEST_DIR, QEMU_ARGS, READY as QEMU_READY

HERE = Path(__file__).resolve().parent / "tempest"
TEMPEST = Path(sys.executable).parent / "tempest"


def tempest_conf(cloud, overrides: dict[str, dict[str, str]]) -> str:
    auth = yaml.safe_load(cloud.clouds_yaml.read_text())["clouds"]["nimbus"]["auth"]
    config = configparser.ConfigParser()
    config.read_dict({
        "DEFAULT": {"log_file": "tempest.log"},
        "auth": {"use_dynamic_credentials": "true", "admin_username": auth["username"],
                 "admin_password": auth["password"], "admin_project_name": auth["project_name"],
                 "admin_domain_name": "Default"},
        "identity": {"uri_v3": cloud.v3, "auth_version": "v3", "region": "RegionOne"},
        "identity-feature-enabled": {"api_v2": "false"},
        "service_available": {"glance": "true", "cinder": "false", "swift": "false"},
        "image-feature-enabled": {"api_v1": "false"},
    })
    config.read_dict(overrides)
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def run_tempest(tmp_path: Path, conf: str, include: str, exclude: str | None = None) -> set[str]:
    """Runs Tempest in a workspace of its own. Fails on any failed test, and unless every
    interop test in the list passed. - Returns: the tests that passed."""
    workspace = tmp_path / "tempest"
    # Tempest records workspaces in ~/.tempest by name; this run's record stays in tmp_path.
    subprocess.run([str(TEMPEST), "init", "--workspace-path", str(tmp_path / "workspaces.yaml"),
                    "--name", tmp_path.name, str(workspace)], check=True, capture_output=True, text=True)
    (workspace / "etc" / "tempest.conf").write_text(conf)
    command = [str(TEMPEST), "run", "--concurrency", "2", "--include-list", str(HERE / include)]
    if exclude:
        command += ["--exclude-list", str(HERE / exclude)]
    run = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"tempest failed:\n{output[-20000:]}"
    passed = set(re.findall(r"^\{\d+\} (tempest\.\S+?)(?:\[[^\]]*\])? \[[\d.]+s\] \.\.\. ok$", output, re.M))
    interop = [line for line in (HERE / include).read_text().splitlines()
               if line.startswith("^tempest") and line.endswith("\\b")]
    missing = [pattern for pattern in interop if not any(re.match(pattern, test) for test in passed)]
    assert not missing, f"interop tests that did not pass: {missing}\n{output[-20000:]}"
    return passed


def test_tempest_identity_and_image(tmp_path):
    with own_cloud("nimbus-tempest-", extra_args=["--driver", "fake"]) as cloud:
        conf = tempest_conf(cloud, {
            "auth": {"create_isolated_networks": "false"},
            "service_available": {"nova": "false", "neutron": "false"},
            "image": {"container_formats": "bare,ovf,ova", "disk_formats": "raw"},
            "image-feature-enabled": {"image_format_enforcement": "false"},
        })
        passed = run_tempest(tmp_path, conf, "identity-image.txt", "exclude.txt")
    # The 27 interop tests and the rest of the Glance v2 suite: 55 pass with this configuration.
    assert len(passed) >= 55, f"only {len(passed)} passed: {sorted(passed)}"


@pytest.mark.skipif(not QEMU_READY, reason="needs QEMU and the test guest")
@pytest.mark.timeout(1200)
def test_tempest_compute_and_network(tmp_path):
    with own_cloud("nimbus-tempest-qemu-", extra_args=QEMU_ARGS) as cloud:
        headers = {"X-Auth-Token": cloud.admin_token()}

        def one(path: str, key: str) -> dict:
            found = requests.get(f"{cloud.base_url}{path}", headers=headers, timeout=30).json()[key]
            assert len(found) == 1, found
            return found[0]
        tiny = one("/image/v2/images?name=tiny", "images")["id"]
        # A second bootable image, for the tests that rebuild to another or filter by image.
        alt = requests.post(f"{cloud.base_url}/image/v2/images", headers=headers, timeout=30, json={
            "name": "tiny-alt", "disk_format": "qcow2", "container_format": "bare", "visibility": "public"}).json()["id"]
        with open(Path(GUEST_DIR, "disk.qcow2"), "rb") as disk:
            requests.put(f"{cloud.base_url}/image/v2/images/{alt}/file", data=disk, timeout=120,
                         headers={**headers, "Content-Type": "application/octet-stream"}).raise_for_status()
        public = one("/network/v2.0/networks?name=public", "networks")["id"]
        # Tempest tries the Neutron extensions the cloud says it has.
        extensions = requests.get(f"{cloud.base_url}/network/v2.0/extensions", headers=headers, timeout=30).json()["extensions"]
        conf = tempest_conf(cloud, {
            "auth": {"create_isolated_networks": "true"},
            "service_available": {"nova": "true", "neutron": "true"},
            "compute": {"image_ref": tiny, "image_ref_alt": alt, "flavor_ref": "42", "flavor_ref_alt": "84",
                        "build_timeout": "180", "max_microversion": "2.79"},
            "network": {"public_network_id": public, "floating_network_name": "public"},
            "network-feature-enabled": {"api_extensions": ",".join(e["alias"] for e in extensions)},
            "validation": {"run_validation": "false"},
        })
        passed = run_tempest(tmp_path, conf, "compute-network.txt")
    assert len(passed) >= 130, f"only {len(passed)} passed: {sorted(passed)}"
