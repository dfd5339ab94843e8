// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "nimbus",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "nimbus", targets: ["NimbusCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // Already in the build through swift-nio-ssl; Compute makes Nova's x509 keypairs with it.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        .target(name: "NimbusCore", dependencies: [
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        .target(name: "CSQLiteTuning"),
        .target(name: "CConcurrencyHook"),
        .target(name: "Store", dependencies: [
            "NimbusCore", "CSQLiteTuning",
            .product(name: "SQLKit", package: "sql-kit"),
            .product(name: "SQLiteKit", package: "sqlite-kit"),
            .product(name: "PostgresKit", package: "postgres-kit"),
        ], swiftSettings: swiftSettings),
        .target(name: "Gateway", dependencies: [
            "NimbusCore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
        ], swiftSettings: swiftSettings),
        .target(name: "Identity", dependencies: [
            "NimbusCore", "Store", "Gateway",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .target(name: "Image", dependencies: [
            "NimbusCore", "Store", "Gateway",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ], swiftSettings: swiftSettings),
        .target(name: "GuestImage", dependencies: [
            "NimbusCore",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        .target(name: "Placement", dependencies: [
            "NimbusCore", "Store", "Gateway",
            .product(name: "Hummingbird", package: "hummingbird"),
        ], swiftSettings: swiftSettings),
        .target(name: "Scheduler", swiftSettings: swiftSettings),
        .target(name: "Hypervisor", dependencies: [
            "NimbusCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        .target(name: "Dataplane", dependencies: [
            "NimbusCore",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        // Not "Network": swift-nio-transport-services tests `canImport(Network)` for Apple's
        // framework, and a module of that name in the build makes it fail to compile on Linux.
        .target(name: "NimbusNetwork", dependencies: [
            "NimbusCore", "Store", "Gateway", "Dataplane",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "SQLKit", package: "sql-kit"),
        ], path: "Sources/Network", swiftSettings: swiftSettings),
        .target(name: "Agent", dependencies: [
            "Hypervisor", "Dataplane",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        .target(name: "Compute", dependencies: [
            "NimbusCore", "Store", "Gateway", "Placement", "Scheduler", "Agent", "Hypervisor",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "SQLKit", package: "sql-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
            .product(name: "X509", package: "swift-certificates"),
        ], swiftSettings: swiftSettings),
        .target(name: "Cloud", dependencies: [
            "NimbusCore", "Store", "Gateway", "Identity", "Image", "Placement", "Compute", "Agent", "Hypervisor", "NimbusNetwork", "Dataplane",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "_NIOFileSystem", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ], swiftSettings: swiftSettings),
        .executableTarget(name: "NimbusCLI", dependencies: [
            "CConcurrencyHook", "Cloud", "NimbusCore", "Store", "Identity", "GuestImage", "Agent", "Hypervisor", "Dataplane",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ], swiftSettings: swiftSettings),
        .target(name: "NimbusTesting", dependencies: [
            "NimbusCore", "Store", "Cloud", "Gateway", "Placement",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ], swiftSettings: swiftSettings),
        .testTarget(name: "StoreTests", dependencies: ["Store", "NimbusCore", "NimbusTesting"], swiftSettings: swiftSettings),
        .testTarget(name: "IdentityTests", dependencies: ["Identity", "NimbusCore", "NimbusTesting"], swiftSettings: swiftSettings),
        .testTarget(name: "GuestImageTests", dependencies: ["GuestImage"], swiftSettings: swiftSettings),
        .testTarget(name: "NimbusCoreTests", dependencies: ["NimbusCore"], swiftSettings: swiftSettings),
        .testTarget(name: "ImageTests", dependencies: ["Image", "NimbusCore", .product(name: "Crypto", package: "swift-crypto"), .product(name: "NIOCore", package: "swift-nio")], swiftSettings: swiftSettings),
        .testTarget(name: "DataplaneTests", dependencies: ["Dataplane"], swiftSettings: swiftSettings),
        .testTarget(name: "NetworkTests", dependencies: ["NimbusNetwork", "Cloud", "Dataplane", "NimbusCore", "NimbusTesting", "Store"], swiftSettings: swiftSettings),
        .testTarget(name: "SchedulerTests", dependencies: ["Scheduler"], swiftSettings: swiftSettings),
        .testTarget(name: "ComputeKeyTests", dependencies: ["Compute"], swiftSettings: swiftSettings),
        .testTarget(name: "ComputeTests", dependencies: ["Compute", "Cloud", "NimbusCore", "NimbusTesting", "Scheduler", "Agent", "Hypervisor"], swiftSettings: swiftSettings),
        .testTarget(name: "GatewayTests", dependencies: [
            "Gateway", "NimbusCore", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: swiftSettings),
        .testTarget(name: "PlacementTests", dependencies: [
            "Placement", "NimbusCore", "NimbusTesting", "Store",
        ], swiftSettings: swiftSettings),
        .testTarget(name: "APITests", dependencies: [
            "Cloud", "Gateway", "NimbusCore", "NimbusTesting", "Store",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ], swiftSettings: swiftSettings),
    ]
)
