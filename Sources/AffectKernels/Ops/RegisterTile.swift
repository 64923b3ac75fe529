import Foundation

// The register tile of the matrix products: up to 8 rows of C, each 16, 32 or 48 columns wide, held in vector
// registers while the k steps stream past. ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``
// and ``SmallConv``'s direct and Winograd products (SmallConvTile.swift) run their loops over it; they differ
// only in where each row of A starts and in which offsets the k steps visit.
//
// Tile sizes, by the vector registers each target has:
//   AVX-512  8 rows × 48 columns: 24 accumulators, 3 weight vectors and a broadcast in 32 zmm registers
//   AVX2     6 rows × 16 columns: 12 ymm accumulators (a 16-lane vector is two), 2 weight halves, a broadcast;
//            8 rows × 8 columns for a last panel with at most 8 valid columns
// and 4- (or 3-) row tiles for the last rows of a block, which would otherwise repeat a row of A for nothing.

/// One row of a register tile: 1 to 3 accumulators of 16 lanes, and the panel vectors of one k step.
protocol TileRow {
    associatedtype Panel
    /// Reads the row's columns at one k step of a panel (its first 16, 32 or 48 floats).
    static func panel(_ p: UnsafePointer<Float>) -> Panel
    /// Accumulators starting from `initial` (or zero) plus `bias` (or nothing).
    init(_ initial: UnsafePointer<Float>?, _ bias: UnsafePointer<Float>?)
    mutating func fma(_ a: Float, _ b: Panel)
    func store(to p: UnsafeMutablePointer<Float>)
    /// PReLU in registers, one slope per column (`slopes` offset to the row's first column).
    mutating func prelu(_ slopes: UnsafePointer<Float>)
}

/// `v`, negative lanes multiplied by `s`.
@inline(__always) func prelu(_ v: Vec, _ s: Vec) -> Vec { v.replacing(with: v * s, where: v .< 0) }

@inline(__always) func start(_ initial: UnsafePointer<Float>?, _ bias: UnsafePointer<Float>?, _ offset: Int) -> Vec {
    var v = initial.map { load($0 + offset) } ?? Vec()
    if let bias { v += load(bias + offset) }
    return v
}

struct Row48: TileRow {
    var v0, v1, v2: Vec
    @inline(__always) static func panel(_ p: UnsafePointer<Float>) -> (Vec, Vec, Vec) { (load(p), load(p + 16), load(p + 32)) }
    @inline(__always) init(_ i: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?) { v0 = start(i, b, 0); v1 = start(i, b, 16); v2 = start(i, b, 32) }
    @inline(__always) mutating func fma(_ a: Float, _ b: (Vec, Vec, Vec)) {
        let x = Vec(repeating: a)
        v0 = v0.addingProduct(x, b.0); v1 = v1.addingProduct(x, b.1); v2 = v2.addingProduct(x, b.2)
    }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) {
        AffectKernels.store(v0, p); AffectKernels.store(v1, p + 16); AffectKernels.store(v2, p + 32)
    }
    @inline(__always) mutating func prelu(_ s: UnsafePointer<Float>) {
        v0 = AffectKernels.prelu(v0, load(s)); v1 = AffectKernels.prelu(v1, load(s + 16)); v2 = AffectKernels.prelu(v2, load(s + 32))
    }
}

struct Row32: TileRow {
    var v0, v1: Vec
    @inline(__always) static func panel(_ p: UnsafePointer<Float>) -> (Vec, Vec) { (load(p), load(p + 16)) }
    @inline(__always) init(_ i: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?) { v0 = start(i, b, 0); v1 = start(i, b, 16) }
    @inline(__always) mutating func fma(_ a: Float, _ b: (Vec, Vec)) {
        let x = Vec(repeating: a)
        v0 = v0.addingProduct(x, b.0); v1 = v1.addingProduct(x, b.1)
    }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) { AffectKernels.store(v0, p); AffectKernels.store(v1, p + 16) }
    @inline(__always) mutating func prelu(_ s: UnsafePointer<Float>) {
        v0 = AffectKernels.prelu(v0, load(s)); v1 = AffectKernels.prelu(v1, load(s + 16))
    }
}

struct Row16: TileRow {
    var v0: Vec
    @inline(__always) static func panel(_ p: UnsafePointer<Float>) -> Vec { load(p) }
    @inline(__always) init(_ i: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?) { v0 = start(i, b, 0) }
    @inline(__always) mutating func fma(_ a: Float, _ b: Vec) { v0 = v0.addingProduct(Vec(repeating: a), b) }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) { AffectKernels.store(v0, p) }
    @inline(__always) mutating func prelu(_ s: UnsafePointer<Float>) { v0 = AffectKernels.prelu(v0, load(s)) }
}

/// Half a 16-wide panel: the AVX2 GEMM's last columns when at most 8 remain (24 outputs: 16 + 8). One ymm
/// accumulator per row, where `Row16` would spend a second FMA per row on the panel's zero padding.
struct Row8: TileRow {
    var v0: SIMD8<Float>
    @inline(__always) static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) static func panel(_ p: UnsafePointer<Float>) -> SIMD8<Float> { load8(p) }
    @inline(__always) init(_ i: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?) {
        v0 = i.map { Row8.load8($0) } ?? SIMD8()
        if let b { v0 += Row8.load8(b) }
    }
    @inline(__always) mutating func fma(_ a: Float, _ b: SIMD8<Float>) { v0 = v0.addingProduct(SIMD8(repeating: a), b) }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v0, as: SIMD8<Float>.self) }
    @inline(__always) mutating func prelu(_ s: UnsafePointer<Float>) {
        v0 = v0.replacing(with: v0 * Row8.load8(s), where: v0 .< 0)
    }
}

/// Up to eight rows of a register tile: each row's A pointer and accumulators.
///
/// `tileRows` (1 to 8) is a literal at every call site, and every member is transparent (always inlined; a
/// shared copy would test the row count at each step), so the rows past it, with their pointers and branches,
/// compile away and the used accumulators stay in registers.
/// Of those, only the first `rows` are stored; the others repeat the last valid row of A.
struct RowTile<R: TileRow> {
    let tileRows: Int
    let a0, a1, a2, a3, a4, a5, a6, a7: UnsafePointer<Float>
    var c0, c1, c2, c3, c4, c5, c6, c7: R

    /// Row `r` reads A from `a(r)` and starts from `initial(r)` (or zero) plus `bias` (or nothing).
    @_transparent
    init(tileRows: Int, rows: Int, a: (Int) -> UnsafePointer<Float>, initial: (Int) -> UnsafePointer<Float>?,
         bias: UnsafePointer<Float>?) {
        self.tileRows = tileRows
        @inline(__always) func rowA(_ r: Int) -> UnsafePointer<Float> { a(min(r, rows - 1)) }
        @inline(__always) func row(_ r: Int) -> R { r < tileRows ? R(initial(min(r, rows - 1)), bias) : R(nil, nil) }
        a0 = rowA(0); a1 = rowA(1); a2 = rowA(2); a3 = rowA(3); a4 = rowA(4); a5 = rowA(5); a6 = rowA(6); a7 = rowA(7)
        c0 = row(0); c1 = row(1); c2 = row(2); c3 = row(3); c4 = row(4); c5 = row(5); c6 = row(6); c7 = row(7)
    }

    /// One k step: row r += A_r[t] · w.
    @_transparent
    mutating func fma(at t: Int, _ w: R.Panel) {
        c0.fma(a0[t], w)
        if tileRows > 1 { c1.fma(a1[t], w) }
        if tileRows > 2 { c2.fma(a2[t], w) }
        if tileRows > 3 { c3.fma(a3[t], w) }
        if tileRows > 4 { c4.fma(a4[t], w) }
        if tileRows > 5 { c5.fma(a5[t], w) }
        if tileRows > 6 { c6.fma(a6[t], w) }
        if tileRows > 7 { c7.fma(a7[t], w) }
    }

    /// PReLU in registers, one slope per column.
    @_transparent
    mutating func prelu(_ slopes: UnsafePointer<Float>) {
        c0.prelu(slopes)
        if tileRows > 1 { c1.prelu(slopes) }
        if tileRows > 2 { c2.prelu(slopes) }
        if tileRows > 3 { c3.prelu(slopes) }
        if tileRows > 4 { c4.prelu(slopes) }
        if tileRows > 5 { c5.prelu(slopes) }
        if tileRows > 6 { c6.prelu(slopes) }
        if tileRows > 7 { c7.prelu(slopes) }
    }

    /// The first `rows` rows, `ldo` floats apart.
    @_transparent
    func store(rows: Int, to out: UnsafeMutablePointer<Float>, ldo: Int) {
        c0.store(to: out)
        if tileRows > 1 && rows > 1 { c1.store(to: out + ldo) }
        if tileRows > 2 && rows > 2 { c2.store(to: out + 2 * ldo) }
        if tileRows > 3 && rows > 3 { c3.store(to: out + 3 * ldo) }
        if tileRows > 4 && rows > 4 { c4.store(to: out + 4 * ldo) }
        if tileRows > 5 && rows > 5 { c5.store(to: out + 5 * ldo) }
        if tileRows > 6 && rows > 6 { c6.store(to: out + 6 * ldo) }
        if tileRows > 7 && rows > 7 { c7.store(to: out + 7 * ldo) }
    }
}
