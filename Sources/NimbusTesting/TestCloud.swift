import Cloud
import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NimbusCore
import Store

/// The whole cloud in-process, on a fresh database, answering requests without sockets.
public enum TestCloud {
    public static func with<T: Sendable>(
        _ engine: DatabaseEngine = TestDatabase.defaultEngine, configure: (inout CloudConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestSession) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let keys = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-keys-" + Identifier.hex())
        var configuration = CloudConfiguration(
            databaseURL: try await TestDatabase.url(engine), host: "127.0.0.1", port: 5000, keyDirectory: keys,
            imageDirectory: keys.appendingPathComponent("images"), bcryptCost: 4)
        configure(&configuration)
        let cloud = try await Cloud(configuration: configuration, logger: logger)
        do {
            let passwords = try await cloud.bootstrap().createdPasswords
            let app = Application(router: cloud.router(), logger: logger)
            let compute = Task { await cloud.runCompute() }
            let result: T
            do {
                result = try await app.test(.router) { client in
                    try await body(TestSession(client: client, cloud: cloud, passwords: passwords))
                }
            } catch {
                compute.cancel()
                await compute.value
                throw error
            }
            compute.cancel()
            await compute.value
            await cloud.shutdown()
            TestDatabase.remove(configuration.databaseURL, keys)
            return result
        } catch {
            await cloud.shutdown()
            TestDatabase.remove(configuration.databaseURL, keys)
            throw error
        }
    }
}

/// One reply: status, headers and the body parsed as JSON when it is JSON.
public struct TestReply: Sendable {
    public let status: Int
    public let headers: HTTPFields
    public let body: JSONValue?
    public let text: String
    public let bytes: [UInt8]

    public func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
}

public struct TestSession: Sendable {
    let client: any TestClientProtocol
    public let cloud: Cloud
    /// Bootstrap passwords by user name (`admin`, `demo`).
    public let passwords: [String: String]

    public func request(
        _ method: HTTPRequest.Method, _ path: String, token: String? = nil, json: JSONValue? = nil,
        raw: String? = nil, bytes: [UInt8]? = nil, headers extra: [String: String] = [:]
    ) async throws -> TestReply {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authToken] = token }
        for (name, value) in extra { headers[HTTPField.Name(name)!] = value }
        let body = bytes.map { ByteBuffer(bytes: $0) } ?? (raw ?? json?.serialized()).map { ByteBuffer(string: $0) }
        let response = try await client.executeRequest(uri: path, method: method, headers: headers, body: body)
        let bytes = Array(response.body.readableBytesView)
        let text = String(decoding: bytes, as: UTF8.self)
        let json = bytes.first == UInt8(ascii: "{") || bytes.first == UInt8(ascii: "[") ? try? JSONValue.parse(bytes) : nil
        return TestReply(status: Int(response.status.code), headers: response.headers, body: json, text: text, bytes: bytes)
    }

    /// Issues a password token; `project` nil asks for the user's default scope.
    public func token(user: String, password: String, project: String? = nil, system: Bool = false) async throws -> String {
        var auth: [String: JSONValue] = [
            "identity": ["methods": ["password"], "password": ["user": ["name": .string(user), "domain": ["id": "default"], "password": .string(password)]]],
        ]
        if let project { auth["scope"] = ["project": ["name": .string(project), "domain": ["id": "default"]]] }
        if system { auth["scope"] = ["system": ["all": true]] }
        let reply = try await request(.post, "/identity/v3/auth/tokens", json: ["auth": .object(auth)])
        guard reply.status == 201, let token = reply.header("X-Subject-Token") else {
            throw NimbusError.unauthorized("token request for \(user) failed: \(reply.status) \(reply.text)")
        }
        return token
    }

    /// Creates a project and a user named `name` with `role` on it. - Returns: the user's project-scoped token and the project id.
    public func newProjectUser(_ name: String, role: String = "member") async throws -> (token: String, projectID: String) {
        let admin = try await adminToken()
        let project = try await request(.post, "/identity/v3/projects", token: admin, json: ["project": ["name": .string(name)]])
        let projectID = project.body?["project"]?["id"]?.stringValue ?? ""
        let user = try await request(.post, "/identity/v3/users", token: admin, json: ["user": ["name": .string(name), "password": "pw"]])
        let userID = user.body?["user"]?["id"]?.stringValue ?? ""
        let roleID = try await request(.get, "/identity/v3/roles?name=\(role)", token: admin).body?["roles"]?.arrayValue?.first?["id"]?.stringValue ?? ""
        _ = try await request(.put, "/identity/v3/projects/\(projectID)/users/\(userID)/roles/\(roleID)", token: admin)
        return (try await token(user: name, password: "pw", project: name), projectID)
    }

    public func adminToken() async throws -> String {
        try await token(user: "admin", password: passwords["admin"] ?? "", project: "admin")
    }
}
