"""A compute host in a process of its own: `nimbus agent` against a `nimbus up` control plane,
over the internal API with the agent key. The remote host runs real QEMU guests: the image comes
over the internal API into the agent's cache; console output and NIC hot-plug are the control
plane's calls to the agent's own listener."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import requests

from conftest import NIMBUS_BIN, free_port, own_cloud
from test_qemu import GUEST_DIR, READY as QEMU_READY, wait_console, wait_status


def services(c):
    return {s["Host"]: s for s in c.openstack("compute", "service", "list", "--service", "nova-compute")}


@pytest.mark.skipif(not QEMU_READY, reason="needs QEMU and the test guest")
@pytest.mark.timeout(400)
def test_remote_agent_runs_real_guests():
    with own_cloud("nimbus-agent-", extra_args=["--driver", "fake", "--guest-dir", GUEST_DIR]) as c:
        key_file = c.server.state_dir / "agent.key"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        # The internal API wants the key.
        for headers in [{}, {"X-Nimbus-Agent-Key": "wrong"}]:
            r = requests.post(f"{c.base_url}/internal/v1/hosts/remote-1/heartbeat", json={}, headers=headers, timeout=10)
            assert r.status_code == 401, r.text
        assert "remote-1" not in services(c)

        port = free_port()
        agent_dir = c.workdir / "agent"
        log = open(c.workdir / "agent.log", "w")
        agent = subprocess.Popen(
            [str(NIMBUS_BIN), "agent", "--control-plane", c.base_url, "--key-file", str(key_file), "--host", "remote-1",
             "--driver", "qemu", "--accel", "tcg", "--shutdown-timeout", "10", "--state-dir", str(agent_dir),
             "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while services(c).get("remote-1", {}).get("State") != "up":
                assert agent.poll() is None, (c.workdir / "agent.log").read_text()
                assert time.monotonic() < deadline, "the agent did not register"
                time.sleep(0.5)
            hypervisor = c.openstack("hypervisor", "show", "remote-1")
            assert hypervisor["state"] == "up" and hypervisor["hypervisor_type"] == "QEMU", hypervisor
            # Only the remote host takes servers.
            c.openstack("compute", "service", "set", "--disable", "fake-0", "nova-compute", fmt=False)

            demo = "nimbus-demo"
            c.openstack("server", "create", "--image", "tiny", "--flavor", "m1.nano", "--nic", "none", "rvm", cloud=demo)
            server = wait_status(c, "rvm", "ACTIVE")
            shown = c.openstack("server", "show", server["id"])
            assert shown["OS-EXT-SRV-ATTR:host"] == "remote-1", shown
            # The image came over the internal API into the agent's own cache, and the guest
            # booted from it; its console comes back through the agent's listener.
            assert list((agent_dir / "compute" / "_base").glob("*")), "no cached base image on the agent"
            log_text = wait_console(c, "rvm", "NIMBUS-GUEST")
            assert f"uuid={server['id']}" in log_text
            qemu = subprocess.run(["pgrep", "-af", server["id"]], capture_output=True, text=True).stdout
            assert str(agent_dir) in qemu, qemu

            # NIC hot-plug goes through the agent too (this host wires nothing, so no lease).
            c.openstack("server", "add", "network", "rvm", "private", cloud=demo, fmt=False)
            wait_console(c, "rvm", "NIMBUS-NIC eth0 mac=")
            c.openstack("server", "remove", "network", "rvm", "private", cloud=demo, fmt=False)
            wait_console(c, "rvm", "NIMBUS-NIC eth0 gone", timeout=30)

            c.openstack("server", "stop", "rvm", cloud=demo, fmt=False)
            wait_status(c, "rvm", "SHUTOFF")
            c.openstack("server", "delete", "--wait", "rvm", cloud=demo, fmt=False)
            assert subprocess.run(["pgrep", "-f", server["id"]], capture_output=True).returncode == 1
            assert not (agent_dir / "compute" / "instances" / server["id"]).exists()
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                code = agent.wait(timeout=30)
            finally:
                if agent.poll() is None:
                    agent.kill()
                subprocess.run(["pkill", "-9", "-f", f"qemu-system-x86_64 .*{agent_dir}/"], check=False)
                log.close()
        assert code == 0, (c.workdir / "agent.log").read_text()[-3000:]
