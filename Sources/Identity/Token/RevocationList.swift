import Foundation
import NimbusCore


/// A revocation event, as Keystone records them: every token matching all the set fields and
/// issued at or before `issuedBefore` is revoked.
public struct RevocationEvent: Sendable, Equatable {
    public var userID: String?
    public var projectID: String?
    public var domainID: String?
    public var auditID: String?
    public var issuedBefore: Double

    public init(userID: String? = nil, projectID: String? = nil, domainID: String? = nil, auditID: String? = nil,
                issuedBefore: Double) {
        self.userID = userID
        self.projectID = projectID
        self.domainID = domainID
        self.auditID = auditID
        self.issuedBefore = issuedBefore
    }

    func matches(_ auth: AuthContext) -> Bool {
        guard auth.issuedAt.timeIntervalSince1970 <= issuedBefore else { return false }
        if let userID, userID != auth.user.id { return false }
        if let projectID, projectID != auth.projectID { return false }
        if let auditID, !auth.auditIDs.contains(auditID) { return false }
        if let domainID {
            var domains = [auth.userDomain.id]
            if case .project(_, let domain) = auth.scope { domains.append(domain.id) }
            if case .domain(let domain) = auth.scope { domains.append(domain.id) }
            if !domains.contains(domainID) { return false }
        }
        return true
    }
}

/// In-memory copy of the revocation table, indexed by the field each event names, so a token
/// check touches only the events that could apply to it. Fed by local revocations at once and by
/// a periodic read of rows other replicas wrote.
public final class RevocationList: Sendable {
    private struct State {
        var byUser: [String: [RevocationEvent]] = [:]
        var byAudit: [String: [RevocationEvent]] = [:]
        var byProject: [String: [RevocationEvent]] = [:]
        var byDomain: [String: [RevocationEvent]] = [:]
        var lastSequence: Int64 = 0
    }

    private let state = Locked(State())

    public init() {}

    public var lastSequence: Int64 { state.withLock { $0.lastSequence } }

    public func add(_ events: [RevocationEvent], upTo sequence: Int64? = nil) {
        state.withLock { state in
            for event in events {
                if let user = event.userID {
                    state.byUser[user, default: []].append(event)
                } else if let audit = event.auditID {
                    state.byAudit[audit, default: []].append(event)
                } else if let project = event.projectID {
                    state.byProject[project, default: []].append(event)
                } else if let domain = event.domainID {
                    state.byDomain[domain, default: []].append(event)
                }
            }
            if let sequence { state.lastSequence = max(state.lastSequence, sequence) }
        }
    }

    public func isRevoked(_ auth: AuthContext) -> Bool {
        state.withLock { state in
            if state.byUser[auth.user.id]?.contains(where: { $0.matches(auth) }) == true { return true }
            for audit in auth.auditIDs where state.byAudit[audit]?.contains(where: { $0.matches(auth) }) == true {
                return true
            }
            if let project = auth.projectID, state.byProject[project]?.contains(where: { $0.matches(auth) }) == true {
                return true
            }
            var domains = [auth.userDomain.id]
            if case .project(_, let domain) = auth.scope { domains.append(domain.id) }
            if case .domain(let domain) = auth.scope { domains.append(domain.id) }
            return domains.contains { state.byDomain[$0]?.contains(where: { $0.matches(auth) }) == true }
        }
    }

    /// Drops events older than any token can be, keeping the index small.
    public func purge(before cutoff: Double) {
        state.withLock { state in
            func prune(_ index: inout [String: [RevocationEvent]]) {
                for (key, events) in index {
                    let kept = events.filter { $0.issuedBefore >= cutoff }
                    index[key] = kept.isEmpty ? nil : kept
                }
            }
            prune(&state.byUser)
            prune(&state.byAudit)
            prune(&state.byProject)
            prune(&state.byDomain)
        }
    }
}
