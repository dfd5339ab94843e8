import Foundation
import HTTPTypes
import Hummingbird
import Gateway
import NimbusCore
import SQLKit
import Store

/// The five CRUD routes of one Keystone resource (domains, projects, users, …), driven by its
/// wire fields, filters, hooks and policy, so each resource states only what is its own.
struct ResourceAPI: Sendable {
    typealias Record = RecordTable.Record
    typealias Hook = @Sendable (HookContext, inout Record) async throws -> Void

    /// What a hook may look at and act on; it runs inside the write's transaction.
    struct HookContext: Sendable {
        let service: IdentityService
        let caller: AuthContext
        let fields: FieldReader?
        let existing: Record?
        let db: any SQLDatabase
    }

    let singular: String
    let plural: String
    let table: RecordTable
    let fields: [WireField]
    /// Body attributes a hook consumes (e.g. `password`), so they are not kept as extras.
    var consumed: Set<String> = []
    /// Query parameter → column, for list filters (Keystone also accepts `name__contains` etc.).
    let filters: [String: String]
    /// Whether `POST` may choose the id (regions).
    var clientChosenID = false
    var canRead: @Sendable (AuthContext, String?) -> Bool = { auth, _ in IdentityPolicy.canReadAll(auth) }
    var beforeCreate: Hook = { _, _ in }
    var beforeUpdate: Hook = { _, _ in }
    /// Runs after the row is written; `record` is the new row.
    var afterWrite: Hook = { _, _ in }
    var beforeDelete: Hook = { _, _ in }
    let render: @Sendable (Record, String) -> JSONValue

    func selfLink(_ service: IdentityService, _ id: String) -> String { "\(service.baseURL)/\(plural)/\(id)" }

    func register(into routes: inout ServiceRoutes, service: IdentityService) {
        let api = self
        routes.post("/v3/\(plural)") { request, context in
            try await api.create(request, context, service)
        }
        routes.get("/v3/\(plural)") { request, context in
            try await api.list(request, context, service)
        }
        routes.get("/v3/\(plural)/{id}") { _, context in
            let caller = try context.caller()
            let id = context.path("id")
            try IdentityPolicy.enforce(api.canRead(caller, id), "get_\(api.singular)")
            let record = try await api.fetch(id, service)
            return .json([api.singular: api.render(record, api.selfLink(service, id))])
        }
        routes.patch("/v3/\(plural)/{id}") { request, context in
            try await api.update(request, context, service)
        }
        routes.delete("/v3/\(plural)/{id}") { _, context in
            try await api.delete(context, service)
        }
    }

    func fetch(_ id: String, _ service: IdentityService) async throws -> Record {
        guard let record = try await service.database.read({ try await table.fetch(id, on: $0) }) else {
            throw NimbusError.notFound("Could not find \(singular): \(id).")
        }
        return record
    }

    private func create(_ request: Request, _ context: NimbusContext, _ service: IdentityService) async throws -> Response {
        let caller = try context.caller()
        try IdentityPolicy.enforce(IdentityPolicy.canManage(caller), "create_\(singular)")
        let body = try FieldReader(body: try await request.json(context: context), root: singular)
        var record: Record = [:]
        for field in fields {
            if let value = try field.read(from: body) {
                record[field.name] = value
            } else if case .optional(let fallback) = field.onCreate {
                record[field.name] = fallback
            } else {
                throw NimbusError.badRequest("Invalid input for field '\(field.name)': '\(field.name)' is a required property")
            }
        }
        let known = Set(fields.map(\.name)).union(consumed).union(["id", "links"])
        if table.columns.contains(where: { $0.name == "extra" }) {
            record["extra"] = .object(body.extras(excluding: known))
        }
        let chosenID = clientChosenID ? try body.string("id", minLength: 1, maxLength: 255) : nil
        record["id"] = .string(chosenID ?? Identifier.hex())
        if table.columns.contains(where: { $0.name == "created_at" }) {
            record["created_at"] = .string(Timestamp.seconds(Date()))
        }
        let hooks = (beforeCreate, afterWrite)
        let table = self.table
        let frozen = record
        do {
            record = try await service.database.transaction { db in
                var record = frozen
                let hook = HookContext(service: service, caller: caller, fields: body, existing: nil, db: db)
                try await hooks.0(hook, &record)
                try await table.insert(record, on: db)
                try await hooks.1(hook, &record)
                return record
            }
        } catch where Database.isUniqueViolation(error) {
            let name = record["name"]?.stringValue ?? record["id"]?.stringValue ?? ""
            throw NimbusError.conflict("Conflict occurred attempting to store \(singular) - Duplicate entry found with name \(name).")
        }
        let id = record["id"]?.stringValue ?? ""
        return .json([singular: render(record, selfLink(service, id))], status: .created)
    }

    private func list(_ request: Request, _ context: NimbusContext, _ service: IdentityService) async throws -> Response {
        let caller = try context.caller()
        try IdentityPolicy.enforce(canRead(caller, nil), "list_\(plural)")
        var conditions: [RecordTable.Filter] = []
        for name in request.queryNames {
            let parts = name.components(separatedBy: "__")
            guard let column = filters[parts[0]], let value = request.query(name) else { continue }
            let operation = parts.count > 1 ? RecordTable.Filter.Operation(rawValue: parts[1]) ?? .equal : .equal
            if column == "enabled" {
                conditions.append(.init(column, .equal, .bool(!["0", "false", "no", "off"].contains(value.lowercased()))))
            } else {
                conditions.append(.init(column, operation, .string(value)))
            }
        }
        let table = self.table
        let frozen = conditions
        let records = try await service.database.read { try await table.list(frozen, orderBy: table.columns.contains { $0.name == "name" } ? "name" : "id", on: $0) }
        let items = records.map { render($0, selfLink(service, $0["id"]?.stringValue ?? "")) }
        return .json([plural: .array(items), "links": ["self": .string("\(service.baseURL)/\(plural)"), "previous": nil, "next": nil]])
    }

    private func update(_ request: Request, _ context: NimbusContext, _ service: IdentityService) async throws -> Response {
        let caller = try context.caller()
        let id = context.path("id")
        try IdentityPolicy.enforce(IdentityPolicy.canManage(caller), "update_\(singular)")
        let body = try FieldReader(body: try await request.json(context: context), root: singular)
        if let sent = try body.string("id"), sent != id {
            throw NimbusError.badRequest("Invalid input for field 'id': the id of a \(singular) cannot be changed")
        }
        var changes: Record = [:]
        for field in fields {
            guard let value = try field.read(from: body) else { continue }
            guard field.updatable else {
                throw NimbusError.badRequest("Invalid input for field '\(field.name)': '\(field.name)' cannot be updated")
            }
            changes[field.name] = value
        }
        let known = Set(fields.map(\.name)).union(consumed).union(["id", "links"])
        let extras = body.extras(excluding: known)
        let hooks = (beforeUpdate, afterWrite)
        let table = self.table
        let singular = self.singular
        let frozen = changes
        let record = try await service.database.transaction { db -> Record in
            guard let existing = try await table.fetch(id, on: db) else {
                throw NimbusError.notFound("Could not find \(singular): \(id).")
            }
            var changes = frozen
            if !extras.isEmpty, case .object(var extra)? = existing["extra"] {
                extra.merge(extras) { _, new in new }
                changes["extra"] = .object(extra.filter { !$0.value.isNull })
            }
            let hook = HookContext(service: service, caller: caller, fields: body, existing: existing, db: db)
            try await hooks.0(hook, &changes)
            try await table.update(id, changes, on: db)
            var updated = try await table.fetch(id, on: db) ?? existing
            try await hooks.1(hook, &updated)
            return updated
        }
        return .json([singular: render(record, selfLink(service, id))])
    }

    private func delete(_ context: NimbusContext, _ service: IdentityService) async throws -> Response {
        let caller = try context.caller()
        let id = context.path("id")
        try IdentityPolicy.enforce(IdentityPolicy.canManage(caller), "delete_\(singular)")
        let hook = beforeDelete
        let table = self.table
        let singular = self.singular
        try await service.database.transaction { db in
            guard var existing = try await table.fetch(id, on: db) else {
                throw NimbusError.notFound("Could not find \(singular): \(id).")
            }
            try await hook(HookContext(service: service, caller: caller, fields: nil, existing: existing, db: db), &existing)
            try await table.delete(id: id, on: db)
        }
        return .empty()
    }
}

extension RecordTable.Record {
    /// `base` plus the stored extra attributes and the self link, as Keystone returns resources.
    func rendered(_ base: [String: JSONValue], link: String) -> JSONValue {
        var out = base
        if let extra = self["extra"]?.objectValue, !extra.isEmpty {
            out.merge(extra) { mine, _ in mine }
        }
        out["links"] = ["self": .string(link)]
        return .object(out)
    }

}
