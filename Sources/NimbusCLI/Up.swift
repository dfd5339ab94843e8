import ArgumentParser
import Cloud
import Foundation
import Logging
import NimbusCore

extension DriverKind: ExpressibleByArgument {}

/// `nimbus up`: the whole cloud in one process on an embedded SQLite database.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start an all-in-one cloud (SQLite, every service, one listener).")

    @Option(help: "Directory for the database, token keys and clouds.yaml.")
    var stateDir: String = "./.nimbus"

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: ListenAddress = ListenAddress(argument: "127.0.0.1:5000")!

    @Option(help: "bcrypt cost for passwords (Keystone's default is 12).")
    var bcryptCost: UInt8 = 12

    @Option(help: "Directory of the test guest to register as images (default: STATE_DIR/guest).")
    var guestDir: String?

    @Option(help: "Images a project may own.")
    var imageQuotaCount: Int = 100

    @Option(help: "Bytes of image data a project may store.")
    var imageQuotaBytes: Int64 = 100 << 30

    @Option(help: "Hypervisor driver of the local compute host(s): qemu (real VMs; the default where QEMU is installed) or fake.")
    var driver: DriverKind?

    @OptionGroup var qemu: QEMUHostOptions

    @Option(help: "Fake compute hosts to run in this process (named fake-0, fake-1, ...).")
    var fakeHosts: Int = 1

    @Option(help: "vCPUs of each fake host.")
    var fakeVcpus: Int = 16

    @Option(help: "Memory (MB) of each fake host.")
    var fakeRamMb: Int = 32768

    @Option(help: "Disk (GB) of each fake host.")
    var fakeDiskGb: Int = 400

    @Option(help: "Latency (ms) the fake driver adds to every operation.")
    var fakeLatencyMs: Int = 0

    @Option(help: "Probability (0...1) that a fake build fails.")
    var fakeFailureRate: Double = 0

    @Option(help: "Comma-separated fake hosts whose builds always fail.")
    var fakeFailingHosts: String = ""

    @Option(help: "Builds of one server before it goes to ERROR.")
    var schedulerMaxAttempts: Int = 3

    @Option(help: "vCPUs allocated per host CPU (Nova's cpu_allocation_ratio).")
    var cpuAllocationRatio: Double = 4.0

    @Option(help: "Memory allocated per host MB (Nova's ram_allocation_ratio).")
    var ramAllocationRatio: Double = 1.0

    @Flag(help: "Pack servers onto the fewest hosts instead of spreading them.")
    var stackScheduling = false

    @Option(help: "Default per-project instance quota.")
    var quotaInstances: Int64 = 10

    @Option(help: "Seconds without a heartbeat after which a compute service is down.")
    var serviceDownTime: Double = 60

    @Option(help: "This host's VXLAN underlay address (needed once another host shares its networks).")
    var tunnelAddress: String?

    @Option(help: ArgumentHelp("Another QEMU host run by this process inside a network namespace, as NAME=NAMESPACE,TUNNEL_ADDRESS (repeatable).",
                               discussion: "Emulates a second hypervisor host on one machine: its guests, taps and bridges live in the namespace, its VXLAN tunnel goes over TUNNEL_ADDRESS."))
    var extraHost: [String] = []

    @Flag(help: "Leave the host's network alone: no bridges, taps, DHCP or routers (guests get NICs nobody wires).")
    var noDataplane = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        let logger = makeLogger(logLevel)
        let state = URL(fileURLWithPath: stateDir).standardizedFileURL
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var configuration = CloudConfiguration(
            databaseURL: "sqlite:" + state.appendingPathComponent("nimbus.db").path,
            host: listen.host, port: listen.port,
            keyDirectory: state.appendingPathComponent("token-keys"), imageDirectory: state.appendingPathComponent("images"),
            bcryptCost: bcryptCost)
        configuration.imageQuotaCount = imageQuotaCount
        configuration.imageQuotaBytes = imageQuotaBytes
        var hosts = LocalHosts()
        hosts.driver = driver ?? (FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64") ? .qemu : .fake)
        if driver == nil && hosts.driver == .fake { logger.notice("qemu-system-x86_64 not found: compute runs on the fake driver") }
        hosts.count = max(0, fakeHosts)
        hosts.fake = .init(vcpus: fakeVcpus, memoryMB: fakeRamMb, diskGB: fakeDiskGb, latency: .milliseconds(fakeLatencyMs),
                           failureRate: fakeFailureRate)
        hosts.failingHosts = Set(fakeFailingHosts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        hosts.heartbeatInterval = .seconds(max(1, min(10, serviceDownTime / 4)))
        hosts.qemuDirectory = state.appendingPathComponent("compute")
        hosts.accelerator = qemu.accel
        hosts.maxConcurrentSpawns = max(1, qemu.maxConcurrentSpawns)
        hosts.shutdownTimeout = .seconds(max(0, qemu.shutdownTimeout))
        hosts.dataplane = hosts.driver == .qemu && !noDataplane
        hosts.networkDirectory = state.appendingPathComponent("network")
        hosts.tunnelAddress = tunnelAddress
        for spec in extraHost {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            let rest = parts.count == 2 ? parts[1].split(separator: ",").map(String.init) : []
            guard parts.count == 2, rest.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--extra-host wants NAME=NAMESPACE,TUNNEL_ADDRESS, got \(spec)")
            }
            hosts.namespaceHosts.append(.init(name: parts[0], namespace: rest[0], tunnelAddress: rest[1]))
        }
        configuration.localHosts = hosts
        configuration.maxBuildAttempts = max(1, schedulerMaxAttempts)
        configuration.serviceDownTime = serviceDownTime
        configuration.stackScheduling = stackScheduling
        configuration.cpuAllocationRatio = cpuAllocationRatio
        configuration.ramAllocationRatio = ramAllocationRatio
        configuration.defaultQuotas["instances"] = quotaInstances
        let credentials = CredentialsFile(directory: state)
        configuration.agentKey = try credentials.agentKey()
        let cloud = try await Cloud(configuration: configuration, logger: logger)
        var passwords = try credentials.load()
        let result = try await cloud.bootstrap(passwords: passwords)
        passwords.merge(result.createdPasswords) { _, new in new }
        try credentials.save(passwords)
        let guest = guestDir.map { URL(fileURLWithPath: $0) } ?? state.appendingPathComponent("guest")
        let registered = try await cloud.registerTestGuest(from: guest)
        if registered.isEmpty {
            logger.notice("no test guest in \(guest.path): run `nimbus guest-image build --out \(guest.path)` to get image 'tiny'")
        }
        let clouds = try credentials.writeCloudsYAML(authURL: configuration.publicURL + "/identity", passwords: passwords)
        let adminPassword = passwords["admin"] ?? "?"
        let publicURL = configuration.publicURL
        try await cloud.run {
            announce("""
            Nimbus is ready at \(publicURL) (state in \(state.path))
              admin password: \(adminPassword)
              export OS_CLIENT_CONFIG_FILE=\(clouds.path)
              openstack --os-cloud nimbus token issue
            """)
        }
    }
}

/// The bootstrap users' passwords, kept beside the database (mode 0600) so a restart can write
/// clouds.yaml again without resetting them.
struct CredentialsFile {
    let directory: URL
    var file: URL { directory.appendingPathComponent("credentials.json") }

    func load() throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: file.path) else { return [:] }
        return try JSONDecoder().decode([String: String].self, from: data)
    }

    func save(_ passwords: [String: String]) throws {
        try writePrivate(try JSONEncoder().encode(passwords), to: file)
    }

    /// The key `nimbus agent` processes present (`agent.key`, made on first start).
    func agentKey() throws -> String {
        let file = directory.appendingPathComponent("agent.key")
        if let data = FileManager.default.contents(atPath: file.path),
           let key = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty {
            return key
        }
        // Two random UUIDs: 244 random bits from the system generator.
        let key = Identifier.hex() + Identifier.hex()
        try writePrivate(Data((key + "\n").utf8), to: file)
        return key
    }

    func writeCloudsYAML(authURL: String, passwords: [String: String]) throws -> URL {
        func cloud(_ name: String, user: String, project: String) -> String {
            """
              \(name):
                auth:
                  auth_url: \(authURL)
                  username: \(user)
                  password: "\(passwords[user] ?? "")"
                  project_name: \(project)
                  user_domain_name: Default
                  project_domain_name: Default
                region_name: RegionOne
                interface: public
                identity_api_version: 3

            """
        }
        let yaml = "clouds:\n" + cloud("nimbus", user: "admin", project: "admin") + cloud("nimbus-demo", user: "demo", project: "demo")
        let target = directory.appendingPathComponent("clouds.yaml")
        try writePrivate(Data(yaml.utf8), to: target)
        return target
    }

    /// Temp file + rename, mode 0600: never a half-written or world-readable secret.
    private func writePrivate(_ data: Data, to target: URL) throws {
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown)
        }
        guard rename(temporary.path, target.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}
