import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import NimbusCore

/// Nova v2.1's endpoint table, served under `/compute`.
///
/// Every route negotiates the microversion and echoes it back, as Nova does; handlers get the
/// negotiated minor version and a view renderer for it.
public enum ComputeAPI {
    public static let prefix = "/compute"

    typealias Handler = @Sendable (Request, NimbusContext, Call) async throws -> Response

    /// What a handler needs besides the request: the negotiated version, the caller and views.
    struct Call: Sendable {
        let version: Int
        let caller: AuthContext
        let views: ComputeViews
        let requestID: String
    }

    struct Table {
        var routes = ServiceRoutes(prefix: ComputeAPI.prefix, faultStyle: .nova)
        let publicURL: String

        mutating func add(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
            let publicURL = self.publicURL
            routes.add(method, "/v2.1" + path, .authenticated) { request, context in
                try await ComputeAPI.run(request, context, publicURL: publicURL, handler)
            }
            // Nova's /v2 is 2.1 in compatibility mode: it reads no microversion header and echoes none.
            routes.add(method, "/v2" + path, .authenticated) { request, context in
                try await ComputeAPI.run(request, context, publicURL: publicURL, legacy: true, handler)
            }
        }
    }

    static let versionHeader = HTTPField.Name("X-OpenStack-Nova-API-Version")!

    static func run(_ request: Request, _ context: NimbusContext, publicURL: String, legacy: Bool = false, _ handler: Handler) async throws -> Response {
        let version: ComputeVersion
        if legacy {
            version = ComputeVersion(minor: ComputeVersion.minimum)
        } else {
            switch ComputeVersion.negotiate(openStack: request.headers[.openStackAPIVersion], nova: request.headers[versionHeader]) {
            case .success(let negotiated): version = negotiated
            case .failure(.invalid(let message)): throw NimbusError.badRequest(message)
            case .failure(.unsupported(let message)):
                let body = FaultStyle.nova.body(status: 406, kind: .badRequest, message: message, requestID: context.requestID)
                return .json(body, status: .notAcceptable)
            }
        }
        // Nova names each request twice: x-openstack-request-id (the gateway's) and x-compute-request-id.
        // `/v2` echoes no microversion.
        var echoed = ["x-compute-request-id": context.requestID]
        if !legacy {
            echoed.merge(["OpenStack-API-Version": "compute \(version.description)", "X-OpenStack-Nova-API-Version": version.description,
                          "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"]) { _, new in new }
        }
        do {
            let caller = try context.caller()
            let call = Call(version: version.minor, caller: caller,
                            views: ComputeViews(publicURL: publicURL, version: version.minor, isAdmin: caller.isAdmin),
                            requestID: context.requestID)
            var response = try await handler(request, context, call)
            for (name, value) in echoed { response.headers[HTTPField.Name(name)!] = value }
            return response
        } catch var error as NimbusError {
            error.headers.merge(echoed) { current, _ in current }
            throw error
        }
    }

    static func versionDocument(_ publicURL: String) -> JSONValue {
        ["id": "v2.1", "status": "CURRENT", "version": .string("2.\(ComputeVersion.maximum)"), "min_version": "2.1",
         "updated": "2013-07-23T11:33:21Z",
         "links": [["rel": "self", "href": .string("\(publicURL)\(prefix)/v2.1/")],
                   ["rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"]],
         "media-types": [["base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"]]]
    }

    /// Nova lists its legacy v2.0 endpoint first; tempest's test_list_api_versions expects so.
    static func legacyVersionDocument(_ publicURL: String) -> JSONValue {
        ["id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "", "updated": "2011-01-21T11:33:21Z",
         "links": [["rel": "self", "href": .string("\(publicURL)\(prefix)/v2/")],
                   ["rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"]],
         "media-types": [["base": "application/json", "type": "application/vnd.openstack.compute+json;version=2"]]]
    }

    public static func routes(_ service: ComputeService, publicURL: String) -> ServiceRoutes {
        var table = Table(publicURL: publicURL)
        let document = versionDocument(publicURL)
        let legacy = legacyVersionDocument(publicURL)
        table.routes.get("/", .open) { _, _ in .json(["versions": [legacy, document]]) }
        table.routes.get("/v2.1", .open) { _, _ in .json(["version": document]) }
        table.routes.get("/v2", .open) { _, _ in .json(["version": legacy]) }
        registerServers(&table, service)
        registerServerActions(&table, service)
        registerServerExtras(&table, service)
        registerFlavors(&table, service)
        registerImages(&table, service)
        registerKeypairs(&table, service)
        registerAdmin(&table, service)
        registerAggregates(&table, service)
        return table.routes
    }

    static func query(_ request: Request, _ name: String) -> String? {
        request.query(name).flatMap { $0.isEmpty ? nil : $0 }
    }

    static func limit(_ request: Request) throws -> Int? {
        guard let text = request.query("limit") else { return nil }
        guard let number = Int(text), number >= 0 else {
            throw NimbusError.badRequest("Invalid input for query parameters limit. Value: \(text). '\(text)' is not a 'positive integer'")
        }
        return number
    }

    static func bool(_ text: String?) -> Bool? {
        guard let text else { return nil }
        switch text.lowercased() {
        case "1", "true", "t", "yes", "y", "on": return true
        case "0", "false", "f", "no", "n", "off": return false
        default: return nil
        }
    }

    // MARK: - Servers

    static func registerServers(_ table: inout Table, _ service: ComputeService) {
        table.add(.post, "/servers") { request, context, call in
            let result = try await service.createServers(try await request.json(context: context), caller: call.caller,
                                                         requestID: call.requestID, version: call.version)
            if result.returnReservationID { return .json(["reservation_id": .string(result.reservationID)], status: .accepted) }
            let first = result.instances[0]
            let body: JSONValue = ["server": [
                "id": .string(first.id), "links": call.views.links("servers", first.id), "OS-DCF:diskConfig": "MANUAL",
                "security_groups": .array((first.securityGroups.isEmpty ? ["default"] : first.securityGroups).map { ["name": .string($0)] }),
                "adminPass": .string(result.adminPass),
            ]]
            return .json(body, status: .accepted, headers: [.location: "\(publicURLOf(call))/v2.1/servers/\(first.id)"])
        }
        for detail in [false, true] {
            table.add(.get, detail ? "/servers/detail" : "/servers") { request, _, call in
                let query = try serverQuery(request, call)
                let (servers, more) = try await service.servers(query, caller: call.caller)
                var out = Array(#"{"servers":["#.utf8)
                let states = detail && call.caller.isAdmin ? try await service.hostStates() : [:]
                for (index, instance) in servers.enumerated() {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    guard detail else {
                        call.views.summary(instance).write(to: &out)
                        continue
                    }
                    let hostStatus = instance.host.flatMap { states[$0] }
                    let key = "\(instance.id)|\(instance.updatedAt)|\(call.version)|\(call.caller.isAdmin)|\(hostStatus ?? "")"
                    out.append(contentsOf: service.renderedServers.view(key) { call.views.server(instance, hostStatus: hostStatus).bytes() })
                }
                out.append(UInt8(ascii: "]"))
                if more || (query.limit != nil && servers.count == query.limit), let last = servers.last {
                    var allowed = CharacterSet.urlQueryAllowed
                    allowed.remove(charactersIn: "&=+")
                    var items = request.queryPairs.filter { $0.name != "marker" }.map {
                        "\($0.name)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.value)"
                    }
                    items.append("marker=\(last.id)")
                    let links: JSONValue = [["rel": "next", "href": .string("\(publicURLOf(call))/v2.1/servers\(detail ? "/detail" : "")?\(items.joined(separator: "&"))")]]
                    out.append(contentsOf: Array(#","servers_links":"#.utf8))
                    links.write(to: &out)
                }
                out.append(UInt8(ascii: "}"))
                return .jsonBytes(out)
            }
        }
        table.add(.get, "/servers/{id}") { _, context, call in
            let instance = try await service.instance(context.path("id"), caller: call.caller)
            let states = call.caller.isAdmin ? try await service.hostStates() : [:]
            let groups = instance.serverGroup.map { [$0] } ?? []
            return .json(["server": call.views.server(instance, hostStatus: instance.host.flatMap { states[$0] }, groups: groups)])
        }
        table.add(.put, "/servers/{id}") { request, context, call in
            let instance = try await service.updateServer(context.path("id"), try await request.json(context: context), caller: call.caller, version: call.version)
            return .json(["server": call.views.server(instance, groups: instance.serverGroup.map { [$0] } ?? [], extended: call.version >= 75)])
        }
        table.add(.delete, "/servers/{id}") { _, context, call in
            try await service.deleteServer(context.path("id"), caller: call.caller, requestID: call.requestID)
            return .empty()
        }
    }

    static func publicURLOf(_ call: Call) -> String { call.views.base }

    static func serverQuery(_ request: Request, _ call: Call) throws -> ServerQuery {
        var query = ServerQuery()
        query.allTenants = request.query("all_tenants").map { bool($0) ?? true } ?? false
        query.projectID = self.query(request, "project_id") ?? self.query(request, "tenant_id")
        if query.projectID != nil && call.caller.isAdmin { query.allTenants = true }
        query.userID = self.query(request, "user_id")
        query.name = self.query(request, "name")
        query.status = self.query(request, "status")
        query.host = self.query(request, "host")
        query.changesSince = self.query(request, "changes-since")
        query.changesBefore = self.query(request, "changes-before")
        query.image = self.query(request, "image")
        query.flavor = self.query(request, "flavor")
        query.reservationID = self.query(request, "reservation_id")
        query.keyName = self.query(request, "key_name")
        query.availabilityZone = self.query(request, "availability_zone")
        query.locked = bool(request.query("locked"))
        query.deleted = bool(request.query("deleted")) ?? false
        let list: (String) -> [String] = { name in
            (request.query(name) ?? "").split(separator: ",").map(String.init)
        }
        query.tags = list("tags")
        query.tagsAny = list("tags-any")
        query.notTags = list("not-tags")
        query.notTagsAny = list("not-tags-any")
        query.limit = try limit(request)
        query.marker = self.query(request, "marker")
        query.sortKeys = request.queryAll("sort_key")
        query.sortDirs = request.queryAll("sort_dir")
        for key in query.sortKeys where !ComputeService.sortableKeys.contains(key) {
            throw NimbusError.badRequest("Invalid input for query parameters sort_key. Value: \(key). '\(key)' is not one of the sortable keys")
        }
        for dir in query.sortDirs where dir != "asc" && dir != "desc" {
            throw NimbusError.badRequest("Invalid input for query parameters sort_dir. Value: \(dir). '\(dir)' is not one of ['asc', 'desc']")
        }
        return query
    }

    static func registerServerActions(_ table: inout Table, _ service: ComputeService) {
        table.add(.post, "/servers/{id}/action") { request, context, call in
            let id = context.path("id")
            let body = try await request.json(context: context)
            guard let object = body.objectValue, object.count == 1, let (action, argument) = object.first else {
                throw NimbusError.badRequest("Invalid input: the body must name exactly one action.")
            }
            let caller = call.caller, requestID = call.requestID
            switch action {
            case "reboot":
                let type = argument["type"]?.stringValue?.uppercased()
                guard type == "SOFT" || type == "HARD" else {
                    throw NimbusError.badRequest("Invalid input for field/attribute type. Value: \(argument["type"]?.serialized() ?? "None"). 'type' must be 'SOFT' or 'HARD'")
                }
                try await service.reboot(id, hard: type == "HARD", caller: caller, requestID: requestID)
            case "os-stop": try await service.stop(id, caller: caller, requestID: requestID)
            case "os-start": try await service.start(id, caller: caller, requestID: requestID)
            case "pause": try await service.pause(id, caller: caller, requestID: requestID)
            case "unpause": try await service.unpause(id, caller: caller, requestID: requestID)
            case "suspend": try await service.suspend(id, caller: caller, requestID: requestID)
            case "resume": try await service.resume(id, caller: caller, requestID: requestID)
            case "lock":
                let reason = call.version >= 73 ? argument["locked_reason"]?.stringValue : nil
                try await service.lock(id, locked: true, reason: reason, caller: caller, requestID: requestID)
            case "unlock": try await service.lock(id, locked: false, reason: nil, caller: caller, requestID: requestID)
            case "rebuild":
                let (instance, adminPass) = try await service.rebuild(id, body, caller: caller, requestID: requestID, version: call.version)
                var view = call.views.server(instance, extended: call.version >= 75).objectValue ?? [:]
                view["adminPass"] = .string(adminPass)
                return .json(["server": .object(view)], status: .accepted)
            case "resize": try await service.resize(id, body, caller: caller, requestID: requestID)
            case "confirmResize":
                try await service.confirmResize(id, caller: caller, requestID: requestID)
                return .empty()
            case "revertResize": try await service.revertResize(id, caller: caller, requestID: requestID)
            case "forceDelete": try await service.deleteServer(id, caller: caller, requestID: requestID, force: true)
            case "os-resetState":
                try await service.resetState(id, state: argument["state"]?.stringValue ?? "", caller: caller, requestID: requestID)
            case "os-getConsoleOutput":
                var lines: Int?
                if let length = argument["length"], !length.isNull {
                    guard let number = length.intValue ?? length.stringValue.flatMap({ Int64($0) }), number >= -1 else {
                        throw NimbusError.badRequest("Invalid input for field/attribute length. Value: \(length.serialized()).")
                    }
                    lines = number == -1 ? nil : Int(number)
                }
                return .json(["output": .string(try await service.consoleOutput(id, lines: lines, caller: caller))])
            case "createImage":
                let image = try await service.createImage(id, argument.objectValue.map { ["createImage": .object($0)] } ?? body,
                                                          caller: caller, requestID: requestID)
                let location: HTTPFields = [.location: "\(call.views.publicURL)/image/v2/images/\(image)"]
                if call.version >= 45 { return .json(["image_id": .string(image)], status: .accepted, headers: location) }
                return .empty(.accepted, headers: location)
            default:
                throw NimbusError.badRequest("There is no such action: \(action)")
            }
            return .empty(.accepted)
        }
    }

    static func registerServerExtras(_ table: inout Table, _ service: ComputeService) {
        table.add(.get, "/servers/{id}/metadata") { _, context, call in
            .json(["metadata": .object(try await service.instance(context.path("id"), caller: call.caller).metadata.mapValues { .string($0) })])
        }
        for (method, replace) in [(HTTPRequest.Method.post, false), (.put, true)] {
            table.add(method, "/servers/{id}/metadata") { request, context, call in
                let body = try await request.json(context: context)
                let items = try ComputeService.metadata(body["metadata"], field: "metadata")
                let result = try await service.setMetadata(context.path("id"), items, replace: replace, caller: call.caller)
                return .json(["metadata": .object(result.mapValues { .string($0) })])
            }
        }
        table.add(.get, "/servers/{id}/metadata/{key}") { _, context, call in
            let metadata = try await service.instance(context.path("id"), caller: call.caller).metadata
            guard let value = metadata[context.path("key")] else { throw NimbusError.notFound("Metadata item was not found") }
            return .json(["meta": .object([context.path("key"): .string(value)])])
        }
        table.add(.put, "/servers/{id}/metadata/{key}") { request, context, call in
            let body = try await request.json(context: context)
            let items = try ComputeService.metadata(body["meta"], field: "meta")
            guard items.count == 1, let value = items[context.path("key")] else {
                throw NimbusError.badRequest("Request body and URI mismatch")
            }
            _ = try await service.setMetadata(context.path("id"), [context.path("key"): value], replace: false, caller: call.caller)
            return .json(["meta": .object([context.path("key"): .string(value)])])
        }
        table.add(.delete, "/servers/{id}/metadata/{key}") { _, context, call in
            try await service.deleteMetadata(context.path("id"), key: context.path("key"), caller: call.caller)
            return .empty()
        }
        table.add(.get, "/servers/{id}/tags") { _, context, call in
            .json(["tags": .array(try await service.instance(context.path("id"), caller: call.caller).tags.map { .string($0) })])
        }
        table.add(.put, "/servers/{id}/tags") { request, context, call in
            let body = try await request.json(context: context)
            guard let tags = body["tags"]?.arrayValue?.compactMap(\.stringValue) else {
                throw NimbusError.badRequest("Invalid input for field/attribute tags. Value: None. 'tags' is a required property")
            }
            return .json(["tags": .array(try await service.setTags(context.path("id"), tags, caller: call.caller).map { .string($0) })])
        }
        table.add(.delete, "/servers/{id}/tags") { _, context, call in
            _ = try await service.setTags(context.path("id"), [], caller: call.caller)
            return .empty()
        }
        table.add(.get, "/servers/{id}/tags/{tag}") { _, context, call in
            let tags = try await service.instance(context.path("id"), caller: call.caller).tags
            guard tags.contains(context.path("tag")) else { throw NimbusError.notFound("Tag \(context.path("tag")) could not be found.") }
            return .empty()
        }
        table.add(.put, "/servers/{id}/tags/{tag}") { _, context, call in
            let added = try await service.addTag(context.path("id"), context.path("tag"), caller: call.caller)
            return .empty(added ? .created : .noContent, headers: [.location: "\(publicURLOf(call))/v2.1/servers/\(context.path("id"))/tags/\(context.path("tag"))"])
        }
        table.add(.delete, "/servers/{id}/tags/{tag}") { _, context, call in
            try await service.removeTag(context.path("id"), context.path("tag"), caller: call.caller)
            return .empty()
        }
        table.add(.get, "/servers/{id}/os-interface") { _, context, call in
            let nics = try await service.interfaces(context.path("id"), caller: call.caller)
            return .json(["interfaceAttachments": .array(nics.map { interfaceView($0, version: call.version) })])
        }
        table.add(.get, "/servers/{id}/os-interface/{port}") { _, context, call in
            let nics = try await service.interfaces(context.path("id"), caller: call.caller)
            guard let nic = nics.first(where: { $0.portID == context.path("port") }) else {
                throw NimbusError.notFound("Port \(context.path("port")) is not attached")
            }
            return .json(["interfaceAttachment": interfaceView(nic, version: call.version)])
        }
        table.add(.post, "/servers/{id}/os-interface") { request, context, call in
            let nic = try await service.attachInterface(context.path("id"), try await request.json(context: context), caller: call.caller,
                                                        requestID: call.requestID, version: call.version)
            return .json(["interfaceAttachment": interfaceView(nic, version: call.version)])
        }
        table.add(.delete, "/servers/{id}/os-interface/{port}") { _, context, call in
            try await service.detachInterface(context.path("id"), port: context.path("port"), caller: call.caller, requestID: call.requestID)
            return .empty(.accepted)
        }
        table.add(.get, "/servers/{id}/os-instance-actions") { _, context, call in
            let actions = try await service.instanceActions(context.path("id"), caller: call.caller)
            return .json(["instanceActions": .array(actions.map { call.views.action($0, withEvents: false) })])
        }
        table.add(.get, "/servers/{id}/os-instance-actions/{request}") { _, context, call in
            let actions = try await service.instanceActions(context.path("id"), caller: call.caller)
            guard let action = actions.first(where: { $0.string("request_id") == context.path("request") }) else {
                throw NimbusError.notFound("Action for request_id \(context.path("request")) on instance \(context.path("id")) not found")
            }
            return .json(["instanceAction": call.views.action(action, withEvents: true)])
        }
        table.add(.get, "/os-server-groups") { request, _, call in
            var groups = try await service.serverGroups(caller: call.caller, allProjects: bool(request.query("all_projects")) ?? false)
            let offset = Int(request.query("offset") ?? "") ?? 0
            groups = Array(groups.dropFirst(offset))
            if let limit = try limit(request) { groups = Array(groups.prefix(limit)) }
            return .json(["server_groups": .array(groups.map(call.views.serverGroup))])
        }
        table.add(.post, "/os-server-groups") { request, context, call in
            let group = try await service.createServerGroup(try await request.json(context: context), caller: call.caller, version: call.version)
            return .json(["server_group": call.views.serverGroup(group)])
        }
        table.add(.get, "/os-server-groups/{id}") { _, context, call in
            .json(["server_group": call.views.serverGroup(try await service.serverGroup(context.path("id"), caller: call.caller))])
        }
        table.add(.delete, "/os-server-groups/{id}") { _, context, call in
            try await service.deleteServerGroup(context.path("id"), caller: call.caller)
            return .empty()
        }
    }

    // MARK: - Flavors

    static func registerFlavors(_ table: inout Table, _ service: ComputeService) {
        for detail in [false, true] {
            table.add(.get, detail ? "/flavors/detail" : "/flavors") { request, _, call in
                let isPublic: Bool? = switch request.query("is_public")?.lowercased() {
                // Admins see public flavors unless they ask (`None` means all), as Nova's list does.
                case nil: call.caller.isAdmin ? true : nil
                case "none"?: nil
                case let text?: bool(text) ?? true
                }
                var flavors = try await service.visibleFlavors(call.caller, isPublic: isPublic)
                if let minDisk = request.query("minDisk").flatMap({ Int64($0) }) { flavors = flavors.filter { ($0["disk"]?.intValue ?? 0) >= minDisk } }
                if let minRam = request.query("minRam").flatMap({ Int64($0) }) { flavors = flavors.filter { ($0["ram"]?.intValue ?? 0) >= minRam } }
                let key = request.query("sort_key") ?? "flavorid"
                let descending = request.query("sort_dir") == "desc"
                flavors.sort { a, b in
                    let order: Bool
                    switch key {
                    case "name": order = (a.string("name") ?? "") < (b.string("name") ?? "")
                    case "memory_mb", "ram": order = (a["ram"]?.intValue ?? 0) < (b["ram"]?.intValue ?? 0)
                    case "vcpus": order = (a["vcpus"]?.intValue ?? 0) < (b["vcpus"]?.intValue ?? 0)
                    case "root_gb", "disk": order = (a["disk"]?.intValue ?? 0) < (b["disk"]?.intValue ?? 0)
                    default: order = (a.string("id") ?? "") < (b.string("id") ?? "")
                    }
                    return descending ? !order : order
                }
                if let marker = request.query("marker") {
                    guard let index = flavors.firstIndex(where: { $0.string("id") == marker }) else {
                        throw NimbusError.badRequest("marker [\(marker)] not found")
                    }
                    flavors.removeFirst(index + 1)
                }
                if let limit = try limit(request) { flavors = Array(flavors.prefix(limit)) }
                return .json(["flavors": .array(flavors.map { call.views.flavor($0, detail: detail) })])
            }
        }
        table.add(.post, "/flavors") { request, context, call in
            let flavor = try await service.createFlavor(try await request.json(context: context), caller: call.caller)
            return .json(["flavor": call.views.flavor(flavor, detail: true)])
        }
        table.add(.get, "/flavors/{id}") { _, context, call in
            .json(["flavor": call.views.flavor(try await service.flavor(context.path("id"), call.caller), detail: true)])
        }
        table.add(.put, "/flavors/{id}") { request, context, call in
            let flavor = try await service.updateFlavor(context.path("id"), try await request.json(context: context), caller: call.caller)
            return .json(["flavor": call.views.flavor(flavor, detail: true)])
        }
        table.add(.delete, "/flavors/{id}") { _, context, call in
            try await service.deleteFlavor(context.path("id"), caller: call.caller)
            return .empty(.accepted)
        }
        table.add(.get, "/flavors/{id}/os-extra_specs") { _, context, call in
            .json(["extra_specs": .object(try await service.extraSpecs(context.path("id"), caller: call.caller).mapValues { .string($0) })])
        }
        table.add(.post, "/flavors/{id}/os-extra_specs") { request, context, call in
            let specs = try await service.setExtraSpecs(context.path("id"), try await request.json(context: context), caller: call.caller)
            return .json(["extra_specs": .object(specs.mapValues { .string($0) })])
        }
        table.add(.get, "/flavors/{id}/os-extra_specs/{key}") { _, context, call in
            let specs = try await service.extraSpecs(context.path("id"), caller: call.caller)
            guard let value = specs[context.path("key")] else {
                throw NimbusError.notFound("Flavor \(context.path("id")) has no extra specs with key \(context.path("key")).")
            }
            return .json(.object([context.path("key"): .string(value)]))
        }
        table.add(.put, "/flavors/{id}/os-extra_specs/{key}") { request, context, call in
            let body = try await request.json(context: context)
            guard let object = body.objectValue, object.count == 1, object[context.path("key")] != nil else {
                throw NimbusError.badRequest("Request body and URI mismatch")
            }
            let specs = try await service.setExtraSpecs(context.path("id"), ["extra_specs": body], caller: call.caller)
            return .json(.object(specs.mapValues { .string($0) }))
        }
        table.add(.delete, "/flavors/{id}/os-extra_specs/{key}") { _, context, call in
            try await service.deleteExtraSpec(context.path("id"), key: context.path("key"), caller: call.caller)
            return .empty(.ok)
        }
        table.add(.get, "/flavors/{id}/os-flavor-access") { _, context, call in
            let projects = try await service.flavorAccess(context.path("id"), caller: call.caller)
            return .json(["flavor_access": .array(projects.map { ["flavor_id": .string(context.path("id")), "tenant_id": .string($0)] })])
        }
        table.add(.post, "/flavors/{id}/action") { request, context, call in
            let body = try await request.json(context: context)
            let id = context.path("id")
            let granted: Bool
            let argument: JSONValue
            if let add = body["addTenantAccess"] { granted = true; argument = add } else if let remove = body["removeTenantAccess"] { granted = false; argument = remove } else {
                throw NimbusError.badRequest("There is no such action: \(body.objectValue?.keys.first ?? "")")
            }
            guard let project = argument["tenant"]?.stringValue, !project.isEmpty else {
                throw NimbusError.badRequest("Invalid input for field/attribute tenant. Value: None. 'tenant' is a required property")
            }
            let projects = try await service.setFlavorAccess(id, project: project, granted: granted, caller: call.caller)
            return .json(["flavor_access": .array(projects.map { ["flavor_id": .string(id), "tenant_id": .string($0)] })])
        }
    }

    // MARK: - Keypairs

    static func registerKeypairs(_ table: inout Table, _ service: ComputeService) {
        table.add(.get, "/os-keypairs") { request, _, call in
            let pairs = try await service.keypairs(userID: call.version >= 10 ? query(request, "user_id") : nil, caller: call.caller)
            return .json(["keypairs": .array(pairs.map { ["keypair": call.views.keypair($0, detail: false)] })])
        }
        table.add(.post, "/os-keypairs") { request, context, call in
            let (record, privateKey) = try await service.createKeypair(try await request.json(context: context), caller: call.caller, version: call.version)
            var view = call.views.keypair(record, detail: false, privateKey: privateKey).objectValue ?? [:]
            view["user_id"] = record["user_id"]
            return .json(["keypair": .object(view)], status: call.version >= 2 ? .created : .ok)
        }
        table.add(.get, "/os-keypairs/{id}") { request, context, call in
            let record = try await service.keypair(context.path("id"), userID: call.version >= 10 ? query(request, "user_id") : nil, caller: call.caller)
            return .json(["keypair": call.views.keypair(record, detail: true)])
        }
        table.add(.delete, "/os-keypairs/{id}") { request, context, call in
            try await service.deleteKeypair(context.path("id"), userID: call.version >= 10 ? query(request, "user_id") : nil, caller: call.caller)
            return .empty(call.version >= 2 ? .noContent : .accepted)
        }
    }

    // MARK: - Quotas, limits, services, hypervisors, zones, usage

    static func registerAdmin(_ table: inout Table, _ service: ComputeService) {
        for suffix in ["", "/detail", "/defaults"] {
            table.add(.get, "/os-quota-sets/{id}" + suffix) { _, context, call in
                .json(try await service.quotaSet(context.path("id"), caller: call.caller, detail: suffix == "/detail",
                                                 defaults: suffix == "/defaults", version: call.version))
            }
        }
        table.add(.put, "/os-quota-sets/{id}") { request, context, call in
            .json(try await service.updateQuotaSet(context.path("id"), try await request.json(context: context), caller: call.caller, version: call.version))
        }
        table.add(.delete, "/os-quota-sets/{id}") { _, context, call in
            try await service.deleteQuotaSet(context.path("id"), caller: call.caller)
            return .empty(.accepted)
        }
        table.add(.get, "/limits") { request, _, call in
            .json(try await service.limits(caller: call.caller, projectID: query(request, "tenant_id"), version: call.version))
        }
        table.add(.get, "/os-services") { request, _, call in
            let services = try await service.services(caller: call.caller, host: query(request, "host"), binary: query(request, "binary"))
            return .json(["services": .array(services.map { service.serviceView($0, version: call.version) })])
        }
        table.add(.put, "/os-services/{id}") { request, context, call in
            let id = context.path("id")
            let body = try await request.json(context: context)
            if ["enable", "disable", "disable-log-reason", "force-down"].contains(id) {
                return .json(try await service.updateService(action: id, body, caller: call.caller))
            }
            guard call.version >= 53 else { throw NimbusError.notFound("Unknown action \(id)") }
            let updated = try await service.updateService(id, body, caller: call.caller)
            return .json(["service": service.serviceView(updated, version: call.version)])
        }
        table.add(.delete, "/os-services/{id}") { _, context, call in
            try await service.deleteService(context.path("id"), caller: call.caller)
            return .empty()
        }
        table.add(.get, "/os-availability-zone") { _, _, call in
            .json(try await service.availabilityZones(detail: false, caller: call.caller))
        }
        table.add(.get, "/os-availability-zone/detail") { _, _, call in
            .json(try await service.availabilityZones(detail: true, caller: call.caller))
        }
        for detail in [false, true] {
            table.add(.get, detail ? "/os-hypervisors/detail" : "/os-hypervisors") { request, _, call in
                let list = try await service.hypervisors(caller: call.caller, detail: detail, version: call.version,
                                                         hostPattern: query(request, "hypervisor_hostname_pattern"))
                return .json(["hypervisors": .array(list)])
            }
        }
        table.add(.get, "/os-hypervisors/statistics") { _, _, call in
            .json(try await service.hypervisorStatistics(caller: call.caller))
        }
        table.add(.get, "/os-hypervisors/{id}/uptime") { _, context, call in
            var view = try await service.hypervisor(context.path("id"), caller: call.caller, version: 1).objectValue ?? [:]
            view = view.filter { ["id", "hypervisor_hostname", "state", "status"].contains($0.key) }
            view["uptime"] = .string(ComputeService.hostUptime())
            return .json(["hypervisor": .object(view)])
        }
        table.add(.get, "/os-hypervisors/{id}") { _, context, call in
            .json(["hypervisor": try await service.hypervisor(context.path("id"), caller: call.caller, version: call.version)])
        }
        table.add(.get, "/os-simple-tenant-usage") { request, _, call in
            let (start, end) = try usagePeriod(request)
            let usages = try await service.usage(projectID: nil, start: start, end: end,
                                                 detailed: bool(request.query("detailed")) ?? false, caller: call.caller)
            return .json(["tenant_usages": .array(usages)])
        }
        table.add(.get, "/os-simple-tenant-usage/{id}") { request, context, call in
            let (start, end) = try usagePeriod(request)
            let usages = try await service.usage(projectID: context.path("id"), start: start, end: end, detailed: true, caller: call.caller)
            return .json(["tenant_usage": usages.first ?? [:]])
        }
    }

    static func registerAggregates(_ table: inout Table, _ service: ComputeService) {
        table.add(.get, "/os-aggregates") { _, _, call in
            .json(["aggregates": .array(try await service.aggregates(caller: call.caller).map(call.views.aggregate))])
        }
        table.add(.post, "/os-aggregates") { request, context, call in
            .json(["aggregate": call.views.aggregate(try await service.createAggregate(try await request.json(context: context), caller: call.caller))])
        }
        table.add(.get, "/os-aggregates/{id}") { _, context, call in
            .json(["aggregate": call.views.aggregate(try await service.aggregate(context.path("id"), caller: call.caller))])
        }
        table.add(.put, "/os-aggregates/{id}") { request, context, call in
            .json(["aggregate": call.views.aggregate(try await service.updateAggregate(context.path("id"), try await request.json(context: context), caller: call.caller))])
        }
        table.add(.delete, "/os-aggregates/{id}") { _, context, call in
            try await service.deleteAggregate(context.path("id"), caller: call.caller)
            return .empty(.ok)
        }
        table.add(.post, "/os-aggregates/{id}/action") { request, context, call in
            .json(["aggregate": call.views.aggregate(try await service.aggregateAction(context.path("id"), try await request.json(context: context), caller: call.caller))])
        }
    }

    static func usagePeriod(_ request: Request) throws -> (Date, Date) {
        let now = Date()
        var start = now.addingTimeInterval(-30 * 86400)
        var end = now
        if let text = request.query("start") {
            guard let date = Timestamp.parse(text) else { throw NimbusError.badRequest("Invalid start time: \(text)") }
            start = date
        }
        if let text = request.query("end") {
            guard let date = Timestamp.parse(text) else { throw NimbusError.badRequest("Invalid end time: \(text)") }
            end = date
        }
        guard start <= end else { throw NimbusError.badRequest("Invalid start time. The start time cannot occur after the end time.") }
        return (start, end)
    }
}

extension ComputeAPI {
    /// One `interfaceAttachment`, as Nova renders a server's port.
    static func interfaceView(_ nic: InstanceNIC, version: Int) -> JSONValue {
        var view: [String: JSONValue] = [
            "port_id": .string(nic.portID), "net_id": .string(nic.networkID), "mac_addr": .string(nic.mac),
            "port_state": .string(nic.status ?? "DOWN"),
            "fixed_ips": .array(nic.addresses.filter { $0.type == "fixed" }.map { address in
                ["ip_address": .string(address.address), "subnet_id": address.subnetID.map(JSONValue.string) ?? .null]
            }),
        ]
        if version >= 70 { view["tag"] = .null }
        return .object(view)
    }
}
