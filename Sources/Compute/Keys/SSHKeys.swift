import Crypto
import Foundation

/// Why a public key was refused; the message is meant for the API error body.
public enum SSHKeyError: Error, Equatable {
    case invalid(String)
}

/// An OpenSSH public key as accepted by the os-keypairs API.
public struct SSHPublicKey: Sendable, Equatable {
    public let type: String
    public let blob: [UInt8]
    public let comment: String?

    /// Nova's fingerprint: MD5 of the blob as colon-separated lowercase hex ("aa:bb:...").
    public var fingerprint: String {
        Insecure.MD5.hash(data: blob)
            .map { byte in
                let hex = String(byte, radix: 16)
                return byte < 0x10 ? "0" + hex : hex
            }
            .joined(separator: ":")
    }

    /// The normalised "type base64 [comment]" text.
    public var openSSH: String {
        let head = type + " " + Data(blob).base64EncodedString()
        guard let comment else { return head }
        return head + " " + comment
    }

    /// Parses one OpenSSH public key line ("type base64 [comment]"), trimming whitespace.
    /// Throws SSHKeyError.invalid(message) unless the type is supported AND the blob's wire structure is valid:
    /// ssh-rsa: string "ssh-rsa", mpint e, mpint n (n at least 1024 bits); ssh-ed25519: string type, string of exactly 32 bytes;
    /// ecdsa: string type, string curve name matching the type, string point of the right size starting 0x04. No trailing bytes.
    /// The type in the text must equal the type inside the blob.
    public static func parse(_ text: String) throws -> SSHPublicKey {
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !line.isEmpty else { throw SSHKeyError.invalid("public key is empty") }
        // A key pair holds exactly one key; a second line would be silently dropped otherwise.
        guard !line.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }) else {
            throw SSHKeyError.invalid("public key must be a single line")
        }

        // Split off at most two fields; whatever follows is the comment, spaces included.
        var rest = Substring(line)
        func nextField() -> Substring {
            let field = rest.prefix(while: { $0 != " " && $0 != "\t" })
            rest = rest[field.endIndex...].drop(while: { $0 == " " || $0 == "\t" })
            return field
        }
        let type = String(nextField())
        let encoded = nextField()
        let comment = rest.isEmpty ? nil : String(rest)

        guard let kind = KeyKind(rawValue: type) else {
            throw SSHKeyError.invalid("unsupported key type '\(type.prefix(64))'")
        }
        guard !encoded.isEmpty else { throw SSHKeyError.invalid("public key data is missing") }
        guard let data = Data(base64Encoded: String(encoded)), !data.isEmpty else {
            throw SSHKeyError.invalid("public key data is not valid base64")
        }
        let blob = [UInt8](data)
        try kind.validate(blob)
        return SSHPublicKey(type: type, blob: blob, comment: comment)
    }
}

extension SSHPublicKey {
    /// The key algorithms Nova accepts; certificates and DSA are deliberately absent.
    fileprivate enum KeyKind: String {
        case rsa = "ssh-rsa"
        case ed25519 = "ssh-ed25519"
        case p256 = "ecdsa-sha2-nistp256"
        case p384 = "ecdsa-sha2-nistp384"
        case p521 = "ecdsa-sha2-nistp521"

        /// Smallest modulus OpenSSH itself still accepts.
        static let minimumRSABits = 1024
        /// OpenSSH's own ceiling; bigger moduli are refused rather than risking huge allocations later.
        static let maximumRSABits = 16384

        func validate(_ blob: [UInt8]) throws {
            var reader = WireReader(blob)
            let inner = try reader.readString()
            guard inner.elementsEqual(rawValue.utf8) else {
                throw SSHKeyError.invalid("key type '\(rawValue)' does not match the encoded key")
            }
            switch self {
            case .rsa:
                let exponent = try reader.readPositiveMPInt(name: "RSA exponent")
                guard Self.bitLength(exponent) > 0 else {
                    throw SSHKeyError.invalid("RSA exponent is zero")
                }
                let modulus = try reader.readPositiveMPInt(name: "RSA modulus")
                let bits = Self.bitLength(modulus)
                guard bits >= Self.minimumRSABits else {
                    throw SSHKeyError.invalid("RSA key is too short (\(bits) bits, minimum \(Self.minimumRSABits))")
                }
                guard bits <= Self.maximumRSABits else {
                    throw SSHKeyError.invalid("RSA key is too long (\(bits) bits)")
                }
            case .ed25519:
                let point = try reader.readString()
                guard point.count == 32 else {
                    throw SSHKeyError.invalid("Ed25519 public key must be 32 bytes")
                }
            case .p256, .p384, .p521:
                let (curve, pointSize) = curveParameters
                let name = try reader.readString()
                guard name.elementsEqual(curve.utf8) else {
                    throw SSHKeyError.invalid("ECDSA curve does not match key type '\(rawValue)'")
                }
                let point = try reader.readString()
                guard point.count == pointSize, point.first == 0x04 else {
                    throw SSHKeyError.invalid("ECDSA public point is malformed")
                }
                // Right size is not enough: make sure the point really lies on the curve.
                guard isOnCurve(point) else {
                    throw SSHKeyError.invalid("ECDSA public point is not on the curve")
                }
            }
            guard reader.isAtEnd else {
                throw SSHKeyError.invalid("public key data has trailing bytes")
            }
        }

        /// Curve name inside the blob and the size of an uncompressed point (0x04 || X || Y).
        private var curveParameters: (String, Int) {
            switch self {
            case .p384: ("nistp384", 97)
            case .p521: ("nistp521", 133)
            default: ("nistp256", 65)
            }
        }

        private func isOnCurve(_ point: ArraySlice<UInt8>) -> Bool {
            switch self {
            case .p256: (try? P256.Signing.PublicKey(x963Representation: point)) != nil
            case .p384: (try? P384.Signing.PublicKey(x963Representation: point)) != nil
            case .p521: (try? P521.Signing.PublicKey(x963Representation: point)) != nil
            default: false
            }
        }

        /// Significant bits of a big-endian unsigned integer.
        private static func bitLength(_ value: ArraySlice<UInt8>) -> Int {
            guard let first = value.firstIndex(where: { $0 != 0 }) else { return 0 }
            let leading = value[first]
            return (value.endIndex - first - 1) * 8 + (8 - leading.leadingZeroBitCount)
        }
    }

    /// Bounds-checked reader for the SSH wire encoding (RFC 4251 §5).
    fileprivate struct WireReader {
        private let bytes: [UInt8]
        private var offset = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var isAtEnd: Bool { offset == bytes.count }

        mutating func readString() throws -> ArraySlice<UInt8> {
            guard bytes.count - offset >= 4 else {
                throw SSHKeyError.invalid("public key data is truncated")
            }
            let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            offset += 4
            guard length <= bytes.count - offset else {
                throw SSHKeyError.invalid("public key data is truncated")
            }
            defer { offset += length }
            return bytes[offset..<offset + length]
        }

        /// mpints are two's complement; a set top bit would mean a negative number, which no key uses.
        mutating func readPositiveMPInt(name: String) throws -> ArraySlice<UInt8> {
            let value = try readString()
            guard let first = value.first else {
                throw SSHKeyError.invalid("\(name) is empty")
            }
            guard first & 0x80 == 0 else {
                throw SSHKeyError.invalid("\(name) is negative")
            }
            return value
        }
    }

    /// Builder for the same wire encoding, used when emitting generated keys.
    fileprivate struct WireWriter {
        private(set) var bytes: [UInt8] = []

        mutating func appendUInt32(_ value: UInt32) {
            bytes += [UInt8(value >> 24 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
        }

        mutating func appendString<C: Collection>(_ value: C) where C.Element == UInt8 {
            appendUInt32(UInt32(value.count))
            bytes += value
        }

        mutating func appendString(_ value: String) {
            appendString(Array(value.utf8))
        }

        mutating func appendRaw(_ value: [UInt8]) {
            bytes += value
        }
    }
}

/// Server-side key pair generation for os-keypairs POST without a public_key.
public enum SSHKeyGenerator {
    /// A new Ed25519 key pair: public key as an OpenSSH line ("ssh-ed25519 AAAA... comment") and the private key
    /// in OpenSSH's "-----BEGIN OPENSSH PRIVATE KEY-----" format (unencrypted: cipher "none", kdf "none"),
    /// which `ssh-keygen -y -f FILE` accepts and turns back into the same public key.
    public static func ed25519(comment: String) -> (publicKey: String, privateKey: String) {
        let key = Curve25519.Signing.PrivateKey()
        return encode(seed: [UInt8](key.rawRepresentation),
                      publicKey: [UInt8](key.publicKey.rawRepresentation),
                      comment: comment)
    }

    /// Split from `ed25519(comment:)` so the encoding is deterministic apart from the check integer.
    private static func encode(seed: [UInt8], publicKey: [UInt8], comment rawComment: String)
        -> (publicKey: String, privateKey: String) {
        // The comment ends up on a single text line, so control characters must not survive.
        let comment = String(String.UnicodeScalarView(rawComment.unicodeScalars.map {
            CharacterSet.controlCharacters.contains($0) ? " " : $0
        })).trimmingCharacters(in: .whitespaces)
        let keyType = "ssh-ed25519"

        var publicBlob = SSHPublicKey.WireWriter()
        publicBlob.appendString(keyType)
        publicBlob.appendString(publicKey)

        // Matching check integers let ssh-keygen detect a wrong passphrase; unencrypted keys still carry them.
        let check = UInt32.random(in: .min ... .max)
        var secret = SSHPublicKey.WireWriter()
        secret.appendUInt32(check)
        secret.appendUInt32(check)
        secret.appendString(keyType)
        secret.appendString(publicKey)
        secret.appendString(seed + publicKey)   // OpenSSH stores the 64-byte expanded form: seed || public
        secret.appendString(comment)
        // Pad to the cipher block size ("none" uses 8) with 1, 2, 3, ... as OpenSSH expects.
        var pad: UInt8 = 1
        while secret.bytes.count % 8 != 0 {
            secret.appendRaw([pad])
            pad += 1
        }

        var container = SSHPublicKey.WireWriter()
        container.appendRaw(Array("openssh-key-v1".utf8) + [0])
        container.appendString("none")          // cipher
        container.appendString("none")          // kdf
        container.appendString([UInt8]())       // kdf options
        container.appendUInt32(1)               // number of keys
        container.appendString(publicBlob.bytes)
        container.appendString(secret.bytes)

        // OpenSSH wraps the armoured body at 70 columns.
        let body = Data(container.bytes).base64EncodedString()
        var lines: [Substring] = []
        var start = body.startIndex
        while start < body.endIndex {
            let end = body.index(start, offsetBy: 70, limitedBy: body.endIndex) ?? body.endIndex
            lines.append(body[start..<end])
            start = end
        }
        let privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            + lines.joined(separator: "\n")
            + "\n-----END OPENSSH PRIVATE KEY-----\n"

        var publicLine = keyType + " " + Data(publicBlob.bytes).base64EncodedString()
        if !comment.isEmpty { publicLine += " " + comment }
        return (publicLine, privateKey)
    }
}
