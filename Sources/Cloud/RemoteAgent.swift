import Agent
import AsyncHTTPClient
import Dataplane
import Foundation
import Hypervisor
import NIOCore
import NIOFileSystem
import NIOFoundationCompat
import NIOHTTP1
import NimbusCore

/// The HTTP client of every outgoing call (agent ↔ control plane, load generators). One for the
/// process, never shut down. AsyncHTTPClient runs on the NIO threads the process already has;
/// URLSession would load libcurl and its TLS stack, about 8 MiB of a small agent's RSS.
public let outgoingHTTP = HTTPClient(
    eventLoopGroupProvider: .singleton,
    configuration: HTTPClient.Configuration(
        connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64),
        decompression: .disabled))

/// One HTTP exchange with its whole reply body (up to `limit` bytes).
public func exchange(_ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: ByteBuffer? = nil,
                     timeout: Duration = .seconds(30), limit: Int = 64 << 20) async throws -> (status: Int, body: ByteBuffer) {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body { request.body = .bytes(body) }
    let response = try await outgoingHTTP.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
    return (Int(response.status.code), try await response.body.collect(upTo: limit))
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

/// JSON calls between a control plane and an agent, authenticated by the shared agent key.
struct InternalClient: Sendable {
    let base: String
    let key: String

    init(base: String, key: String) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.key = key
    }

    func request(_ method: HTTPMethod, _ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "X-Nimbus-Agent-Key", value: key)
        return request
    }

    /// POSTs `body`; - Returns: the reply body (empty for 204), or throws for any other status.
    func call<Body: Encodable>(_ path: String, _ body: Body, timeout: Duration = .seconds(30)) async throws -> ByteBuffer {
        let (status, reply) = try await exchange(
            .POST, base + path, headers: [("X-Nimbus-Agent-Key", key), ("Content-Type", "application/json")],
            body: ByteBuffer(data: try JSONEncoder().encode(body)), timeout: timeout)
        try Self.check(status, reply, path)
        return reply
    }

    func call<Body: Encodable, Reply: Decodable>(_ path: String, _ body: Body, as reply: Reply.Type, timeout: Duration = .seconds(30)) async throws -> Reply {
        try JSONDecoder().decode(Reply.self, from: try await call(path, body, timeout: timeout))
    }

    static func check(_ status: Int, _ body: ByteBuffer, _ path: String) throws {
        guard (200..<300).contains(status) else {
            throw HypervisorError("\(path) answered \(status): \(String(buffer: body.getSlice(at: body.readerIndex, length: min(500, body.readableBytes)) ?? body))")
        }
    }
}

/// The control plane over HTTP, as a `nimbus agent` process sees it: compute work and reports,
/// the host's network state, and image data (downloaded once into the host's cache).
public final class RemoteControlPlane: AgentControlPlane, NetworkControlPlane, ImageSource {
    let client: InternalClient
    /// Where the control plane reaches this agent's link server.
    let linkURL: String
    let imageDirectory: URL

    public init(controlPlane: String, key: String, linkURL: String, imageDirectory: URL) {
        self.client = InternalClient(base: controlPlane + AgentAPI.prefix, key: key)
        self.linkURL = linkURL
        self.imageDirectory = imageDirectory
    }

    static func milliseconds(_ duration: Duration) -> Int { Int(duration.nanoseconds / 1_000_000) }

    static func host(_ name: String) -> String {
        "/hosts/" + (name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? name)
    }

    public func register(host: String, zone: String, facts: HostFacts, link: any AgentLink) async throws {
        _ = try await client.call(Self.host(host) + "/register", Registration(zone: zone, facts: facts, linkURL: linkURL))
    }

    public func heartbeat(host: String) async throws {
        _ = try await client.call(Self.host(host) + "/heartbeat", Empty())
    }

    public func work(host: String, wait: Duration) async throws -> [Assignment] {
        let milliseconds = Self.milliseconds(wait)
        return try await client.call(Self.host(host) + "/work", WorkRequest(waitMilliseconds: milliseconds), as: [Assignment].self,
                                     timeout: wait + .seconds(30))
    }

    public func report(host: String, instance: String, taskState: String, outcome: TaskOutcome) async throws {
        _ = try await client.call(Self.host(host) + "/report", Report(instance: instance, taskState: taskState, outcome: outcome))
    }

    public func uploadSnapshot(host: String, instance: String, image: String, file: URL, diskFormat: String) async throws {
        var request = client.request(.PUT, Self.host(host) + "/snapshots/\(instance)/\(image)?disk_format=\(diskFormat)")
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        let (status, reply) = try await FileSystem.shared.withFileHandle(forReadingAt: FilePath(file.path)) { handle in
            request.body = .stream(handle.readChunks(chunkLength: .mebibytes(1)), length: .known(try await handle.info().size))
            let response = try await outgoingHTTP.execute(request, timeout: .hours(1))
            return (Int(response.status.code), try await response.body.collect(upTo: 1 << 20))
        }
        try InternalClient.check(status, reply, "snapshot upload")
    }

    public func instances(host: String) async throws -> [String: InstanceBaseline] {
        try await client.call(Self.host(host) + "/instances", Empty(), as: [String: InstanceBaseline].self)
    }

    public func observe(host: String, _ observations: [PowerObservation]) async throws {
        _ = try await client.call(Self.host(host) + "/observe", observations)
    }

    public func orphans(host: String, among guests: Set<String>) async throws -> Set<String> {
        Set(try await client.call(Self.host(host) + "/orphans", guests.sorted(), as: [String].self))
    }

    public func metadata(instance: String, path: String) async throws -> MetadataDocument? {
        do {
            return try await client.call("/metadata", MetadataQuery(instance: instance, path: path), as: MetadataDocument.self)
        } catch let error as HypervisorError where error.message.contains("answered 404") {
            return nil
        }
    }

    public func registerNetworkHost(host: String, tunnelAddress: String?, networkNode: Bool) async throws {
        _ = try await client.call(Self.host(host) + "/network/register", NetworkRegistration(tunnelAddress: tunnelAddress, networkNode: networkNode))
    }

    public func hostNetworkState(host: String, after generation: Int64?, wait: Duration) async throws -> HostNetworkState {
        let milliseconds = Self.milliseconds(wait)
        return try await client.call(Self.host(host) + "/network/state", NetworkStateQuery(after: generation, waitMilliseconds: milliseconds),
                                     as: HostNetworkState.self, timeout: wait + .seconds(30))
    }

    public func portsWired(host: String, ports: [String]) async throws {
        _ = try await client.call(Self.host(host) + "/network/wired", ports)
    }

    public func instance(network: String, address: String) async throws -> String? {
        try await client.call("/network/instance", AddressQuery(network: network, address: address), as: String?.self)
    }

    /// Downloads the image into `imageDirectory`; the driver moves it into its base cache and
    /// checks the md5.
    public func imageFile(_ id: String) async throws -> ImageFile {
        try FileManager.default.createDirectory(at: imageDirectory, withIntermediateDirectories: true)
        let response = try await outgoingHTTP.execute(client.request(.GET, "/images/\(id)/file"), timeout: .hours(1))
        guard response.status == .ok else {
            throw HypervisorError("Image \(id) could not be downloaded (status \(response.status.code)).")
        }
        let target = imageDirectory.appendingPathComponent("\(id).\(UUID().uuidString.prefix(8))")
        do {
            try await FileSystem.shared.withFileHandle(
                forWritingAt: FilePath(target.path), options: .newFile(replaceExisting: true)
            ) { handle in
                var writer = handle.bufferedWriter(capacity: .mebibytes(1))
                for try await chunk in response.body { try await writer.write(contentsOf: chunk) }
                try await writer.flush()
            }
        } catch {
            try? FileManager.default.removeItem(at: target)
            throw error
        }
        return ImageFile(path: target, diskFormat: response.headers.first(name: "X-Image-Disk-Format") ?? "raw",
                         checksum: response.headers.first(name: "X-Image-Checksum"), disposable: true)
    }
}

/// An agent in another process, as the control plane calls it outside the work queue.
struct RemoteAgentLink: AgentLink {
    let client: InternalClient

    init(url: String, key: String) {
        client = InternalClient(base: url, key: key)
    }

    func consoleOutput(_ uuid: String, lines: Int?) async throws -> String {
        try await client.call("/console", ConsoleQuery(uuid: uuid, lines: lines), as: ConsoleReply.self).output
    }

    func attachInterface(_ spec: GuestSpec, nic: GuestNIC) async throws {
        _ = try await client.call("/interfaces/attach", AttachRequest(spec: spec, nic: nic), timeout: .seconds(120))
    }

    func detachInterface(_ uuid: String, portID: String) async throws {
        _ = try await client.call("/interfaces/detach", DetachRequest(uuid: uuid, portID: portID), timeout: .seconds(120))
    }
}
