import NimbusCore
import SQLKit

/// Loading providers' state in bulk, and the change log that keeps `ProviderCache` exact.
extension PlacementStore {
    /// Each provider's inventories, traits and aggregates packed into one text column apiece.
    ///
    /// Why packed: decoding a cell through SQLKit costs far more than splitting a short string, and
    /// inventories as rows would be ~10 cells per class; packed, a provider is 8 cells. The values
    /// packed are class names, trait names, uuids and numbers, none of which contain `,` or `:`.
    static let packedColumns = """
        p.uuid, p.name, p.generation, p.parent_provider_uuid, p.root_provider_uuid,
        (SELECT string_agg(i.resource_class || ':' || CAST(i.total AS TEXT) || ':' || CAST(i.reserved AS TEXT) || ':' ||
            CAST(i.min_unit AS TEXT) || ':' || CAST(i.max_unit AS TEXT) || ':' || CAST(i.step_size AS TEXT) || ':' ||
            CAST(i.allocation_ratio AS TEXT) || ':' || CAST(i.used AS TEXT), ',')
         FROM placement_inventories i WHERE i.provider_uuid = p.uuid) AS inventory,
        (SELECT string_agg(t.trait, ',') FROM placement_provider_traits t WHERE t.provider_uuid = p.uuid) AS traits,
        (SELECT string_agg(a.aggregate_uuid, ',') FROM placement_provider_aggregates a WHERE a.provider_uuid = p.uuid) AS aggregates
        """

    /// Every provider's state (or only those in `uuids`), in uuid order, in one query.
    static func providerStates(_ uuids: Set<String>? = nil, on db: any SQLDatabase) async throws -> [ProviderState] {
        var sql: SQLQueryString = "SELECT \(unsafeRaw: packedColumns) FROM placement_providers p"
        if let uuids {
            guard !uuids.isEmpty else { return [] }
            sql += " WHERE p.uuid IN (\(binds: uuids.sorted()))"
        }
        return try await db.raw(sql + " ORDER BY p.uuid").all().map { row in
            var snapshot = ProviderSnapshot(provider: try provider(row))
            for entry in try packed(row, "inventory") {
                let fields = entry.utf8.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
                guard fields.count == 8, let total = integer(fields[1]), let reserved = integer(fields[2]),
                      let minUnit = integer(fields[3]), let maxUnit = integer(fields[4]), let stepSize = integer(fields[5]),
                      let ratio = Double(String(decoding: fields[6], as: UTF8.self)), let used = integer(fields[7]) else {
                    throw NimbusError.internal("Malformed packed inventory: \(entry)")
                }
                let resourceClass = String(decoding: fields[0], as: UTF8.self)
                snapshot.inventories[resourceClass] = Inventory(total: total, reserved: reserved, minUnit: minUnit, maxUnit: maxUnit,
                                                                stepSize: stepSize, allocationRatio: ratio)
                snapshot.used[resourceClass] = used
            }
            return ProviderState(snapshot: snapshot, traits: try packed(row, "traits").sorted(), aggregates: try packed(row, "aggregates"))
        }
    }

    /// The comma-separated values of a packed column, split on bytes (not grapheme clusters).
    static func packed(_ row: any SQLRow, _ column: String) throws -> [String] {
        guard let text = try row.decode(column: column, as: String?.self) else { return [] }
        return text.utf8.split(separator: UInt8(ascii: ",")).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A non-negative decimal integer, read straight from its bytes.
    static func integer(_ digits: Substring.UTF8View.SubSequence) -> Int64? {
        guard !digits.isEmpty else { return nil }
        var value: Int64 = 0
        for byte in digits {
            guard byte >= 48, byte <= 57 else { return nil }
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = shifted + Int64(byte - 48)
        }
        return value
    }

    // MARK: - Change log

    /// Records that `uuids` changed, under the next epoch. Call it last in a write transaction:
    /// the epoch row is a lock every writer takes, so epochs follow commit order and a reader
    /// that sees epoch n has seen every change up to n. Holding it only for the commit keeps
    /// writers on different providers from waiting on each other for longer than that.
    static func recordChange(_ uuids: Set<String>, on db: any SQLDatabase) async throws {
        guard !uuids.isEmpty else { return }
        guard let row = try await db.raw("UPDATE placement_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch").first() else {
            throw NimbusError.internal("placement_epoch has no row")
        }
        let epoch = try row.decode(column: "epoch", as: Int.self)
        try await db.raw("""
            INSERT INTO placement_changes (epoch, providers) VALUES (\(bind: epoch), \(bind: uuids.sorted().joined(separator: ",")))
            """).run()
        // Readers further behind than the log reload everything, so old entries can go.
        if epoch % 512 == 0 {
            try await db.raw("DELETE FROM placement_changes WHERE epoch <= \(bind: epoch - changeLogLength)").run()
        }
    }

    static let changeLogLength = 4096

    static func epoch(on db: any SQLDatabase) async throws -> Int64 {
        Int64(try await db.raw("SELECT epoch FROM placement_epoch WHERE id = 1").first()?.decode(column: "epoch", as: Int.self) ?? 0)
    }

    /// Changes after `epoch`, oldest first.
    static func changes(after epoch: Int64, on db: any SQLDatabase) async throws -> [(epoch: Int64, providers: [String])] {
        try await db.raw("SELECT epoch, providers FROM placement_changes WHERE epoch > \(bind: Int(epoch)) ORDER BY epoch").all().map { row in
            (Int64(try row.decode(column: "epoch", as: Int.self)),
             try row.decode(column: "providers", as: String.self).split(separator: ",").map(String.init))
        }
    }
}
