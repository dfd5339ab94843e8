import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// The MD5 or SHA-512 of a stream, fed from one task at a time (a class, so that a hashing task
/// can feed it while another task owns the upload).
///
/// SHA-512 bounds the speed of an upload. swift-crypto's BoringSSL has only an AVX code path for
/// it; the system's OpenSSL 3 (libcrypto.so.3, present on every Debian) has an AVX2 one that
/// hashes about twice as fast here. It is loaded with dlopen on first use so that processes that
/// never hash an upload (the agent) do not map it; without it, swift-crypto does the work.
final class DigestStream: @unchecked Sendable {
    enum Algorithm { case md5, sha512 }

    private let context: OpaquePointer?
    private var fallback: any HashFunction

    init(_ algorithm: Algorithm) {
        fallback = algorithm == .md5 ? Insecure.MD5() as any HashFunction : SHA512()
        if let library = OpenSSLDigests.shared, let context = library.newContext(),
           library.initialize(context, algorithm == .md5 ? library.md5() : library.sha512(), nil) == 1 {
            self.context = context
        } else {
            self.context = nil
        }
    }

    deinit {
        if let context { OpenSSLDigests.shared?.freeContext(context) }
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let context, let library = OpenSSLDigests.shared else {
            fallback.update(bufferPointer: bytes)
            return
        }
        _ = library.update(context, bytes.baseAddress, bytes.count)
    }

    /// The digest; the stream cannot be fed afterwards.
    func finalize() -> [UInt8] {
        guard let context, let library = OpenSSLDigests.shared else { return Array(fallback.finalize()) }
        var digest = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        _ = digest.withUnsafeMutableBufferPointer { library.finish(context, $0.baseAddress, &length) }
        return Array(digest.prefix(Int(length)))
    }
}

/// The few EVP functions of libcrypto.so.3 that `DigestStream` calls.
struct OpenSSLDigests: @unchecked Sendable {
    let newContext: @convention(c) () -> OpaquePointer?
    let freeContext: @convention(c) (OpaquePointer?) -> Void
    let md5: @convention(c) () -> OpaquePointer?
    let sha512: @convention(c) () -> OpaquePointer?
    let initialize: @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?) -> Int32
    let update: @convention(c) (OpaquePointer?, UnsafeRawPointer?, Int) -> Int32
    let finish: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt32>?) -> Int32

    static let shared: OpenSSLDigests? = {
        guard let handle = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL) else { return nil }
        func symbol<F>(_ name: String, _ type: F.Type) -> F? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        guard let newContext = symbol("EVP_MD_CTX_new", (@convention(c) () -> OpaquePointer?).self),
              let freeContext = symbol("EVP_MD_CTX_free", (@convention(c) (OpaquePointer?) -> Void).self),
              let md5 = symbol("EVP_md5", (@convention(c) () -> OpaquePointer?).self),
              let sha512 = symbol("EVP_sha512", (@convention(c) () -> OpaquePointer?).self),
              let initialize = symbol("EVP_DigestInit_ex", (@convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?) -> Int32).self),
              let update = symbol("EVP_DigestUpdate", (@convention(c) (OpaquePointer?, UnsafeRawPointer?, Int) -> Int32).self),
              let finish = symbol("EVP_DigestFinal_ex",
                                  (@convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt32>?) -> Int32).self)
        else { return nil }
        return OpenSSLDigests(newContext: newContext, freeContext: freeContext, md5: md5, sha512: sha512,
                              initialize: initialize, update: update, finish: finish)
    }()
}
