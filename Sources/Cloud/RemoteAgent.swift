import Agent
import Dataplane
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hypervisor
import NimbusCore

/// JSON calls between a control plane and an agent, authenticated by the shared agent key.
struct InternalClient: Sendable {
    let base: String
    let key: String
    let session: URLSession

    init(base: String, key: String) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.key = key
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 120
        self.session = URLSession(configuration: configuration)
    }

    func request(_ method: String, _ path: String, timeout: TimeInterval = 30) -> URLRequest {
        var request = URLRequest(url: URL(string: base + path)!, timeoutInterval: timeout)
        request.httpMethod = method
        request.setValue(key, forHTTPHeaderField: "X-Nimbus-Agent-Key")
        return request
    }

    /// POSTs `body`; - Returns: the reply body (empty for 204), or throws for any other status.
    func call<Body: Encodable>(_ path: String, _ body: Body, timeout: TimeInterval = 30) async throws -> Data {
        var request = request("POST", path, timeout: timeout)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONEncoder().encode(body)
        let (data, response) = try await session.data(for: request)
        try Self.check(response, data, path)
        return data
    }

    func call<Body: Encodable, Reply: Decodable>(_ path: String, _ body: Body, as reply: Reply.Type, timeout: TimeInterval = 30) async throws -> Reply {
        try JSONDecoder().decode(Reply.self, from: try await call(path, body, timeout: timeout))
    }

    static func check(_ response: URLResponse, _ data: Data, _ path: String) throws {
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            throw HypervisorError("\(path) answered \(status): \(String(decoding: data.prefix(500), as: UTF8.self))")
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

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

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
                                     timeout: TimeInterval(milliseconds) / 1000 + 30)
    }

    public func report(host: String, instance: String, taskState: String, outcome: TaskOutcome) async throws {
        _ = try await client.call(Self.host(host) + "/report", Report(instance: instance, taskState: taskState, outcome: outcome))
    }

    public func uploadSnapshot(host: String, instance: String, image: String, file: URL, diskFormat: String) async throws {
        var request = client.request("PUT", Self.host(host) + "/snapshots/\(instance)/\(image)?disk_format=\(diskFormat)", timeout: 3600)
        request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await client.session.upload(for: request, fromFile: file)
        try InternalClient.check(response, data, "snapshot upload")
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
                                     as: HostNetworkState.self, timeout: TimeInterval(milliseconds) / 1000 + 30)
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
        let request = client.request("GET", "/images/\(id)/file", timeout: 3600)
        let (downloaded, response) = try await client.session.download(for: request)
        guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
            try? FileManager.default.removeItem(at: downloaded)
            throw HypervisorError("Image \(id) could not be downloaded (status \((response as? HTTPURLResponse)?.statusCode ?? 0)).")
        }
        let target = imageDirectory.appendingPathComponent("\(id).\(UUID().uuidString.prefix(8))")
        try FileManager.default.moveItem(at: downloaded, to: target)
        return ImageFile(path: target, diskFormat: http.value(forHTTPHeaderField: "X-Image-Disk-Format") ?? "raw",
                         checksum: http.value(forHTTPHeaderField: "X-Image-Checksum"), disposable: true)
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
        _ = try await client.call("/interfaces/attach", AttachRequest(spec: spec, nic: nic), timeout: 120)
    }

    func detachInterface(_ uuid: String, portID: String) async throws {
        _ = try await client.call("/interfaces/detach", DetachRequest(uuid: uuid, portID: portID), timeout: 120)
    }
}
