import Foundation

/// An image as `[height, width, channels]` Float32 (channels last, as decoded frames are).
public enum ResizeMethod: Sendable {
    /// Bilinear with half-pixel centres and no antialiasing (OpenCV `INTER_LINEAR`, torch
    /// `interpolate(mode="bilinear", align_corners=False)`).
    case bilinear
    /// PIL's `BILINEAR` resampling: a triangle filter stretched by the scale factor when shrinking
    /// (antialiasing), separable, horizontal pass first.
    case bilinearAntialias
    /// Area averaging (torch `interpolate(mode="area")` = adaptive average pooling).
    case area
}

/// Resizes `[H, W, C]` (or `[N, H, W, C]`) to `height × width`.
///
/// - Precondition: the image and the requested size are non-empty. Sizes come from validated weight files
///   (AffectModels bounds every `input_size` at load) or from maps the models compute; the check keeps a size of 0
///   from turning into an out-of-bounds read in the resampling weights.
public func resize(_ image: Tensor, height: Int, width: Int, method: ResizeMethod) -> Tensor {
    precondition(height > 0 && width > 0, "resize to \(height)×\(width): sizes must be positive")
    if image.rank == 4 {
        if image.shape[0] == 0 { return Tensor(uninitialized: [0, height, width, image.shape[3]]) }
        let items = (0..<image.shape[0]).map { resize(image.item($0), height: height, width: width, method: method) }
        return concat(items.map { $0.reshaped([1] + $0.shape) }, axis: 0)
    }
    precondition(image.rank == 3, "resize expects [H, W, C], got \(image.shape)")
    let (h, w) = (image.shape[0], image.shape[1])
    precondition(h > 0 && w > 0, "resize of an empty \(h)×\(w) image")
    let wx = weights(inSize: w, outSize: width, method: method)
    let wy = weights(inSize: h, outSize: height, method: method)
    // Vertical pass first when shrinking rows: it runs along whole contiguous rows (SIMD), and the
    // horizontal pass then touches only the remaining rows. (Float results differ from the other order only
    // by rounding; PIL's 8-bit order matters only for `PILResize`, which keeps it.)
    if height <= h {
        return applyAxis(applyAxis(image, wy, axis: 0), wx, axis: 1)
    }
    return applyAxis(applyAxis(image, wx, axis: 1), wy, axis: 0)
}

/// Sparse 1-D resampling weights: for each output index, the first input index and its weights.
struct AxisWeights {
    var start: [Int]
    var taps: [[Float]]
}

func weights(inSize: Int, outSize: Int, method: ResizeMethod) -> AxisWeights {
    var start = [Int](), taps = [[Float]]()
    let scale = Double(inSize) / Double(outSize)
    switch method {
    case .bilinear:
        for o in 0..<outSize {
            var src = (Double(o) + 0.5) * scale - 0.5
            if src < 0 { src = 0 }
            var i0 = Int(src.rounded(.down))
            if i0 >= inSize - 1 { i0 = inSize - 1; start.append(i0); taps.append([1]); continue }
            let f = Float(src - Double(i0))
            start.append(i0); taps.append([1 - f, f])
        }
    case .bilinearAntialias:
        let filterScale = max(scale, 1)
        let support = 1.0 * filterScale
        for o in 0..<outSize {
            let center = (Double(o) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize)
            var ws = [Double]()
            for x in xmin..<max(xmin, xmax) {
                let t = abs((Double(x) - center + 0.5) / filterScale)
                ws.append(t < 1 ? 1 - t : 0)
            }
            let total = ws.reduce(0, +)
            start.append(xmin); taps.append(ws.map { Float(total != 0 ? $0 / total : 0) })
        }
    case .area:
        for o in 0..<outSize {
            let s = (o * inSize) / outSize
            let e = ((o + 1) * inSize + outSize - 1) / outSize
            start.append(s); taps.append([Float](repeating: 1 / Float(e - s), count: e - s))
        }
    }
    return AxisWeights(start: start, taps: taps)
}

private func applyAxis(_ x: Tensor, _ wts: AxisWeights, axis: Int) -> Tensor {
    let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2])
    let outLen = wts.start.count
    let shape = axis == 0 ? [outLen, w, c] : [h, outLen, c]
    let out = Tensor.zeros(shape)
    // Flattened taps: output i uses weights[offset[i] ..< offset[i + 1]] from input start[i].
    var offsets = [0], flat: [Float] = []
    for t in wts.taps { flat += t; offsets.append(flat.count) }
    let src = x.data, dst = out.data
    let rows = axis == 0 ? outLen : h
    wts.start.withUnsafeBufferPointer { startB in offsets.withUnsafeBufferPointer { offB in flat.withUnsafeBufferPointer { wB in
        let starts = startB.baseAddress!, offs = offB.baseAddress!, wp = wB.baseAddress!
        parallelFor(rows, minChunk: 4) { r0, r1 in
            for r in r0..<r1 {
                if axis == 0 {
                    let o = dst + r * w * c
                    let n = w * c
                    for k in offs[r]..<offs[r + 1] {
                        let wt = wp[k]
                        if wt == 0 { continue }
                        let i = src + (starts[r] + k - offs[r]) * n
                        let wv = Vec(repeating: wt)
                        var j = 0
                        while j + 16 <= n { store(load(o + j) + wv * load(i + j), o + j); j += 16 }
                        while j < n { o[j] += wt * i[j]; j += 1 }
                    }
                } else {
                    let rowIn = src + r * w * c
                    for ox in 0..<outLen {
                        let o = dst + (r * outLen + ox) * c
                        let base = rowIn + starts[ox] * c
                        for k in offs[ox]..<offs[ox + 1] {
                            let wt = wp[k]
                            let i = base + (k - offs[ox]) * c
                            for ch in 0..<c { o[ch] += wt * i[ch] }
                        }
                    }
                }
            }
        }
    } } }
    return out
}

/// Area-averages an 8-bit interleaved `height × width × channels` region (rows `rowStride` bytes apart) to
/// `outHeight × outWidth`, writing `average · scale + offset` as Float `[outHeight, outWidth, channels]` into
/// `out`. The same windows as ``resize(_:height:width:method:)`` with `.area` (torch `interpolate(mode="area")`),
/// without first widening the whole frame to Float: face detectors resample one full frame per pyramid
/// level, and reading bytes moves a quarter of the memory. Runs on the calling thread.
public func resizeAreaBytes(_ src: UnsafePointer<UInt8>, rowStride: Int, height h: Int, width w: Int, channels c: Int,
                            outHeight: Int, outWidth: Int, scale: Float = 1, offset: Float = 0,
                            into out: UnsafeMutablePointer<Float>) {
    precondition(h > 0 && w > 0 && outHeight > 0 && outWidth > 0, "resizeAreaBytes: empty image")
    let n = w * c
    let row = UnsafeMutablePointer<Float>.allocate(capacity: n)
    defer { row.deallocate() }
    // Horizontal windows, precomputed once.
    var xs = [Int](repeating: 0, count: outWidth + 1), xe = [Int](repeating: 0, count: outWidth)
    for o in 0..<outWidth {
        xs[o] = (o * w) / outWidth
        xe[o] = ((o + 1) * w + outWidth - 1) / outWidth
    }
    xs.withUnsafeBufferPointer { xsB in xe.withUnsafeBufferPointer { xeB in
        for oy in 0..<outHeight {
            let y0 = (oy * h) / outHeight, y1 = ((oy + 1) * h + outHeight - 1) / outHeight
            // Vertical: sum the window's rows (exact in Float: at most a few thousand 8-bit values).
            var j = 0
            let first = src + y0 * rowStride
            while j + 16 <= n {
                var acc = SIMD16<Float>(UnsafeRawPointer(first + j).loadUnaligned(as: SIMD16<UInt8>.self))
                for r in (y0 + 1)..<max(y0 + 1, y1) {
                    acc += SIMD16<Float>(UnsafeRawPointer(src + r * rowStride + j).loadUnaligned(as: SIMD16<UInt8>.self))
                }
                UnsafeMutableRawPointer(row + j).storeBytes(of: acc, as: SIMD16<Float>.self)
                j += 16
            }
            while j < n {
                var acc = Float(first[j])
                for r in (y0 + 1)..<max(y0 + 1, y1) { acc += Float(src[r * rowStride + j]) }
                row[j] = acc
                j += 1
            }
            let rowScale = 1 / Float(y1 - y0)
            // Horizontal: average the row sums, then scale and shift.
            let o = out + oy * outWidth * c
            for ox in 0..<outWidth {
                let s = xsB[ox], e = xeB[ox]
                let k = rowScale / Float(e - s)
                for ch in 0..<c {
                    var acc: Float = 0
                    var p = row + s * c + ch
                    for _ in s..<e { acc += p.pointee; p += c }
                    o[ox * c + ch] = (acc * k) * scale + offset
                }
            }
        }
    } }
}
