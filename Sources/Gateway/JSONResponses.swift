import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NimbusCore

extension Response {
    /// A JSON response. Bodies are built as `JSONValue` and serialized without Codable reflection.
    public static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: value.bytes())))
    }

    /// A JSON response from bytes already serialized (pieces rendered once and reused).
    public static func jsonBytes(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A JSON response from a buffer kept serialized (shared, not copied, between responses).
    public static func jsonBuffer(_ body: ByteBuffer, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: .ok, headers: fields, body: .init(byteBuffer: body))
    }

    /// An empty response (204 No Content by default).
    public static func empty(_ status: HTTPResponse.Status = .noContent, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        if status != .noContent { fields[.contentLength] = "0" }
        return Response(status: status, headers: fields)
    }
}

extension Request {
    /// The body as JSON; a missing, oversized (413) or malformed (400) body never reaches the service.
    public func json(context: NimbusContext) async throws -> JSONValue {
        var request = self
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: context.maxUploadSize)
        } catch is NIOTooManyBytesError {
            throw NimbusError(.payloadTooLarge, "Request Entity Too Large: the body is larger than \(context.maxUploadSize) bytes.")
        }
        if buffer.readableBytes == 0 {
            throw NimbusError.badRequest("Malformed request body: the body is empty, a JSON object was expected.")
        }
        return try JSONValue.parse(buffer.readableBytesView)
    }

    /// One query parameter, decoded as OpenStack's servers (webob) decode forms: `+` is a space.
    public func query(_ name: String) -> String? {
        queryPairs.first { $0.name == name }?.value
    }

    /// All values of a repeated query parameter.
    public func queryAll(_ name: String) -> [String] {
        queryPairs.filter { $0.name == name }.map(\.value)
    }

    /// Every query parameter name present.
    public var queryNames: [String] { queryPairs.map(\.name) }

    /// The query string's pairs, in order. Clients built on `requests` encode a space as `+`,
    /// which a plain percent-decoder would keep.
    public var queryPairs: [(name: String, value: String)] {
        guard let query = uri.query, !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}

extension NimbusContext {
    /// A path parameter; the router only matches when it is present.
    public func path(_ name: String) -> String {
        parameters.get(name) ?? ""
    }
}
