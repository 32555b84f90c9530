import ServiceLifecycle

#if canImport(CMalloc)
    import CMalloc
#endif

/// Hands freed heap memory back to the operating system every few seconds.
///
/// glibc keeps memory freed after a burst (a large ingest batch, many connections at once) in its
/// arenas, so the resident size only ever grows to the peak. `malloc_trim(0)` returns the free
/// pages of every arena; it takes well under a millisecond when there is little to return.
struct MemoryTrimService: Service {
    var interval: Duration = .seconds(5)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                #if canImport(CMalloc)
                    _ = malloc_trim(0)
                #endif
            }
        }
    }
}
