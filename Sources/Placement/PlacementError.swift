import NimbusCore

/// Placement's machine-readable error codes (the `code` of each error in a fault body).
public enum PlacementCode {
    /// A generation moved under the caller: re-read and retry.
    public static let concurrentUpdate = "placement.concurrent_update"
    public static let duplicateName = "placement.duplicate_name"
    public static let inventoryInUse = "placement.inventory.inuse"
    public static let providerInUse = "placement.resource_provider.inuse"
    public static let cannotDeleteParent = "placement.resource_provider.cannot_delete_parent"
    public static let providerNotFound = "placement.resource_provider.not_found"
    public static let queryBadValue = "placement.query.bad_value"
    public static let queryMissingValue = "placement.query.missing_value"
}

extension NimbusError {
    /// Whether the failure was a lost race on a provider or consumer generation, so re-reading
    /// and retrying may succeed (as opposed to a capacity or validation failure).
    public var isPlacementConcurrentUpdate: Bool { kind == .conflict && code == PlacementCode.concurrentUpdate }

    static func providerGenerationConflict() -> NimbusError {
        NimbusError(.conflict, "resource provider generation conflict", code: PlacementCode.concurrentUpdate)
    }

    static func providerNotFound(_ uuid: String) -> NimbusError {
        .notFound("No resource provider with uuid \(uuid) found")
    }
}
