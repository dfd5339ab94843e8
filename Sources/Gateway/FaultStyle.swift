import NimbusCore

/// How each OpenStack service spells an error body; the gateway renders every fault in the
/// style of the service whose prefix the request hit.
public enum FaultStyle: Sendable {
    /// `{"error": {"code": 404, "message": "...", "title": "Not Found"}}`
    case keystone
    /// `{"itemNotFound": {"code": 404, "message": "..."}}` — Nova and Cinder.
    case nova
    /// `{"NeutronError": {"type": "...", "message": "...", "detail": ""}}`
    case neutron
    /// `{"errors": [{"status": 404, "title": "Not Found", "detail": "...", "code": "...", "request_id": "..."}]}` — Placement.
    case placement
    /// `{"code": "404 Not Found", "title": "Not Found", "message": "..."}` — Glance (webob's JSON fault).
    case glance

    /// - Parameter code: the error's machine-readable code; Placement's style renders it
    ///   (`placement.undefined_code` when absent, as Placement does), Neutron's as the fault `type`
    ///   (e.g. `NetworkNotFound`), falling back to a type per kind.
    public func body(status: Int, kind: NimbusError.Kind, message: String, requestID: String, code: String? = nil) -> JSONValue {
        let title = Self.title(status)
        switch self {
        case .keystone:
            return ["error": ["code": .int(Int64(status)), "message": .string(message), "title": .string(title)]]
        case .nova:
            return [Self.novaKey(status): ["code": .int(Int64(status)), "message": .string(message)]]
        case .neutron:
            return ["NeutronError": ["type": .string(code ?? Self.neutronType(kind)), "message": .string(message), "detail": ""]]
        case .glance:
            return ["code": .string("\(status) \(title)"), "title": .string(title), "message": .string(message)]
        case .placement:
            return ["errors": [[
                "status": .int(Int64(status)), "title": .string(title), "detail": .string(message),
                "code": .string(code ?? "placement.undefined_code"), "request_id": .string(requestID),
            ]]]
        }
    }

    public static func status(for kind: NimbusError.Kind) -> Int {
        switch kind {
        case .badRequest: 400
        case .unauthorized: 401
        case .forbidden, .overQuota: 403
        case .notFound: 404
        case .methodNotAllowed: 405
        case .conflict: 409
        case .payloadTooLarge: 413
        case .unsupportedMediaType: 415
        case .rangeNotSatisfiable: 416
        case .internal: 500
        case .notImplemented: 501
        case .unavailable: 503
        }
    }

    static func title(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 413: "Request Entity Too Large"
        case 415: "Unsupported Media Type"
        case 416: "Requested Range Not Satisfiable"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        default: "Internal Server Error"
        }
    }

    static func novaKey(_ status: Int) -> String {
        switch status {
        case 400: "badRequest"
        case 401: "unauthorized"
        case 403: "forbidden"
        case 404: "itemNotFound"
        case 405: "notAllowed"
        case 409: "conflictingRequest"
        case 413: "overLimit"
        case 501: "notImplemented"
        case 503: "serviceUnavailable"
        default: "computeFault"
        }
    }

    static func neutronType(_ kind: NimbusError.Kind) -> String {
        switch kind {
        case .badRequest: "BadRequest"
        case .unauthorized: "NotAuthorized"
        case .forbidden, .overQuota: "PolicyNotAuthorized"
        case .notFound: "NotFound"
        case .methodNotAllowed: "MethodNotAllowed"
        case .conflict: "Conflict"
        case .payloadTooLarge: "RequestEntityTooLarge"
        case .unsupportedMediaType: "UnsupportedMediaType"
        case .rangeNotSatisfiable: "RangeNotSatisfiable"
        case .notImplemented: "NotImplemented"
        case .unavailable: "ServiceUnavailable"
        case .internal: "InternalError"
        }
    }
}
