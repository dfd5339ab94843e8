import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `nimbus bench`: load generators that need more requests per second than a Python client
/// can send. `scripts/bench.py` starts the cloud and calls these.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generators for the benchmarks (see scripts/bench.py).", subcommands: [BootDelete.self])
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

    func run() async throws {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = concurrency * 2
        let session = URLSession(configuration: configuration)
        let counter = Counter(total: servers)
        let started = Date()
        let results = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var latencies: [Double] = []
                    while let index = await counter.next() {
                        latencies.append(try await bootAndDelete(index, session))
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
    func bootAndDelete(_ index: Int, _ session: URLSession) async throws -> Double {
        let body: [String: Any] = ["server": ["name": "bench-\(index)", "imageRef": image, "flavorRef": flavor, "networks": "none"]]
        let started = Date()
        let (created, status) = try await send("POST", "/servers", body: body, session)
        guard status == 202, let id = ((created?["server"] as? [String: Any])?["id"]) as? String else {
            throw ValidationError("create failed with \(status): \(String(describing: created))")
        }
        while true {
            let (shown, code) = try await send("GET", "/servers/\(id)", body: nil, session)
            let state = (shown?["server"] as? [String: Any])?["status"] as? String
            if state == "ACTIVE" { break }
            if (state != "BUILD" && state != nil) || code != 200 { throw ValidationError("server \(id) went \(state ?? "?") (\(code))") }
            try await Task.sleep(for: .milliseconds(pollMs))
        }
        let active = Date().timeIntervalSince(started)
        _ = try await send("DELETE", "/servers/\(id)", body: nil, session)
        while try await send("GET", "/servers/\(id)", body: nil, session).1 != 404 {
            try await Task.sleep(for: .milliseconds(pollMs))
        }
        return active
    }

    func send(_ method: String, _ path: String, body: [String: Any]?, _ session: URLSession) async throws -> ([String: Any]?, Int) {
        var request = URLRequest(url: URL(string: endpoint + path)!)
        request.httpMethod = method
        request.setValue(token, forHTTPHeaderField: "X-Auth-Token")
        request.setValue("compute 2.79", forHTTPHeaderField: "OpenStack-API-Version")
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
        let (data, response) = try await session.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any], status)
    }
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
