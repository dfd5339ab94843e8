import Foundation

/// What a driver needs to create one guest; the agent builds it from the instance's desired state.
public struct GuestSpec: Sendable, Equatable, Codable {
    public var uuid: String
    public var name: String
    public var hostname: String
    public var vcpus: Int
    public var memoryMB: Int
    public var rootGB: Int
    public var ephemeralGB: Int
    public var swapMB: Int
    public var imageID: String
    public var userData: String?
    public var metadata: [String: String]
    public var publicKeys: [String: String]
    public var extraSpecs: [String: String]
    public var projectID: String
    public var availabilityZone: String
    public var launchIndex: Int
    /// The image's properties (`kernel_id`/`ramdisk_id` boot a kernel directly).
    public var imageProperties: [String: String]
    /// One virtio NIC per port, on a tap the host's dataplane made.
    public var nics: [GuestNIC] = []

    public init(uuid: String, name: String, hostname: String, vcpus: Int, memoryMB: Int, rootGB: Int, ephemeralGB: Int = 0,
                swapMB: Int = 0, imageID: String, userData: String? = nil, metadata: [String: String] = [:],
                publicKeys: [String: String] = [:], extraSpecs: [String: String] = [:], projectID: String = "",
                availabilityZone: String = "nova", launchIndex: Int = 0, imageProperties: [String: String] = [:],
                nics: [GuestNIC] = []) {
        self.nics = nics
        self.uuid = uuid
        self.name = name
        self.hostname = hostname
        self.vcpus = vcpus
        self.memoryMB = memoryMB
        self.rootGB = rootGB
        self.ephemeralGB = ephemeralGB
        self.swapMB = swapMB
        self.imageID = imageID
        self.userData = userData
        self.metadata = metadata
        self.publicKeys = publicKeys
        self.extraSpecs = extraSpecs
        self.projectID = projectID
        self.availabilityZone = availabilityZone
        self.launchIndex = launchIndex
        self.imageProperties = imageProperties
    }
}

extension GuestSpec {
    /// Decodes every field by name; a spec saved before guests had NICs (`spec.json` of an older
    /// Nimbus) has none. The compiler checks that every other field is decoded.
    public init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: CodingKeys.self)
        uuid = try fields.decode(String.self, forKey: .uuid)
        name = try fields.decode(String.self, forKey: .name)
        hostname = try fields.decode(String.self, forKey: .hostname)
        vcpus = try fields.decode(Int.self, forKey: .vcpus)
        memoryMB = try fields.decode(Int.self, forKey: .memoryMB)
        rootGB = try fields.decode(Int.self, forKey: .rootGB)
        ephemeralGB = try fields.decode(Int.self, forKey: .ephemeralGB)
        swapMB = try fields.decode(Int.self, forKey: .swapMB)
        imageID = try fields.decode(String.self, forKey: .imageID)
        userData = try fields.decodeIfPresent(String.self, forKey: .userData)
        metadata = try fields.decode([String: String].self, forKey: .metadata)
        publicKeys = try fields.decode([String: String].self, forKey: .publicKeys)
        extraSpecs = try fields.decode([String: String].self, forKey: .extraSpecs)
        projectID = try fields.decode(String.self, forKey: .projectID)
        availabilityZone = try fields.decode(String.self, forKey: .availabilityZone)
        launchIndex = try fields.decode(Int.self, forKey: .launchIndex)
        imageProperties = try fields.decode([String: String].self, forKey: .imageProperties)
        nics = try fields.decodeIfPresent([GuestNIC].self, forKey: .nics) ?? []
    }
}

/// A guest's network interface: the port it stands for, its MAC, and the host tap it opens.
public struct GuestNIC: Sendable, Equatable, Codable {
    public var portID: String
    public var mac: String
    public var tap: String
    public var mtu: Int?
    public var networkID: String?

    public init(portID: String, mac: String, tap: String, mtu: Int? = nil, networkID: String? = nil) {
        self.networkID = networkID
        self.portID = portID
        self.mac = mac
        self.tap = tap
        self.mtu = mtu
    }
}

/// A guest's power as the hypervisor sees it; numbers are Nova's `power_state` values.
public enum GuestPower: Int, Sendable, Codable {
    case noState = 0
    case running = 1
    case paused = 3
    case shutdown = 4
    case crashed = 6
    case suspended = 7
}

/// What a host offers, reported as its resource provider's inventory and in `os-hypervisors`.
public struct HostFacts: Sendable, Equatable, Codable {
    public var vcpus: Int
    public var memoryMB: Int
    public var diskGB: Int
    public var hypervisorType: String
    public var hypervisorVersion: Int
    /// "kvm" or "tcg" for QEMU, "fake" for the fake driver.
    public var accelerator: String
    public var cpuInfo: String
    /// Kernel same-page merging counters (`run`, `pages_shared`, `pages_sharing`, ...), where known.
    public var ksm: [String: Int] = [:]

    public init(vcpus: Int, memoryMB: Int, diskGB: Int, hypervisorType: String, hypervisorVersion: Int = 1000,
                accelerator: String, cpuInfo: String = "{}") {
        self.vcpus = vcpus
        self.memoryMB = memoryMB
        self.diskGB = diskGB
        self.hypervisorType = hypervisorType
        self.hypervisorVersion = hypervisorVersion
        self.accelerator = accelerator
        self.cpuInfo = cpuInfo
    }
}

/// A driver's failure, with the message shown as the instance fault.
public struct HypervisorError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One hypervisor on one host, as nova-compute's virt driver: the agent calls it to converge
/// guests to their desired state. Every method is idempotent where the state allows (destroying
/// a missing guest succeeds, powering off a stopped one does nothing), because an agent that
/// restarts replays the operation it was in.
public protocol HypervisorDriver: Sendable {
    func hostFacts() async throws -> HostFacts
    /// Every guest this host runs, by instance uuid.
    func guests() async throws -> [String: GuestPower]
    func spawn(_ spec: GuestSpec) async throws
    func destroy(_ uuid: String) async throws
    func powerOff(_ uuid: String) async throws
    func powerOn(_ uuid: String) async throws
    func reboot(_ uuid: String, hard: Bool) async throws
    func pause(_ uuid: String) async throws
    func unpause(_ uuid: String) async throws
    func suspend(_ uuid: String) async throws
    func resume(_ uuid: String) async throws
    /// Gives a guest a new flavor (memory, CPUs, disk grow), keeping its data.
    func resize(_ spec: GuestSpec) async throws
    /// Recreates a guest from `spec` (possibly a new image), keeping its identity.
    func rebuild(_ spec: GuestSpec) async throws
    /// Writes a bootable copy of the guest's root disk to `file` (crash-consistent when it runs).
    /// - Returns: the copy's disk format (`qcow2`, `raw`).
    func snapshot(_ uuid: String, to file: URL) async throws -> String
    /// The last `lines` lines of the serial console (all when nil).
    func consoleOutput(_ uuid: String, lines: Int?) async throws -> String
    /// Plugs one more NIC into a running guest (its tap exists already). Idempotent.
    func attachInterface(_ uuid: String, nic: GuestNIC) async throws
    /// Unplugs a port's NIC from a running guest, once the guest has let it go. Idempotent.
    func detachInterface(_ uuid: String, portID: String) async throws
}
