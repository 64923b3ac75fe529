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
    let row = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    let xs = UnsafeMutablePointer<Int>.allocate(capacity: outWidth), xe = UnsafeMutablePointer<Int>.allocate(capacity: outWidth)
    defer { row.deallocate(); xs.deallocate(); xe.deallocate() }
    for o in 0..<outWidth {
        xs[o] = (o * w) / outWidth
        xe[o] = ((o + 1) * w + outWidth - 1) / outWidth
    }
    for oy in 0..<outHeight {
        let y0 = (oy * h) / outHeight, y1 = ((oy + 1) * h + outHeight - 1) / outHeight
        // Vertical: the window's rows summed as Int32 lanes.
        let first = src + y0 * rowStride
        var j = 0
        while j + 16 <= n {
            var acc = SIMD16<Int32>(truncatingIfNeeded: UnsafeRawPointer(first + j).loadUnaligned(as: SIMD16<UInt8>.self))
            var r = y0 + 1
            while r < y1 {
                acc &+= SIMD16<Int32>(truncatingIfNeeded: UnsafeRawPointer(src + r * rowStride + j).loadUnaligned(as: SIMD16<UInt8>.self))
                r += 1
            }
            UnsafeMutableRawPointer(row + j).storeBytes(of: acc, as: SIMD16<Int32>.self)
            j += 16
        }
        while j < n {
            var acc = Int32(first[j])
            var r = y0 + 1
            while r < y1 { acc &+= Int32(src[r * rowStride + j]); r += 1 }
            row[j] = acc
            j += 1
        }
        let rowScale = 1 / Float(y1 - y0)
        // Horizontal: every channel of a window in one walk, then the Float version's average.
        let o = out + oy * outWidth * c
        if c == 3 {
            for ox in 0..<outWidth {
                let s = xs[ox], e = xe[ox]
                var a0: Int32 = 0, a1: Int32 = 0, a2: Int32 = 0
                var p = row + s * 3
                for _ in s..<e { a0 &+= p[0]; a1 &+= p[1]; a2 &+= p[2]; p += 3 }
                let k = rowScale / Float(e - s)
                o[ox * 3] = (Float(a0) * k) * scale + offset
                o[ox * 3 + 1] = (Float(a1) * k) * scale + offset
                o[ox * 3 + 2] = (Float(a2) * k) * scale + offset
            }
        } else {
            for ox in 0..<outWidth {
                let s = xs[ox], e = xe[ox]
                let k = rowScale / Float(e - s)
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
