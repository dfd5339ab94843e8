import Foundation
@testable import Image
import Testing

/// Inspection of real images made by qemu-img (installed by `make test`).
@Suite struct DiskFormatInspectorTests {
    static func scratch() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-inspect-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func qemuImg(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "qemu-img \(arguments.joined(separator: " "))")
    }

    /// Feeds the file in odd-sized chunks, as a network upload would arrive.
    static func inspect(_ url: URL) throws -> DiskFormatInspector.Result {
        let data = try Data(contentsOf: url)
        var inspector = DiskFormatInspector()
        var offset = 0
        while offset < data.count {
            let end = min(offset + 7_001, data.count)
            inspector.feed(data[offset..<end])
            offset = end
        }
        return inspector.result()
    }

    @Test(arguments: [("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vpc", "vhd"), ("vhdx", "vhdx"), ("vdi", "vdi"), ("raw", "raw")])
    func detectsFormatsQemuWrites(qemuFormat: String, expected: String) throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("disk")
        try Self.qemuImg(["create", "-q", "-f", qemuFormat, file.path, "16M"])
        let result = try Self.inspect(file)
        #expect(result.format == expected)
        #expect(result.unsafeReason == nil)
        if ["qcow2", "vmdk", "raw", "vdi"].contains(expected) {
            #expect(result.virtualSize == 16 << 20)
        }
    }

    @Test func qcow2WithBackingFileIsUnsafe() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let base = directory.appendingPathComponent("base.qcow2"), top = directory.appendingPathComponent("top.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", base.path, "16M"])
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-b", base.path, "-F", "qcow2", top.path])
        #expect(try Self.inspect(top).unsafeReason?.contains("backing file") == true)
    }

    @Test func qcow2WithExternalDataFileIsUnsafe() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("d.qcow2")
        try Self.qemuImg(["create", "-q", "-f", "qcow2", "-o", "data_file=\(directory.path)/data.raw", file.path, "16M"])
        #expect(try Self.inspect(file).unsafeReason?.contains("external data file") == true)
    }

    @Test func vmdkThatIsOnlyADescriptorIsUnsafe() throws {
        var inspector = DiskFormatInspector()
        inspector.feed(Array("# Disk DescriptorFile\nversion=1\nRW 2048 FLAT \"/etc/shadow\" 0\n".utf8))
        #expect(inspector.result().unsafeReason != nil)
    }

    @Test func claimedFormatMustMatchContent() {
        #expect(DiskFormatInspector.matches(claimed: "raw", detected: "raw"))
        #expect(DiskFormatInspector.matches(claimed: "raw", detected: "iso"))
        #expect(!DiskFormatInspector.matches(claimed: "raw", detected: "qcow2"))
        #expect(!DiskFormatInspector.matches(claimed: "qcow2", detected: "raw"))
        #expect(DiskFormatInspector.matches(claimed: "aki", detected: "raw"))
    }

    @Test func isoVolumeSizeIsRead() {
        var image = [UInt8](repeating: 0, count: 40_000)
        image.replaceSubrange(32_769..<32_774, with: Array("CD001".utf8))
        image[32_768 + 80] = 10           // 10 blocks, little-endian
        image[32_768 + 128] = 0x00        // block size 2048, little-endian
        image[32_768 + 129] = 0x08
        var inspector = DiskFormatInspector()
        inspector.feed(image)
        #expect(inspector.result() == .init(format: "iso", virtualSize: 20_480))
    }

    @Test func rangesAreParsedAndClamped() {
        #expect(ImageAPI.parseRange("bytes=0-9", size: 100) == 0...9)
        #expect(ImageAPI.parseRange("bytes=90-", size: 100) == 90...99)
        #expect(ImageAPI.parseRange("bytes=-5", size: 100) == 95...99)
        #expect(ImageAPI.parseRange("bytes=50-500", size: 100) == 50...99)
        #expect(ImageAPI.parseRange("bytes=200-300", size: 100) == nil)
        #expect(ImageAPI.parseRange("items=0-1", size: 100) == nil)
    }
}
