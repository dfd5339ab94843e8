import Store

/// Neutron's tables.
///
/// `net_ip_allocations` is the IPAM's real guard: its primary key (subnet, address) makes handing
/// out one address twice impossible, whatever the in-memory hints guess. Ports keep a copy of
/// their `fixed_ips` (and security groups) as JSON for rendering; the allocation and membership
/// tables are written in the same transaction and answer the "who uses this" questions.
/// Allocations carry no foreign key to their port: they are claimed before the port row exists
/// (one insert per port instead of two), and removed with it explicitly.
public enum NetworkSchema {
    typealias C = RecordTable.Column

    static let standard: [C] = [C("created_at"), C("updated_at"), C("revision_number", .int), C("tags", .json)]

    static let networks = RecordTable("net_networks", columns: [
        C("id"), C("project_id"), C("name"), C("description"), C("admin_state_up", .bool), C("shared", .bool),
        C("router_external", .bool), C("mtu", .int), C("network_type"), C("physical_network"), C("segmentation_id", .int),
        C("port_security_enabled", .bool), C("status"),
    ] + standard)

    static let subnets = RecordTable("net_subnets", columns: [
        C("id"), C("project_id"), C("network_id"), C("name"), C("description"), C("ip_version", .int), C("cidr"),
        C("gateway_ip"), C("allocation_pools", .json), C("dns_nameservers", .json), C("host_routes", .json),
        C("enable_dhcp", .bool), C("ipv6_ra_mode"), C("ipv6_address_mode"),
    ] + standard)

    static let ports = RecordTable("net_ports", columns: [
        C("id"), C("project_id"), C("network_id"), C("name"), C("description"), C("mac_address"), C("admin_state_up", .bool),
        C("status"), C("device_id"), C("device_owner"), C("host_id"), C("vif_type"), C("vnic_type"),
        C("port_security_enabled", .bool), C("security_groups", .json), C("allowed_address_pairs", .json),
        C("fixed_ips", .json), C("dns_name"), C("created_for_instance", .bool),
    ] + standard)

    static let allocations = RecordTable("net_ip_allocations", primaryKey: "ip_address", columns: [
        C("subnet_id"), C("ip_address"), C("port_id"), C("network_id"),
    ])

    static let securityGroups = RecordTable("net_security_groups", columns: [
        C("id"), C("project_id"), C("name"), C("description"), C("stateful", .bool),
    ] + standard)

    static let rules = RecordTable("net_security_group_rules", columns: [
        C("id"), C("project_id"), C("security_group_id"), C("direction"), C("ethertype"), C("protocol"),
        C("port_range_min", .int), C("port_range_max", .int), C("remote_ip_prefix"), C("remote_group_id"),
        C("description"), C("created_at"), C("updated_at"), C("revision_number", .int),
    ])

    static let routers = RecordTable("net_routers", columns: [
        C("id"), C("project_id"), C("name"), C("description"), C("admin_state_up", .bool), C("status"),
        C("gw_network_id"), C("gw_port_id"), C("enable_snat", .bool),
    ] + standard)

    static let floatingIPs = RecordTable("net_floatingips", columns: [
        C("id"), C("project_id"), C("floating_network_id"), C("floating_ip_address"), C("floating_port_id"),
        C("port_id"), C("fixed_ip_address"), C("router_id"), C("status"), C("description"),
    ] + standard)

    static let hosts = RecordTable("net_hosts", primaryKey: "host", columns: [
        C("host"), C("tunnel_address"), C("network_node", .bool), C("created_at"), C("updated_at"),
    ])

    public static let migrations: [Migration] = [
        Migration(id: "network-0001", sql: [
            """
            CREATE TABLE net_networks (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
                admin_state_up BOOLEAN NOT NULL, shared BOOLEAN NOT NULL, router_external BOOLEAN NOT NULL,
                mtu BIGINT NOT NULL, network_type TEXT NOT NULL, physical_network TEXT, segmentation_id BIGINT,
                port_security_enabled BOOLEAN NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL, revision_number BIGINT NOT NULL, tags TEXT NOT NULL,
                UNIQUE (network_type, segmentation_id))
            """,
            "CREATE INDEX net_networks_project ON net_networks (project_id)",
            """
            CREATE TABLE net_subnets (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL,
                network_id TEXT NOT NULL REFERENCES net_networks(id), name TEXT NOT NULL,
                description TEXT NOT NULL, ip_version BIGINT NOT NULL, cidr TEXT NOT NULL, gateway_ip TEXT,
                allocation_pools TEXT NOT NULL, dns_nameservers TEXT NOT NULL, host_routes TEXT NOT NULL,
                enable_dhcp BOOLEAN NOT NULL, ipv6_ra_mode TEXT, ipv6_address_mode TEXT, created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL, revision_number BIGINT NOT NULL, tags TEXT NOT NULL)
            """,
            "CREATE INDEX net_subnets_network ON net_subnets (network_id)",
            """
            CREATE TABLE net_ports (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL,
                network_id TEXT NOT NULL REFERENCES net_networks(id), name TEXT NOT NULL,
                description TEXT NOT NULL, mac_address TEXT NOT NULL, admin_state_up BOOLEAN NOT NULL,
                status TEXT NOT NULL, device_id TEXT NOT NULL, device_owner TEXT NOT NULL, host_id TEXT NOT NULL,
                vif_type TEXT NOT NULL, vnic_type TEXT NOT NULL, port_security_enabled BOOLEAN NOT NULL,
                security_groups TEXT NOT NULL, allowed_address_pairs TEXT NOT NULL, fixed_ips TEXT NOT NULL,
                dns_name TEXT NOT NULL, created_for_instance BOOLEAN NOT NULL, created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL, revision_number BIGINT NOT NULL, tags TEXT NOT NULL,
                UNIQUE (network_id, mac_address))
            """,
            "CREATE INDEX net_ports_project ON net_ports (project_id)",
            "CREATE INDEX net_ports_device ON net_ports (device_id)",
            "CREATE INDEX net_ports_network ON net_ports (network_id)",
            "CREATE INDEX net_ports_host ON net_ports (host_id)",
            """
            CREATE TABLE net_ip_allocations (
                subnet_id TEXT NOT NULL REFERENCES net_subnets(id), ip_address TEXT NOT NULL,
                port_id TEXT NOT NULL, network_id TEXT NOT NULL,
                PRIMARY KEY (subnet_id, ip_address))
            """,
            "CREATE INDEX net_ip_allocations_port ON net_ip_allocations (port_id)",
            """
            CREATE TABLE net_security_groups (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
                stateful BOOLEAN NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                revision_number BIGINT NOT NULL, tags TEXT NOT NULL)
            """,
            "CREATE INDEX net_security_groups_project ON net_security_groups (project_id)",
            // One default group per project, even when two first requests race to create it.
            "CREATE TABLE net_default_groups (project_id TEXT PRIMARY KEY, security_group_id TEXT NOT NULL)",
            """
            CREATE TABLE net_security_group_rules (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL,
                security_group_id TEXT NOT NULL REFERENCES net_security_groups(id) ON DELETE CASCADE,
                direction TEXT NOT NULL, ethertype TEXT NOT NULL, protocol TEXT, port_range_min BIGINT,
                port_range_max BIGINT, remote_ip_prefix TEXT, remote_group_id TEXT, description TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL, revision_number BIGINT NOT NULL)
            """,
            "CREATE INDEX net_security_group_rules_group ON net_security_group_rules (security_group_id)",
            """
            CREATE TABLE net_port_security_groups (
                port_id TEXT NOT NULL REFERENCES net_ports(id) ON DELETE CASCADE, security_group_id TEXT NOT NULL,
                PRIMARY KEY (port_id, security_group_id))
            """,
            "CREATE INDEX net_port_security_groups_group ON net_port_security_groups (security_group_id)",
            """
            CREATE TABLE net_routers (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
                admin_state_up BOOLEAN NOT NULL, status TEXT NOT NULL, gw_network_id TEXT, gw_port_id TEXT,
                enable_snat BOOLEAN NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                revision_number BIGINT NOT NULL, tags TEXT NOT NULL)
            """,
            """
            CREATE TABLE net_floatingips (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, floating_network_id TEXT NOT NULL,
                floating_ip_address TEXT NOT NULL, floating_port_id TEXT NOT NULL, port_id TEXT,
                fixed_ip_address TEXT, router_id TEXT, status TEXT NOT NULL, description TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL, revision_number BIGINT NOT NULL, tags TEXT NOT NULL)
            """,
            """
            CREATE TABLE net_quotas (
                project_id TEXT NOT NULL, resource TEXT NOT NULL, hard_limit BIGINT NOT NULL,
                PRIMARY KEY (project_id, resource))
            """,
            """
            CREATE TABLE net_hosts (
                host TEXT PRIMARY KEY, tunnel_address TEXT, network_node BOOLEAN NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL)
            """,
        ]),
    ]
}
