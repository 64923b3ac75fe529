import Foundation
import CAffectInt8

// A matrix product for weights known at load time: `C = act(A · Wᵀ + bias + residual)`.
//
// OpenBLAS packs both operands into its own panel layout on every call. For a transformer layer at batch 1
// (m = 128 tokens, W = 768 × 3072) each weight element is used only m times per call, so re-packing the
// weights cost a fifth of RoBERTa-base's time. Here the weights are packed once, at load, into the layout the
// micro-kernel streams; A is read in place (its rows are short and stay in L2), and bias, residual and the
// activation are applied to the output tile while it is still in L1.
//
// Blocking, innermost first:
//   micro-kernel  rows × width tile of C held in registers (RegisterTile.swift); one k step = `width/16`
//                 vector loads of the packed panel, `rows` broadcasts of A, rows·width/16 FMAs
//   k block       `kBlock` steps of one panel (up to 1024 × 48 floats, in L2) while every row tile of the
//                 M block passes over them
//   M block       rows of A that stay in L2 across the panels: at most 240, fewer where they would not fit in
//                 half the L2 (`GEMMTile.rowBlocks`)
//   threads       one work item per (M block, panel); each writes its own part of C

/// The micro-kernel's tile: rows of C by output columns, sized to fill the vector register file.
public enum GEMMTile: Sendable, CaseIterable {
    /// 8 × 48: 24 accumulators of 16 lanes, 3 weight vectors and a broadcast in AVX-512's 32 registers.
    case rows8x48
    /// 6 × 16: 12 ymm accumulators, 2 weight halves and a broadcast in AVX2's 16 registers.
    case rows6x16

    /// The tile this build's target CPU wants (see Package.swift: `AFFECT_AVX512`).
    public static var native: GEMMTile {
        #if AFFECT_AVX512
        return .rows8x48
        #else
        return .rows6x16
        #endif
    }

    /// The vector extension this build's kernels were compiled for ("AVX-512" or "AVX2"): fixed by the target
    /// CPU at build time, whatever the running CPU has. `affect bench` reports it, so a benchmark names the build.
    public static var vectorExtension: String { native == .rows8x48 ? "AVX-512" : "AVX2" }

    public var rows: Int { self == .rows8x48 ? 8 : 6 }
    public var width: Int { self == .rows8x48 ? 48 : 16 }
    /// Whether a panel with `cols` valid columns runs the 8 × 8 AVX2 tile (one ymm per row) instead of this one.
    func halfPanel(_ cols: Int) -> Bool { self == .rows6x16 && cols <= 8 }

    /// k steps per block. Blocking k to keep the panel slice in L1 measured slower here (64–512 steps: 145–155
    /// against 160–166 GFLOP/s on one core for 128 × 768 × 3072): the slice streams from L2 and the hardware
    /// prefetcher keeps up, while every extra block reloads and stores the tile of C. The AVX2 tile measured
    /// the same on a Zen 4 (2026-12-06, haswell build): roberta-base at one thread took 242 ms with 512-step
    /// blocks, 244 with 256 and 232 unblocked, so it is not blocked below 4096 steps.
    var kBlock: Int { self == .rows8x48 ? 1024 : 4096 }

    /// How ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)`` splits A's `m` rows of
    /// `k` values over weights of `panels` panels: the number of row blocks and their height (a multiple of
    /// ``rows``; the last block may be shorter, none is empty).
    /// - At most ~240 rows a block, as even as possible.
    /// - A's block is read again for every panel: as many rows as fit in half of `l2CacheBytes` (the rest holds
    ///   the panel, the next one being prefetched, and C) stay there across the panels. With a 512 KB L2,
    ///   EfficientNet-B0's 196 × 672 input (527 KB) did not. Where that would leave fewer than 48 rows (k above
    ///   about 2700 with 512 KB), A streams from L3 instead: more blocks would stream the weights once per block.
    /// - More blocks (down to two row tiles each) when there are too few panels for each of `threads` to take
    ///   about four items: with two panels of 48 and 32 columns (80 outputs) and one block, one thread did 60 %
    ///   of the work.
    public func rowBlocks(m: Int, k: Int, panels: Int, threads: Int, l2CacheBytes: Int) -> (count: Int, rows: Int) {
        guard m > 0 else { return (0, rows) }
        var blocks = (m + 239) / 240
        let l2Rows = l2CacheBytes / 2 / (4 * max(k, 1))
        if l2Rows >= 48 { blocks = max(blocks, (m + l2Rows - 1) / l2Rows) }
        if threads > 1 && blocks * panels < 4 * threads {
            blocks = max(blocks, min((4 * threads + panels - 1) / panels, m / (2 * rows)))
        }
        let height = ((m + blocks - 1) / blocks + rows - 1) / rows * rows
        return ((m + height - 1) / height, height)   // rounding the height up to whole tiles can leave a block empty
    }
}

/// A `[n, k]` weight matrix (PyTorch's Linear layout) and its bias, repacked once for ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``.
///
/// Layout: `panels` blocks of `tile.width` output columns; block `p` holds, for each k, the weights of its
/// columns contiguously (`data[p][k][j] = W[p·width + j][k]`), zero-padded past `n`. With `groups` > 1 (a
/// grouped convolution) every group's `n / groups` columns start a new panel, so a panel never spans two
/// groups and the GEMM can read each group's own input.
public struct PackedWeights: @unchecked Sendable {
    /// Output features (rows of the original weight).
    public let n: Int
    /// Input features (per group).
    public let k: Int
    public let tile: GEMMTile
    /// Independent column groups (1 for a plain matrix).
    public let groups: Int
    let panels: Int
    let panelsPerGroup: Int
    let data: Tensor
    /// `n + width` values, zero past `n`, or nil.
    let bias: Tensor?

    /// Packs `weight` (`n × k`, row-major) and `bias` (`n` values). For `groups` > 1, rows
    /// `g·n/groups ..< (g+1)·n/groups` form group `g`.
    public init(weight: UnsafePointer<Float>, n: Int, k: Int, bias: UnsafePointer<Float>?, groups: Int = 1,
                tile: GEMMTile = .native) {
        precondition(n > 0 && k > 0 && groups > 0 && n % groups == 0, "packed weights need n, k > 0 and n divisible by groups")
        let width = tile.width, perGroup = n / groups
        self.n = n; self.k = k; self.tile = tile; self.groups = groups
        panelsPerGroup = (perGroup + width - 1) / width
        panels = groups * panelsPerGroup
        data = WeightMemory.tensor([panels, k, width])
        let dst = data.data, ppg = panelsPerGroup
        parallelFor(panels) { p0, p1 in
            for p in p0..<p1 {
                let panel = dst + p * k * width
                let first = (p / ppg) * perGroup, local = (p % ppg) * width
                for j in 0..<width {
                    if local + j < perGroup {
                        let row = weight + (first + local + j) * k
                        for kk in 0..<k { panel[kk * width + j] = row[kk] }
                    } else {
                        for kk in 0..<k { panel[kk * width + j] = 0 }
                    }
                }
            }
        }
        if let bias {
            let padded = Tensor(uninitialized: [n + width], arena: Arena())
            padded.data.initialize(repeating: 0, count: n + width)
            padded.data.update(from: bias, count: n)
            self.bias = padded
        } else {
            self.bias = nil
        }
    }

    private init(copying other: PackedWeights, data: Tensor) {
        n = other.n; k = other.k; tile = other.tile; groups = other.groups
        panels = other.panels; panelsPerGroup = other.panelsPerGroup
        self.data = data; bias = other.bias
    }

    /// A copy whose weights are multiplied by `scale[kk]` along the input axis (`W · diag(scale)`), bias
    /// unchanged: a squeeze-and-excitation gate folded into the weights for one image. Ungrouped only.
    public func scaledAlongK(_ scale: UnsafePointer<Float>) -> PackedWeights {
        precondition(groups == 1, "scaledAlongK needs ungrouped weights")
        let copy = Tensor(uninitialized: [panels, k, tile.width])
        let from = UnsafePointer(data.data), to = copy.data, width = tile.width, k = k
        parallelFor(panels * k, minChunk: 1024) { r0, r1 in
            for row in r0..<r1 {
                let f = Vec(repeating: scale[row % k])
                var j = 0
                while j < width { store(load(from + row * width + j) * f, to + row * width + j); j += 16 }
            }
        }
        return PackedWeights(copying: self, data: copy)
    }

    /// First output column and column count of panel `p`.
    @inline(__always) func columns(ofPanel p: Int) -> (first: Int, count: Int) {
        let perGroup = n / groups, local = (p % panelsPerGroup) * tile.width
        return ((p / panelsPerGroup) * perGroup + local, min(tile.width, perGroup - local))
    }
}

/// `C[m × n] = act(A[m × k] · Wᵀ + bias + R)`, with `W` packed at load.
///
/// - Parameters:
///   - a: `m` rows of `k` floats, `lda` apart.
///   - residual: optional `m × n` matrix (rows `ldr` apart) added before the activation; may equal `c`.
///   - activation: applied to the finished tile in L1 (PReLU: one slope, or one per output column).
///   - aGroupStride: for grouped weights, group `g` reads its A at `a + g·aGroupStride`.
public func packedGEMM(m: Int, a: UnsafePointer<Float>, lda: Int, weights w: PackedWeights,
                       residual: UnsafePointer<Float>? = nil, ldr: Int = 0,
                       c: UnsafeMutablePointer<Float>, ldc: Int, activation: Activation = .none,
                       aGroupStride: Int = 0) {
    guard m > 0 else { return }
    if case .prelu(let slopes) = activation {
        precondition(slopes.count == 1 || slopes.count == w.n, "packedGEMM: \(slopes.count) PReLU slopes for \(w.n) outputs")
    }
    let started = MatrixProfile.isEnabled ? MatrixProfile.now() : 0
    defer { if started != 0 { MatrixProfile.record("packed GEMM", m: m, n: w.n, k: w.k, since: started) } }
    precondition(w.groups == 1 || aGroupStride != 0 || m == 0, "packedGEMM: grouped weights need aGroupStride")
    let tile = w.tile, mr = tile.rows, width = tile.width, k = w.k, n = w.n
    let threads = Threading.threads
    let (mBlocks, mBlock) = tile.rowBlocks(m: m, k: k, panels: w.panels, threads: threads, l2CacheBytes: Threading.l2CacheBytes)
    // One work item per (M block, panel), claimed in turn by the threads. A is re-read for every panel
    // either way (the panel loop is outside the row loop); only C and the panel are per item.
    let items = mBlocks * w.panels
    // Small products stay on one thread, unless their weights are large enough that streaming them (a
    // squeeze-and-excitation layer at m = 1) is worth two cores.
    let work = Double(m) * Double(n) * Double(k)
    let serial = work < 2e6 && (n * k < 32_768 || w.panels < 2)
    parallelFor(items, minChunk: serial ? items : 1) { i0, i1 in
        // Narrow tiles are computed here and copied out. Allocated once per chunk: per tile, the
        // allocation (a heap call: its size is not a constant) cost 15 % of a 96→24 convolution.
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(mr, 8) * width)
        defer { scratch.deallocate() }
        for item in i0..<i1 {
            let mb = item / w.panels, p = item % w.panels
            let r0 = mb * mBlock, r1 = min(m, r0 + mBlock)
            guard r0 < r1 else { continue }
            let col0 = w.columns(ofPanel: p).first
            // The panel this chunk takes next, if another, is prefetched meanwhile.
            let nextPanel = item + 1 < i1 && (item + 1) % w.panels != p ? (item + 1) % w.panels : -1
            packedGEMMPanel(p, rows: r0..<r1, a: a, lda: lda, weights: w, residual: residual.map { $0 + col0 }, ldr: ldr,
                            c: c + col0, ldc: ldc, activation: activation, aGroupStride: aGroupStride, prefetching: nextPanel,
                            scratch: scratch)
        }
    }
}

/// Rows `rows` of one panel's columns of `C = act(A · Wᵀ + bias + R)`, on the calling thread: one work item of
/// ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``, and what a caller that consumes
/// each panel's columns while they are in cache runs (ExpandDepthwise.swift).
///
/// - `c` and `residual` point at the panel's first column (row 0); `a` at group 0's A (the panel's group is
///   read `aGroupStride` floats on per group).
/// - `nextPanel` (or −1) is prefetched into L2 meanwhile; `scratch` holds `max(w.tile.rows, 8) × w.tile.width`
///   floats.
@inline(__always)
func packedGEMMPanel(_ p: Int, rows: Range<Int>, a: UnsafePointer<Float>, lda: Int, weights w: PackedWeights,
                     residual: UnsafePointer<Float>?, ldr: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                     activation: Activation, aGroupStride: Int = 0, prefetching nextPanel: Int,
                     scratch: UnsafeMutablePointer<Float>) {
    let tile = w.tile, mr = tile.rows, width = tile.width, k = w.k
    let (r0, r1) = (rows.lowerBound, rows.upperBound)
    let panelData = UnsafePointer(w.data.data), bias = w.bias.map { UnsafePointer($0.data) }
    let (col0, cols) = w.columns(ofPanel: p)
    let a = a + (p / w.panelsPerGroup) * aGroupStride
    var k0 = 0
    while k0 < k {
        let kLen = min(tile.kBlock, k - k0)
        let first = k0 == 0
        let b = panelData + p * k * width + k0 * width
        // Row tile t prefetches the next panel from its line `lines·t/tiles` on, one line per k step, so it
        // arrives while this one is in use. Without, the first row tile over a panel waited for it from L3 or
        // memory: a 7×7 layer at batch 1 has 9 row tiles per panel, and a model's weights are not in L2 (AVX2
        // tile, EfficientNet-B0 at one thread: 5 % faster; a burst of the tile's share before each tile helped
        // AVX2 as much and cost AVX-512 3 %).
        let nextB = nextPanel >= 0 ? UnsafeRawPointer(panelData + nextPanel * k * width + k0 * width) : nil
        let lines = kLen * width / 16
        let tileBias = first ? bias.map { $0 + col0 } : nil
        // The 6-row tile splits a block evenly (49 rows: four tiles of 6 and five of 5, not eight of 6
        // and one that costs six rows for one), as its kernel does only the rows it is given; the 8-row
        // tile has no 5–7-row kernels and keeps full tiles.
        // A last AVX2 panel with at most 8 valid columns takes 8-row tiles of one ymm per row.
        let tileRows = tile.halfPanel(cols) ? 8 : mr
        let tiles = (r1 - r0 + tileRows - 1) / tileRows
        let even = tile == .rows6x16 && tiles > 1
        var r = r0, t = 0
        while r < r1 {
            let rows = even ? (r1 - r0) * (t + 1) / tiles - (r1 - r0) * t / tiles : min(tileRows, r1 - r)
            let initial: UnsafePointer<Float>? = first ? residual.map { $0 + r * ldr } : UnsafePointer(c + r * ldc)
            microTile(tile, kLen: kLen, a: a + r * lda + k0, lda: lda, rows: rows, cols: cols, b: b,
                      initial: initial, ldi: first ? ldr : ldc, bias: tileBias,
                      out: c + r * ldc, ldo: ldc, scratch: scratch,
                      prefetch: nextB.map { $0 + 64 * (lines * t / tiles) })
            r += rows
            t += 1
        }
        k0 += kLen
    }
    // The activation over the block's finished columns (at most 240 rows of one panel: 15 KB with AVX2's
    // 16-wide panels, still in L1), in one loop: per 6×16 tile, SiLU's long dependency chains ran six at a
    // time between kernel calls, and this epilogue took a fifth of EfficientNet-B0's matrix-product time.
    epilogue(activation, c + r0 * ldc, ldo: ldc, rows: r1 - r0, cols: cols, firstColumn: col0)
}

/// One tile of C, before any activation. Tiles whose width is a multiple of 16 go straight to a kernel of that
/// width (fewer rows repeat the last row of A and are not stored); other widths run on a zero-padded copy in
/// `scratch` (`rows × width` floats).
@inline(__always)
func microTile(_ tile: GEMMTile, kLen: Int, a: UnsafePointer<Float>, lda: Int, rows: Int, cols: Int,
               b: UnsafePointer<Float>, initial: UnsafePointer<Float>?, ldi: Int, bias: UnsafePointer<Float>?,
               out: UnsafeMutablePointer<Float>, ldo: Int, scratch t: UnsafeMutablePointer<Float>,
               prefetch: UnsafeRawPointer? = nil) {
    let width = tile.width
    let half = tile.halfPanel(cols)
    if cols % 16 == 0 || (half && cols == 8) {
        kernel(tile, vectors: half ? 0 : cols / 16, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial,
               ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
        return
    }
    let mr = half ? 8 : tile.rows
    if let initial {
        t.initialize(repeating: 0, count: mr * width)
        for r in 0..<rows { (t + r * width).update(from: initial + r * ldi, count: cols) }
    }
    // Only the vectors that hold valid columns: an 8-column remainder costs one vector, not three.
    kernel(tile, vectors: half ? 0 : (cols + 15) / 16, kLen: kLen, a: a, lda: lda, rows: rows, b: b,
           initial: initial == nil ? nil : UnsafePointer(t), ldi: width, bias: bias, out: t, ldo: width, prefetch: prefetch)
    for r in 0..<rows { (out + r * ldo).update(from: t + r * width, count: cols) }
}

/// The tile's kernel for `vectors` 16-lane vectors of columns per row (0: the AVX2 panel's first 8 columns only).
@inline(__always)
func kernel(_ tile: GEMMTile, vectors: Int, kLen: Int, a: UnsafePointer<Float>, lda: Int, rows: Int,
            b: UnsafePointer<Float>, initial: UnsafePointer<Float>?, ldi: Int, bias: UnsafePointer<Float>?,
            out: UnsafeMutablePointer<Float>, ldo: Int, prefetch: UnsafeRawPointer?) {
    switch (tile, vectors) {
    case (.rows8x48, 3) where rows <= 4:
        kernel4(Row48.self, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    case (.rows8x48, 2) where rows <= 4:
        kernel4(Row32.self, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    case (.rows8x48, 3):
        kernel8(Row48.self, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    case (.rows8x48, 2):
        kernel8(Row32.self, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    case (.rows8x48, _):
        kernel8(Row16.self, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    case (.rows6x16, 0):
        kernel8x8(kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo,
                  prefetch: prefetch)
    case (.rows6x16, _):
        kernel6x16(kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo,
                   prefetch: prefetch)
    }
}

/// The activation over a finished block of C (`rows × cols`, rows `ldo` apart), while it is in L1.
/// `firstColumn` is the block's first output column (PReLU's slopes are per column).
@inline(__always)
func epilogue(_ activation: Activation, _ t: UnsafeMutablePointer<Float>, ldo: Int, rows: Int, cols: Int,
              firstColumn: Int) {
    switch activation {
    case .none: return
    case .gelu:
        for r in 0..<rows {
            let row = t + r * ldo
            var j = 0
            while j + 16 <= cols { store(vgelu(load(row + j)), row + j); j += 16 }
            if j < cols { geluInPlace(row + j, count: cols - j) }
        }
    case .silu:
        for r in 0..<rows {
            let row = t + r * ldo
            var j = 0
            while j + 16 <= cols { store(vsilu(load(row + j)), row + j); j += 16 }
            while j < cols { row[j] = row[j] / (1 + expf(-row[j])); j += 1 }
        }
    case .prelu(let slopes):
        slopes.withUnsafeBufferPointer { all in
            let single = all.count == 1
            let s = all.baseAddress! + (single ? 0 : firstColumn)
            for r in 0..<rows {
                let row = t + r * ldo
                var j = 0
                while j + 16 <= cols {
                    let v = load(row + j), slope = single ? Vec(repeating: s[0]) : load(s + j)
                    store(prelu(v, slope), row + j); j += 16
                }
                while j < cols { if row[j] < 0 { row[j] *= s[single ? 0 : j] }; j += 1 }
            }
        }
    default:
        for r in 0..<rows { applyActivation(activation, t + r * ldo, count: cols, channels: cols) }
    }
}

/// 8 rows × `R` columns of a 48-wide panel (AVX-512: 24 accumulators for `Row48`).
@inline(never)
func kernel8<R: TileRow>(_: R.Type, kLen: Int, a: UnsafePointer<Float>, lda: Int, rows: Int, b: UnsafePointer<Float>,
                         initial: UnsafePointer<Float>?, ldi: Int, bias: UnsafePointer<Float>?,
                         out: UnsafeMutablePointer<Float>, ldo: Int, prefetch: UnsafeRawPointer?) {
    gemmTile(R.self, tileRows: 8, panelWidth: 48, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial,
             ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
}

/// The last ≤ 4 rows of an M block (49 rows = six tiles of 8 and one of 1): half the FMAs of
/// ``kernel8(_:kLen:a:lda:rows:b:initial:ldi:bias:out:ldo:)``, whose extra rows would only repeat the last row of A.
@inline(never)
func kernel4<R: TileRow>(_: R.Type, kLen: Int, a: UnsafePointer<Float>, lda: Int, rows: Int, b: UnsafePointer<Float>,
                         initial: UnsafePointer<Float>?, ldi: Int, bias: UnsafePointer<Float>?,
                         out: UnsafeMutablePointer<Float>, ldo: Int, prefetch: UnsafeRawPointer?) {
    gemmTile(R.self, tileRows: 4, panelWidth: 48, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial,
             ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
}

/// 6 rows × 16 columns (AVX2: each 16-lane vector is two ymm registers). Fewer rows run a loop that does only
/// their FMAs (one to three rows: three, the last row repeated and not stored), since `packedGEMM` hands this
/// kernel tiles of five and four rows too.
@inline(never)
func kernel6x16(kLen: Int, a: UnsafePointer<Float>, lda: Int, rows: Int, b: UnsafePointer<Float>,
                initial: UnsafePointer<Float>?, ldi: Int, bias: UnsafePointer<Float>?,
                out: UnsafeMutablePointer<Float>, ldo: Int, prefetch: UnsafeRawPointer? = nil) {
    switch rows {
    case 6...: gemmTile(Row16.self, tileRows: 6, panelWidth: 16, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    case 5: gemmTile(Row16.self, tileRows: 5, panelWidth: 16, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    case 4: gemmTile(Row16.self, tileRows: 4, panelWidth: 16, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    default: gemmTile(Row16.self, tileRows: 3, panelWidth: 16, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial, ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
    }
}

/// Up to 8 rows × the first 8 columns of a 16-wide AVX2 panel (the last panel of 24 or 40 outputs): one ymm
/// accumulator per row, so eight rows keep both FMA pipes busy.
@inline(never)
func kernel8x8(kLen: Int, a: UnsafePointer<Float>, lda: Int, rows: Int, b: UnsafePointer<Float>,
               initial: UnsafePointer<Float>?, ldi: Int, bias: UnsafePointer<Float>?,
               out: UnsafeMutablePointer<Float>, ldo: Int, prefetch: UnsafeRawPointer?) {
    gemmTile(Row8.self, tileRows: 8, panelWidth: 16, kLen: kLen, a: a, lda: lda, rows: rows, b: b, initial: initial,
             ldi: ldi, bias: bias, out: out, ldo: ldo, prefetch: prefetch)
}

/// The loop of the kernels above: `tileRows` rows of A, `a + r·lda`, against a panel `panelWidth` floats wide.
/// Each k step also prefetches one cache line into L2, from `prefetch` on (the GEMM's next panel; without one,
/// the current panel's own lines, which are at hand, so the loop has no branch).
/// Transparent, so every call inlines with its literal `tileRows`: with `@inline(__always)`, kernel6x16's 3-,
/// 4- and 5-row cases called one shared copy that tested the row count between the FMAs of every k step.
@_transparent
private func gemmTile<R: TileRow>(_: R.Type, tileRows: Int, panelWidth: Int, kLen: Int, a: UnsafePointer<Float>,
                                  lda: Int, rows: Int, b: UnsafePointer<Float>, initial: UnsafePointer<Float>?,
                                  ldi: Int, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, ldo: Int,
                                  prefetch: UnsafeRawPointer?) {
    var tile = RowTile<R>(tileRows: tileRows, rows: rows, a: { a + $0 * lda },
                          initial: { r in initial.map { $0 + r * ldi } }, bias: bias)
    var bp = b
    var pf = prefetch ?? UnsafeRawPointer(b)
    // Four k steps a turn. Rolled, each AVX2 step spent five integer instructions recomputing the rows'
    // addresses and four on the loop: 30 instructions for 12 FMAs. Unrolled, the four steps read A at
    // displacements from the same addresses (Xeon 6/207 with AVX2 only, one thread: EfficientNet-B0 medians
    // 14.4–14.6 against 14.8–14.9 ms; AVX-512 unchanged).
    var kk = 0
    while kk &+ 4 <= kLen {
        affect_prefetch_l2(pf)
        affect_prefetch_l2(pf + 64)
        affect_prefetch_l2(pf + 128)
        affect_prefetch_l2(pf + 192)
        tile.fma(at: kk, R.panel(bp))
        tile.fma(at: kk &+ 1, R.panel(bp + panelWidth))
        tile.fma(at: kk &+ 2, R.panel(bp + 2 &* panelWidth))
        tile.fma(at: kk &+ 3, R.panel(bp + 3 &* panelWidth))
        bp += 4 &* panelWidth
        pf += 256
        kk &+= 4
    }
    while kk < kLen {
        affect_prefetch_l2(pf)
        tile.fma(at: kk, R.panel(bp))
        bp += panelWidth
        pf += 64
        kk &+= 1
    }
    tile.store(rows: rows, to: out, ldo: ldo)
}
