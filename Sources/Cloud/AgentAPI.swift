import Agent
import Compute
import Dataplane
import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import Hypervisor
import NIOCore
import NimbusCore
import NimbusNetwork

/// The control plane as remote agents reach it (nova-compute's RPC to the conductor, and
/// Neutron's agent RPC, as HTTP): `AgentControlPlane` and `NetworkControlPlane`, one route each,
/// plus image data for the hosts' caches. Agents present the key of `nimbus up`'s
/// `agent.key` file; without a key configured the routes do not exist.
enum AgentAPI {
    static let prefix = "/internal/v1"
    static let keyHeader = HTTPField.Name("X-Nimbus-Agent-Key")!

    static func routes(compute: ComputeService, network: NetworkService, images: any ImageSource, key: String) -> ServiceRoutes {
        var routes = ServiceRoutes(prefix: prefix, faultStyle: .nova)
        func add<Body: Decodable & Sendable>(_ path: String, _ body: Body.Type,
                                             _ handler: @escaping @Sendable (Body, String) async throws -> Response) {
            routes.post(path, .open) { request, context in
                try authorize(request, key: key)
                return try await handler(try await decode(Body.self, request, context), context.path("host"))
            }
        }
        add("/hosts/{host}/register", Registration.self) { body, host in
            try await compute.register(host: host, zone: body.zone, facts: body.facts,
                                       link: RemoteAgentLink(url: body.linkURL, key: key))
            return .empty()
        }
        add("/hosts/{host}/heartbeat", Empty.self) { _, host in
            try await compute.heartbeat(host: host)
            return .empty()
        }
        add("/hosts/{host}/work", WorkRequest.self) { body, host in
            try encoded(try await compute.work(host: host, wait: .milliseconds(min(body.waitMilliseconds, 30_000))))
        }
        add("/hosts/{host}/report", Report.self) { body, host in
            try await compute.report(host: host, instance: body.instance, taskState: body.taskState, outcome: body.outcome)
            return .empty()
        }
        add("/hosts/{host}/instances", Empty.self) { _, host in
            try encoded(try await compute.instances(host: host))
        }
        add("/hosts/{host}/observe", [PowerObservation].self) { body, host in
            try await compute.observe(host: host, body)
            return .empty()
        }
        add("/hosts/{host}/orphans", [String].self) { body, host in
            try encoded(try await compute.orphans(host: host, among: Set(body)).sorted())
        }
        add("/metadata", MetadataQuery.self) { body, _ in
            guard let document = try await compute.metadata(instance: body.instance, path: body.path) else {
                throw NimbusError.notFound("No metadata at \(body.path)")
            }
            return try encoded(document)
        }
        add("/hosts/{host}/network/register", NetworkRegistration.self) { body, host in
            try await network.registerNetworkHost(host: host, tunnelAddress: body.tunnelAddress, networkNode: body.networkNode)
            return .empty()
        }
        add("/hosts/{host}/network/state", NetworkStateQuery.self) { body, host in
            try encoded(try await network.hostNetworkState(host: host, after: body.after, wait: .milliseconds(min(body.waitMilliseconds, 30_000))))
        }
        add("/hosts/{host}/network/wired", [String].self) { body, host in
            try await network.portsWired(host: host, ports: body)
            return .empty()
        }
        add("/network/instance", AddressQuery.self) { body, _ in
            try encoded(try await network.instance(network: body.network, address: body.address))
        }
        // Snapshots arrive as the request body, spooled to a file the Image service then reads.
        routes.put("/hosts/{host}/snapshots/{instance}/{image}", .open) { request, context in
            try authorize(request, key: key)
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-snapshot-in-\(Identifier.uuid())")
            defer { try? FileManager.default.removeItem(at: file) }
            FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600])
            let handle = try FileHandle(forWritingTo: file)
            do {
                for try await chunk in request.body { handle.write(Data(chunk.readableBytesView)) }
                try handle.close()
            } catch {
                try? handle.close()
                throw error
            }
            try await compute.uploadSnapshot(host: context.path("host"), instance: context.path("instance"), image: context.path("image"),
                                             file: file, diskFormat: request.query("disk_format") ?? "qcow2")
            return .empty()
        }
        // A host's image cache fills from here: the data with its format and md5.
        routes.get("/images/{id}/file", .open) { request, context in
            try authorize(request, key: key)
            let image = try await images.imageFile(context.path("id"))
            var headers: HTTPFields = [.contentType: "application/octet-stream", diskFormatHeader: image.diskFormat]
            if let checksum = image.checksum { headers[checksumHeader] = checksum }
            return Response(status: .ok, headers: headers, body: try await FileIO().loadFile(path: image.path.path, context: context, chunkLength: 1 << 20))
        }
        return routes
    }

    static let diskFormatHeader = HTTPField.Name("X-Image-Disk-Format")!
    static let checksumHeader = HTTPField.Name("X-Image-Checksum")!

    static func authorize(_ request: Request, key: String) throws {
        guard let presented = request.headers[keyHeader], constantTimeEqual(presented, key) else {
            throw NimbusError.unauthorized("This route is for compute agents; present the agent key.")
        }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: NimbusContext) async throws -> T {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw NimbusError.badRequest("Malformed agent request: \(error)")
        }
    }

    static func encoded<T: Encodable>(_ value: T) throws -> Response {
        .jsonBytes(Array(try JSONEncoder().encode(value)))
    }
}

/// Bodies of the internal API, shared by its server (above) and its client (`RemoteControlPlane`).
struct Empty: Codable, Sendable {}

struct Registration: Codable, Sendable {
    var zone: String
    var facts: HostFacts
    /// Where the control plane reaches the agent (console output, interface hot-plug).
    var linkURL: String
}

struct WorkRequest: Codable, Sendable {
    var waitMilliseconds: Int
}

struct Report: Codable, Sendable {
    var instance: String
    var taskState: String
    var outcome: TaskOutcome
}

struct MetadataQuery: Codable, Sendable {
    var instance: String
    var path: String
}

struct NetworkRegistration: Codable, Sendable {
    var tunnelAddress: String?
    var networkNode: Bool
}

struct NetworkStateQuery: Codable, Sendable {
    var after: Int64?
    var waitMilliseconds: Int
}

struct AddressQuery: Codable, Sendable {
    var network: String
    var address: String
}

struct ConsoleQuery: Codable, Sendable {
    var uuid: String
    var lines: Int?
}

struct ConsoleReply: Codable, Sendable {
    var output: String
}

struct AttachRequest: Codable, Sendable {
    var spec: GuestSpec
    var nic: GuestNIC
}

struct DetachRequest: Codable, Sendable {
    var uuid: String
    var portID: String
}
