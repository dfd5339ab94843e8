import Gateway
import NimbusCore
import Testing

@Suite struct FaultStyleTests {
    @Test func keystoneBodyHasCodeMessageTitle() {
        let body = FaultStyle.keystone.body(status: 404, kind: .notFound, message: "Could not find project: x.", requestID: "req-1")
        #expect(body == ["error": ["code": 404, "message": "Could not find project: x.", "title": "Not Found"]])
    }

    @Test func novaBodyIsKeyedByFaultName() {
        let body = FaultStyle.nova.body(status: 400, kind: .badRequest, message: "bad", requestID: "req-1")
        #expect(body == ["badRequest": ["code": 400, "message": "bad"]])
        #expect(FaultStyle.nova.body(status: 409, kind: .conflict, message: "c", requestID: "r")["conflictingRequest"] != nil)
    }

    @Test func statusFollowsKind() {
        #expect(FaultStyle.status(for: .overQuota) == 403)
        #expect(FaultStyle.status(for: .payloadTooLarge) == 413)
        #expect(FaultStyle.status(for: .methodNotAllowed) == 405)
    }
}
