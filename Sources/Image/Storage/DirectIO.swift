import NimbusCore
#if canImport(Glibc)
import Glibc
#endif

/// Opening image data past the page cache (`O_DIRECT`), where the filesystem allows it.
///
/// Image data is large and read rarely, and on a VM whose host takes back the memory its guest
/// frees, each new page-cache page costs a fault on the host: buffered writes of 1 GiB took
/// 0.3–1.5 s of system time here, direct ones 0.15–0.2 s. Direct transfers need their memory,
/// offsets and lengths aligned to `alignment`.
enum DirectIO {
    static let alignment = 4096

    /// Opens `path` with O_DIRECT added to `flags`, or without it where the filesystem refuses it
    /// (tmpfs before Linux 6.6, say) or `tryDirect` is false. Returns nil, with errno set, if it
    /// cannot open at all.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644,
                     tryDirect: Bool = true) -> (descriptor: Int32, direct: Bool)? {
        var plainFlags = flags
        if tryDirect, let direct = GlibcExtras.openDirect {
            let descriptor = Glibc.open(path, flags | direct, mode)
            if descriptor >= 0 { return (descriptor, true) }
            // A filesystem that refuses O_DIRECT may have created the file before refusing.
            if flags & O_CREAT != 0, flags & O_EXCL != 0 { plainFlags = (flags & ~O_EXCL) | O_TRUNC }
        }
        let descriptor = Glibc.open(path, plainFlags, mode)
        return descriptor >= 0 ? (descriptor, false) : nil
    }

    /// Later transfers on `descriptor` go through the page cache.
    static func stop(on descriptor: Int32) {
        guard let flag = GlibcExtras.openDirect else { return }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~flag)
    }

    /// `count` bytes of memory aligned for direct transfers; release with `free`.
    static func allocate(_ count: Int) -> UnsafeMutableRawBufferPointer? {
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, alignment, count) == 0, let memory else { return nil }
        return UnsafeMutableRawBufferPointer(start: memory, count: count)
    }
}
