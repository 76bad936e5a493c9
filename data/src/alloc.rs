//! The allocator setting both binaries start with.
//!
//! glibc's malloc raises its mmap threshold (up to 32 MiB) each time a large
//! mapped block is freed, and from then on serves blocks below it from its
//! heap arenas, which keep freed memory: a fit that builds and drops many
//! buffers of a few MiB (per-block lists, per-thread scratch, inner fits)
//! then holds more resident memory than it uses. Pinning the threshold at
//! its default keeps every large block mapped on its own and unmapped when
//! freed (`bench/scale.sh` shows the peak). Elsewhere this is a no-op.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
}

/// Keeps glibc's mmap threshold at 128 KiB for the life of the process, so
/// blocks of that size or more are returned to the system when freed.
pub fn keep_large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: mallopt only changes a malloc parameter; any value is valid.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}
