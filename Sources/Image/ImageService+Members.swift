import Foundation
import NimbusCore
import SQLKit
import Store

extension ImageService {
    /// The owner shares a `shared` image with another project; it starts `pending`.
    public func addMember(_ id: String, body: JSONValue, caller: AuthContext) async throws -> Record {
        let fields = try FieldReader(body, path: "member")
        try fields.rejectUnknown(["member"])
        let member = try fields.string("member", required: true, minLength: 1, maxLength: 255)!
        let image = try await ownedImage(id, caller, action: "share")
        guard image.string("visibility") == "shared" else {
            throw NimbusError.forbidden("Only shared images have members.")
        }
        let now = Timestamp.seconds(Date())
        let record: Record = [
            "id": .string(Identifier.uuid()), "image_id": .string(id), "member_id": .string(member), "status": "pending",
            "created_at": .string(now), "updated_at": .string(now),
        ]
        do {
            try await database.transaction { try await ImageSchema.members.insert(record, on: $0) }
        } catch where Database.isUniqueViolation(error) {
            throw NimbusError.conflict("The target member \(member) is already associated with image \(id).")
        }
        return record
    }

    /// The owner sees every member; a member sees only itself.
    public func members(_ id: String, caller: AuthContext) async throws -> [Record] {
        let image = try await visibleImage(id, caller)
        guard image.string("visibility") == "shared" else { throw NimbusError.forbidden("Only shared images have members.") }
        let all = try await database.read { try await ImageSchema.members.list([.init("image_id", .equal, .string(id))], orderBy: "created_at", on: $0) }
        return isOwner(image, caller) ? all : all.filter { $0.string("member_id") == caller.projectID }
    }

    public func member(_ id: String, member: String, caller: AuthContext) async throws -> Record {
        guard let record = try await members(id, caller: caller).first(where: { $0.string("member_id") == member }) else {
            throw NimbusError.notFound("\(member) is not a member of image \(id)")
        }
        return record
    }

    /// Only the member itself accepts or rejects a share.
    public func setMemberStatus(_ id: String, member: String, body: JSONValue, caller: AuthContext) async throws -> Record {
        let fields = try FieldReader(body, path: "member")
        let status = try fields.string("status", required: true)!
        guard ["pending", "accepted", "rejected"].contains(status) else {
            throw NimbusError.badRequest("Invalid status: \(status); expected pending, accepted or rejected")
        }
        var record = try await self.member(id, member: member, caller: caller)
        guard caller.projectID == member else {
            throw NimbusError.forbidden("You are not permitted to modify 'status' on this image member.")
        }
        record["status"] = .string(status)
        record["updated_at"] = .string(Timestamp.seconds(Date()))
        let frozen = record
        try await database.transaction { db in
            try await ImageSchema.members.update(frozen.string("id") ?? "", ["status": .string(status), "updated_at": frozen["updated_at"]!], on: db)
        }
        return record
    }

    public func removeMember(_ id: String, member: String, caller: AuthContext) async throws {
        let image = try await visibleImage(id, caller)
        guard isOwner(image, caller) else { throw NimbusError.forbidden("You are not permitted to delete this image member.") }
        let record = try await self.member(id, member: member, caller: caller)
        try await database.transaction { try await ImageSchema.members.delete(id: record.string("id") ?? "", on: $0) }
    }
}
