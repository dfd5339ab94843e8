import Foundation
import Logging
import NimbusCore
import NimbusTesting
import Placement
import Store
import Testing
@testable import Compute

/// Replicas of the control plane on one PostgreSQL database: a host's agent long-polling one
/// replica wakes when another replica gives that host work, not at the end of its poll.
@Suite struct ReplicaWakeTests {
    struct NoImages: ImageLookup {
        func image(_ id: String, caller: AuthContext) async throws -> ImageFacts? { nil }
        func createSnapshotImage(name: String, diskFormat: String, properties: [String: String], minDiskGB: Int64,
                                 minRAMMB: Int64, caller: AuthContext) async throws -> String { "" }
        func uploadImage(_ id: String, file: URL, diskFormat: String) async throws {}
        func discardImage(_ id: String) async {}
        func images(limit: Int?, marker: String?, caller: AuthContext) async throws -> [ImageFacts] { [] }
        func deleteImage(_ id: String, caller: AuthContext) async throws {}
    }

    @Test(arguments: TestDatabase.engines.filter { $0 == .postgres })
    func wakeThroughAnotherReplica(engine: DatabaseEngine) async throws {
        try await TestDatabase.with(engine, migrations: PlacementSchema.migrations + ComputeSchema.migrations) { database in
            var logger = Logger(label: "test")
            logger.logLevel = .warning
            func replica() -> ComputeService {
                ComputeService(database: database, placement: PlacementService(database: database, logger: logger), images: NoImages(),
                               configuration: ComputeConfiguration(publicURL: "http://x"), logger: logger)
            }
            let polled = replica(), other = replica()
            let started = ContinuousClock.now
            async let work = polled.work(host: "h1", wait: .seconds(60))
            // The listening connection opens in the background; give it a moment.
            try await Task.sleep(for: .seconds(2))
            // As the other replica's API does: announced in the transaction that gives h1 work.
            try await database.transaction { db in try await other.announceWake("h1", on: db) }
            other.wakeHost("h1")
            _ = try await work
            #expect(ContinuousClock.now - started < .seconds(30), "woken by the other replica, not by the end of the poll")
        }
    }
}
