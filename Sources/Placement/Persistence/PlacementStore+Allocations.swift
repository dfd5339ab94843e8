import NimbusCore
import SQLKit

/// Consumers, their allocations, and usage sums.
extension PlacementStore {
    struct ConsumerRow: Sendable {
        var uuid: String
        var projectID: String
        var userID: String
        var generation: Int64
        var consumerType: String
    }

    static func consumers(_ uuids: [String], forUpdate: Bool, on db: any SQLDatabase) async throws -> [String: ConsumerRow] {
        guard !uuids.isEmpty else { return [:] }
        let rows = try await db.raw("""
            SELECT uuid, project_id, user_id, generation, consumer_type FROM placement_consumers
            WHERE uuid IN (\(binds: uuids.sorted())) ORDER BY uuid\(unsafeRaw: forUpdate ? lockClause(db) : "")
            """).all()
        var out: [String: ConsumerRow] = [:]
        for row in rows {
            let consumer = ConsumerRow(
                uuid: try row.decode(column: "uuid", as: String.self), projectID: try row.decode(column: "project_id", as: String.self),
                userID: try row.decode(column: "user_id", as: String.self),
                generation: Int64(try row.decode(column: "generation", as: Int.self)),
                consumerType: try row.decode(column: "consumer_type", as: String.self))
            out[consumer.uuid] = consumer
        }
        return out
    }

    static func insertConsumer(_ consumer: ConsumerRow, on db: any SQLDatabase) async throws {
        let now = now()
        try await db.raw("""
            INSERT INTO placement_consumers (uuid, project_id, user_id, generation, consumer_type, created_at, updated_at)
            VALUES (\(bind: consumer.uuid), \(bind: consumer.projectID), \(bind: consumer.userID), \(bind: Int(consumer.generation)),
                    \(bind: consumer.consumerType), \(bind: now), \(bind: now))
            """).run()
    }

    static func updateConsumer(_ consumer: ConsumerRow, on db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE placement_consumers SET project_id = \(bind: consumer.projectID), user_id = \(bind: consumer.userID),
                generation = \(bind: Int(consumer.generation)), consumer_type = \(bind: consumer.consumerType), updated_at = \(bind: now())
            WHERE uuid = \(bind: consumer.uuid)
            """).run()
    }

    static func deleteConsumers(_ uuids: [String], on db: any SQLDatabase) async throws {
        guard !uuids.isEmpty else { return }
        try await db.raw("DELETE FROM placement_allocations WHERE consumer_uuid IN (\(binds: uuids))").run()
        try await db.raw("DELETE FROM placement_consumers WHERE uuid IN (\(binds: uuids))").run()
    }

    static func deleteAllocations(consumer uuid: String, on db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM placement_allocations WHERE consumer_uuid = \(bind: uuid)").run()
    }

    /// Consumer → provider → resource class → amount, for the given consumers.
    static func allocations(ofConsumers uuids: [String], on db: any SQLDatabase) async throws -> [String: [String: [String: Int64]]] {
        guard !uuids.isEmpty else { return [:] }
        let rows = try await db.raw("""
            SELECT consumer_uuid, provider_uuid, resource_class, used FROM placement_allocations
            WHERE consumer_uuid IN (\(binds: uuids))
            """).all()
        var out: [String: [String: [String: Int64]]] = [:]
        for row in rows {
            out[try row.decode(column: "consumer_uuid", as: String.self), default: [:]][
                try row.decode(column: "provider_uuid", as: String.self), default: [:]][
                try row.decode(column: "resource_class", as: String.self)] = Int64(try row.decode(column: "used", as: Int.self))
        }
        return out
    }

    /// Consumer → resource class → amount, on one provider.
    static func allocations(onProvider uuid: String, on db: any SQLDatabase) async throws -> [String: [String: Int64]] {
        let rows = try await db.raw("""
            SELECT consumer_uuid, resource_class, used FROM placement_allocations WHERE provider_uuid = \(bind: uuid)
            """).all()
        var out: [String: [String: Int64]] = [:]
        for row in rows {
            out[try row.decode(column: "consumer_uuid", as: String.self), default: [:]][
                try row.decode(column: "resource_class", as: String.self)] = Int64(try row.decode(column: "used", as: Int.self))
        }
        return out
    }

    static func hasAllocations(provider uuid: String, on db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT consumer_uuid FROM placement_allocations WHERE provider_uuid = \(bind: uuid) LIMIT 1").first() != nil
    }

    static func insertAllocations(consumer: String, _ allocations: [String: [String: Int64]], on db: any SQLDatabase) async throws {
        let rows = allocations.flatMap { provider, resources in resources.map { (provider, $0.key, $0.value) } }
        guard !rows.isEmpty else { return }
        let insert = db.insert(into: "placement_allocations").columns("consumer_uuid", "provider_uuid", "resource_class", "used")
        for (provider, resourceClass, amount) in rows.sorted(by: { ($0.0, $0.1) < ($1.0, $1.1) }) {
            insert.values(SQLBind(consumer), SQLBind(provider), SQLBind(resourceClass), SQLBind(Int(amount)))
        }
        try await insert.run()
    }

    struct UsageRow: Sendable {
        var consumerType: String
        var resourceClass: String
        var used: Int64
    }

    /// Sums of a project's (and optionally one user's) allocations by consumer type and class,
    /// and the number of consumers of each type.
    static func usages(project: String, user: String?, on db: any SQLDatabase) async throws -> (rows: [UsageRow], consumers: [String: Int]) {
        var filter: SQLQueryString = "c.project_id = \(bind: project)"
        if let user { filter = filter + " AND c.user_id = \(bind: user)" }
        let sums = try await db.raw("""
            SELECT c.consumer_type, a.resource_class, CAST(SUM(a.used) AS BIGINT) AS used
            FROM placement_allocations a JOIN placement_consumers c ON c.uuid = a.consumer_uuid
            WHERE \(filter) GROUP BY c.consumer_type, a.resource_class
            """).all().map { row in
            UsageRow(consumerType: try row.decode(column: "consumer_type", as: String.self),
                     resourceClass: try row.decode(column: "resource_class", as: String.self),
                     used: Int64(try row.decode(column: "used", as: Int.self)))
        }
        var counts: [String: Int] = [:]
        for row in try await db.raw("""
            SELECT c.consumer_type, COUNT(*) AS n FROM placement_consumers c WHERE \(filter) GROUP BY c.consumer_type
            """).all() {
            counts[try row.decode(column: "consumer_type", as: String.self)] = try row.decode(column: "n", as: Int.self)
        }
        return (sums, counts)
    }
}
