/// Reads a disk image as it streams past and tells what it really is.
///
/// Clouds were attacked with images that claim one format and are another (a "raw" image that is
/// really a qcow2 pointing at a host file as its backing file). Glance now inspects every upload;
/// so does Nimbus: the claimed `disk_format` must match the content, and formats that can
/// reference other files (qcow2 backing/data files, vmdk extents) are refused when they do.
public struct DiskFormatInspector: Sendable {
    /// Enough for every header we read, the ISO-9660 volume descriptor at 32 KiB included.
    static let headLength = 64 * 1024

    private var head: [UInt8] = []
    private var tail: [UInt8] = []
    public private(set) var totalBytes: Int64 = 0

    public init() {}

    public struct Result: Sendable, Equatable {
        /// `raw`, `qcow2`, `vmdk`, `vhd`, `vhdx`, `vdi` or `iso`.
        public var format: String
        public var virtualSize: Int64?
        /// Why the image must not be used, when it references files outside itself.
        public var unsafeReason: String?
    }

    public mutating func feed(_ bytes: some Collection<UInt8>) {
        totalBytes += Int64(bytes.count)
        if head.count < Self.headLength {
            head.append(contentsOf: bytes.prefix(Self.headLength - head.count))
        }
        // The last 512 bytes: a fixed VHD keeps its footer there.
        tail.append(contentsOf: bytes.suffix(512))
        if tail.count > 512 { tail.removeFirst(tail.count - 512) }
    }

    public func result() -> Result {
        if head.starts(with: Array("QFI\u{fb}".unicodeScalars.map { UInt8($0.value) })) { return qcow2() }
        if head.starts(with: Array("vhdxfile".utf8)) { return Result(format: "vhdx", virtualSize: nil) }
        if head.starts(with: Array("KDMV".utf8)) { return vmdk() }
        if head.starts(with: Array("# Disk DescriptorFile".utf8)) {
            return Result(format: "vmdk", virtualSize: nil, unsafeReason: "a VMDK descriptor file references extents in other files")
        }
        if head.starts(with: Array("conectix".utf8)) { return vhd(footer: Array(head.prefix(512))) }
        if tail.count == 512, tail.starts(with: Array("conectix".utf8)) { return vhd(footer: tail) }
        if head.count >= 68, le32(64) == 0xbeda_107f { return Result(format: "vdi", virtualSize: head.count >= 376 ? Int64(bitPattern: le64(368)) : nil) }
        if head.count > 32_774, Array(head[32_769..<32_774]) == Array("CD001".utf8) { return iso() }
        return Result(format: "raw", virtualSize: totalBytes)
    }

    /// Whether content detected as `detected` may be stored under the claimed `disk_format`.
    public static func matches(claimed: String, detected: String) -> Bool {
        switch claimed {
        case "raw": detected == "raw" || detected == "iso"
        case "ami", "ari", "aki": detected == "raw"
        default: claimed == detected
        }
    }

    // MARK: - Formats

    private func qcow2() -> Result {
        guard head.count >= 104 else { return Result(format: "qcow2", virtualSize: nil, unsafeReason: "truncated qcow2 header") }
        let version = be32(4)
        let size = Int64(bitPattern: be64(24))
        if be64(8) != 0 { return Result(format: "qcow2", virtualSize: size, unsafeReason: "qcow2 images with a backing file are not allowed") }
        var extensionsStart = 72
        if version >= 3 {
            if be64(72) & 0x4 != 0 {
                return Result(format: "qcow2", virtualSize: size, unsafeReason: "qcow2 images with an external data file are not allowed")
            }
            extensionsStart = Int(be32(100))
        }
        var offset = extensionsStart
        while offset + 8 <= head.count {
            let type = be32(offset)
            let length = Int(be32(offset + 4))
            if type == 0 { break }
            if type == 0x4441_5441 {
                return Result(format: "qcow2", virtualSize: size, unsafeReason: "qcow2 images with an external data file are not allowed")
            }
            offset += 8 + (length + 7) / 8 * 8
        }
        return Result(format: "qcow2", virtualSize: size)
    }

    private func vmdk() -> Result {
        guard head.count >= 44 else { return Result(format: "vmdk", virtualSize: nil, unsafeReason: "truncated vmdk header") }
        let capacity = Int64(bitPattern: le64(12)) * 512
        let descriptorStart = Int(le64(28)) * 512
        let descriptorLength = Int(le64(36)) * 512
        guard descriptorStart > 0, descriptorStart + min(descriptorLength, 4096) <= head.count else {
            return Result(format: "vmdk", virtualSize: capacity)
        }
        let descriptor = String(decoding: head[descriptorStart..<(descriptorStart + min(descriptorLength, 4096))], as: UTF8.self)
        let allowed = ["createType=\"monolithicSparse\"", "createType=\"streamOptimized\""]
        if !allowed.contains(where: descriptor.contains) {
            return Result(format: "vmdk", virtualSize: capacity, unsafeReason: "only monolithicSparse and streamOptimized VMDK images are allowed")
        }
        return Result(format: "vmdk", virtualSize: capacity)
    }

    private func vhd(footer: [UInt8]) -> Result {
        guard footer.count >= 56 else { return Result(format: "vhd", virtualSize: nil) }
        let size = footer[48..<56].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Result(format: "vhd", virtualSize: Int64(bitPattern: size))
    }

    private func iso() -> Result {
        let blocks = Int64(le32(32_768 + 80))
        let blockSize = Int64(UInt16(head[32_768 + 128]) | UInt16(head[32_768 + 129]) << 8)
        return Result(format: "iso", virtualSize: blocks * blockSize)
    }

    // MARK: - Integers

    private func be32(_ offset: Int) -> UInt32 { head[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) } }
    private func be64(_ offset: Int) -> UInt64 { head[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) } }
    private func le32(_ offset: Int) -> UInt32 { head[offset..<offset + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    private func le64(_ offset: Int) -> UInt64 { head[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
}
