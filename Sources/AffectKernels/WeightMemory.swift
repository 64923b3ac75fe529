import Foundation

/// Memory for weights repacked at load, in 2 MB pages where the system allows.
///
/// A transformer's weights do not fit in cache, so every pass streams them from memory. In 4 KB pages a
/// 48-column panel of a 768-input layer (147 KB) spans 36 pages: a page walk each, and the hardware
/// prefetchers stop at every page boundary. In 2 MB pages (`MADV_HUGEPAGE`; transparent huge pages
/// are often enabled for `madvise` only) roberta-base went from 94 to 90 ms at 128 tokens, its products from
/// 235 to 246 GFLOP/s.
///
/// Packed weights of 1 MB and more are carved one after another from 32 MB slabs (or one slab of their own
/// when larger), so they do not each round up to whole 2 MB pages. A slab is freed when the last tensor
/// carved from it goes away.
enum WeightMemory {
    static let hugePage = 2 << 20
    static let slabBytes = 32 << 20
    /// Smaller weights stay in ordinary allocations: they are read from cache.
    static let minimumBytes = 1 << 20

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current: Slab?

    /// Uninitialised storage for `shape`, 64-byte aligned.
    static func tensor(_ shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *), bytes = (count * 4 + 63) / 64 * 64
        guard bytes >= minimumBytes else { return Tensor(uninitialized: shape, arena: Arena()) }
        lock.lock(); defer { lock.unlock() }
        let slab: Slab
        if let c = current, c.capacity - c.used >= bytes {
            slab = c
        } else {
            slab = Slab(bytes: max(slabBytes, bytes))
            if bytes < slabBytes { current = slab }
        }
        let pointer = (slab.base + slab.used).bindMemory(to: Float.self, capacity: count)
        slab.used += bytes
        return Tensor(storage: TensorStorage(owned: pointer, capacity: count, owner: slab), shape: shape)
    }

    final class Slab {
        let base: UnsafeMutableRawPointer
        let capacity: Int
        var used = 0

        init(bytes: Int) {
            capacity = (bytes + hugePage - 1) / hugePage * hugePage
            var raw: UnsafeMutableRawPointer?
            // Aligned to a huge page so the kernel can back it with huge pages from the first byte.
            guard posix_memalign(&raw, hugePage, capacity) == 0, let raw else { fatalError("out of memory for weights") }
            base = raw
            _ = madvise(base, capacity, MADV_HUGEPAGE)   // a hint: without THP the pages are simply 4 KB
        }

        deinit { free(base) }
    }
}
