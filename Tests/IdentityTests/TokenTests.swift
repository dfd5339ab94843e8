import Foundation
@testable import Identity
import NimbusCore
import Testing

@Suite struct TokenTests {
    static func keyDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-keys-" + Identifier.hex())
    }

    static func context(issued: Date = Date()) -> AuthContext {
        AuthContext(
            user: .init(id: "u1", name: "alice"), userDomain: .init(id: "default", name: "Default"),
            scope: .project(.init(id: "p1", name: "demo"), domain: .init(id: "default", name: "Default")),
            roles: [.init(id: "r1", name: "member"), .init(id: "r2", name: "reader")], methods: ["password"],
            auditIDs: ["audit-1"], issuedAt: issued, expiresAt: issued.addingTimeInterval(3600),
            applicationCredentialID: nil, token: "")
    }

    @Test func tokenRoundTripsEveryField() throws {
        let codec = TokenCodec(keys: try TokenKeyRepository(directory: Self.keyDirectory()).load())
        let original = Self.context()
        let token = try codec.encode(original)
        let decoded = try #require(codec.decode(token))
        #expect(decoded.user == original.user)
        #expect(decoded.scope == original.scope)
        #expect(decoded.roles == original.roles)
        #expect(decoded.auditIDs == original.auditIDs)
        #expect(abs(decoded.expiresAt.timeIntervalSince(original.expiresAt)) < 0.001)
        #expect(decoded.token == token)
    }

    @Test func tamperedOrForeignTokensAreRejected() throws {
        let codec = TokenCodec(keys: try TokenKeyRepository(directory: Self.keyDirectory()).load())
        let other = TokenCodec(keys: try TokenKeyRepository(directory: Self.keyDirectory()).load())
        var token = Array(try codec.encode(Self.context()))
        #expect(other.decode(String(token)) == nil)
        token[40] = token[40] == "A" ? "B" : "A"
        #expect(codec.decode(String(token)) == nil)
        #expect(codec.decode("not-a-token") == nil)
        #expect(codec.decode("") == nil)
    }

    @Test func rotationKeepsOldTokensValidUntilTheirKeyIsDropped() throws {
        let repository = TokenKeyRepository(directory: Self.keyDirectory(), keep: 2)
        let old = try TokenCodec(keys: repository.load()).encode(Self.context())
        #expect(try repository.rotate() == 1)
        let keys = try repository.load()
        #expect(keys.indices == [0, 1])
        #expect(TokenCodec(keys: keys).decode(old) != nil)
        try repository.rotate()
        #expect(try repository.load().indices == [1, 2])
        #expect(TokenCodec(keys: try repository.load()).decode(old) == nil)
    }

    @Test func revocationMatchesOnlyOlderTokensOfItsSubject() {
        let list = RevocationList()
        let now = Date()
        let token = Self.context(issued: now)
        list.add([RevocationEvent(userID: "someone-else", issuedBefore: now.timeIntervalSince1970 + 1)])
        #expect(!list.isRevoked(token))
        list.add([RevocationEvent(userID: "u1", issuedBefore: now.timeIntervalSince1970 - 1)])
        #expect(!list.isRevoked(token), "a token issued after the event stays valid")
        list.add([RevocationEvent(userID: "u1", projectID: "other", issuedBefore: now.timeIntervalSince1970 + 1)])
        #expect(!list.isRevoked(token), "an event for another project does not apply")
        list.add([RevocationEvent(auditID: "audit-1", issuedBefore: now.timeIntervalSince1970)])
        #expect(list.isRevoked(token))
        list.purge(before: now.timeIntervalSince1970 + 10)
        #expect(!list.isRevoked(token))
    }

    @Test func domainRevocationCoversProjectScopedTokens() {
        let list = RevocationList()
        let token = Self.context()
        list.add([RevocationEvent(domainID: "default", issuedBefore: Date().timeIntervalSince1970 + 1)])
        #expect(list.isRevoked(token))
    }
}
