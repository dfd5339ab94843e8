import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NimbusCore

/// Outermost layer of every request: gives it an `x-openstack-request-id` (on the response and on
/// every log line), and turns any error into the fault body of the service the path belongs to.
struct GatewayMiddleware: RouterMiddleware {
    typealias Context = NimbusContext

    /// Longest prefix first, so `/compute/v2.1` wins over `/compute` should both exist.
    let styles: [(prefix: String, style: FaultStyle)]

    init(services: [ServiceRoutes]) {
        styles = services.map { ($0.prefix, $0.faultStyle) }.sorted { $0.prefix.count > $1.prefix.count }
    }

    func handle(_ request: Request, context: NimbusContext, next: (Request, NimbusContext) async throws -> Response) async throws -> Response {
        var context = context
        let requestID = "req-" + Identifier.uuid()
        context.requestID = requestID
        context.logger[metadataKey: "request_id"] = .string(requestID)
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = fault(for: error, path: request.uri.path, requestID: requestID, logger: context.logger)
        }
        response.headers[.requestID] = requestID
        let elapsed = ContinuousClock.now - start
        context.logger.info("\(request.method.rawValue) \(request.uri.path) \(response.status.code) \(elapsed.milliseconds)ms")
        return response
    }

    private func fault(for error: any Error, path: String, requestID: String, logger: Logger) -> Response {
        let style = styles.first { path == $0.prefix || path.hasPrefix($0.prefix + "/") }?.style ?? .keystone
        let kind: NimbusError.Kind
        let message: String
        var code: String?
        var headers: HTTPFields = [:]
        switch error {
        case let error as NimbusError:
            kind = error.kind
            message = error.message
            code = error.code
            for (name, value) in error.headers {
                if let field = HTTPField.Name(name) { headers[field] = value }
            }
            if kind == .internal { logger.error("internal error: \(message)") }
        case let error as HTTPError where error.status == .contentTooLarge:
            kind = .payloadTooLarge
            message = "Request Entity Too Large: the request body is larger than the server accepts."
        case let error as HTTPError where error.status == .notFound:
            kind = .notFound
            message = "The resource could not be found."
        case let error as HTTPError where error.status.code < 500:
            kind = error.status.code == 405 ? .methodNotAllowed : .badRequest
            message = error.body ?? error.status.reasonPhrase
        default:
            kind = .internal
            message = "An unexpected error prevented the server from fulfilling your request."
            logger.error("unhandled error: \(String(reflecting: error))")
        }
        let status = FaultStyle.status(for: kind)
        if status == 401, style == .keystone, headers[.wwwAuthenticate] == nil {
            headers[.wwwAuthenticate] = "Keystone uri=\"\(path.split(separator: "/").first.map { "/" + $0 } ?? "/")\""
        }
        let body = style.body(status: status, kind: kind, message: message, requestID: requestID, code: code)
        return .json(body, status: .init(code: status), headers: headers)
    }
}

extension Duration {
    var milliseconds: String {
        let (seconds, attoseconds) = components
        return String(format: "%.1f", Double(seconds) * 1000 + Double(attoseconds) / 1e15)
    }
}
