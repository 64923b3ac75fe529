import Foundation

// The register tile shared by ``SmallConv``'s direct convolution and its Winograd products.
//
// Both are small matrix products whose A rows are not rows of one matrix: an output pixel's window (the direct
// convolution; k rows of k·C contiguous values, or k·k runs of C when the channels are padded) or one
// Winograd tile's transformed channels. Every A row starts at its own pointer, and the k steps visit the same
// offsets from each: `rowRuns` runs of `runLength` values, `rowStep` apart, each made of `runsPerRow` pieces
// `runStep` apart. The weights are `[kLen][ldw]`: one k step's output columns contiguously, as the panel of
// ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``.
//
// The tile: 8 rows × up to 48 columns on AVX-512 (up to 24 accumulators of 16 lanes, 3 weight vectors and a
// broadcast in 32 registers), 6 × 16 on AVX2 (12 ymm accumulators in 16 registers). With only 4 accumulators,
// as the first versions had, each FMA waited on the previous one of its chain: 4 chains in flight against the
// 8 that two FMA units of 4-cycle latency need.

/// Where one tile's k steps read A: offsets from each row's own start.
struct WindowWalk {
    /// Outer steps (the kernel rows of a k×k window; 1 for a plain product).
    var rowRuns: Int
    var rowStep: Int
    /// Pieces per outer step (the kernel columns when channels are padded, else 1).
    var runsPerRow: Int
    var runStep: Int
    /// Contiguous values per piece.
    var runLength: Int
    var kLen: Int { rowRuns * runsPerRow * runLength }
}

enum SmallConvTile {
    /// Rows of the register tile on this build's target CPU.
    static var rows: Int {
        #if AFFECT_AVX512
        return 8
        #else
        return 6
        #endif
    }

    /// `out[r][0..<cols] = prelu(bias + Σ A_r · W)` for `rows` (1…``rows``) rows starting at `a[r]`, `cols` a
    /// multiple of 16, output rows `ldo` apart; PReLU (one slope per column) only if `slopes` is given, applied
    /// in registers before the store. Rows past `rows` repeat the last one and are not stored.
    @inline(__always)
    static func run(a: UnsafePointer<UnsafePointer<Float>>, rows: Int, walk: WindowWalk, w: UnsafePointer<Float>,
                    ldw: Int, cols: Int, bias: UnsafePointer<Float>?, slopes: UnsafePointer<Float>? = nil,
                    out: UnsafeMutablePointer<Float>, ldo: Int) {
        var cb = 0
        while cb < cols {
            #if AFFECT_AVX512
            let left = cols - cb
            let width = left >= 48 ? 48 : left >= 32 ? 32 : 16
            switch (width, rows <= 4) {
            case (48, false): conv8(Row48.self, a: a, rows: rows, walk: walk, w: w + cb, ldw: ldw, bias: bias.map { $0 + cb }, slopes: slopes.map { $0 + cb }, out: out + cb, ldo: ldo)
            case (32, false): conv8(Row32.self, a: a, rows: rows, walk: walk, w: w + cb, ldw: ldw, bias: bias.map { $0 + cb }, slopes: slopes.map { $0 + cb }, out: out + cb, ldo: ldo)
            case (_, false): conv8(Row16.self, a: a, rows: rows, walk: walk, w: w + cb, ldw: ldw, bias: bias.map { $0 + cb }, slopes: slopes.map { $0 + cb }, out: out + cb, ldo: ldo)
            case (48, true): conv4(Row48.self, a: a, rows: rows, walk: walk, w: w + cb, ldw: ldw, bias: bias.map { $0 + cb }, slopes: slopes.map { $0 + cb }, out: out + cb, ldo: ldo)
            case (32, true): conv4(Row32.self, a: a, rows: rows, walk: walk, w: w + cb, ldw: ldw, bias: bias.map { $0 + cb }, slopes: slopes.map { $0 + cb }, out: out + cb, ldo: ldo)
            default: conv4(Row16.self, a: a, rows: rows, walk: walk, w: w + cb, ldw: ldw, bias: bias.map { $0 + cb }, slopes: slopes.map { $0 + cb }, out: out + cb, ldo: ldo)
            }
            cb += width
            #else
            if rows <= 4 {
                // The last ≤ 4 rows (an R-Net crop's 22-pixel rows end in 4, a 9-pixel map in 3, a lone Winograd
                // tile in 1): two thirds of the 6-row tile's FMAs.
                conv4(Row16.self, a: a, rows: rows, walk: walk, w: w + cb, ldw: ldw, bias: bias.map { $0 + cb }, slopes: slopes.map { $0 + cb }, out: out + cb, ldo: ldo)
            } else {
                conv6x16(a: a, rows: rows, walk: walk, w: w + cb, ldw: ldw, bias: bias.map { $0 + cb }, slopes: slopes.map { $0 + cb }, out: out + cb, ldo: ldo)
            }
            cb += 16
            #endif
        }
    }

    /// 8 rows × `R` columns.
    @inline(never)
    static func conv8<R: TileRow>(_: R.Type, a: UnsafePointer<UnsafePointer<Float>>, rows: Int, walk: WindowWalk,
                                  w: UnsafePointer<Float>, ldw: Int, bias: UnsafePointer<Float>?,
                                  slopes: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, ldo: Int) {
        @inline(__always) func rowA(_ r: Int) -> UnsafePointer<Float> { a[min(r, rows - 1)] }
        let a0 = rowA(0), a1 = rowA(1), a2 = rowA(2), a3 = rowA(3), a4 = rowA(4), a5 = rowA(5), a6 = rowA(6), a7 = rowA(7)
        var c0 = R(nil, bias), c1 = R(nil, bias), c2 = R(nil, bias), c3 = R(nil, bias)
        var c4 = R(nil, bias), c5 = R(nil, bias), c6 = R(nil, bias), c7 = R(nil, bias)
        var wp = w
        for i in 0..<walk.rowRuns {
            for j in 0..<walk.runsPerRow {
                let start = i &* walk.rowStep &+ j &* walk.runStep
                for t in start..<(start &+ walk.runLength) {
                    let v = R.panel(wp)
                    c0.fma(a0[t], v); c1.fma(a1[t], v); c2.fma(a2[t], v); c3.fma(a3[t], v)
                    c4.fma(a4[t], v); c5.fma(a5[t], v); c6.fma(a6[t], v); c7.fma(a7[t], v)
                    wp += ldw
                }
            }
        }
        if let slopes {
            c0.prelu(slopes); c1.prelu(slopes); c2.prelu(slopes); c3.prelu(slopes)
            c4.prelu(slopes); c5.prelu(slopes); c6.prelu(slopes); c7.prelu(slopes)
        }
        c0.store(to: out)
        if rows > 1 { c1.store(to: out + ldo) }
        if rows > 2 { c2.store(to: out + 2 * ldo) }
        if rows > 3 { c3.store(to: out + 3 * ldo) }
        if rows > 4 { c4.store(to: out + 4 * ldo) }
        if rows > 5 { c5.store(to: out + 5 * ldo) }
        if rows > 6 { c6.store(to: out + 6 * ldo) }
        if rows > 7 { c7.store(to: out + 7 * ldo) }
    }

    /// The last ≤ 4 rows: half the FMAs of ``conv8(_:a:rows:walk:w:ldw:bias:slopes:out:ldo:)`` (AVX-512), two thirds of
    /// ``conv6x16(a:rows:walk:w:ldw:bias:slopes:out:ldo:)`` (AVX2, with `Row16`).
    @inline(never)
    static func conv4<R: TileRow>(_: R.Type, a: UnsafePointer<UnsafePointer<Float>>, rows: Int, walk: WindowWalk,
                                  w: UnsafePointer<Float>, ldw: Int, bias: UnsafePointer<Float>?,
                                  slopes: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, ldo: Int) {
        @inline(__always) func rowA(_ r: Int) -> UnsafePointer<Float> { a[min(r, rows - 1)] }
        let a0 = rowA(0), a1 = rowA(1), a2 = rowA(2), a3 = rowA(3)
        var c0 = R(nil, bias), c1 = R(nil, bias), c2 = R(nil, bias), c3 = R(nil, bias)
        var wp = w
        for i in 0..<walk.rowRuns {
            for j in 0..<walk.runsPerRow {
                let start = i &* walk.rowStep &+ j &* walk.runStep
                for t in start..<(start &+ walk.runLength) {
                    let v = R.panel(wp)
                    c0.fma(a0[t], v); c1.fma(a1[t], v); c2.fma(a2[t], v); c3.fma(a3[t], v)
                    wp += ldw
                }
            }
        }
        if let slopes { c0.prelu(slopes); c1.prelu(slopes); c2.prelu(slopes); c3.prelu(slopes) }
        c0.store(to: out)
        if rows > 1 { c1.store(to: out + ldo) }
        if rows > 2 { c2.store(to: out + 2 * ldo) }
        if rows > 3 { c3.store(to: out + 3 * ldo) }
    }

    /// 6 rows × 16 columns (AVX2: each 16-lane vector is two ymm registers).
    @inline(never)
    static func conv6x16(a: UnsafePointer<UnsafePointer<Float>>, rows: Int, walk: WindowWalk, w: UnsafePointer<Float>,
                         ldw: Int, bias: UnsafePointer<Float>?, slopes: UnsafePointer<Float>?,
                         out: UnsafeMutablePointer<Float>, ldo: Int) {
        @inline(__always) func rowA(_ r: Int) -> UnsafePointer<Float> { a[min(r, rows - 1)] }
        let a0 = rowA(0), a1 = rowA(1), a2 = rowA(2), a3 = rowA(3), a4 = rowA(4), a5 = rowA(5)
        var c0 = Row16(nil, bias), c1 = Row16(nil, bias), c2 = Row16(nil, bias)
        var c3 = Row16(nil, bias), c4 = Row16(nil, bias), c5 = Row16(nil, bias)
        var wp = w
        for i in 0..<walk.rowRuns {
            for j in 0..<walk.runsPerRow {
                let start = i &* walk.rowStep &+ j &* walk.runStep
                for t in start..<(start &+ walk.runLength) {
                    let v = Row16.panel(wp)
                    c0.fma(a0[t], v); c1.fma(a1[t], v); c2.fma(a2[t], v)
                    c3.fma(a3[t], v); c4.fma(a4[t], v); c5.fma(a5[t], v)
                    wp += ldw
                }
            }
        }
        if let slopes {
            c0.prelu(slopes); c1.prelu(slopes); c2.prelu(slopes); c3.prelu(slopes); c4.prelu(slopes); c5.prelu(slopes)
        }
        c0.store(to: out)
        if rows > 1 { c1.store(to: out + ldo) }
        if rows > 2 { c2.store(to: out + 2 * ldo) }
        if rows > 3 { c3.store(to: out + 3 * ldo) }
        if rows > 4 { c4.store(to: out + 4 * ldo) }
        if rows > 5 { c5.store(to: out + 5 * ldo) }
    }
}
