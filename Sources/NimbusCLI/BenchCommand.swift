import Agent
import ArgumentParser
import Cloud
import Foundation
import Hypervisor
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// `nimbus bench`: load generators that need more requests per second than a Python client
/// can send. `scripts/bench.py` starts the cloud and calls these.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generators for the benchmarks (see scripts/bench.py).", subcommands: [BootDelete.self, ScheduleDecision.self, PortFill.self])
}

/// Boots servers, waits for ACTIVE, deletes them and waits until they are gone, with N clients
/// in parallel over HTTP; prints throughput and create→ACTIVE latency percentiles as JSON.
struct BootDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "boot-delete")

    @Option(help: "Compute endpoint, e.g. http://127.0.0.1:5000/compute/v2.1")
    var endpoint: String

    @Option(help: "X-Auth-Token to use.")
    var token: String

    @Option(help: "Image id to boot.")
    var image: String

    @Option(help: "Flavor id.")
    var flavor: String = "42"

    @Option(help: "Servers in all.")
    var servers: Int = 1000

    @Option(help: "Clients in parallel.")
    var concurrency: Int = 20

    @Option(help: "Milliseconds between status polls of one server.")
    var pollMs: Int = 10

    @Flag(help: "Leave the servers ACTIVE instead of deleting them (to measure listing).")
    var keep = false

    func run() async throws {
        let counter = Counter(total: servers)
        let started = Date()
        let results = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var latencies: [Double] = []
                    while let index = await counter.next() {
                        latencies.append(try await bootAndDelete(index))
                    }
                    return latencies
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
        let elapsed = Date().timeIntervalSince(started)
        let sorted = results.sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        let report: [String: Any] = [
            "servers": sorted.count, "seconds": elapsed, "servers_per_second": Double(sorted.count) / elapsed,
            "active_p50_ms": percentile(0.50) * 1000, "active_p99_ms": percentile(0.99) * 1000,
            "active_max_ms": (sorted.last ?? 0) * 1000,
        ]
        let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// - Returns: seconds from the create request to the server being ACTIVE.
    func bootAndDelete(_ index: Int) async throws -> Double {
        let body: [String: Any] = ["server": ["name": "bench-\(index)", "imageRef": image, "flavorRef": flavor, "networks": "none"]]
        let started = Date()
        let deadline = Date().addingTimeInterval(120)
        let (created, status) = try await send("POST", "/servers", body: body)
        guard status == 202, let id = ((created?["server"] as? [String: Any])?["id"]) as? String else {
            throw ValidationError("create failed with \(status): \(String(describing: created))")
        }
        while true {
            let (shown, code) = try await send("GET", "/servers/\(id)", body: nil)
            let state = (shown?["server"] as? [String: Any])?["status"] as? String
            if state == "ACTIVE" { break }
            if (state != "BUILD" && state != nil) || code != 200 { throw ValidationError("server \(id) went \(state ?? "?") (\(code))") }
            if Date() > deadline { throw ValidationError("server \(id) not ACTIVE within 120 s") }
            try await Task.sleep(for: .milliseconds(pollMs))
        }
        let active = Date().timeIntervalSince(started)
        if keep { return active }
        _ = try await send("DELETE", "/servers/\(id)", body: nil)
        while try await send("GET", "/servers/\(id)", body: nil).1 != 404 {
            if Date() > deadline.addingTimeInterval(120) { throw ValidationError("server \(id) not gone within 120 s of its delete") }
            try await Task.sleep(for: .milliseconds(pollMs))
        }
        return active
    }

    func send(_ method: String, _ path: String, body: [String: Any]?) async throws -> ([String: Any]?, Int) {
        try await sendJSON(method, endpoint + path, token: token, body: body, headers: ["OpenStack-API-Version": "compute 2.79"])
    }
}

/// Times the scheduler's decision (Placement candidates, filters, weighers) over many hosts, in
/// process on a throwaway database: the hosts are registered as compute nodes, nothing boots.
struct ScheduleDecision: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "schedule")

    @Option(help: "Compute hosts to register.")
    var hosts: Int = 1000

    @Option(help: "Decisions to time.")
    var decisions: Int = 500

    func run() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        var configuration = CloudConfiguration(
            databaseURL: "sqlite:" + work.appendingPathComponent("nimbus.db").path, host: "127.0.0.1", port: 0,
            keyDirectory: work.appendingPathComponent("keys"), imageDirectory: work.appendingPathComponent("images"), bcryptCost: 4)
        configuration.localHosts = nil
        let cloud = try await Cloud(configuration: configuration, logger: logger)
        do {
            _ = try await cloud.bootstrap()
            for index in 0..<hosts {
                try await cloud.compute.register(
                    host: "bench-\(index)", zone: "nova",
                    facts: HostFacts(vcpus: 16 + index % 8, memoryMB: 65536, diskGB: 1000, hypervisorType: "fake", accelerator: "fake"),
                    link: NoLink())
            }
            var samples: [Double] = []
            for _ in 0..<decisions {
                let started = ContinuousClock.now
                let ranked = try await cloud.compute.rankHosts(vcpus: 1, ramMB: 512, diskGB: 1, projectID: "bench")
                let elapsed = ContinuousClock.now - started
                samples.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
                guard ranked.count == hosts else { throw ValidationError("expected \(hosts) hosts, got \(ranked.count)") }
            }
            samples.sort()
            let report: [String: Any] = [
                "hosts": hosts, "decisions": decisions, "p50_ms": samples[samples.count / 2],
                "p99_ms": samples[min(samples.count - 1, samples.count * 99 / 100)], "max_ms": samples.last ?? 0,
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
        } catch {
            await cloud.shutdown()
            throw error
        }
        await cloud.shutdown()
    }
}

struct NoLink: AgentLink {
    func consoleOutput(_ uuid: String, lines: Int?) async throws -> String { "" }
    func attachInterface(_ spec: GuestSpec, nic: GuestNIC) async throws {}
    func detachInterface(_ uuid: String, portID: String) async throws {}
}

/// Hands out indexes 0..<total to concurrent clients.
actor Counter {
    let total: Int
    private var issued = 0
    init(total: Int) { self.total = total }
    func next() -> Int? {
        guard issued < total else { return nil }
        defer { issued += 1 }
        return issued
    }
}

/// Creates ports on one network with N clients at once until its addresses run out, then
/// checks that no address went twice; prints the rate and the outcome as JSON.
struct PortFill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ports")

    @Option(help: "Network endpoint, e.g. http://127.0.0.1:5000/network")
    var endpoint: String

    @Option(help: "X-Auth-Token to use.")
    var token: String

    @Option(help: "Network to fill (its subnet's addresses are the pool).")
    var network: String

    @Option(help: "Clients in parallel.")
    var concurrency: Int = 16

    @Option(help: "Stop after this many ports (default: until the pool is exhausted).")
    var limit: Int?

    func run() async throws {
        let counter = Counter(total: limit ?? Int.max)
        let started = Date()
        let outcome = try await withThrowingTaskGroup(of: ([String], Int, Int).self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var addresses: [String] = [], exhausted = 0, errors = 0
                    while await counter.next() != nil {
                        let (body, status) = try await send("POST", "/v2.0/ports", body: ["port": ["network_id": network]])
                        if status == 201, let port = body?["port"] as? [String: Any],
                           let ips = port["fixed_ips"] as? [[String: Any]], let ip = ips.first?["ip_address"] as? String {
                            addresses.append(ip)
                        } else if status == 409, "\(body ?? [:])".contains("IpAddressGenerationFailure") {
                            exhausted += 1
                            break
                        } else {
                            errors += 1
                            if errors > 10 { throw ValidationError("port create failed with \(status): \(String(describing: body))") }
                        }
                    }
                    return (addresses, exhausted, errors)
                }
            }
            var all: [String] = [], exhausted = 0, errors = 0
            for try await (part, full, failed) in group {
                all += part
                exhausted += full
                errors += failed
            }
            return (all, exhausted, errors)
        }
        let elapsed = Date().timeIntervalSince(started)
        let report: [String: Any] = [
            "ports": outcome.0.count, "seconds": elapsed, "ports_per_second": Double(outcome.0.count) / elapsed,
            "duplicates": outcome.0.count - Set(outcome.0).count, "errors": outcome.2, "clients_saw_exhaustion": outcome.1,
        ]
        let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    func send(_ method: String, _ path: String, body: [String: Any]?) async throws -> ([String: Any]?, Int) {
        try await sendJSON(method, endpoint + path, token: token, body: body)
    }
}

/// One JSON request of a load generator. - Returns: the decoded object body (nil if none) and the status.
func sendJSON(_ method: String, _ url: String, token: String, body: [String: Any]?, headers: [String: String] = [:]) async throws -> ([String: Any]?, Int) {
    var fields = [("X-Auth-Token", token)] + headers.map { ($0.key, $0.value) }
    var payload: ByteBuffer?
    if let body {
        fields.append(("Content-Type", "application/json"))
        payload = ByteBuffer(data: try JSONSerialization.data(withJSONObject: body))
    }
    let (status, reply) = try await exchange(HTTPMethod(rawValue: method), url, headers: fields, body: payload)
    return ((try? JSONSerialization.jsonObject(with: Data(buffer: reply))) as? [String: Any], status)
}
