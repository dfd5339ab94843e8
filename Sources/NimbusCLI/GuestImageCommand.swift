import ArgumentParser
import Foundation
import GuestImage
import Logging

/// `nimbus guest-image`: the tiny test guest that real-VM tests and demos boot.
struct GuestImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guest-image",
        abstract: "Build the tiny busybox test guest.",
        subcommands: [Build.self])

    /// `nimbus guest-image build [--out DIR]`.
    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build disk.qcow2, vmlinuz and initramfs.gz from Debian packages (needs root).")

        @Option(help: "Directory for the artifacts.")
        var out: String = "./.nimbus/guest"

        @Option(help: "Cache for the downloaded and unpacked kernel, and scratch space (default: OUT/.cache).")
        var workDir: String?

        @Option(help: "Kernel: 'default' (the one linux-image-cloud-amd64 depends on), 'newest', or a linux-image-*-cloud-amd64-unsigned package.")
        var kernel: KernelChoice = .distributionDefault

        @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: Logger.Level = .info

        func run() async throws {
            let logger = makeLogger(logLevel)
            let output = URL(fileURLWithPath: out).standardizedFileURL
            let work = workDir.map { URL(fileURLWithPath: $0).standardizedFileURL } ?? output.appendingPathComponent(".cache")
            let builder = GuestImageBuilder(workDirectory: work, kernel: kernel, logger: logger)
            let started = ContinuousClock.now
            let artifacts = try await builder.build(into: output)
            let elapsed = (ContinuousClock.now - started).formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1)))
            announce("""
            disk:    \(artifacts.disk.path)
            kernel:  \(artifacts.kernel.path)
            ramdisk: \(artifacts.ramdisk.path)
            kernel command line: \(artifacts.kernelCommandLine) (\(artifacts.kernelRelease))
            built in \(elapsed)
            """)
        }
    }
}

extension KernelChoice: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "default": self = .distributionDefault
        case "newest": self = .newest
        case let name where name.hasPrefix("linux-image-"): self = .package(name)
        default: return nil
        }
    }

    public var defaultValueDescription: String {
        switch self {
        case .distributionDefault: "default"
        case .newest: "newest"
        case .package(let name): name
        }
    }
}
