import Foundation

/// Contiguous Float32 memory. Either owned (returned to its ``Arena`` when the last tensor using it goes
/// away) or borrowed from a memory-mapped weight file (kept alive by `owner`).
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let capacity: Int
    private let arena: Arena?
    private let owner: AnyObject?
    private let mapped: Bool

    init(arena: Arena, pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        self.pointer = pointer; self.capacity = capacity; self.arena = arena; self.owner = nil; self.mapped = false
    }

    /// Wraps memory owned by `owner` (a mapped file) without copying.
    public init(borrowing pointer: UnsafeMutablePointer<Float>, capacity: Int, owner: AnyObject) {
        self.pointer = pointer; self.capacity = capacity; self.arena = nil; self.owner = owner; self.mapped = true
    }

    /// Memory of ours kept alive by `owner` (a slab of ``WeightMemory``).
    init(owned pointer: UnsafeMutablePointer<Float>, capacity: Int, owner: AnyObject) {
        self.pointer = pointer; self.capacity = capacity; self.arena = nil; self.owner = owner; self.mapped = false
    }

    /// True for memory borrowed from a mapped file.
    public var isBorrowed: Bool { mapped }

    deinit { arena?.recycle(pointer, capacity: capacity) }
}

/// A reusable pool of activation buffers.
///
/// A forward pass allocates the same sizes in the same order every time; recycling them by size class
/// means the second and later passes allocate nothing from the system.
public final class Arena: @unchecked Sendable {
    /// The arena tensors come from unless a caller passes another.
    public static let shared = Arena()

    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var cachedFloats = 0
    private let lock = NSLock()
    /// Cached (idle) buffers beyond this many floats (512 MB) are returned to the system. Frames analysed in
    /// parallel each run the face model on their own batch; 128 MB left many of those buffers unmapped and
    /// re-faulted every frame.
    public var maxCachedFloats = 512 << 20 / 4

    public init() {}

    /// Floats held idle for reuse.
    public var idleFloats: Int { lock.lock(); defer { lock.unlock() }; return cachedFloats }

    /// Size classes: multiples of 1/8 of the next power of two, so reuse within a class wastes at most 12.5 %
    /// (``allocate(_:)`` may also hand out an idle buffer of up to twice the size).
    static func sizeClass(_ n: Int) -> Int {
        if n <= 64 { return 64 }
        let p = 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount)
        let step = max(p / 16, 16)
        return (n + step - 1) / step * step
    }

    public func allocate(_ count: Int) -> TensorStorage {
        let cap = Arena.sizeClass(max(count, 1))
        lock.lock()
        // The exact class first; else the smallest idle buffer up to twice the size. Batches of varying size
        // (a frame's faces) then reuse each other's buffers instead of mapping fresh pages the kernels fault
        // in one by one.
        var best = free[cap]?.isEmpty == false ? cap : 0
        if best == 0 && cap >= 1 << 16 {
            for (c, list) in free where c > cap && c <= 2 * cap && !list.isEmpty && (best == 0 || c < best) {
                best = c
            }
        }
        if best > 0, let p = free[best]?.popLast() {
            cachedFloats -= best
            lock.unlock()
            return TensorStorage(arena: self, pointer: p, capacity: best)
        }
        lock.unlock()
        // 64-byte alignment: one cache line, and full AVX-512 vectors.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: cap * 4, alignment: 64)
        return TensorStorage(arena: self, pointer: raw.bindMemory(to: Float.self, capacity: cap), capacity: cap)
    }

    func recycle(_ p: UnsafeMutablePointer<Float>, capacity: Int) {
        lock.lock()
        if cachedFloats + capacity > maxCachedFloats {
            lock.unlock()
            p.deallocate()
            return
        }
        free[capacity, default: []].append(p)
        cachedFloats += capacity
        lock.unlock()
    }

    deinit { for (_, list) in free { for p in list { p.deallocate() } } }
}

/// An n-dimensional Float32 array over contiguous row-major storage.
///
/// **Layout.** Image activations are NHWC (`[batch, height, width, channels]`) and sequences are
/// `[batch, time, channels]`. Channels-last makes a pointwise convolution one `sgemm` over
/// `batch·H·W` rows with no reordering, lets depthwise kernels load 16 neighbouring channels as one SIMD
/// vector, and matches the token-major layout of the transformer models, so no layer transposes. Inputs
/// that arrive as NCHW (PyTorch references) are transposed once at the model's entry (or read in place by
/// a stem convolution: `Conv2D(nchw:)`).
///
/// Tensors share storage when reshaped; kernels only write into tensors they have just allocated, so a
/// tensor, once returned, is never mutated behind its users' backs.
public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    public let storage: TensorStorage
    /// Offset in floats into `storage` (for views of one batch item).
    public let offset: Int

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    /// Pointer to the first element. Write only to tensors you allocated.
    @inlinable public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// Uninitialised tensor from `arena`.
    public init(uninitialized shape: [Int], arena: Arena = .shared) {
        self.shape = shape
        self.storage = arena.allocate(shape.reduce(1, *))
        self.offset = 0
    }

    /// For a tensor borrowed from a memory-mapped file: hands its whole pages back to the system
    /// (`MADV_DONTNEED`). The mapping stays valid and a later read faults the pages in from the file again;
    /// callers use this after repacking a weight so the original does not stay resident next to the copy.
    /// Does nothing for memory the tensor owns.
    public func releaseMappedPages() {
        guard storage.isBorrowed else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: UnsafeRawPointer(data)), end = start + count * MemoryLayout<Float>.stride
        let first = (start + page - 1) / page * page, last = end / page * page
        guard last > first, let p = UnsafeMutableRawPointer(bitPattern: first) else { return }
        madvise(p, last - first, MADV_DONTNEED)
    }

    public init(storage: TensorStorage, shape: [Int], offset: Int = 0) {
        precondition(offset + shape.reduce(1, *) <= storage.capacity, "tensor view out of storage range")
        self.storage = storage; self.shape = shape; self.offset = offset
    }

    public static func zeros(_ shape: [Int], arena: Arena = .shared) -> Tensor {
        let t = Tensor(uninitialized: shape, arena: arena)
        t.data.initialize(repeating: 0, count: t.count)
        return t
    }

    public static func filled(_ shape: [Int], with value: Float) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.initialize(repeating: value, count: t.count)
        return t
    }

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    /// The elements in row-major order.
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Same storage, new shape (element count must match).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            s[i] = count / s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(storage: storage, shape: s, offset: offset)
    }

    /// Item `i` along the first axis, sharing storage.
    public func item(_ i: Int) -> Tensor {
        let inner = Array(shape.dropFirst())
        return Tensor(storage: storage, shape: inner, offset: offset + i * inner.reduce(1, *))
    }

    /// A contiguous copy.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// NCHW → NHWC (PyTorch images in, our layout out).
    public func nchwToNHWC() -> Tensor {
        guard rank == 4 else { return permuted([0, 2, 3, 1]) }
        // Images arrive this way on every forward pass: a direct loop, not the general permutation's
        // per-row index arithmetic (which cost ~80 instructions per value with 3 channels).
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let out = Tensor(uninitialized: [n, h, w, c])
        let src = data, dst = out.data
        parallelFor(n * h, minChunk: 16) { r0, r1 in
            for r in r0..<r1 {
                let img = r / h, y = r % h
                let o = dst + r * w * c
                for ch in 0..<c {
                    let s = src + ((img * c + ch) * h + y) * w
                    for x in 0..<w { o[x * c + ch] = s[x] }
                }
            }
        }
        return out
    }
    /// NHWC → NCHW.
    public func nhwcToNCHW() -> Tensor { permuted([0, 3, 1, 2]) }

    /// General axis permutation into a new contiguous tensor.
    public func permuted(_ perm: [Int]) -> Tensor {
        precondition(perm.count == rank && Set(perm).count == rank)
        let outShape = perm.map { shape[$0] }
        let out = Tensor(uninitialized: outShape)
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let srcStrides = perm.map { inStrides[$0] }
        let n = count
        if n == 0 { return out }
        let src = data, dst = out.data
        let last = outShape[rank - 1], lastStride = srcStrides[rank - 1]
        let rows = n / last
        parallelFor(rows, minChunk: 64) { r0, r1 in
            var idx = [Int](repeating: 0, count: rank)
            for r in r0..<r1 {
                var rem = r, base = 0
                for d in stride(from: rank - 2, through: 0, by: -1) {
                    idx[d] = rem % outShape[d]; rem /= outShape[d]
                    base += idx[d] * srcStrides[d]
                }
                let o = dst + r * last
                for j in 0..<last { o[j] = src[base + j * lastStride] }
            }
        }
        return out
    }
}

/// Integer tensors (token ids, attention masks), row-major.
public struct IntTensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Int64]
    public init(shape: [Int], values: [Int64]) {
        precondition(shape.reduce(1, *) == values.count)
        self.shape = shape; self.values = values
    }
    public var count: Int { values.count }
}
