#!/usr/bin/env python3
"""Nimbus benchmarks: prints figures for BENCHMARKS.md.

Runs the release binary against a fresh state directory on loopback. Every load is bounded in
count and time. Usage: .venv/bin/python scripts/bench.py [--only startup,tokens,projects,images]
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("NIMBUS_BIN", os.path.join(ROOT, ".build/release/nimbus"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, state, port, extra=()):
        self.state, self.port, self.extra = state, port, list(extra)
        self.base = f"http://127.0.0.1:{port}"

    def start(self):
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [BIN, "up", "--state-dir", self.state, "--listen", f"127.0.0.1:{self.port}", "--log-level", "warning", *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            if "Nimbus is ready" in line:
                self.ready_seconds = time.monotonic() - started
                break
        else:
            raise RuntimeError("server exited before it was ready")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        return self

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def password(self, user="admin"):
        with open(os.path.join(self.state, "credentials.json")) as f:
            return json.load(f)[user]

    def token(self, scope_project="admin"):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": self.password()}}},
            "scope": {"project": {"name": scope_project, "domain": {"id": "default"}}}}}
        reply = requests.post(self.base + "/identity/v3/auth/tokens", json=body)
        reply.raise_for_status()
        return reply.headers["X-Subject-Token"]


def wrk(url, headers, connections, seconds=10, threads=2, extra=()):
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", *extra]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, float(p99.group(1)) * scale[p99.group(2)], int(non2xx.group(1)) if non2xx else 0


def bench_startup(work):
    state = os.path.join(work, "startup")
    # The fake driver: a QEMU host would wire its dataplane into this machine's network and
    # leave it there (bridges, DHCP namespaces) when the state directory goes.
    first = Server(state, free_port(), ["--driver", "fake"]).start()
    first_seconds = first.ready_seconds
    first.stop()
    second = Server(state, free_port(), ["--driver", "fake"]).start()
    time.sleep(3)
    rss = rss_kib(second.proc.pid) / 1024
    second.stop()
    print(f"startup: first start (creates state, bootstrap, bcrypt 12) {first_seconds:.2f} s; "
          f"restart on existing state ready in {second.ready_seconds:.3f} s; idle RSS {rss:.1f} MiB")


def bench_tokens(server):
    count = 8
    started = time.monotonic()
    for _ in range(count):
        server.token()
    per_second = count / (time.monotonic() - started)
    print(f"token issue (password, bcrypt cost 12, sequential): {per_second:.1f}/s")
    token = server.token()
    rate, p99, errors = wrk(server.base + "/identity/v3/auth/tokens", {"X-Auth-Token": token, "X-Subject-Token": token}, 8)
    print(f"token validate GET /v3/auth/tokens, keep-alive, concurrency 8 (wrk on the same 2 cores): "
          f"{rate:,.0f}/s, p99 {p99:.2f} ms, non-2xx {errors}")
    rate, p99, errors = wrk(server.base + "/identity/v3/auth/tokens?nocatalog", {"X-Auth-Token": token, "X-Subject-Token": token}, 8)
    print(f"token validate with ?nocatalog, concurrency 8: {rate:,.0f}/s, p99 {p99:.2f} ms, non-2xx {errors}")


def bench_projects(server):
    token = server.token()
    session = requests.Session()
    session.headers["X-Auth-Token"] = token
    existing = len(session.get(server.base + "/identity/v3/projects").json()["projects"])
    for index in range(1000 - existing):
        session.post(server.base + "/identity/v3/projects", json={"project": {"name": f"bench-{index:04d}"}}).raise_for_status()
    total = len(session.get(server.base + "/identity/v3/projects").json()["projects"])
    rate, p99, errors = wrk(server.base + "/identity/v3/projects", {"X-Auth-Token": token}, 1, threads=1)
    print(f"GET /v3/projects with {total} projects, one client: p99 {p99:.2f} ms, {rate:,.0f}/s, non-2xx {errors}")


def bench_placement(server, providers=1000):
    token = server.token()
    session = requests.Session()
    session.headers.update({"X-Auth-Token": token, "OpenStack-API-Version": "placement 1.39"})
    base = server.base + "/placement"
    for index in range(providers):
        reply = session.post(base + "/resource_providers", json={"name": f"bench-host-{index:04d}"})
        reply.raise_for_status()
        provider = reply.json()
        session.put(f"{base}/resource_providers/{provider['uuid']}/inventories", json={
            "resource_provider_generation": provider["generation"],
            "inventories": {"VCPU": {"total": 16, "allocation_ratio": 4.0}, "MEMORY_MB": {"total": 65536},
                            "DISK_GB": {"total": 1000}}}).raise_for_status()
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "placement 1.39"}
    rate, p99, errors = wrk(base + "/allocation_candidates?resources=VCPU:1,MEMORY_MB:512", headers, 1, threads=1)
    print(f"GET /allocation_candidates over {providers} providers (all fit), one client: p99 {p99:.2f} ms, {rate:,.0f}/s, non-2xx {errors}")


def md5_mib_per_second():
    out = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", str(1 << 20), "md5"],
                         capture_output=True, text=True).stdout
    kilobytes = float(out.strip().splitlines()[-1].split()[-1].rstrip("k"))
    return kilobytes * 1000 / (1 << 20)


def bench_images(server, work, size_mib, rounds=3):
    """cp, upload and download of the same file, `rounds` times over; the best round of each counts.

    On this VM, memory the guest frees goes back to the host (virtio-balloon free page reporting),
    so writes into new page-cache pages fault on the host and run at erratic speed, whichever
    program makes them: a single round measures mostly luck.
    """
    reporting = "/sys/module/page_reporting/parameters/min_free_ms"
    if os.path.exists(reporting):
        with open(reporting) as f:
            print(f"free page reporting to the hypervisor: on, after {f.read().strip()} ms "
                  "(freed guest memory goes back to the host; the next write into it faults there)")
    source = os.path.join(work, "blob.raw")
    with open(source, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size_mib):
            f.write(chunk)
    subprocess.run(["sync"])
    token = server.token()
    headers = {"X-Auth-Token": token}
    baseline = rss_kib(server.proc.pid)
    peak = [baseline]
    running = [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], rss_kib(server.proc.pid))
            time.sleep(0.05)
    sampler = threading.Thread(target=sample)
    sampler.start()

    def timed(action):
        started = time.monotonic()
        action()
        os.sync()
        return size_mib / (time.monotonic() - started)

    best = {}
    target = os.path.join(work, "blob.out")
    same = True
    for round_number in range(rounds):
        rates = {}
        rates["cp"] = timed(lambda: shutil.copyfile(source, source + ".copy"))
        os.unlink(source + ".copy")
        image = requests.post(server.base + "/image/v2/images", headers=headers,
                              json={"name": "bench", "disk_format": "raw", "container_format": "bare"}).json()
        url = f"{server.base}/image/v2/images/{image['id']}/file"
        rates["upload"] = timed(lambda: subprocess.run(
            ["curl", "-sf", "-X", "PUT", "-T", source, "-H", f"X-Auth-Token: {token}",
             "-H", "Content-Type: application/octet-stream", url], check=True))
        # What the server sends, without the client's writes to disk.
        rates["download to /dev/null"] = timed(lambda: subprocess.run(
            ["curl", "-sf", "-o", "/dev/null", "-H", f"X-Auth-Token: {token}", url], check=True))
        rates["download to disk"] = timed(lambda: subprocess.run(
            ["curl", "-sf", "-o", target, "-H", f"X-Auth-Token: {token}", url], check=True))
        same = same and subprocess.run(["cmp", "-s", source, target]).returncode == 0
        os.unlink(target)
        # The file the downloads read, as the store left it (not in the page cache: it was written
        # past it), copied by cp: the same file on the same disk. Last, so that it warms nothing
        # the downloads read.
        stored = os.path.join(server.state, "images", "images", image["id"])
        rates["cp of the stored file"] = timed(lambda: shutil.copyfile(stored, target))
        os.unlink(target)
        requests.delete(f"{server.base}/image/v2/images/{image['id']}", headers=headers).raise_for_status()
        downloads = [name for name in rates if name.startswith("download")]
        print(f"image {size_mib} MiB, round {round_number + 1}: " +
              ", ".join(f"{name} {rate:.0f} MiB/s" for name, rate in rates.items()) + " (each with sync); of this "
              f"round's cp: upload {rates['upload'] / rates['cp']:.0%}, " +
              ", ".join(f"{name} {rates[name] / rates['cp']:.0%}" for name in downloads) + "; of the stored file's cp: " +
              ", ".join(f"{name} {rates[name] / rates['cp of the stored file']:.0%}" for name in downloads))
        for name, rate in rates.items():
            best[name] = max(best.get(name, 0), rate)
    running[0] = False
    sampler.join()
    print(f"MD5 on one core (openssl speed): {md5_mib_per_second():.0f} MiB/s; Glance computes it during "
          "the upload, so the upload cannot be faster")
    cp, stored_cp = best.pop("cp"), best.pop("cp of the stored file")
    print(f"image {size_mib} MiB, best of {rounds}: cp {cp:.0f} MiB/s, cp of the stored file {stored_cp:.0f} MiB/s; " +
          "; ".join(f"{name} {rate:.0f} MiB/s ({rate / cp:.0%} of cp" +
                    (f", {rate / stored_cp:.0%} of the stored file's cp)" if name.startswith("download") else ")")
                    for name, rate in best.items()) +
          f"; server RSS grew {(peak[0] - baseline) / 1024:.1f} MiB; downloads identical: {same}")
    os.unlink(source)


def wait_hosts(server, token, count, timeout=60):
    """Agents register just after the API answers; wait until `count` compute hosts are up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = requests.get(server.base + "/compute/v2.1/os-hypervisors", headers={"X-Auth-Token": token})
        if reply.ok and sum(h["state"] == "up" for h in reply.json()["hypervisors"]) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {count} compute hosts came up")


def bench_compute(work, hosts=50, servers=1000, concurrency=20):
    """Boot-and-delete with the fake driver, then listing 1,000 servers, then scheduling decisions."""
    server = Server(os.path.join(work, "compute"), free_port(), ["--driver", "fake", "--fake-hosts", str(hosts)]).start()
    try:
        token = server.token()
        wait_hosts(server, token, hosts)
        headers = {"X-Auth-Token": token}
        image_file = os.path.join(work, "bench.raw")
        with open(image_file, "wb") as f:
            f.write(b"\0" * (1 << 20))
        image = requests.post(server.base + "/image/v2/images", headers=headers, json={
            "name": "bench", "disk_format": "raw", "container_format": "bare", "visibility": "public"}).json()
        with open(image_file, "rb") as f:
            requests.put(f"{server.base}/image/v2/images/{image['id']}/file", data=f,
                         headers={**headers, "Content-Type": "application/octet-stream"}).raise_for_status()
        project = requests.get(server.base + "/identity/v3/auth/tokens",
                               headers={**headers, "X-Subject-Token": token}).json()["token"]["project"]["id"]
        requests.put(f"{server.base}/compute/v2.1/os-quota-sets/{project}", headers=headers,
                     json={"quota_set": {"instances": -1, "cores": -1, "ram": -1}}).raise_for_status()
        common = [BIN, "bench", "boot-delete", "--endpoint", server.base + "/compute/v2.1", "--token", token,
                  "--image", image["id"], "--concurrency", str(concurrency), "--poll-ms", "50"]
        result = json.loads(subprocess.check_output(common + ["--servers", str(servers)], text=True))
        print(f"boot-and-delete {result['servers']} servers, concurrency {concurrency}, {hosts} fake hosts: "
              f"{result['servers_per_second']:.1f} servers/s; create->ACTIVE p50 {result['active_p50_ms']:.0f} ms, "
              f"p99 {result['active_p99_ms']:.0f} ms (clients poll every 50 ms)")
        kept = json.loads(subprocess.check_output(common + ["--servers", "1000", "--keep"], text=True))
        rate, p99, errors = wrk(server.base + "/compute/v2.1/servers/detail",
                                {**headers, "OpenStack-API-Version": "compute 2.79"}, 1, threads=1)
        print(f"GET /servers/detail with {kept['servers']} servers, one client: p99 {p99:.2f} ms, {rate:,.0f}/s, non-2xx {errors}")
    finally:
        server.stop()
    decision = json.loads(subprocess.check_output([BIN, "bench", "schedule", "--hosts", "1000", "--decisions", "500"], text=True))
    print(f"scheduling decision (candidates + filters + weighers) over {decision['hosts']} hosts: "
          f"p50 {decision['p50_ms']:.2f} ms, p99 {decision['p99_ms']:.2f} ms")


def bench_network(work, concurrency=16):
    """IPAM under load: every address of a /20 taken by 16 clients at once (port create rate,
    duplicates, errors). The fake driver: no dataplane is involved in creating ports."""
    server = Server(os.path.join(work, "network"), free_port(), ["--driver", "fake"]).start()
    try:
        token = server.token()
        headers = {"X-Auth-Token": token}
        base = server.base + "/network/v2.0"
        project = requests.get(server.base + "/identity/v3/auth/tokens",
                               headers={**headers, "X-Subject-Token": token}).json()["token"]["project"]["id"]
        requests.put(f"{base}/quotas/{project}", headers=headers, json={"quota": {"port": -1}}).raise_for_status()
        net = requests.post(f"{base}/networks", headers=headers, json={"network": {"name": "bench"}}).json()["network"]
        requests.post(f"{base}/subnets", headers=headers, json={"subnet": {
            "network_id": net["id"], "cidr": "10.128.0.0/20", "ip_version": 4, "enable_dhcp": False}}).raise_for_status()
        result = json.loads(subprocess.check_output([BIN, "bench", "ports", "--endpoint", server.base + "/network", "--token", token,
                                                     "--network", net["id"], "--concurrency", str(concurrency)], text=True))
        print(f"ports on a /20 ({4093} addresses), {concurrency} clients until exhausted: {result['ports']} ports, "
              f"{result['ports_per_second']:.0f} ports/s, duplicates {result['duplicates']}, errors {result['errors']}, "
              f"clients that saw exhaustion {result['clients_saw_exhaustion']}")
    finally:
        server.stop()


def qmp_ready(path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(path)
                if s.makefile().readline():
                    return True
        except OSError:
            time.sleep(0.005)
    return False


def wait_file_contains(path, needle, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                if needle in f.read():
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    return False


def tiny_compute(server, token):
    """Headers, the compute endpoint and the `tiny` image, with the admin project's quota lifted."""
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"}
    compute = server.base + "/compute/v2.1"
    image = requests.get(server.base + "/image/v2/images?name=tiny", headers=headers).json()["images"][0]["id"]
    project = requests.get(server.base + "/identity/v3/auth/tokens",
                           headers={**headers, "X-Subject-Token": token}).json()["token"]["project"]["id"]
    requests.put(f"{compute}/os-quota-sets/{project}", headers=headers,
                 json={"quota_set": {"instances": -1, "cores": -1, "ram": -1}}).raise_for_status()
    return headers, compute, image


def bench_qemu(work, boots=5, crowd=10):
    """Real VMs under the QEMU driver: control-plane overhead over a bare QEMU start and boot."""
    guest = os.environ.get("NIMBUS_GUEST_DIR", os.path.join(ROOT, ".build/nimbus-guest"))
    if not os.path.exists(os.path.join(guest, "disk.qcow2")):
        print(f"qemu: skipped (no guest in {guest}; run nimbus guest-image build --out {guest})")
        return
    state = os.path.join(work, "qemu")
    # No dataplane: these guests have no networks, and the seeded networks would be wired into
    # this machine's own namespace (and outlive the benchmark's state dir).
    server = Server(state, free_port(), ["--driver", "qemu", "--accel", "tcg", "--guest-dir", guest,
                                         "--shutdown-timeout", "5", "--max-concurrent-spawns", "2",
                                         "--cpu-allocation-ratio", "8", "--no-dataplane"]).start()
    try:
        token = server.token()
        wait_hosts(server, token, 1)
        headers, compute, image = tiny_compute(server, token)

        def create(name):
            reply = requests.post(compute + "/servers", headers=headers, json={"server": {
                "name": name, "imageRef": image, "flavorRef": "42", "networks": "none"}})
            reply.raise_for_status()
            return reply.json()["server"]["id"]

        def wait_active(uuid):
            while True:
                server_view = requests.get(f"{compute}/servers/{uuid}", headers=headers).json()["server"]
                if server_view["status"] == "ACTIVE":
                    return
                assert server_view["status"] == "BUILD", server_view.get("fault")
                time.sleep(0.005)

        def delete(uuid):
            requests.delete(f"{compute}/servers/{uuid}", headers=headers)
            while requests.get(f"{compute}/servers/{uuid}", headers=headers).status_code != 404:
                time.sleep(0.05)

        overheads, marker_ratios = [], []
        for index in range(boots):
            started = time.monotonic()
            uuid = create(f"bench-{index}")
            wait_active(uuid)
            active = time.monotonic() - started
            folder = os.path.join(state, "compute", "instances", uuid)
            wait_file_contains(os.path.join(folder, "console.log"), b"NIMBUS-GUEST")
            marker = time.monotonic() - started
            # The same QEMU command line, on copies of the guest's files, timed bare.
            with open(f"/proc/{int(open(os.path.join(folder, 'qemu.pid')).read())}/cmdline", "rb") as f:
                args = [a.decode() for a in f.read().split(b"\0") if a]
            bare = os.path.join(work, f"bare-{index}")
            shutil.copytree(folder, bare, ignore=shutil.ignore_patterns("qmp.sock", "qemu.pid", "console.log", "*.log"))
            args = [a.replace(folder, bare) for a in args]
            started = time.monotonic()
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            qmp_ready(os.path.join(bare, "qmp.sock"))
            bare_start = time.monotonic() - started
            wait_file_contains(os.path.join(bare, "console.log"), b"NIMBUS-GUEST")
            bare_marker = time.monotonic() - started
            proc.kill()
            proc.wait()
            shutil.rmtree(bare, ignore_errors=True)
            overheads.append((active - bare_start) * 1000)
            marker_ratios.append(marker / bare_marker)
            delete(uuid)
        overheads.sort()
        marker_ratios.sort()
        print(f"QEMU (TCG) create->ACTIVE minus a bare QEMU start with the same arguments: median "
              f"{overheads[len(overheads) // 2]:.0f} ms (all: {', '.join(f'{o:.0f}' for o in overheads)})")
        print(f"create->guest marker / bare QEMU boot to marker: median {marker_ratios[len(marker_ratios) // 2]:.2f} "
              f"(all: {', '.join(f'{r:.2f}' for r in marker_ratios)})")

        started = time.monotonic()
        uuids = [create(f"crowd-{index}") for index in range(crowd)]
        for uuid in uuids:
            wait_active(uuid)
        for uuid in uuids:
            assert wait_file_contains(os.path.join(state, "compute", "instances", uuid, "console.log"), b"NIMBUS-GUEST", 300), uuid
        everyone = time.monotonic() - started
        qemu_rss = sum(rss_kib(int(open(os.path.join(state, "compute", "instances", u, "qemu.pid")).read())) for u in uuids)
        print(f"{crowd} guests at once: all at their marker in {everyone:.1f} s; nimbus (control plane + agent) RSS "
              f"{rss_kib(server.proc.pid) / 1024:.1f} MiB; QEMU RSS {qemu_rss / 1024 / crowd:.0f} MiB per guest")
        for uuid in uuids:
            requests.delete(f"{compute}/servers/{uuid}", headers=headers)
        for uuid in uuids:
            while requests.get(f"{compute}/servers/{uuid}", headers=headers).status_code != 404:
                time.sleep(0.1)
    finally:
        server.stop()
        # Guests outlive nimbus by design; a benchmark that failed half-way must not leave any.
        subprocess.run(["pkill", "-9", "-f", f"qemu-system-x86_64 .*{state}"], check=False)


def bench_agent(work, crowd=10):
    """`nimbus agent` in a process of its own running real guests: its RSS alone, idle and with
    `crowd` guests (the control plane is `nimbus up` with no local host)."""
    guest = os.environ.get("NIMBUS_GUEST_DIR", os.path.join(ROOT, ".build/nimbus-guest"))
    if not os.path.exists(os.path.join(guest, "disk.qcow2")):
        print(f"agent: skipped (no guest in {guest})")
        return
    state = os.path.join(work, "control")
    server = Server(state, free_port(), ["--driver", "fake", "--fake-hosts", "0", "--guest-dir", guest,
                                         "--cpu-allocation-ratio", "8"]).start()
    agent_state = os.path.join(work, "agent")
    agent = subprocess.Popen([BIN, "agent", "--control-plane", server.base, "--key-file", os.path.join(state, "agent.key"),
                              "--host", "bench-agent", "--driver", "qemu", "--accel", "tcg", "--shutdown-timeout", "5",
                              "--state-dir", agent_state, "--listen", f"127.0.0.1:{free_port()}", "--log-level", "warning"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        token = server.token()
        wait_hosts(server, token, 1)
        time.sleep(3)
        idle = rss_kib(agent.pid) / 1024
        headers, compute, image = tiny_compute(server, token)
        uuids = []
        for index in range(crowd):
            reply = requests.post(compute + "/servers", headers=headers, json={"server": {
                "name": f"agent-{index}", "imageRef": image, "flavorRef": "42", "networks": "none"}})
            reply.raise_for_status()
            uuids.append(reply.json()["server"]["id"])
        for uuid in uuids:
            console = os.path.join(agent_state, "compute", "instances", uuid, "console.log")
            if not wait_file_contains(console, b"NIMBUS-GUEST", 300):
                view = requests.get(f"{compute}/servers/{uuid}", headers=headers).json()["server"]
                tail = open(console, errors="replace").read()[-1500:] if os.path.exists(console) else "<no console>"
                raise RuntimeError(f"{uuid} never reached its marker: {view['status']} {view.get('fault')}\n{tail}")
        busy = rss_kib(agent.pid) / 1024
        print(f"nimbus agent (own process, QEMU excluded): idle RSS {idle:.1f} MiB; with {crowd} guests running {busy:.1f} MiB")
        for uuid in uuids:
            requests.delete(f"{compute}/servers/{uuid}", headers=headers)
        for uuid in uuids:
            while requests.get(f"{compute}/servers/{uuid}", headers=headers).status_code != 404:
                time.sleep(0.1)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        server.stop()
        subprocess.run(["pkill", "-9", "-f", f"qemu-system-x86_64 .*{agent_state}"], check=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="startup,tokens,projects,placement,images,compute,network,qemu,agent")
    parser.add_argument("--image-mib", type=int, default=1024)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    work = tempfile.mkdtemp(prefix="nimbus-bench-", dir=os.environ.get("NIMBUS_BENCH_DIR", "/var/tmp"))
    try:
        print(f"binary: {BIN}; cores: {os.cpu_count()}")
        if "startup" in parts:
            bench_startup(work)
        if parts & {"tokens", "projects", "placement", "images"}:
            # The fake driver: these figures are about the API, and no dataplane should touch the host.
            server = Server(os.path.join(work, "cloud"), free_port(), ["--driver", "fake"]).start()
            try:
                if "tokens" in parts:
                    bench_tokens(server)
                if "projects" in parts:
                    bench_projects(server)
                if "placement" in parts:
                    bench_placement(server)
                if "images" in parts:
                    bench_images(server, work, args.image_mib)
            finally:
                server.stop()
        if "compute" in parts:
            bench_compute(work)
        if "network" in parts:
            bench_network(work)
        if "qemu" in parts:
            bench_qemu(work)
        if "agent" in parts:
            bench_agent(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
