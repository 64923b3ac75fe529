import Foundation

/// ``resizeAreaBytes(_:rowStride:height:width:channels:outHeight:outWidth:scale:offset:into:)`` with integer
/// window sums: the same windows (torch `interpolate(mode="area")`) and the same results, bit for bit, for
/// every window whose sum of 8-bit values is below 2²⁴ (where that function's Float sums are exact; any face
/// detector's pyramid level or crop of a frame up to 50 megapixels), faster.
///
/// MTCNN resamples the full frame once per pyramid level and every candidate box for the R- and O-Net (a
/// fifth of its time on a 1080p frame with the Float version, mostly in the horizontal pass: one dependent
/// chain of Float adds per output value). Here the vertical pass adds widened bytes as `Int32` vectors and
/// the horizontal pass sums all channels of a window in one walk with 1-cycle integer adds; the average is
/// then formed exactly as the Float version forms it, `(Float(sum) · (1 / rows) / columns) · scale + offset`.
/// Sums wrap (never trap) past 2³¹, i.e. windows of more than 8 million pixels, which no caller makes.
/// Runs on the calling thread.
public func resizeAreaBytesInteger(_ src: UnsafePointer<UInt8>, rowStride: Int, height h: Int, width w: Int, channels c: Int,
                                   outHeight: Int, outWidth: Int, scale: Float = 1, offset: Float = 0,
                                   into out: UnsafeMutablePointer<Float>) {
    precondition(h > 0 && w > 0 && c > 0 && outHeight > 0 && outWidth > 0, "resizeAreaBytesInteger: empty image")
    let n = w * c
    // One spare lane: the 3-channel horizontal pass reads each pixel as 4 lanes.
    let row = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1)
    row[n] = 0
    defer { row.deallocate() }
    let columns = AreaColumns(width: w, channels: c, outWidth: outWidth)
    @inline(__always) func widen(_ p: UnsafePointer<UInt8>) -> SIMD16<Int32> {
        SIMD16<Int32>(truncatingIfNeeded: UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt8>.self))
    }
    @inline(__always) func put(_ v: SIMD16<Int32>, _ j: Int) { UnsafeMutableRawPointer(row + j).storeBytes(of: v, as: SIMD16<Int32>.self) }
    for oy in 0..<outHeight {
        let y0 = (oy * h) / outHeight, y1 = ((oy + 1) * h + outHeight - 1) / outHeight
        // Vertical: the window's rows summed as Int32 lanes, 64 columns per walk down the rows.
        let first = src + y0 * rowStride
        var j = 0
        while j + 64 <= n {
            var a0 = widen(first + j), a1 = widen(first + j + 16), a2 = widen(first + j + 32), a3 = widen(first + j + 48)
            var p = first + rowStride
            for _ in (y0 + 1)..<max(y0 + 1, y1) {
                a0 &+= widen(p + j); a1 &+= widen(p + j + 16); a2 &+= widen(p + j + 32); a3 &+= widen(p + j + 48)
                p += rowStride
            }
            put(a0, j); put(a1, j + 16); put(a2, j + 32); put(a3, j + 48)
            j += 64
        }
        while j + 16 <= n {
            var acc = widen(first + j)
            var p = first + rowStride
            for _ in (y0 + 1)..<max(y0 + 1, y1) { acc &+= widen(p + j); p += rowStride }
            put(acc, j)
            j += 16
        }
        while j < n {
            var acc = Int32(first[j])
            var r = y0 + 1
            while r < y1 { acc &+= Int32(src[r * rowStride + j]); r += 1 }
            row[j] = acc
            j += 1
        }
        columns.average(row, rows: y1 - y0, scale: scale, offset: offset, into: out + oy * outWidth * c)
    }
}

/// The horizontal pass of the integer area resampling: each output column's window of input columns, and the
/// average of a row of window sums formed exactly as the Float version forms it,
/// `(Float(sum) · (1 / rows) / columns) · scale + offset`.
final class AreaColumns {
    let c: Int, outWidth: Int
    let xs: UnsafeMutablePointer<Int>, xe: UnsafeMutablePointer<Int>
    /// 1 / rows / columns for each output column, recomputed only when the window's row count changes.
    let ks: UnsafeMutablePointer<Float>
    var ksRows = 0

    init(width w: Int, channels c: Int, outWidth: Int) {
        self.c = c; self.outWidth = outWidth
        xs = .allocate(capacity: outWidth); xe = .allocate(capacity: outWidth); ks = .allocate(capacity: outWidth)
        for o in 0..<outWidth {
            xs[o] = (o * w) / outWidth
            xe[o] = ((o + 1) * w + outWidth - 1) / outWidth
        }
    }

    deinit { xs.deallocate(); xe.deallocate(); ks.deallocate() }

    /// One output row from `row`, the window sums of its `rows` input rows (`width · c` values and, for
    /// 3 channels, one spare readable value after them).
    @inline(__always)
    func average(_ row: UnsafePointer<Int32>, rows: Int, scale: Float, offset: Float, into o: UnsafeMutablePointer<Float>) {
        if rows != ksRows {
            let rowScale = 1 / Float(rows)
            for ox in 0..<outWidth { ks[ox] = rowScale / Float(xe[ox] - xs[ox]) }
            ksRows = rows
        }
        // Horizontal: every channel of a window in one walk, then the Float version's average.
        if c == 3 {
            // A pixel's three sums (and the next pixel's first, unused) as one 4-lane vector.
            let scaleV = SIMD4<Float>(repeating: scale), offsetV = SIMD4<Float>(repeating: offset)
            for ox in 0..<outWidth {
                let s = xs[ox], e = xe[ox]
                var acc = SIMD4<Int32>()
                var p = UnsafeRawPointer(row + s * 3)
                for _ in s..<e { acc &+= p.loadUnaligned(as: SIMD4<Int32>.self); p += 12 }
                let v = (SIMD4<Float>(acc) * SIMD4<Float>(repeating: ks[ox])) * scaleV + offsetV
                o[ox * 3] = v[0]; o[ox * 3 + 1] = v[1]; o[ox * 3 + 2] = v[2]
            }
        } else {
            for ox in 0..<outWidth {
                let s = xs[ox], e = xe[ox]
                let k = ks[ox]
                for ch in 0..<c {
                    var acc: Int32 = 0
                    var p = row + s * c + ch
                    for _ in s..<e { acc &+= p.pointee; p += c }
                    o[ox * c + ch] = (Float(acc) * k) * scale + offset
                }
            }
        }
    }
}

/// All levels of an image pyramid by ``resizeAreaBytesInteger(_:rowStride:height:width:channels:outHeight:outWidth:scale:offset:into:)``
/// in one pass down the image, with the same results bit for bit.
///
/// Each level resampled on its own reads the whole image again, and more than once where its windows
/// overlap (a 1080p frame's ten MTCNN levels read about 12 000 rows of 5 760 bytes). Here every input row is
/// read once, into running column sums `P[y]` (the sum of rows 0 ..< y, kept for the last rows any window
/// spans), and a window's vertical sums are `P[y1] − P[y0]`: one subtraction per value, whatever its height.
/// The sums wrap (never trap) and their differences are exact while a window's true sum is below 2³¹.
/// Runs on the calling thread.
///
/// - Parameters:
///   - sizes: each level's output height and width (at least 1 each).
///   - outs: each level's `[height, width, channels]` Float output.
public func resizeAreaBytesIntegerPyramid(_ src: UnsafePointer<UInt8>, rowStride: Int, height h: Int, width w: Int, channels c: Int,
                                          sizes: [(height: Int, width: Int)], scale: Float = 1, offset: Float = 0,
                                          into outs: [UnsafeMutablePointer<Float>]) {
    precondition(h > 0 && w > 0 && c > 0 && sizes.count == outs.count && sizes.allSatisfy { $0.height > 0 && $0.width > 0 },
                 "resizeAreaBytesIntegerPyramid: empty image or level")
    guard !sizes.isEmpty else { return }
    let n = w * c
    @inline(__always) func y0(_ oy: Int, _ oh: Int) -> Int { (oy * h) / oh }
    @inline(__always) func y1(_ oy: Int, _ oh: Int) -> Int { ((oy + 1) * h + oh - 1) / oh }
    // P[y] lives in slot y % ringRows while a window that ends later can still start at y.
    var span = 1
    for (oh, _) in sizes { for oy in 0..<oh { span = max(span, y1(oy, oh) - y0(oy, oh)) } }
    let ringRows = span + 1
    let ring = UnsafeMutablePointer<Int32>.allocate(capacity: ringRows * n)
    // One spare lane: the 3-channel horizontal pass reads each pixel as 4 lanes.
    let row = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1)
    row[n] = 0
    let columns = sizes.map { AreaColumns(width: w, channels: c, outWidth: $0.width) }
    defer { ring.deallocate(); row.deallocate() }
    ring.initialize(repeating: 0, count: n)
    var next = [Int](repeating: 0, count: sizes.count)
    @inline(__always) func get(_ p: UnsafePointer<Int32>) -> SIMD16<Int32> { UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Int32>.self) }
    @inline(__always) func put(_ v: SIMD16<Int32>, _ p: UnsafeMutablePointer<Int32>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Int32>.self) }
    for y in 0..<h {
        // P[y + 1] = P[y] + row y.
        let previous = UnsafePointer(ring + (y % ringRows) * n), current = ring + ((y + 1) % ringRows) * n
        let line = src + y * rowStride
        var j = 0
        while j + 16 <= n {
            let bytes = SIMD16<Int32>(truncatingIfNeeded: UnsafeRawPointer(line + j).loadUnaligned(as: SIMD16<UInt8>.self))
            put(get(previous + j) &+ bytes, current + j)
            j += 16
        }
        while j < n { current[j] = previous[j] &+ Int32(line[j]); j += 1 }
        // Every level's output rows whose windows end here.
        for l in sizes.indices {
            let (oh, ow) = sizes[l]
            while next[l] < oh && y1(next[l], oh) == y + 1 {
                let oy = next[l], start = y0(oy, oh)
                let first = UnsafePointer(ring + (start % ringRows) * n)
                var j = 0
                while j + 16 <= n { put(get(current + j) &- get(first + j), row + j); j += 16 }
                while j < n { row[j] = current[j] &- first[j]; j += 1 }
                columns[l].average(row, rows: y + 1 - start, scale: scale, offset: offset, into: outs[l] + oy * ow * c)
                next[l] += 1
            }
        }
    }
}
