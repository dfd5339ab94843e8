import ArgumentParser
import Cloud
import Foundation
import Logging
import NimbusCore

/// `nimbus agent`: a compute host in its own process, driven by a control plane over HTTP.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run one compute host (hypervisor and network agent) for a control plane elsewhere.")

    @Option(help: "The control plane's URL, as `nimbus up` prints it (http://HOST:PORT).")
    var controlPlane: String

    @Option(help: "File holding the agent key (`nimbus up` writes STATE_DIR/agent.key).")
    var keyFile: String

    @Option(help: "This host's name in `compute service list` (default: the machine's hostname).")
    var host: String = ProcessInfo.processInfo.hostName

    @Option(help: "Availability zone of this host.")
    var zone: String = "nova"

    @Option(help: "Hypervisor driver: qemu or fake.")
    var driver: DriverKind = .qemu

    @Option(help: "Directory for guests, the image cache and network state.")
    var stateDir: String = "./.nimbus-agent"

    @Option(help: "Address for the control plane's calls to this agent, HOST:PORT.")
    var listen: ListenAddress = ListenAddress(argument: "127.0.0.1:5010")!

    @Option(help: "URL the control plane reaches this agent at (default: http://LISTEN).")
    var advertise: String?

    @OptionGroup var qemu: QEMUHostOptions

    @Option(help: "vCPUs / memory (MB) / disk (GB) the fake driver offers.")
    var fakeVcpus: Int = 16
    @Option var fakeRamMb: Int = 32768
    @Option var fakeDiskGb: Int = 400

    @Flag(help: "Wire this host's networks (bridges, taps, security groups, VXLAN to --tunnel-address peers).")
    var dataplane = false

    @Option(help: "This host's VXLAN underlay address.")
    var tunnelAddress: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        // glibc raises its mmap threshold after the first large free, so from then on the
        // agent's 1 MiB transfer buffers (image downloads, checksums) come from per-thread heaps
        // and stay there after use. A fixed threshold keeps them mmapped and returned on free.
        _ = GlibcExtras.mallopt?(GlibcExtras.mallocMmapThreshold, 128 << 10)
        _ = GlibcExtras.mallopt?(GlibcExtras.mallocArenaMax, 2)
        let logger = makeLogger(logLevel)
        let state = URL(fileURLWithPath: stateDir).standardizedFileURL
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var settings = AgentProcess.Configuration(controlPlane: controlPlane, key: try readAgentKey(keyFile), host: host, stateDirectory: state)
        settings.zone = zone
        settings.driver = driver
        settings.fake = .init(vcpus: fakeVcpus, memoryMB: fakeRamMb, diskGB: fakeDiskGb)
        settings.accelerator = qemu.accel
        settings.maxConcurrentSpawns = max(1, qemu.maxConcurrentSpawns)
        settings.shutdownTimeout = .seconds(max(0, qemu.shutdownTimeout))
        settings.listenHost = listen.host
        settings.listenPort = listen.port
        settings.advertisedURL = advertise
        settings.dataplane = dataplane
        settings.tunnelAddress = tunnelAddress
        let host = self.host, controlPlane = self.controlPlane
        try await AgentProcess(configuration: settings, logger: logger).run {
            announce("Nimbus agent for host \(host) is running (control plane \(controlPlane))")
        }
    }
}

/// The agent key from its file (trimmed); a missing or empty file is a clear error.
func readAgentKey(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path),
          let key = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty else {
        throw ValidationError("no agent key in \(path)")
    }
    return key
}
