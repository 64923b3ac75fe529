import Foundation

// The register tile (RegisterTile.swift) run over ``SmallConv``'s direct convolution and its Winograd products.
//
// Both are small matrix products whose A rows are not rows of one matrix: an output pixel's window (the direct
// convolution; k rows of k·C contiguous values, or k·k runs of C when the channels are padded) or one
// Winograd tile's transformed channels. Every A row starts at its own pointer, and the k steps visit the same
// offsets from each: `rowRuns` runs of `runLength` values, `rowStep` apart, each made of `runsPerRow` pieces
// `runStep` apart. The weights are `[kLen][ldw]`: one k step's output columns contiguously, as the panel of
// ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``.
//
// The tile: 8 rows × up to 48 columns on AVX-512, 6 × 16 on AVX2, as the GEMM's. With only 4 accumulators,
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
        convTile(R.self, tileRows: 8, a: a, rows: rows, walk: walk, w: w, ldw: ldw, bias: bias, slopes: slopes, out: out, ldo: ldo)
    }

    /// The last ≤ 4 rows: half the FMAs of ``conv8(_:a:rows:walk:w:ldw:bias:slopes:out:ldo:)`` (AVX-512), two thirds of
    /// ``conv6x16(a:rows:walk:w:ldw:bias:slopes:out:ldo:)`` (AVX2, with `Row16`).
    @inline(never)
    static func conv4<R: TileRow>(_: R.Type, a: UnsafePointer<UnsafePointer<Float>>, rows: Int, walk: WindowWalk,
                                  w: UnsafePointer<Float>, ldw: Int, bias: UnsafePointer<Float>?,
                                  slopes: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, ldo: Int) {
        convTile(R.self, tileRows: 4, a: a, rows: rows, walk: walk, w: w, ldw: ldw, bias: bias, slopes: slopes, out: out, ldo: ldo)
    }

    /// 6 rows × 16 columns (AVX2: each 16-lane vector is two ymm registers).
    @inline(never)
    static func conv6x16(a: UnsafePointer<UnsafePointer<Float>>, rows: Int, walk: WindowWalk, w: UnsafePointer<Float>,
                         ldw: Int, bias: UnsafePointer<Float>?, slopes: UnsafePointer<Float>?,
                         out: UnsafeMutablePointer<Float>, ldo: Int) {
        convTile(Row16.self, tileRows: 6, a: a, rows: rows, walk: walk, w: w, ldw: ldw, bias: bias, slopes: slopes, out: out, ldo: ldo)
    }

    /// The loop of the kernels above: `tileRows` rows, row r's A starting at `a[r]`, the k steps following `walk`.
    @_transparent
    private static func convTile<R: TileRow>(_: R.Type, tileRows: Int, a: UnsafePointer<UnsafePointer<Float>>, rows: Int,
                                             walk: WindowWalk, w: UnsafePointer<Float>, ldw: Int,
                                             bias: UnsafePointer<Float>?, slopes: UnsafePointer<Float>?,
                                             out: UnsafeMutablePointer<Float>, ldo: Int) {
        var tile = RowTile<R>(tileRows: tileRows, rows: rows, a: { a[$0] }, initial: { _ in nil }, bias: bias)
        var wp = w
        // One loop over the walk's runs (row run i, piece j): nested loops over i and j, with the tile a struct,
        // made the compiler spill the accumulators between runs (MTCNN on a 1080p frame, one thread, AVX2:
        // 37 -> 41 ms).
        let runs = walk.rowRuns * walk.runsPerRow
        var i = 0, j = 0
        for _ in 0..<runs {
            let start = i &* walk.rowStep &+ j &* walk.runStep
            for t in start..<(start &+ walk.runLength) {
                tile.fma(at: t, R.panel(wp))
                wp += ldw
            }
            j += 1
            if j == walk.runsPerRow { j = 0; i += 1 }
        }
        if let slopes { tile.prelu(slopes) }
        tile.store(rows: rows, to: out, ldo: ldo)
    }
}
