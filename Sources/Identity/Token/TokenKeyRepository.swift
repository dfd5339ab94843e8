@preconcurrency import Crypto
import Foundation
import NimbusCore

/// Symmetric keys for token encryption, one file per key under a directory (like Keystone's
/// fernet key repository): the highest index encrypts, every key still present decrypts, so
/// rotation never invalidates tokens issued under the previous key.
public struct TokenKeyRepository: Sendable {
    public let directory: URL
    /// Keys kept after a rotation; tokens live 1 h by default, so three is plenty.
    public let keep: Int

    public init(directory: URL, keep: Int = 3) {
        self.directory = directory
        self.keep = keep
    }

    /// Loads every key, creating the first one if the directory is empty.
    public func load() throws -> TokenKeys {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        var keys = try readKeys()
        if keys.isEmpty {
            try write(index: 0)
            keys = try readKeys()
        }
        return TokenKeys(keys: keys)
    }

    /// Adds a new primary key and drops the oldest beyond `keep`. - Returns: the new primary index.
    @discardableResult
    public func rotate() throws -> UInt32 {
        let existing = try readKeys()
        let next = (existing.keys.max() ?? 0) + (existing.isEmpty ? 0 : 1)
        try write(index: next)
        for old in existing.keys.sorted().dropLast(max(keep - 1, 0)) {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(String(old)))
        }
        return next
    }

    private func readKeys() throws -> [UInt32: SymmetricKey] {
        var keys: [UInt32: SymmetricKey] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            guard let index = UInt32(name) else { continue }
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw NimbusError.internal("token key \(name) in \(directory.path) is not 32 bytes of base64")
            }
            keys[index] = SymmetricKey(data: data)
        }
        return keys
    }

    /// Written to a temp file and renamed, so a crash never leaves a half-written key.
    private func write(index: UInt32) throws {
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let final = directory.appendingPathComponent(String(index))
        let temporary = directory.appendingPathComponent(".\(index).tmp")
        FileManager.default.createFile(atPath: temporary.path, contents: Data(key.base64EncodedString().utf8),
                                       attributes: [.posixPermissions: 0o600])
        guard rename(temporary.path, final.path) == 0 else {
            throw NimbusError.internal("cannot write token key \(final.path): errno \(errno)")
        }
    }
}

/// The loaded key set: seal with the primary, open with whichever key the token names.
public struct TokenKeys: Sendable {
    let keys: [UInt32: SymmetricKey]
    let primary: UInt32

    init(keys: [UInt32: SymmetricKey]) {
        self.keys = keys
        self.primary = keys.keys.max() ?? 0
    }

    public var indices: [UInt32] { keys.keys.sorted() }

    /// `version(1) | key index(4, big-endian) | AES-GCM nonce+ciphertext+tag`, base64url without padding.
    func seal(_ plaintext: Data) throws -> String {
        let box = try AES.GCM.seal(plaintext, using: keys[primary]!)
        var out = Data([1])
        withUnsafeBytes(of: primary.bigEndian) { out.append(contentsOf: $0) }
        out.append(box.combined!)
        return out.base64URLEncoded()
    }

    /// - Returns: nil for anything not sealed by one of our keys (tampered, truncated, foreign).
    func open(_ token: String) -> Data? {
        guard let raw = Data(base64URLEncoded: token), raw.count > 5 + 28, raw.first == 1 else { return nil }
        let index = raw.dropFirst().prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard let key = keys[index], let box = try? AES.GCM.SealedBox(combined: raw.dropFirst(5)) else { return nil }
        return try? AES.GCM.open(box, using: key)
    }
}

/// base64url without padding, mapped byte by byte: every token validation decodes one, and
/// Foundation's string replacing was most of a validation's cost.
extension Data {
    func base64URLEncoded() -> String {
        var bytes = [UInt8](base64EncodedData())
        while bytes.last == UInt8(ascii: "=") { bytes.removeLast() }
        for index in bytes.indices {
            if bytes[index] == UInt8(ascii: "+") { bytes[index] = UInt8(ascii: "-") }
            else if bytes[index] == UInt8(ascii: "/") { bytes[index] = UInt8(ascii: "_") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    init?(base64URLEncoded text: String) {
        var bytes = Array(text.utf8)
        for index in bytes.indices {
            if bytes[index] == UInt8(ascii: "-") { bytes[index] = UInt8(ascii: "+") }
            else if bytes[index] == UInt8(ascii: "_") { bytes[index] = UInt8(ascii: "/") }
        }
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "="), count: (4 - bytes.count % 4) % 4))
        self.init(base64Encoded: Data(bytes))
    }
}
