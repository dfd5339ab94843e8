import Foundation
import Image
import NimbusCore

extension Cloud {
    /// Registers the test guest built by `nimbus guest-image build` as public images, the way
    /// OpenStack clouds ship CirrOS: `tiny` (a bootable qcow2 disk), and the UEC-style trio
    /// `tiny-kernel` (aki), `tiny-ramdisk` (ari) and `tiny-uec` (ami, linked to both by
    /// `kernel_id`/`ramdisk_id`). Idempotent: images already active are kept.
    /// - Returns: the names registered, empty when the directory holds no guest.
    @discardableResult
    public func registerTestGuest(from directory: URL) async throws -> [String] {
        let disk = directory.appendingPathComponent("disk.qcow2")
        let kernel = directory.appendingPathComponent("vmlinuz")
        let ramdisk = directory.appendingPathComponent("initramfs.gz")
        let files = FileManager.default
        guard [disk, kernel, ramdisk].allSatisfy({ files.fileExists(atPath: $0.path) }) else { return [] }
        guard let owner = try await identity.projectID(named: "admin") else { return [] }
        _ = try await image.register(name: "tiny", file: disk, diskFormat: "qcow2", containerFormat: "bare", owner: owner,
                                     properties: ["os_distro": "nimbus-tiny", "hw_qemu_guest_agent": "no"])
        let kernelImage = try await image.register(name: "tiny-kernel", file: kernel, diskFormat: "aki", containerFormat: "aki", owner: owner)
        let ramdiskImage = try await image.register(name: "tiny-ramdisk", file: ramdisk, diskFormat: "ari", containerFormat: "ari", owner: owner)
        // The initramfs is the whole guest; the AMI's own disk is an empty raw root it may ignore.
        let root = directory.appendingPathComponent("uec-root.raw")
        if !files.fileExists(atPath: root.path) {
            guard files.createFile(atPath: root.path, contents: Data(count: 1 << 20)) else {
                throw NimbusError.internal("cannot write \(root.path)")
            }
        }
        _ = try await image.register(
            name: "tiny-uec", file: root, diskFormat: "ami", containerFormat: "ami", owner: owner,
            properties: ["kernel_id": kernelImage.string("id") ?? "", "ramdisk_id": ramdiskImage.string("id") ?? "", "os_distro": "nimbus-tiny"])
        return ["tiny", "tiny-kernel", "tiny-ramdisk", "tiny-uec"]
    }
}
