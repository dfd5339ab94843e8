"""Networking through the front door: the Neutron API with the openstack CLI and raw HTTP, and the
real dataplane (bridges, taps, dnsmasq, nftables, router namespaces, VXLAN) under real QEMU guests.

The dataplane test needs to own a network namespace: scripts/test-all.sh runs the whole front-door
suite inside one it creates (NIMBUS_TEST_NETNS names it), so every bridge, tap and address the cloud
makes stays there. The guest answers `nimbus-ping ADDR` / `nimbus-fetch URL` user_data lines on its
serial console.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
import uuid as uuidlib

import pytest
import requests

from conftest import own_cloud
from test_compute import _raw_image
from test_qemu import QEMU_ARGS, READY as QEMU_READY, wait_console, wait_status

NETNS = os.environ.get("NIMBUS_TEST_NETNS", "")


def neutron(c, token, method, path, **kw):
    return requests.request(method, f"{c.base_url}/network/v2.0{path}", headers={"X-Auth-Token": token}, timeout=30, **kw)


def demo_token(c):
    a = c.cloud_auth("nimbus-demo")
    r = c.password_token(a["username"], a["password"], a.get("project_name", "demo"))
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def test_network_api_through_the_cli(cloud):
    c = cloud
    names = {n["Name"] for n in c.openstack("network", "list")}
    assert {"public", "private"} <= names, names
    net = c.openstack("network", "create", c.name("net"), cloud="nimbus-demo")
    assert net["status"] == "ACTIVE" and net["mtu"] == 1450
    sub = c.openstack("subnet", "create", "--network", net["id"], "--subnet-range", "10.77.0.0/28",
                      "--dns-nameserver", "10.77.0.9", c.name("sub"), cloud="nimbus-demo")
    assert sub["gateway_ip"] == "10.77.0.1"
    assert sub["allocation_pools"] == [{"start": "10.77.0.2", "end": "10.77.0.14"}]
    port = c.openstack("port", "create", "--network", net["id"], "--fixed-ip", f"subnet={sub['id']},ip-address=10.77.0.5",
                       c.name("port"), cloud="nimbus-demo")
    assert port["fixed_ips"][0]["ip_address"] == "10.77.0.5"
    assert re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", port["mac_address"]), port["mac_address"]
    listed = c.openstack("port", "list", "--network", net["id"], cloud="nimbus-demo")
    assert port["id"] in {p["ID"] for p in listed}
    # The same address again: 409, and nothing is created.
    dup = c.openstack("port", "create", "--network", net["id"], "--fixed-ip", f"subnet={sub['id']},ip-address=10.77.0.5",
                      c.name("dup"), cloud="nimbus-demo", check=False)
    assert dup.returncode != 0 and "10.77.0.5" in dup.stderr, dup.stderr
    assert len(c.openstack("port", "list", "--network", net["id"], cloud="nimbus-demo")) == len(listed)

    sg = c.openstack("security", "group", "create", c.name("sg"), cloud="nimbus-demo")
    rule = c.openstack("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", sg["id"],
                       cloud="nimbus-demo", fmt=True)
    assert rule["port_range_min"] == 22 and rule["direction"] == "ingress"
    bad = c.openstack("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "30:20", sg["id"],
                      cloud="nimbus-demo", check=False)
    assert bad.returncode != 0

    router = c.openstack("router", "create", c.name("router"), cloud="nimbus-demo")
    c.openstack("router", "add", "subnet", router["id"], sub["id"], cloud="nimbus-demo", fmt=False)
    c.openstack("router", "set", "--external-gateway", "public", router["id"], cloud="nimbus-demo", fmt=False)
    shown = c.openstack("router", "show", router["id"], cloud="nimbus-demo")
    assert shown["external_gateway_info"]["network_id"], shown
    # A network with a router interface is in use.
    busy = c.openstack("network", "delete", net["id"], cloud="nimbus-demo", check=False)
    assert busy.returncode != 0
    fip = c.openstack("floating", "ip", "create", "public", cloud="nimbus-demo")
    assert ipaddress.ip_address(fip["floating_ip_address"]) in ipaddress.ip_network("172.24.4.0/24")
    c.openstack("floating", "ip", "set", "--port", port["id"], fip["id"], cloud="nimbus-demo", fmt=False)
    assert c.openstack("floating", "ip", "show", fip["id"], cloud="nimbus-demo")["fixed_ip_address"] == "10.77.0.5"

    # Tear down in the order Neutron requires; everything goes.
    c.openstack("floating", "ip", "delete", fip["id"], cloud="nimbus-demo", fmt=False)
    c.openstack("port", "delete", port["id"], cloud="nimbus-demo", fmt=False)
    c.openstack("router", "remove", "subnet", router["id"], sub["id"], cloud="nimbus-demo", fmt=False)
    c.openstack("router", "delete", router["id"], cloud="nimbus-demo", fmt=False)
    c.openstack("network", "delete", net["id"], cloud="nimbus-demo", fmt=False)
    c.openstack("security", "group", "delete", sg["id"], cloud="nimbus-demo", fmt=False)
    assert net["id"] not in {n["ID"] for n in c.openstack("network", "list", cloud="nimbus-demo")}


def test_neutron_errors_and_isolation(cloud):
    c = cloud
    token = demo_token(c)
    admin = c.admin_token()
    r = neutron(c, token, "GET", f"/networks/{uuidlib.uuid4()}")
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "NetworkNotFound", r.text
    net = neutron(c, token, "POST", "/networks", json={"network": {"name": c.name("errs")}}).json()["network"]
    for body, status in [
        ({"cidr": "10.88.0.0/33", "ip_version": 4}, 400),                      # malformed
        ({"cidr": "not-a-cidr", "ip_version": 4}, 400),
        ({"cidr": "10.88.0.0/24", "ip_version": 4, "gateway_ip": "10.88.0.10",
          "allocation_pools": [{"start": "10.88.0.2", "end": "10.88.0.20"}]}, 400),  # gateway in the pool
    ]:
        body["network_id"] = net["id"]
        r = neutron(c, token, "POST", "/subnets", json={"subnet": body})
        assert r.status_code == status, (body, r.status_code, r.text)
        assert "NeutronError" in r.json()
    assert neutron(c, token, "GET", f"/subnets?network_id={net['id']}").json()["subnets"] == []
    # Filters on anything but a resource attribute are refused, also when nothing would match.
    for path in [f"/networks?bogus=1", f"/subnets?network_id={net['id']}&pvlan=true", "/floatingips?colour=red"]:
        r = neutron(c, token, "GET", path)
        assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "HTTPBadRequest", (path, r.text)
        assert "is invalid attribute for filtering" in r.json()["NeutronError"]["message"], r.text
    assert neutron(c, token, "GET", "/networks?router:external=True&fields=id").status_code == 200
    sub = neutron(c, token, "POST", "/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "10.88.0.0/24", "ip_version": 4}}).json()["subnet"]
    r = neutron(c, token, "POST", "/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.88.0.128/25", "ip_version": 4}})
    assert r.status_code == 400, r.text  # overlaps
    r = neutron(c, token, "POST", "/ports", json={"port": {"network_id": net["id"], "fixed_ips": [
        {"subnet_id": sub["id"], "ip_address": "10.99.0.5"}]}})
    assert r.status_code == 400, r.text  # outside the subnet
    def used():
        return neutron(c, admin, "GET", f"/network-ip-availabilities/{net['id']}").json()["network_ip_availability"]["used_ips"]
    before = used()  # the DHCP port's address
    port = neutron(c, token, "POST", "/ports", json={"port": {"network_id": net["id"], "device_owner": "compute:nova",
                                                               "device_id": str(uuidlib.uuid4())}}).json()["port"]
    r = neutron(c, token, "DELETE", f"/networks/{net['id']}")
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "NetworkInUse", r.text
    # Another project sees none of it: 404, as Neutron answers.
    other = neutron(c, admin, "POST", "/networks", json={"network": {"name": c.name("adminnet")}}).json()["network"]
    assert neutron(c, token, "GET", f"/networks/{other['id']}").status_code == 404
    r = neutron(c, token, "POST", "/ports", json={"port": {"network_id": other["id"]}})
    assert r.status_code == 404, r.text
    sg = neutron(c, token, "POST", "/security-groups", json={"security_group": {"name": c.name("sg")}}).json()["security_group"]
    for rule in [{"protocol": "bogus"}, {"protocol": "tcp", "port_range_min": 0, "port_range_max": 70000},
                 {"protocol": "tcp", "port_range_min": 90, "port_range_max": 80},
                 {"protocol": "icmp", "port_range_min": 300},
                 {"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": sg["id"]}]:
        r = neutron(c, token, "POST", "/security-group-rules", json={"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress", **rule}})
        assert r.status_code == 400, (rule, r.status_code, r.text)
    rules = neutron(c, token, "GET", f"/security-group-rules?security_group_id={sg['id']}").json()["security_group_rules"]
    assert all(r["direction"] == "egress" for r in rules), rules
    # Addresses come back when ports go.
    neutron(c, token, "DELETE", f"/ports/{port['id']}")
    assert used() == before
    exts = {e["alias"] for e in neutron(c, token, "GET", "/extensions").json()["extensions"]}
    assert {"router", "external-net", "security-group"} <= exts, exts


def nova(c, token, method, path, **kw):
    return requests.request(method, f"{c.base_url}/compute/v2.1{path}", timeout=60,
                            headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"}, **kw)


def test_interface_attach_and_detach_api(cloud):
    """`server add/remove network|port` through the CLI on the fake driver, and Nova's errors."""
    c = cloud
    demo = "nimbus-demo"
    image = _raw_image(c, c.admin_token(), f"{c.base_url}/image", c.name("nics-image"))
    server = c.openstack("server", "create", "--image", image, "--flavor", "m1.nano", "--network", "private", "--wait",
                         c.name("nics"), cloud=demo)
    c.openstack("server", "add", "network", server["id"], "shared", cloud=demo, fmt=False)
    shown = c.openstack("server", "show", server["id"], cloud=demo)
    assert set(shown["addresses"]) == {"private", "shared"}, shown["addresses"]
    ports = c.openstack("port", "list", "--server", server["id"], cloud=demo)
    assert len(ports) == 2, ports
    # A port made beforehand comes and goes and stays the user's.
    own = c.openstack("port", "create", "--network", "private", c.name("own"), cloud=demo)
    c.openstack("server", "add", "port", server["id"], own["id"], cloud=demo, fmt=False)
    token = demo_token(c)
    listed = nova(c, token, "GET", f"/servers/{server['id']}/os-interface").json()["interfaceAttachments"]
    assert {a["port_id"] for a in listed} >= {own["id"]} and len(listed) == 3, listed
    one = nova(c, token, "GET", f"/servers/{server['id']}/os-interface/{own['id']}").json()["interfaceAttachment"]
    assert one["mac_addr"] == own["mac_address"] and one["fixed_ips"][0]["subnet_id"], one
    assert one["fixed_ips"][0]["ip_address"] == own["fixed_ips"][0]["ip_address"]
    c.openstack("server", "remove", "port", server["id"], own["id"], cloud=demo, fmt=False)
    kept = c.openstack("port", "show", own["id"], cloud=demo)
    assert kept["device_id"] == "" and kept["status"] == "DOWN", kept
    c.openstack("server", "remove", "network", server["id"], "shared", cloud=demo, fmt=False)
    shown = c.openstack("server", "show", server["id"], cloud=demo)
    assert set(shown["addresses"]) == {"private"}, shown["addresses"]
    assert len(c.openstack("port", "list", "--server", server["id"], cloud=demo)) == 1
    actions = {a["Action"] for a in c.openstack("server", "event", "list", server["id"], cloud=demo)}
    assert {"attach_interface", "detach_interface"} <= actions, actions

    # Bad input: Nova's status and nothing changed.
    path = f"/servers/{server['id']}/os-interface"
    private = c.openstack("network", "show", "private", cloud=demo)["id"]
    for body, status in [
        ({"interfaceAttachment": {"net_id": private, "port_id": own["id"]}}, 400),   # both
        ({"interfaceAttachment": {"net_id": "not-a-uuid"}}, 400),
        ({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.0.0.9"}]}}, 400),  # an address without a network
        ({"interfaceAttachment": {"bogus": 1}}, 400),
        ({"interfaceAttachment": {"net_id": str(uuidlib.uuid4())}}, 404),
        ({"interfaceAttachment": {"port_id": str(uuidlib.uuid4())}}, 404),
    ]:
        r = nova(c, token, "POST", path, json=body)
        assert r.status_code == status, (body, r.status_code, r.text)
        assert "badRequest" in r.json() or "itemNotFound" in r.json(), r.text
    r = nova(c, token, "DELETE", f"{path}/{uuidlib.uuid4()}")
    assert r.status_code == 404 and "itemNotFound" in r.json(), r.text
    assert len(c.openstack("port", "list", "--server", server["id"], cloud=demo)) == 1
    # Someone else's server is not there at all.
    r = nova(c, c.admin_token(), "GET", f"/servers/{uuidlib.uuid4()}/os-interface")
    assert r.status_code == 404
    c.openstack("server", "delete", "--wait", server["id"], cloud=demo, fmt=False)
    c.openstack("port", "delete", own["id"], cloud=demo, fmt=False)


@pytest.mark.skipif(not QEMU_READY, reason="needs QEMU and the test guest")
@pytest.mark.timeout(400)
def test_nic_hotplug_with_a_real_guest():
    """A NIC added to a running guest over QMP gets its port's address by DHCP inside the guest;
    removing it unplugs it from the guest (which lets it go) and deletes the port."""
    if not NETNS:
        if os.environ.get("CI"):
            raise RuntimeError("the dataplane test runs inside a namespace of its own (NIMBUS_TEST_NETNS)")
        pytest.skip("run inside a test namespace (scripts/test-all.sh sets NIMBUS_TEST_NETNS)")
    with own_cloud("nimbus-nic-", extra_args=QEMU_ARGS) as c:
        demo = "nimbus-demo"
        c.openstack("server", "create", "--image", "tiny", "--flavor", "m1.nano", "--network", "private", "vm", cloud=demo)
        wait_status(c, "vm", "ACTIVE")
        wait_console(c, "vm", "NIMBUS-GUEST")
        c.openstack("server", "add", "network", "vm", "shared", cloud=demo, fmt=False)
        shown = c.openstack("server", "show", "vm", cloud=demo)
        address = fixed_ip(shown, "shared")
        port = next(p for p in c.openstack("port", "list", "--server", "vm", "--network", "shared", cloud=demo))
        mac = port["MAC Address"]
        log = wait_console(c, "vm", "NIMBUS-NIC eth1 mac=")
        assert f"NIMBUS-NIC eth1 mac={mac} ip={address}" in log, log[-1500:] + dataplane_dump()
        c.openstack("server", "remove", "network", "vm", "shared", cloud=demo, fmt=False)
        log = wait_console(c, "vm", "NIMBUS-NIC eth1 gone", timeout=30)
        assert c.openstack("port", "list", "--network", "shared", "--server", "vm", cloud=demo) == []
        assert set(c.openstack("server", "show", "vm", cloud=demo)["addresses"]) == {"private"}
        # A stop and start boots with exactly the NICs the server has now.
        c.openstack("server", "stop", "vm", cloud=demo, fmt=False)
        wait_status(c, "vm", "SHUTOFF")
        c.openstack("server", "start", "vm", cloud=demo, fmt=False)
        wait_status(c, "vm", "ACTIVE")
        wait_console(c, "vm", "NIMBUS-GUEST", after=1)
        qemu = subprocess.run(["pgrep", "-af", shown["id"]], capture_output=True, text=True).stdout
        assert qemu.count("virtio-net-pci") == 1, qemu
        c.openstack("server", "delete", "--wait", "vm", cloud=demo, fmt=False)


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def nimbus_leftovers():
    """Everything of Nimbus's in this namespace and the global named namespaces."""
    links = [l.split(":")[1].strip().split("@")[0] for l in sh("ip", "-o", "link").stdout.splitlines()]
    ours = [l for l in links if l.startswith(("nbr-", "nvx-", "ntp-", "ndh-", "nrp-"))]
    spaces = [n.split()[0] for n in sh("ip", "netns", "list").stdout.splitlines() if n.startswith(("nimbus-dhcp-", "nimbus-router-"))]
    tables = [t for t in sh("nft", "list", "tables").stdout.splitlines() if "nimbus" in t]
    dnsmasq = sh("pgrep", "-f", "dnsmasq.*nimbus", check=False).stdout.split()
    return {"links": ours, "namespaces": spaces, "nft": tables, "dnsmasq": dnsmasq}


def dataplane_dump():
    """What the host's filter, bridges and router namespaces look like, for a failure message."""
    dump = "\n--- nft ---\n" + sh("nft", "list", "ruleset", check=False).stdout[-6000:] + \
        "\n--- bridge link ---\n" + sh("bridge", "link", check=False).stdout
    for namespace in sh("ip", "netns", "list", check=False).stdout.split():
        if namespace.startswith("nimbus-router-"):
            dump += f"\n--- {namespace} ---\n" + sh("ip", "-n", namespace, "-br", "addr", check=False).stdout + \
                sh("ip", "-n", namespace, "-6", "route", check=False).stdout
    return dump + "\n--- dnsmasq ---\n" + sh("pgrep", "-a", "dnsmasq", check=False).stdout


def fixed_ip(server, network, version=4):
    addresses = server["addresses"]
    if isinstance(addresses, str):  # older CLIs render "net=ip, ip"
        listed = re.search(rf"{network}=([^;]*)", addresses).group(1).replace(" ", "").split(",")
    elif isinstance(addresses[network][0], dict):
        listed = [a["addr"] for a in addresses[network] if a.get("OS-EXT-IPS:type", "fixed") == "fixed"]
    else:
        listed = addresses[network]
    return next(a for a in listed if (":" in a) == (version == 6))


def host_ping(address, tries=10):
    for _ in range(tries):
        if sh("busybox", "ping", "-c", "1", "-W", "1", address, check=False).returncode == 0:
            return True
    return False


@pytest.mark.skipif(not QEMU_READY, reason="needs QEMU and the test guest")
@pytest.mark.timeout(900)
def test_dataplane_with_real_guests(tmp_path):
    if not NETNS:
        if os.environ.get("CI"):
            raise RuntimeError("the dataplane test runs inside a namespace of its own (NIMBUS_TEST_NETNS)")
        pytest.skip("run inside a test namespace (scripts/test-all.sh sets NIMBUS_TEST_NETNS)")
    # Named namespaces and processes are machine-wide: judge only what appears from now on.
    before = nimbus_leftovers()
    # A second hypervisor host: a namespace joined to ours by a veth underlay.
    h2 = f"nbt-h2-{uuidlib.uuid4().hex[:6]}"
    sh("ip", "netns", "add", h2)
    try:
        sh("ip", "link", "add", "nbt-u1", "type", "veth", "peer", "name", "nbt-u2", "netns", h2)
        sh("ip", "addr", "add", "10.250.0.1/24", "dev", "nbt-u1")
        sh("ip", "link", "set", "nbt-u1", "up")
        sh("ip", "netns", "exec", h2, "ip", "addr", "add", "10.250.0.2/24", "dev", "nbt-u2")
        sh("ip", "netns", "exec", h2, "ip", "link", "set", "nbt-u2", "up")
        sh("ip", "netns", "exec", h2, "ip", "link", "set", "lo", "up")
        args = QEMU_ARGS + ["--tunnel-address", "10.250.0.1", "--extra-host", f"h2={h2},10.250.0.2",
                            "--cpu-allocation-ratio", "8"]
        with own_cloud("nimbus-net-", extra_args=args) as c:
            run_dataplane_scenario(c, tmp_path, h2, before)
        left = new_leftovers(before)
        assert left == {"links": [], "namespaces": [], "nft": [], "dnsmasq": []}, left
    finally:
        sh("ip", "link", "del", "nbt-u1", check=False)
        sh("ip", "netns", "del", h2, check=False)


def boot(c, name, *args, user_data=None, tmp_path=None):
    extra = []
    if user_data is not None:
        f = tmp_path / f"{name}.user-data"
        f.write_text(user_data)
        extra = ["--user-data", str(f)]
    return c.openstack("server", "create", "--image", "tiny", "--flavor", "m1.nano", *extra, *args, name, cloud="nimbus-demo")


def new_leftovers(before):
    now = nimbus_leftovers()
    return {kind: [item for item in items if item not in before[kind]] for kind, items in now.items()}


def run_dataplane_scenario(c, tmp_path, h2, before):
    demo = "nimbus-demo"
    # Second host: keep it out of the way until the VXLAN step.
    hosts = {s["Host"] for s in c.openstack("compute", "service", "list", "--service", "nova-compute")}
    assert "h2" in hosts, hosts
    c.openstack("compute", "service", "set", "--disable", "h2", "nova-compute", fmt=False)

    # Two VMs on `private` get their ports' addresses by DHCP (IPv4) and SLAAC (IPv6, from the
    # prefix the network's dnsmasq advertises) and reach each other over both.
    c.openstack("subnet", "create", "--network", "private", "--ip-version", "6", "--subnet-range", "fd00:77::/64",
                "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "private-v6", cloud=demo)
    vm1 = boot(c, "vm1", "--network", "private", tmp_path=tmp_path)
    s1 = wait_status(c, "vm1", "ACTIVE")
    ip1, ip1v6 = fixed_ip(s1, "private"), fixed_ip(s1, "private", version=6)
    assert ip1v6.startswith("fd00:77:"), s1["addresses"]
    log1 = wait_console(c, "vm1", "NIMBUS-GUEST")
    assert f"ip={ip1}" in log1, log1[-800:]
    metadata_url = "http://169.254.169.254/openstack/latest/meta_data.json"
    boot(c, "vm2", "--network", "private", user_data=f"nimbus-ping {ip1}\nnimbus-ping {ip1v6}\nnimbus-fetch {metadata_url}\n",
         tmp_path=tmp_path)
    s2 = wait_status(c, "vm2", "ACTIVE")
    log2 = wait_console(c, "vm2", f"NIMBUS-FETCH {metadata_url}")
    assert f"ip={fixed_ip(s2, 'private')}" in log2
    assert f"NIMBUS-PING {ip1} ok" in log2, log2[-1500:] + dataplane_dump()
    assert f"NIMBUS-PING {ip1v6} ok" in log2, log2[-1500:] + dataplane_dump()
    fetched = re.search(rf"NIMBUS-FETCH {re.escape(metadata_url)} (.*)", log2).group(1)
    assert json.loads(fetched)["uuid"] == s2["id"], fetched

    # A VM on another network cannot reach vm1 until the router joins that network too: IPv4
    # through the router, IPv6 routed by it (its advertisements give both sides a default route).
    net_b = c.openstack("network", "create", "net-b", cloud=demo)
    sub_b = c.openstack("subnet", "create", "--network", net_b["id"], "--subnet-range", "10.66.0.0/24", "sub-b", cloud=demo)
    c.openstack("subnet", "create", "--network", net_b["id"], "--ip-version", "6", "--subnet-range", "fd00:78::/64",
                "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "sub-b6", cloud=demo)
    boot(c, "vm3", "--network", "net-b", user_data=f"nimbus-ping {ip1}\nnimbus-ping {ip1v6}\n", tmp_path=tmp_path)
    wait_status(c, "vm3", "ACTIVE")
    log3 = wait_console(c, "vm3", f"NIMBUS-PING {ip1v6}")
    assert f"NIMBUS-PING {ip1} fail" in log3, log3[-1500:]
    assert f"NIMBUS-PING {ip1v6} fail" in log3, log3[-1500:]
    for subnet in [sub_b["id"], "sub-b6", "private-v6"]:
        c.openstack("router", "add", "subnet", "router1", subnet, cloud=demo, fmt=False)
    c.openstack("server", "reboot", "--hard", "vm3", cloud=demo, fmt=False)
    wait_status(c, "vm3", "ACTIVE")
    log3 = wait_console(c, "vm3", f"NIMBUS-PING {ip1v6}", after=1)
    assert f"NIMBUS-PING {ip1} ok" in log3.split("NIMBUS-GUEST")[-1], log3[-1500:]
    assert f"NIMBUS-PING {ip1v6} ok" in log3.split("NIMBUS-GUEST")[-1], log3[-1500:] + dataplane_dump()

    # A floating IP reaches vm1 from the outside (this namespace holds public's gateway) once a
    # security-group rule lets ICMP in; the default group admits only its own members.
    fip = c.openstack("floating", "ip", "create", "public", cloud=demo)["floating_ip_address"]
    c.openstack("server", "add", "floating", "ip", "vm1", fip, cloud=demo, fmt=False)
    assert not host_ping(fip, tries=3), "ICMP from outside passed the default security group"
    rule = c.openstack("security", "group", "rule", "create", "--protocol", "icmp", "--remote-ip", "0.0.0.0/0", "default",
                       cloud=demo, fmt=True)
    assert host_ping(fip), f"floating IP {fip} unreachable with ICMP allowed"
    c.openstack("security", "group", "rule", "delete", rule["id"], cloud=demo, fmt=False)
    time.sleep(0.5)
    assert not host_ping(fip, tries=3), "ICMP still passes after its rule went"
    shown = c.openstack("server", "show", "vm1", cloud=demo)
    assert fip in json.dumps(shown["addresses"]), shown["addresses"]

    # A VM on the second host reaches vm1 over VXLAN.
    c.openstack("compute", "service", "set", "--enable", "h2", "nova-compute", fmt=False)
    # The admin reads hosts by id (a name lookup searches the admin's own project).
    host1 = c.openstack("server", "show", vm1["id"])["OS-EXT-SRV-ATTR:host"]
    c.openstack("compute", "service", "set", "--disable", host1, "nova-compute", fmt=False)
    vm4 = boot(c, "vm4", "--network", "private", user_data=f"nimbus-ping {ip1}\n", tmp_path=tmp_path)
    wait_status(c, "vm4", "ACTIVE")
    assert c.openstack("server", "show", vm4["id"])["OS-EXT-SRV-ATTR:host"] == "h2"
    log4 = wait_console(c, "vm4", f"NIMBUS-PING {ip1}")
    assert f"NIMBUS-PING {ip1} ok" in log4, log4[-1500:]
    c.openstack("compute", "service", "set", "--enable", host1, "nova-compute", fmt=False)

    # Deleting everything leaves nothing behind.
    for name in ["vm1", "vm2", "vm3", "vm4"]:
        c.openstack("server", "delete", "--wait", name, cloud=demo, fmt=False)
    c.openstack("floating", "ip", "delete", fip, cloud=demo, fmt=False)
    for subnet in [sub_b["id"], "sub-b6", "private-v6", "private-subnet"]:
        c.openstack("router", "remove", "subnet", "router1", subnet, cloud=demo, fmt=False)
    c.openstack("router", "delete", "router1", cloud=demo, fmt=False)
    for net in ["net-b", "private"]:
        c.openstack("network", "delete", net, cloud=demo, fmt=False)
    c.openstack("network", "delete", "public", "shared", fmt=False)
    # Agents converge on every change; a full resync every 30 s repairs anything a change missed.
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        left = new_leftovers(before)
        h2_links = sh("ip", "netns", "exec", h2, "ip", "-o", "link").stdout
        if left == {"links": [], "namespaces": [], "nft": [], "dnsmasq": []} and "nbr-" not in h2_links and "ntp-" not in h2_links:
            break
        time.sleep(1)
    converges = [line for line in c.server.log_text().splitlines() if "[Agent]" in line or "[Dataplane]" in line]
    assert left == {"links": [], "namespaces": [], "nft": [], "dnsmasq": []}, f"{left}\n" + "\n".join(converges[-60:])
    assert "nbr-" not in h2_links and "ntp-" not in h2_links, h2_links
