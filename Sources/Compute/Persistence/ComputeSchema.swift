import Store

/// Compute's tables.
///
/// `compute_instances` is the desired state of every server and, through `task_state`, the work
/// queue that drives it: the scheduler takes rows in `scheduling`, each host's agent the rows on
/// its host with an agent task. A row is never removed when its server is deleted (`deleted`),
/// as Nova keeps them, so usage and `changes-since` still see it.
public enum ComputeSchema {
    public static let migrations: [Migration] = [
        Migration(id: "compute-0001", sql: [
            """
            CREATE TABLE compute_flavors (
                id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, vcpus BIGINT NOT NULL, ram BIGINT NOT NULL,
                disk BIGINT NOT NULL, ephemeral BIGINT NOT NULL, swap BIGINT NOT NULL, rxtx_factor DOUBLE PRECISION NOT NULL,
                is_public BOOLEAN NOT NULL, disabled BOOLEAN NOT NULL, description TEXT, extra_specs TEXT NOT NULL,
                created_at TEXT NOT NULL)
            """,
            """
            CREATE TABLE compute_flavor_access (
                flavor_id TEXT NOT NULL REFERENCES compute_flavors(id) ON DELETE CASCADE, project_id TEXT NOT NULL,
                PRIMARY KEY (flavor_id, project_id))
            """,
            """
            CREATE TABLE compute_keypairs (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, user_id TEXT NOT NULL, type TEXT NOT NULL,
                public_key TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at TEXT NOT NULL,
                UNIQUE (user_id, name))
            """,
            """
            CREATE TABLE compute_instances (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, project_id TEXT NOT NULL, user_id TEXT NOT NULL,
                hostname TEXT NOT NULL, flavor TEXT NOT NULL, old_flavor TEXT, image_ref TEXT NOT NULL,
                key_name TEXT, key_data TEXT, user_data TEXT, metadata TEXT NOT NULL, tags TEXT NOT NULL,
                availability_zone TEXT, vm_state TEXT NOT NULL, task_state TEXT, power_state BIGINT NOT NULL,
                host TEXT, node TEXT, launched_at TEXT, terminated_at TEXT, created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL, deleted BOOLEAN NOT NULL, fault TEXT, locked BOOLEAN NOT NULL,
                locked_by TEXT, locked_reason TEXT, description TEXT, config_drive TEXT NOT NULL,
                reservation_id TEXT NOT NULL, launch_index BIGINT NOT NULL, attempts BIGINT NOT NULL,
                failed_hosts TEXT NOT NULL, requested_networks TEXT NOT NULL, scheduler_hints TEXT NOT NULL,
                server_group TEXT, access_ipv4 TEXT NOT NULL, access_ipv6 TEXT NOT NULL,
                request_id TEXT NOT NULL, vcpus BIGINT NOT NULL, memory_mb BIGINT NOT NULL)
            """,
            "CREATE INDEX compute_instances_project ON compute_instances (project_id, deleted)",
            "CREATE INDEX compute_instances_host ON compute_instances (host, task_state)",
            "CREATE INDEX compute_instances_task ON compute_instances (task_state)",
            """
            CREATE TABLE compute_instance_actions (
                id TEXT PRIMARY KEY, instance_id TEXT NOT NULL, request_id TEXT NOT NULL, action TEXT NOT NULL,
                user_id TEXT NOT NULL, project_id TEXT NOT NULL, start_time TEXT NOT NULL, updated_at TEXT NOT NULL,
                message TEXT, events TEXT NOT NULL)
            """,
            "CREATE INDEX compute_instance_actions_instance ON compute_instance_actions (instance_id)",
            """
            CREATE TABLE compute_services (
                id TEXT PRIMARY KEY, host TEXT NOT NULL, service_binary TEXT NOT NULL, zone TEXT NOT NULL,
                disabled BOOLEAN NOT NULL, disabled_reason TEXT, forced_down BOOLEAN NOT NULL,
                last_seen DOUBLE PRECISION NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                node_uuid TEXT, facts TEXT NOT NULL,
                UNIQUE (host, service_binary))
            """,
            """
            CREATE TABLE compute_server_groups (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, project_id TEXT NOT NULL, user_id TEXT NOT NULL,
                policy TEXT NOT NULL, rules TEXT NOT NULL, members TEXT NOT NULL, created_at TEXT NOT NULL)
            """,
            """
            CREATE TABLE compute_quotas (
                project_id TEXT NOT NULL, resource TEXT NOT NULL, hard_limit BIGINT NOT NULL,
                PRIMARY KEY (project_id, resource))
            """,
        ]),
        Migration(id: "compute-0002", sql: [
            """
            CREATE TABLE compute_aggregates (
                id TEXT PRIMARY KEY, number BIGINT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE, availability_zone TEXT,
                metadata TEXT NOT NULL, hosts TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT)
            """,
        ]),
        Migration(id: "compute-0003", sql: [
            // The image a snapshot in flight fills (`createImage`).
            "ALTER TABLE compute_instances ADD COLUMN pending_image TEXT",
        ]),
        Migration(id: "compute-0004", sql: [
            // The instance's ports as last read from the Network service (Nova's info cache).
            "ALTER TABLE compute_instances ADD COLUMN network_info TEXT NOT NULL DEFAULT '[]'",
            // Security groups (by name or id) the ports made for the instance get.
            "ALTER TABLE compute_instances ADD COLUMN security_groups TEXT NOT NULL DEFAULT '[]'",
        ]),
    ]

    static let aggregates = RecordTable("compute_aggregates", columns: [
        .init("id"), .init("number", .int), .init("name"), .init("availability_zone"), .init("metadata", .json),
        .init("hosts", .json), .init("created_at"), .init("updated_at"),
    ])

    static let flavors = RecordTable("compute_flavors", columns: [
        .init("id"), .init("name"), .init("vcpus", .int), .init("ram", .int), .init("disk", .int), .init("ephemeral", .int),
        .init("swap", .int), .init("rxtx_factor", .double), .init("is_public", .bool), .init("disabled", .bool),
        .init("description"), .init("extra_specs", .json), .init("created_at"),
    ])
    static let flavorAccess = RecordTable("compute_flavor_access", primaryKey: "flavor_id", columns: [
        .init("flavor_id"), .init("project_id"),
    ])
    static let keypairs = RecordTable("compute_keypairs", columns: [
        .init("id"), .init("name"), .init("user_id"), .init("type"), .init("public_key"), .init("fingerprint"), .init("created_at"),
    ])
    static let instances = RecordTable("compute_instances", columns: [
        .init("id"), .init("name"), .init("project_id"), .init("user_id"), .init("hostname"), .init("flavor", .json),
        .init("old_flavor", .json), .init("image_ref"), .init("key_name"), .init("key_data"), .init("user_data"),
        .init("metadata", .json), .init("tags", .json), .init("availability_zone"), .init("vm_state"), .init("task_state"),
        .init("power_state", .int), .init("host"), .init("node"), .init("launched_at"), .init("terminated_at"),
        .init("created_at"), .init("updated_at"), .init("deleted", .bool), .init("fault", .json), .init("locked", .bool),
        .init("locked_by"), .init("locked_reason"), .init("description"), .init("config_drive"), .init("reservation_id"),
        .init("launch_index", .int), .init("attempts", .int), .init("failed_hosts", .json),
        .init("requested_networks", .json), .init("scheduler_hints", .json), .init("server_group"),
        .init("access_ipv4"), .init("access_ipv6"), .init("request_id"), .init("vcpus", .int), .init("memory_mb", .int),
        .init("pending_image"), .init("network_info", .json), .init("security_groups", .json),
    ])
    static let actions = RecordTable("compute_instance_actions", columns: [
        .init("id"), .init("instance_id"), .init("request_id"), .init("action"), .init("user_id"), .init("project_id"),
        .init("start_time"), .init("updated_at"), .init("message"), .init("events", .json),
    ])
    static let services = RecordTable("compute_services", columns: [
        .init("id"), .init("host"), .init("service_binary"), .init("zone"), .init("disabled", .bool), .init("disabled_reason"),
        .init("forced_down", .bool), .init("last_seen", .double), .init("created_at"), .init("updated_at"),
        .init("node_uuid"), .init("facts", .json),
    ])
    static let serverGroups = RecordTable("compute_server_groups", columns: [
        .init("id"), .init("name"), .init("project_id"), .init("user_id"), .init("policy"), .init("rules", .json),
        .init("members", .json), .init("created_at"),
    ])
}
