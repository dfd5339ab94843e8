#ifndef NIMBUS_CONCURRENCY_HOOK_H
#define NIMBUS_CONCURRENCY_HOOK_H

/// The address of the Swift runtime's `swift_task_enqueueGlobal_hook`. NIO looks it up with
/// dlsym, which finds nothing in a statically linked binary (the toolchain links the runtime
/// with `--exclude-libs ALL`); a reference resolved by the linker finds it in both builds.
void *_Nullable *_Nonnull nimbus_swift_task_enqueue_global_hook(void);

#endif
