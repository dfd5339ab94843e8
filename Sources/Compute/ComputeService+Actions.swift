import Foundation
import NimbusCore
import SQLKit
import Store

extension ComputeService {
    /// Nova's refusal for an action in the wrong state.
    static func wrongState(_ action: String, _ instance: Instance) -> NimbusError {
        if let task = instance.taskState {
            return NimbusError.conflict("Cannot '\(action)' instance \(instance.id) while it is in task_state \(task.rawValue)")
        }
        return NimbusError.conflict("Cannot '\(action)' instance \(instance.id) while it is in vm_state \(instance.vmState.rawValue)")
    }

    /// Starts an agent-performed action: checks the state, records the action, sets the task and
    /// wakes the host. The agent's report finishes it (see `applyReport`).
    func beginAction(
        _ action: String, id: String, caller: AuthContext, requestID: String, allowed: Set<VMState>,
        task: TaskState, adjust: @escaping @Sendable (inout Instance, any SQLDatabase) async throws -> Void = { _, _ in }
    ) async throws -> Instance {
        guard caller.isMember else { throw NimbusError.forbidden("Policy doesn't allow os_compute_api:servers:\(action) to be performed.") }
        let instance = try await database.transaction { db -> Instance in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            try self.requireUnlocked(instance, caller, action: action)
            guard allowed.contains(instance.vmState), instance.taskState == nil else { throw Self.wrongState(action, instance) }
            guard instance.host != nil else { throw Self.wrongState(action, instance) }
            try await adjust(&instance, db)
            try await self.recordAction(action, instance: instance, caller: caller, requestID: requestID, on: db)
            instance.taskState = task
            instance.requestID = requestID
            try await self.save(instance, on: db)
            if let host = instance.host { try await self.announceWake(host, on: db) }
            return instance
        }
        if let host = instance.host { wakeHost(host) }
        return instance
    }

    public func reboot(_ id: String, hard: Bool, caller: AuthContext, requestID: String) async throws {
        _ = try await beginAction("reboot", id: id, caller: caller, requestID: requestID,
                                  allowed: hard ? [.active, .stopped, .paused, .suspended, .error] : [.active],
                                  task: hard ? .rebootingHard : .rebooting)
    }

    public func stop(_ id: String, caller: AuthContext, requestID: String) async throws {
        _ = try await beginAction("stop", id: id, caller: caller, requestID: requestID, allowed: [.active, .error], task: .poweringOff)
    }

    public func start(_ id: String, caller: AuthContext, requestID: String) async throws {
        _ = try await beginAction("start", id: id, caller: caller, requestID: requestID, allowed: [.stopped], task: .poweringOn)
    }

    public func pause(_ id: String, caller: AuthContext, requestID: String) async throws {
        _ = try await beginAction("pause", id: id, caller: caller, requestID: requestID, allowed: [.active], task: .pausing)
    }

    public func unpause(_ id: String, caller: AuthContext, requestID: String) async throws {
        _ = try await beginAction("unpause", id: id, caller: caller, requestID: requestID, allowed: [.paused], task: .unpausing)
    }

    public func suspend(_ id: String, caller: AuthContext, requestID: String) async throws {
        _ = try await beginAction("suspend", id: id, caller: caller, requestID: requestID, allowed: [.active], task: .suspending)
    }

    public func resume(_ id: String, caller: AuthContext, requestID: String) async throws {
        _ = try await beginAction("resume", id: id, caller: caller, requestID: requestID, allowed: [.suspended], task: .resuming)
    }

    public func rebuild(_ id: String, _ body: JSONValue, caller: AuthContext, requestID: String, version: Int) async throws -> (Instance, String) {
        let fields = try FieldReader(body: body, root: "rebuild")
        var allowed: Set<String> = ["imageRef", "name", "adminPass", "metadata", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig", "preserve_ephemeral"]
        if version >= 19 { allowed.insert("description") }
        if version >= 54 { allowed.insert("key_name") }
        if version >= 57 { allowed.insert("user_data") }
        if version >= 63 { allowed.insert("trusted_image_certificates") }
        try fields.rejectUnknown(allowed)
        let imageRef = try fields.string("imageRef", required: true)!
        let imageID = imageRef.split(separator: "/").last.map(String.init) ?? imageRef
        guard Identifier.looksLikeUUID(imageID) else { throw NimbusError.badRequest("Invalid imageRef provided.") }
        guard let image = try await images.image(imageID, caller: caller), image.status == "active" else {
            throw NimbusError.badRequest("Image \(imageID) could not be found.")
        }
        let name = try Self.displayName(fields, required: false)
        let metadata = fields.has("metadata") ? try Self.metadata(fields.fields["metadata"], field: "metadata") : nil
        let description = fields.has("description") ? try fields.string("description", nullable: true, maxLength: 255) : nil
        let userData = fields.has("user_data") ? try fields.string("user_data", nullable: true, maxLength: 65535) : nil
        var keyData: String??
        if fields.has("key_name") {
            if let keyName = try fields.string("key_name", nullable: true) {
                guard let key = try? await keypair(keyName, userID: nil, caller: caller) else { throw NimbusError.badRequest("Invalid key_name provided.") }
                keyData = .some(key.string("public_key"))
            } else {
                keyData = .some(nil)
            }
        }
        let keyName = try fields.string("key_name", nullable: true)
        let newKeyData = keyData
        let adminPass = try fields.string("adminPass") ?? Self.password()
        let (accessIPv4, accessIPv6) = (try Self.accessIP(fields, version: 4), try Self.accessIP(fields, version: 6))
        let instance = try await beginAction("rebuild", id: id, caller: caller, requestID: requestID,
                                             allowed: [.active, .stopped, .error], task: .rebuilding) { instance, _ in
            instance.imageRef = imageID
            if let name { instance.name = name }
            if let metadata { instance.metadata = metadata }
            if fields.has("description") { instance.description = description }
            if fields.has("user_data") { instance.userData = userData }
            if let newKeyData { instance.keyData = newKeyData; instance.keyName = keyName }
            if let accessIPv4 { instance.accessIPv4 = accessIPv4 }
            if let accessIPv6 { instance.accessIPv6 = accessIPv6 }
        }
        return (instance, adminPass)
    }

    /// Resizes in place: the new flavor is claimed on the same host (replacing the old
    /// allocation), the old one kept until confirm or revert.
    public func resize(_ id: String, _ body: JSONValue, caller: AuthContext, requestID: String) async throws {
        let fields = try FieldReader(body: body, root: "resize")
        try fields.rejectUnknown(["flavorRef", "OS-DCF:diskConfig"])
        let reference: String = switch fields.fields["flavorRef"] {
        case .string(let text)?: text
        case .int(let number)?: String(number)
        default: throw NimbusError.badRequest("Invalid input for field/attribute resize. Value: 'flavorRef' is a required property")
        }
        let flavor = try await bootFlavor(reference, caller: caller)
        let current = try await instance(id, caller: caller)
        guard flavor.id != current.flavor.id else { throw NimbusError.badRequest("When resizing, instances must change flavor!") }
        if flavor.disk < current.flavor.disk { throw NimbusError.badRequest("Resize error: Unable to resize disk down.") }
        guard [.active, .stopped].contains(current.vmState), current.taskState == nil, let host = current.host else {
            throw Self.wrongState("resize", current)
        }
        try requireUnlocked(current, caller, action: "resize")
        try await claimOnHost(current, flavor: flavor, host: host)
        do {
            _ = try await beginAction("resize", id: id, caller: caller, requestID: requestID, allowed: [.active, .stopped],
                                      task: .resizePrep) { instance, _ in
                instance.oldFlavor = instance.flavor
                instance.flavor = flavor
            }
        } catch {
            try? await claimOnHost(current, flavor: current.flavor, host: host)
            throw error
        }
    }

    /// Replaces the instance's allocation with `flavor`'s resources on `host`'s provider.
    func claimOnHost(_ instance: Instance, flavor: FlavorSnapshot, host: String) async throws {
        guard let node = try await computeNode(host) else { throw NimbusError.conflict("Compute host \(host) could not be found.") }
        let generation = try await placement.allocations(consumer: instance.id)?.generation
        do {
            try await placement.claim(consumer: instance.id, project: instance.projectID, user: instance.userID,
                                      allocations: [node: flavor.resources], consumerGeneration: generation)
        } catch let error as NimbusError where error.kind == .conflict {
            throw NimbusError.badRequest("No valid host was found. There are not enough resources on host \(host) for flavor \(flavor.name).")
        }
    }

    public func confirmResize(_ id: String, caller: AuthContext, requestID: String) async throws {
        try await database.transaction { db in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            guard instance.vmState == .resized, instance.taskState == nil else { throw Self.wrongState("confirmResize", instance) }
            try await self.recordAction("confirmResize", instance: instance, caller: caller, requestID: requestID, on: db)
            instance.oldFlavor = nil
            instance.vmState = instance.powerState == 4 ? .stopped : .active
            try await self.save(instance, on: db)
        }
    }

    public func revertResize(_ id: String, caller: AuthContext, requestID: String) async throws {
        let current = try await instance(id, caller: caller)
        guard current.vmState == .resized, current.taskState == nil, let old = current.oldFlavor, let host = current.host else {
            throw Self.wrongState("revertResize", current)
        }
        try await claimOnHost(current, flavor: old, host: host)
        let instance = try await database.transaction { db -> Instance in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            guard instance.vmState == .resized, instance.taskState == nil, let old = instance.oldFlavor else {
                throw Self.wrongState("revertResize", instance)
            }
            try await self.recordAction("revertResize", instance: instance, caller: caller, requestID: requestID, on: db)
            instance.flavor = old
            instance.taskState = .resizeReverting
            instance.requestID = requestID
            try await self.save(instance, on: db)
            if let host = instance.host { try await self.announceWake(host, on: db) }
            return instance
        }
        if let host = instance.host { wakeHost(host) }
    }

    /// `createImage`: a queued image is made now (its id is the answer); the host's agent fills
    /// it with a copy of the root disk and the task clears when the image is active.
    public func createImage(_ id: String, _ body: JSONValue, caller: AuthContext, requestID: String) async throws -> String {
        let fields = try FieldReader(body: body, root: "createImage")
        try fields.rejectUnknown(["name", "metadata"])
        let name = try fields.string("name", required: true, minLength: 1, maxLength: 255)!
        let metadata = try Self.metadata(fields.fields["metadata"], field: "metadata")
        let current = try await instance(id, caller: caller)
        try requireUnlocked(current, caller, action: "createImage")
        guard [.active, .stopped, .paused, .suspended].contains(current.vmState), current.taskState == nil, let host = current.host else {
            throw Self.wrongState("createImage", current)
        }
        let facts = try await database.read { db in
            try await ComputeSchema.services.list([.init("host", .equal, .string(host)), .init("service_binary", .equal, "nova-compute")], on: db).first
        }
        let format = facts?["facts"]?["hypervisor_type"]?.stringValue == "fake" ? "raw" : "qcow2"
        // The request's metadata goes over these, as in Nova.
        var properties = ["image_type": "snapshot", "instance_uuid": id, "base_image_ref": current.imageRef]
        properties.merge(metadata) { _, given in given }
        let base = try await images.image(current.imageRef, caller: Self.systemCaller(project: current.projectID))
        for key in ["kernel_id", "ramdisk_id", "os_distro"] { if let value = base?.properties[key] { properties[key] = value } }
        let image = try await images.createSnapshotImage(
            name: name, diskFormat: format, properties: properties, minDiskGB: current.flavor.disk, minRAMMB: 0, caller: caller)
        do {
            _ = try await beginAction("createImage", id: id, caller: caller, requestID: requestID,
                                      allowed: [.active, .stopped, .paused, .suspended], task: .imageSnapshot) { instance, _ in
                instance.pendingImage = image
            }
        } catch {
            await images.discardImage(image)
            throw error
        }
        return image
    }

    public func lock(_ id: String, locked: Bool, reason: String?, caller: AuthContext, requestID: String) async throws {
        try await database.transaction { db in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            if !locked, instance.locked, instance.lockedBy == "admin", !caller.isAdmin {
                throw NimbusError.forbidden("Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed.")
            }
            try await self.recordAction(locked ? "lock" : "unlock", instance: instance, caller: caller, requestID: requestID, on: db)
            instance.locked = locked
            instance.lockedBy = locked ? (caller.isAdmin && caller.projectID != instance.projectID ? "admin" : "owner") : nil
            instance.lockedReason = locked ? reason : nil
            try await self.save(instance, on: db)
        }
    }

    /// `os-resetState` (admin): forces vm_state and clears the task, for an operator's repair.
    public func resetState(_ id: String, state: String, caller: AuthContext, requestID: String) async throws {
        try Self.requireAdmin(caller, "os_compute_api:os-admin-actions:reset_state")
        guard state == "active" || state == "error" else {
            throw NimbusError.badRequest("Invalid input for field/attribute state. Value: \(state). '\(state)' is not one of ['active', 'error']")
        }
        try await database.transaction { db in
            var instance = try await self.instance(id, caller, on: db, forUpdate: true)
            try await self.recordAction("resetState", instance: instance, caller: caller, requestID: requestID, on: db)
            instance.vmState = state == "active" ? .active : .error
            instance.taskState = nil
            try await self.save(instance, on: db)
        }
    }

    public func consoleOutput(_ id: String, lines: Int?, caller: AuthContext) async throws -> String {
        let instance = try await instance(id, caller: caller)
        guard let host = instance.host, let link = links.link(host), instance.vmState != .building else {
            throw NimbusError.conflict("Instance \(id) is not ready")
        }
        do {
            return try await link.consoleOutput(id, lines: lines)
        } catch {
            throw NimbusError.conflict("Guest does not have a console available: \(error)")
        }
    }
}
