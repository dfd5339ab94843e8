import NimbusCore
import SQLKit
import Store

extension NetworkService {
    static let ruleFields: Set<String> = [
        "security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
        "remote_ip_prefix", "remote_group_id", "description", "project_id", "tenant_id", "remote_address_group_id",
    ]
    /// Protocol names Neutron accepts, besides numbers 0 to 255.
    static let protocolNames: [String] = [
        "ah", "any", "dccp", "egp", "esp", "gre", "hopopt", "icmp", "igmp", "ip", "ipip", "ipv6-encap", "ipv6-frag",
        "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route", "ospf", "pgm", "rsvp", "sctp", "tcp", "udp",
        "udplite", "vrrp",
    ]
    static let portRangeProtocols: Set<String> = ["tcp", "udp", "udplite", "sctp", "dccp", "6", "17", "136", "132", "33"]
    static let icmpProtocols: Set<String> = ["icmp", "icmpv6", "ipv6-icmp", "1", "58"]

    func ruleNotFound(_ id: String) -> NimbusError {
        .neutron(.notFound, "SecurityGroupRuleNotFound", "Security group rule \(id) does not exist")
    }

    public func listSecurityGroupRules(caller: AuthContext) async throws -> [Record] {
        try await ensureDefaultGroup(caller)
        return try await database.read { db in
            let filter: [RecordTable.Filter] = caller.isAdmin ? [] : [.init("project_id", .equal, .optional(caller.projectID))]
            return try await NetworkSchema.rules.list(filter, on: db).map(Self.ruleView)
        }
    }

    public func securityGroupRule(_ id: String, caller: AuthContext) async throws -> Record {
        try await database.read { db in
            guard let rule = try await NetworkSchema.rules.fetch(id, on: db), Self.owns(rule, caller) else { throw self.ruleNotFound(id) }
            return Self.ruleView(rule)
        }
    }

    public func createSecurityGroupRule(_ body: JSONValue, caller: AuthContext) async throws -> Record {
        try Self.requireWriter(caller, "create_security_group_rule")
        let input = try FieldReader(body: body, root: "security_group_rule")
        try Self.rejectUnknown(input, Self.ruleFields)
        var rule = try Self.validatedRule(input)
        let groupID = try input.string("security_group_id", required: true) ?? ""
        rule["security_group_id"] = .string(groupID)
        rule["description"] = .string(try input.string("description", maxLength: 255) ?? "")
        rule["id"] = .string(Identifier.uuid())
        Self.standardAttributes(&rule)
        rule["tags"] = nil
        let row = rule
        return try await write { db in
            let group = try await self.visibleGroup(groupID, caller, on: db)
            var row = row
            row["project_id"] = group["project_id"]
            if let remote = row.string("remote_group_id") { _ = try await self.visibleGroup(remote, caller, on: db) }
            for existing in try await NetworkSchema.rules.list([.init("security_group_id", .equal, .string(groupID))], on: db)
            where Self.sameRule(existing, row) {
                throw NimbusError.neutron(.conflict, "SecurityGroupRuleExists",
                                          "Security group rule already exists. Rule id is \(existing.string("id") ?? "").")
            }
            try await self.enforceQuota("security_group_rule", project: group.string("project_id") ?? "", on: db)
            try await NetworkSchema.rules.insert(row, on: db)
            return Self.ruleView(row)
        }
    }

    public func deleteSecurityGroupRule(_ id: String, caller: AuthContext) async throws {
        try Self.requireWriter(caller, "delete_security_group_rule")
        try await write { db in
            guard let rule = try await NetworkSchema.rules.fetch(id, on: db), Self.owns(rule, caller) else { throw self.ruleNotFound(id) }
            try await NetworkSchema.rules.delete(id: id, on: db)
        }
    }

    static func sameRule(_ a: Record, _ b: Record) -> Bool {
        ["direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id"]
            .allSatisfy { (a[$0] ?? .null) == (b[$0] ?? .null) }
    }

    /// Checks one rule's attributes as Neutron does, before anything is read or written.
    static func validatedRule(_ input: FieldReader) throws -> Record {
        let direction = try input.string("direction", required: true) ?? ""
        guard ["ingress", "egress"].contains(direction) else {
            throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for direction. Reason: '\(direction)' is not in ['ingress', 'egress'].")
        }
        let ethertype = try input.string("ethertype") ?? "IPv4"
        guard ["IPv4", "IPv6"].contains(ethertype) else {
            throw NimbusError.neutron(.badRequest, "SecurityGroupRuleInvalidEtherType",
                                      "Security group rule for ethertype '\(ethertype)' not supported. Allowed values are ['IPv4', 'IPv6'].")
        }
        let proto = try protocolValue(input)
        let low = try port(input, "port_range_min")
        let high = try port(input, "port_range_max")
        try checkPorts(proto, low, high)
        var remotePrefix: String?
        if let text = try input.string("remote_ip_prefix", nullable: true) {
            guard let cidr = CIDR(text.contains("/") ? text : text + (text.contains(":") ? "/128" : "/32")) else {
                throw NimbusError.neutron(.badRequest, "HTTPBadRequest", "Invalid input for remote_ip_prefix. Reason: '\(text)' is not a valid IP subnet.")
            }
            guard (cidr.version == 4) == (ethertype == "IPv4") else {
                throw NimbusError.neutron(.badRequest, "SecurityGroupRuleParameterConflict",
                                          "Conflicting value ethertype \(ethertype) for CIDR \(text)")
            }
            remotePrefix = cidr.description
        }
        let remoteGroup = try input.string("remote_group_id", nullable: true)
        if remotePrefix != nil && remoteGroup != nil {
            throw NimbusError.neutron(.badRequest, "SecurityGroupRemoteGroupAndRemoteIpPrefix",
                                      "Only remote_ip_prefix or remote_group_id may be provided.")
        }
        return [
            "direction": .string(direction), "ethertype": .string(ethertype), "protocol": .optional(proto),
            "port_range_min": low.map { .int(Int64($0)) } ?? .null, "port_range_max": high.map { .int(Int64($0)) } ?? .null,
            "remote_ip_prefix": .optional(remotePrefix), "remote_group_id": .optional(remoteGroup),
        ]
    }

    static func protocolValue(_ input: FieldReader) throws -> String? {
        guard let value = input.fields["protocol"], !value.isNull else { return nil }
        let text = value.stringValue ?? value.intValue.map(String.init) ?? value.serialized()
        if let number = Int(text), (0...255).contains(number) { return String(number) }
        let name = text.lowercased()
        guard protocolNames.contains(name) else {
            throw NimbusError.neutron(.badRequest, "SecurityGroupRuleInvalidProtocol",
                "Security group rule protocol \(text) not supported. Only protocol values [\(protocolNames.map { "'\($0)'" }.joined(separator: ", ")), None] and integer representations [0 to 255] are supported.")
        }
        return name == "any" ? nil : name
    }

    static func port(_ input: FieldReader, _ key: String) throws -> Int? {
        guard let value = input.fields[key], !value.isNull else { return nil }
        guard let number = value.intValue ?? value.stringValue.flatMap({ Int64($0) }), (0...65535).contains(number) else {
            throw NimbusError.neutron(.badRequest, "SecurityGroupInvalidPortValue",
                                      "Invalid value for port \(value.stringValue ?? value.serialized()).")
        }
        return Int(number)
    }

    static func checkPorts(_ proto: String?, _ low: Int?, _ high: Int?) throws {
        guard low != nil || high != nil else { return }
        guard let proto else {
            throw NimbusError.neutron(.badRequest, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
        }
        if portRangeProtocols.contains(proto) {
            for value in [low, high] where value == 0 {
                throw NimbusError.neutron(.badRequest, "SecurityGroupInvalidPortValue", "Invalid value for port 0.")
            }
            if let low, let high, low > high {
                throw NimbusError.neutron(.badRequest, "SecurityGroupInvalidPortRange",
                                          "For TCP/UDP protocols, port_range_min must be <= port_range_max")
            }
            if (low == nil) != (high == nil) {
                throw NimbusError.neutron(.badRequest, "SecurityGroupInvalidPortRange",
                                          "For TCP/UDP protocols, port_range_min must be <= port_range_max")
            }
        } else if icmpProtocols.contains(proto) {
            for (field, attr, value) in [("type", "port_range_min", low), ("code", "port_range_max", high)] {
                if let value, value > 255 {
                    throw NimbusError.neutron(.badRequest, "SecurityGroupInvalidIcmpValue",
                                              "Invalid value for ICMP \(field) (\(attr)) \(value). It must be 0 to 255.")
                }
            }
            if low == nil, let high {
                throw NimbusError.neutron(.badRequest, "SecurityGroupMissingIcmpType",
                                          "ICMP code (port-range-max) \(high) is provided but ICMP type (port-range-min) is missing.")
            }
        } else {
            throw NimbusError.neutron(.badRequest, "SecurityGroupInvalidProtocolForPortRange",
                "Invalid protocol \(proto) for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP.")
        }
    }

    static func ruleView(_ record: Record) -> Record {
        var view = record
        view["tenant_id"] = record["project_id"]
        view["remote_address_group_id"] = .null
        view["normalized_cidr"] = record["remote_ip_prefix"] ?? .null
        return view
    }
}
