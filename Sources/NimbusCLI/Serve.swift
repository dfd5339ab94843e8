import ArgumentParser
import Cloud
import Foundation
import Logging
import NimbusCore
import Identity
import Store

/// `nimbus serve`: one control-plane replica on a shared (PostgreSQL) database.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a control-plane replica from a config file.")

    @Option(help: "Config file (TOML: database, listen, public_url, key_dir, bcrypt_cost, log_level, agent_key_file).")
    var config: String

    func run() async throws {
        let settings = try ConfigFile.load(config)
        guard let database = settings["database"] else { throw ValidationError("\(config): 'database' is required") }
        guard let listen = ListenAddress(argument: settings["listen"] ?? "127.0.0.1:5000") else {
            throw ValidationError("\(config): 'listen' must be HOST:PORT")
        }
        let logger = makeLogger(settings["log_level"].flatMap(Logger.Level.init(rawValue:)) ?? .info)
        var configuration = CloudConfiguration(
            databaseURL: database, host: listen.host, port: listen.port, publicURL: settings["public_url"],
            keyDirectory: URL(fileURLWithPath: settings["key_dir"] ?? "/var/lib/nimbus/token-keys"),
            imageDirectory: URL(fileURLWithPath: settings["image_dir"] ?? "/var/lib/nimbus/images"),
            bcryptCost: settings["bcrypt_cost"].flatMap(UInt8.init) ?? 12)
        // A control-plane replica runs hosts only when asked (`fake_hosts = N`), for tests on PostgreSQL.
        if let count = settings["fake_hosts"].flatMap(Int.init), count > 0 {
            var hosts = LocalHosts()
            hosts.count = count
            configuration.localHosts = hosts
        } else {
            configuration.localHosts = nil
        }
        if let keyFile = settings["agent_key_file"] {
            configuration.agentKey = try readAgentKey(keyFile)
        }
        let cloud = try await Cloud(configuration: configuration, logger: logger)
        let result = try await cloud.bootstrap(passwords: settings["admin_password"].map { ["admin": $0] } ?? [:])
        for (user, password) in result.createdPasswords.sorted(by: { $0.key < $1.key }) {
            announce("created user \(user) with password \(password)")
        }
        let publicURL = configuration.publicURL
        try await cloud.run {
            announce("Nimbus is ready at \(publicURL) (database \(Database.redacted(database)))")
        }
    }
}

/// `nimbus db migrate`.
struct DB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "db", abstract: "Database maintenance.", subcommands: [Migrate.self])

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply pending schema migrations.")

        @Option(help: "sqlite:PATH or postgres://user:password@host:port/db")
        var database: String

        func run() async throws {
            let logger = makeLogger(.warning)
            let db = try Database.open(url: database, logger: logger)
            let applied = try await Migrator(database: db).migrate(Cloud.migrations())
            print(applied.isEmpty ? "schema is up to date" : "applied: " + applied.joined(separator: ", "))
            await db.shutdown()
        }
    }
}

/// `nimbus token-keys rotate`.
struct TokenKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "token-keys", abstract: "Token key management.", subcommands: [Rotate.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a new primary token key; old tokens stay valid.")

        @Option(help: "Key directory (for `nimbus up`: STATE_DIR/token-keys).")
        var keyDir: String

        func run() throws {
            let index = try TokenKeyRepository(directory: URL(fileURLWithPath: keyDir)).rotate()
            print("primary token key is now \(index)")
        }
    }
}
