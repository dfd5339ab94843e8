import Store

/// Placement's tables.
///
/// `placement_inventories.used` keeps the sum of the allocations against each inventory, written
/// in the same transaction as the allocations themselves. Candidates then read capacity and usage
/// with one scan of the inventories instead of aggregating every allocation on every request;
/// `PlacementStore.recountUsage` can rebuild it from the allocations should it ever be doubted.
/// `placement_epoch` and `placement_changes` order every write, for `ProviderCache`.
public enum PlacementSchema {
    public static let migrations: [Migration] = [
        Migration(id: "placement-0001", sql: [
            """
            CREATE TABLE placement_providers (
                uuid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, generation BIGINT NOT NULL,
                parent_provider_uuid TEXT REFERENCES placement_providers(uuid),
                root_provider_uuid TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL)
            """,
            "CREATE INDEX placement_providers_root ON placement_providers (root_provider_uuid)",
            "CREATE INDEX placement_providers_parent ON placement_providers (parent_provider_uuid)",
            """
            CREATE TABLE placement_inventories (
                provider_uuid TEXT NOT NULL REFERENCES placement_providers(uuid) ON DELETE CASCADE,
                resource_class TEXT NOT NULL, total BIGINT NOT NULL, reserved BIGINT NOT NULL,
                min_unit BIGINT NOT NULL, max_unit BIGINT NOT NULL, step_size BIGINT NOT NULL,
                allocation_ratio DOUBLE PRECISION NOT NULL, used BIGINT NOT NULL,
                PRIMARY KEY (provider_uuid, resource_class))
            """,
            "CREATE INDEX placement_inventories_class ON placement_inventories (resource_class)",
            "CREATE TABLE placement_resource_classes (name TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
            "CREATE TABLE placement_traits (name TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
            """
            CREATE TABLE placement_provider_traits (
                provider_uuid TEXT NOT NULL REFERENCES placement_providers(uuid) ON DELETE CASCADE,
                trait TEXT NOT NULL, PRIMARY KEY (provider_uuid, trait))
            """,
            "CREATE INDEX placement_provider_traits_trait ON placement_provider_traits (trait)",
            """
            CREATE TABLE placement_provider_aggregates (
                provider_uuid TEXT NOT NULL REFERENCES placement_providers(uuid) ON DELETE CASCADE,
                aggregate_uuid TEXT NOT NULL, PRIMARY KEY (provider_uuid, aggregate_uuid))
            """,
            "CREATE INDEX placement_provider_aggregates_aggregate ON placement_provider_aggregates (aggregate_uuid)",
            """
            CREATE TABLE placement_consumers (
                uuid TEXT PRIMARY KEY, project_id TEXT NOT NULL, user_id TEXT NOT NULL,
                generation BIGINT NOT NULL, consumer_type TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL)
            """,
            "CREATE INDEX placement_consumers_project ON placement_consumers (project_id, user_id)",
            """
            CREATE TABLE placement_allocations (
                consumer_uuid TEXT NOT NULL REFERENCES placement_consumers(uuid) ON DELETE CASCADE,
                provider_uuid TEXT NOT NULL REFERENCES placement_providers(uuid),
                resource_class TEXT NOT NULL, used BIGINT NOT NULL,
                PRIMARY KEY (consumer_uuid, provider_uuid, resource_class))
            """,
            "CREATE INDEX placement_allocations_provider ON placement_allocations (provider_uuid, resource_class)",
        ]),
        // The change log `ProviderCache` follows: one row per write, in commit order.
        Migration(id: "placement-0002", sql: [
            "CREATE TABLE placement_epoch (id INTEGER PRIMARY KEY, epoch BIGINT NOT NULL)",
            "INSERT INTO placement_epoch (id, epoch) VALUES (1, 0)",
            "CREATE TABLE placement_changes (epoch BIGINT PRIMARY KEY, providers TEXT NOT NULL)",
        ]),
    ]
}
