import Foundation

/// A direct k×k convolution (stride 1, no padding) for layers with few channels, such as MTCNN's P-Net
/// (3 → 10 → 16 → 32 channels on every level of an image pyramid), with bias and PReLU fused.
///
/// im2col + GEMM spends most of its time copying when K = k·k·C is small; here each output pixel
/// accumulates 16 output channels per vector straight from the input, four pixels at a time so every weight
/// vector loaded feeds four FMAs. Tensors are `[H, W, stride]` with a channel stride ≥ the channel count:
/// outputs are padded to a multiple of 16 channels (the padding holds zeros) and the next layer reads
/// only the real ones.
public struct SmallConv: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    /// Output channel stride: `outChannels` rounded up to 16.
    public let outStride: Int
    let weights: [Float]        // [k][k][inChannels][outStride], zero-padded
    let bias: [Float]           // [outStride]
    let slopes: [Float]         // PReLU slopes [outStride]
    let hasPReLU: Bool
    /// F(2×2, 3×3) weights for 3×3 layers with at least ``winogradMinChannels`` input channels (nil otherwise).
    let winogradWeights: WinogradWeights?
    /// Fewest input channels for which a 3×3 layer runs by Winograd: below, the transforms cost more than the
    /// multiply-adds they save.
    public static let winogradMinChannels = 8

    /// - Parameters:
    ///   - weight: PyTorch layout `[out, in, k, k]`.
    ///   - prelu: per-output-channel PReLU slopes, if the layer is followed by PReLU.
    public init(weight: Tensor, bias: Tensor?, prelu: [Float]? = nil) {
        precondition(weight.rank == 4 && weight.shape[2] == weight.shape[3], "SmallConv expects a square [out, in, k, k] weight, got \(weight.shape)")
        let (o, ci, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
        precondition(bias == nil || bias!.count == o, "SmallConv: bias of \(bias!.count) for \(o) channels")
        precondition(prelu == nil || prelu!.count == o, "SmallConv: \(prelu!.count) PReLU slopes for \(o) channels")
        inChannels = ci; outChannels = o; kernel = k
        outStride = (o + 15) / 16 * 16
        var w = [Float](repeating: 0, count: k * k * ci * outStride)
        for oc in 0..<o { for ic in 0..<ci { for i in 0..<k { for j in 0..<k {
            w[((i * k + j) * ci + ic) * outStride + oc] = weight.data[((oc * ci + ic) * k + i) * k + j]
        } } } }
        weights = w
        var b = [Float](repeating: 0, count: outStride)
        if let bias { for c in 0..<o { b[c] = bias.data[c] } }
        self.bias = b
        hasPReLU = prelu != nil
        slopes = (prelu ?? [Float](repeating: 1, count: o)) + [Float](repeating: 1, count: outStride - o)
        winogradWeights = k == 3 && ci >= Self.winogradMinChannels ? WinogradWeights(weight: weight, outStride: outStride) : nil
    }

    /// Whether ``callAsFunction(_:)`` runs this layer by Winograd's F(2×2, 3×3) (``winograd(_:)``) on inputs
    /// whose channel stride is at least the input channels rounded up to 16.
    public var usesWinograd: Bool { winogradWeights != nil }

    /// `x`: `[H, W, S]` with S ≥ `inChannels` → `[H − k + 1, W − k + 1, outStride]`: by Winograd when
    /// ``usesWinograd`` and S allows it, else directly (``direct(_:)``).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let wg = winogradWeights, x.rank == 3, x.shape[2] >= wg.inStride { return winograd(x) }
        return direct(x)
    }

    /// The direct convolution: `x`: `[H, W, S]` with S ≥ `inChannels` → `[H − k + 1, W − k + 1, outStride]`.
    /// Rows are split across threads (serially when called from inside another parallel loop).
    public func direct(_ x: Tensor) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] >= inChannels, "SmallConv expects [H, W, ≥\(inChannels)], got \(x.shape)")
        let (h, w, cs) = (x.shape[0], x.shape[1], x.shape[2])
        let (oh, ow) = (h - kernel + 1, w - kernel + 1)
        let out = Tensor(uninitialized: [max(oh, 0), max(ow, 0), outStride])
        if oh <= 0 || ow <= 0 { return out }
        let (k, cin, os) = (kernel, inChannels, outStride)
        let src = x.data, dst = out.data
        let prelu = hasPReLU
        weights.withUnsafeBufferPointer { wB in bias.withUnsafeBufferPointer { bB in slopes.withUnsafeBufferPointer { sB in
            let wt = wB.baseAddress!, bp = bB.baseAddress!, sp = sB.baseAddress!
            parallelFor(oh, minChunk: 2) { r0, r1 in
                for oy in r0..<r1 {
                    let outRow = dst + oy * ow * os
                    var cb = 0
                    while cb < os {
                        let bv = load(bp + cb)
                        let sv = load(sp + cb)
                        var ox = 0
                        // Four pixels per step: one weight vector, four broadcasts, four FMAs.
                        while ox + 4 <= ow {
                            var a0 = bv, a1 = bv, a2 = bv, a3 = bv
                            for i in 0..<k {
                                // Unpadded input: a window row's k pixels are k·cin contiguous values, one loop.
                                let (taps, runs) = cs == cin ? (k * cin, 1) : (cin, k)
                                for j in 0..<runs {
                                    let q0 = src + ((oy + i) * w + ox + j) * cs
                                    let q1 = q0 + cs, q2 = q0 + 2 * cs, q3 = q0 + 3 * cs
                                    let wp = wt + (i * k + j) * cin * os + cb
                                    // Wrapping offsets: no overflow checks in the innermost loop.
                                    var wo = 0
                                    for ci in 0..<taps {
                                        let wv = load(wp + wo)
                                        a0 = a0.addingProduct(Vec(repeating: q0[ci]), wv)
                                        a1 = a1.addingProduct(Vec(repeating: q1[ci]), wv)
                                        a2 = a2.addingProduct(Vec(repeating: q2[ci]), wv)
                                        a3 = a3.addingProduct(Vec(repeating: q3[ci]), wv)
                                        wo &+= os
                                    }
                                }
                            }
                            if prelu {
                                a0 = a0.replacing(with: a0 * sv, where: a0 .< 0); a1 = a1.replacing(with: a1 * sv, where: a1 .< 0)
                                a2 = a2.replacing(with: a2 * sv, where: a2 .< 0); a3 = a3.replacing(with: a3 * sv, where: a3 .< 0)
                            }
                            let o = outRow + ox * os + cb
                            store(a0, o); store(a1, o + os); store(a2, o + 2 * os); store(a3, o + 3 * os)
                            ox += 4
                        }
                        while ox < ow {
                            var a = bv
                            for i in 0..<k {
                                for j in 0..<k {
                                    let p = src + ((oy + i) * w + ox + j) * cs
                                    let wp = wt + (i * k + j) * cin * os + cb
                                    for ci in 0..<cin { a = a.addingProduct(Vec(repeating: p[ci]), load(wp + ci * os)) }
                                }
                            }
                            if prelu { a = a.replacing(with: a * sv, where: a .< 0) }
                            store(a, outRow + ox * os + cb)
                            ox += 1
                        }
                        cb += 16
                    }
                }
            }
        } } }
        return out
    }
}

/// Max pooling with a `kernel × kernel` window and `stride`, ceil mode (windows at the end pool what is
/// left of the input, and none starts past it, as PyTorch's `ceil_mode=True` without padding) on `[H, W, C]`,
/// C a multiple of 16. Runs on the calling thread.
public func maxPoolCeil(_ x: Tensor, kernel k: Int, stride s: Int) -> Tensor {
    let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2])
    precondition(x.rank == 3 && c % 16 == 0 && h >= 1 && w >= 1, "maxPoolCeil expects [H, W, 16·n], got \(x.shape)")
    func outSize(_ n: Int) -> Int {
        var o = (max(n - k, 0) + s - 1) / s + 1
        if (o - 1) * s >= n { o -= 1 }
        return o
    }
    let (oh, ow) = (outSize(h), outSize(w))
    let out = Tensor(uninitialized: [oh, ow, c])
    let src = x.data, dst = out.data
    for oy in 0..<oh {
        let y0 = oy * s, y1 = min(y0 + k, h)
        for ox in 0..<ow {
            let x0 = ox * s, x1 = min(x0 + k, w)
            let o = dst + (oy * ow + ox) * c
            var j = 0
            while j < c {
                var m = load(src + (y0 * w + x0) * c + j)
                for yy in y0..<y1 { for xx in x0..<x1 { m = vmax(m, load(src + (yy * w + xx) * c + j)) } }
                store(m, o + j)
                j += 16
            }
        }
    }
    return out
}
