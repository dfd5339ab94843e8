#if canImport(Glibc)
import Glibc
#endif

/// glibc functions the Swift Glibc module does not export (their headers are not in its module
/// map), looked up once by name.
public enum GlibcExtras {
    /// fallocate(2).
    public static let fallocate = function("fallocate", as: (@convention(c) (Int32, Int32, off_t, off_t) -> Int32).self)
    public static let fallocateCollapseRange: Int32 = 0x08

    /// sync_file_range(2), and its flag that starts writeback without waiting for it.
    public static let syncFileRange = function("sync_file_range", as: (@convention(c) (Int32, off_t, off_t, UInt32) -> Int32).self)
    public static let syncFileRangeWrite: UInt32 = 2

    /// O_DIRECT (architecture-specific; nil where Nimbus does not know its value).
    #if arch(x86_64)
    public static let openDirect: Int32? = 0o40000
    #elseif arch(arm64)
    public static let openDirect: Int32? = 0o200000
    #else
    public static let openDirect: Int32? = nil
    #endif

    /// mallopt(3), and the parameters of it that Nimbus sets (values from malloc.h).
    public static let mallopt = function("mallopt", as: (@convention(c) (Int32, Int32) -> Int32).self)
    public static let mallocMmapThreshold: Int32 = -3
    public static let mallocArenaMax: Int32 = -8

    /// posix_spawn_file_actions_addchdir_np(3) and POSIX_SPAWN_SETSID (glibc 2.29 and 2.26).
    public static let spawnAddChdir = function(
        "posix_spawn_file_actions_addchdir_np",
        as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32).self)
    public static let spawnSetSID: Int32 = 0x80
    /// posix_spawn_file_actions_addclosefrom_np(3) (glibc 2.34).
    public static let spawnAddCloseFrom = function(
        "posix_spawn_file_actions_addclosefrom_np",
        as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)

    static func function<F>(_ name: String, as type: F.Type) -> F? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: type)
    }
}
