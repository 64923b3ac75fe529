import Foundation
import Testing
import AffectKernels

/// Deterministic `Reference.Values` in [-1, 1) (times `scale`).
func referenceValues(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Reference.Values {
    Reference.Values(shape: shape, data: testValues(shape.reduce(1, *), seed: seed).map { $0 * scale })
}

extension Tensor {
    /// A tensor holding the reference's values.
    init(_ values: Reference.Values) { self.init(shape: values.shape, values: values.data) }
}

/// The largest `|ours − reference| / (1 + |reference|)`, or nil if the shapes differ.
func relativeError(_ ours: Tensor, _ reference: Reference.Values) -> Float? {
    guard ours.shape == reference.shape else { return nil }
    var worst: Float = 0
    for i in 0..<reference.count {
        let e = abs(ours.data[i] - reference.data[i]) / (1 + abs(reference.data[i]))
        // NaN must fail, not vanish in max().
        worst = e.isNaN ? .infinity : max(worst, e)
    }
    return worst
}

/// Expects `ours` within `tolerance` of the reference, relative to each value's magnitude. Float32 sums of
/// `terms` products carry about `terms · 2⁻²⁴` of rounding, in an order that differs between code paths and
/// CPUs (AVX2, AVX-512), so the default grows with `terms`; an indexing mistake is off by O(1).
func expectClose(_ ours: Tensor, _ reference: Reference.Values, _ what: @autoclosure () -> String, terms: Int = 1,
                 tolerance: Float? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    let limit = tolerance ?? (4e-6 + Float(terms) * 4e-8)
    guard let error = relativeError(ours, reference) else {
        Issue.record("\(what()): shape \(ours.shape), reference \(reference.shape)", sourceLocation: sourceLocation)
        return
    }
    #expect(error <= limit, "\(what()): error \(error) > \(limit)", sourceLocation: sourceLocation)
}

/// Runs `body` with 1, 2, 3 and 4 kernel threads (one thread takes the serial paths; more split rows, tiles,
/// columns or heads differently), then restores the previous count. Serialised: the count is global.
func acrossThreadCounts(_ body: (Int) -> Void) {
    threadCountLock.withLock {
        let saved = Threading.threads
        defer { Threading.setThreads(saved) }
        for t in 1...4 {
            Threading.setThreads(t)
            body(t)
        }
    }
}
private let threadCountLock = NSLock()

/// Every fast kernel in `Ops/` against its plain loop in `Reference/`, on shapes that reach each of its code
/// paths, with 1 to 4 threads.
@Suite struct ReferenceKernelTests {
    // MARK: Convolutions

    struct ConvCase: CustomStringConvertible, Sendable {
        var path: String
        var n = 2, h: Int, w: Int, cin: Int, cout: Int, k: Int
        var stride = 1, padding = Padding.symmetric(1), dilation = 1, groups = 1
        var act = Activation.none
        var residual = false
        var description: String { "\(path): \(n)×\(h)×\(w)×\(cin) → \(cout), \(k)×\(k)/\(stride) d\(dilation) g\(groups) \(padding) \(act.label)\(residual ? " + residual" : "")" }
    }

    static let slopes48 = Activation.prelu((0..<48).map { Float($0 % 9) / 10 - 0.3 })

    /// One case per way `Conv2D` runs a layer (see Conv.swift's kernel selection), with the shape details that
    /// split each kernel further: tile and remainder columns, channel tails, padding on one side, dilation.
    static let convCases: [ConvCase] = [
        // Pointwise on the packed GEMM; partial panels (40, 20 outputs); plain and with a residual.
        ConvCase(path: "pointwise packed", h: 9, w: 11, cin: 24, cout: 40, k: 1, padding: .valid, act: .silu, residual: true),
        ConvCase(path: "pointwise packed", n: 1, h: 3, w: 3, cin: 37, cout: 20, k: 1, padding: .tfSame, act: .relu6),
        // Pointwise with PReLU on sgemm: one tile, column blocks (few rows, ≥ 1e6 multiply-adds), row tiles.
        ConvCase(path: "pointwise sgemm", n: 1, h: 3, w: 3, cin: 24, cout: 48, k: 1, padding: .valid, act: slopes48, residual: true),
        ConvCase(path: "pointwise sgemm columns", h: 7, w: 7, cin: 96, cout: 128, k: 1, padding: .valid, act: .prelu([0.2])),
        ConvCase(path: "pointwise sgemm rows", h: 30, w: 30, cin: 24, cout: 48, k: 1, padding: .valid, act: slopes48, residual: true),
        // Depthwise: unrolled 3×3 and 5×5, stride 1 and 2, on the row path (maps over 28×28 at stride 1, 14×14
        // at stride 2) and on the small-map tiles (with vertical blocks for the last `ow % 8` columns).
        ConvCase(path: "depthwise rows", n: 1, h: 15, w: 61, cin: 32, cout: 32, k: 3, groups: 32, act: .silu),
        ConvCase(path: "depthwise rows", n: 1, h: 16, w: 61, cin: 48, cout: 48, k: 5, stride: 2, padding: .tfSame, groups: 48, act: .hardSwish, residual: true),
        ConvCase(path: "depthwise rows, channel tail", h: 9, w: 13, cin: 40, cout: 40, k: 3, stride: 2, groups: 40, act: .relu),
        ConvCase(path: "depthwise tiles", h: 13, w: 13, cin: 32, cout: 32, k: 3, groups: 32, act: .sigmoid),
        ConvCase(path: "depthwise tiles", h: 17, w: 17, cin: 16, cout: 16, k: 5, stride: 2, padding: .symmetric(2), groups: 16, act: slopes48.sliced(16)),
        ConvCase(path: "depthwise tiles", n: 1, h: 9, w: 9, cin: 48, cout: 48, k: 5, padding: .tfSame, groups: 48, act: .relu6),
        // Depthwise on the general loop: 7×7, dilation, activations without a vector form (a row pass).
        ConvCase(path: "depthwise general", h: 11, w: 10, cin: 20, cout: 20, k: 7, padding: .symmetric(3), groups: 20, act: .gelu),
        ConvCase(path: "depthwise general", h: 12, w: 12, cin: 32, cout: 32, k: 3, padding: .symmetric(2), dilation: 2, groups: 32, act: .tanh),
        // Depthwise with fewer than 16 channels, several pixels per vector.
        ConvCase(path: "depthwise narrow", h: 9, w: 11, cin: 8, cout: 8, k: 3, padding: .tfSame, groups: 8, act: .relu),
        ConvCase(path: "depthwise narrow", h: 6, w: 7, cin: 2, cout: 2, k: 5, padding: .symmetric(2), groups: 2),
        // The stems' direct kernel: 1 to 4 (and 6) vectors of outputs, four-pixel blocks and edges.
        ConvCase(path: "direct", h: 17, w: 19, cin: 3, cout: 16, k: 3, stride: 2, padding: .tfSame, act: .silu),
        ConvCase(path: "direct", h: 12, w: 15, cin: 3, cout: 32, k: 3, stride: 2, act: slopes48.sliced(32)),
        ConvCase(path: "direct", n: 1, h: 9, w: 10, cin: 1, cout: 48, k: 3, act: .relu, residual: true),
        ConvCase(path: "direct", n: 1, h: 11, w: 9, cin: 4, cout: 96, k: 5, stride: 2, padding: .symmetric(2), act: .tanh),
        // Eight outputs, stride 1.
        ConvCase(path: "direct narrow", h: 12, w: 11, cin: 1, cout: 8, k: 3, padding: .valid, act: .relu),
        ConvCase(path: "direct narrow", h: 7, w: 9, cin: 8, cout: 8, k: 3, padding: .tfSame, act: .relu, residual: true),
        // im2col + packed GEMM: whole tiles per thread (2×20×20 pixels) and one shared gather (2×5×5).
        ConvCase(path: "im2col packed", h: 20, w: 20, cin: 24, cout: 32, k: 3, act: .silu),
        ConvCase(path: "im2col packed", h: 5, w: 5, cin: 24, cout: 32, k: 3, stride: 2, act: .none, residual: true),
        ConvCase(path: "im2col packed", h: 13, w: 12, cin: 6, cout: 24, k: 3, padding: .symmetric(2), dilation: 2, act: .relu),
        ConvCase(path: "im2col packed", n: 1, h: 9, w: 9, cin: 3, cout: 20, k: 5, stride: 2, padding: .tfSame, act: .hardSwish),
        // im2col + sgemm per group: grouped layers, and PReLU.
        ConvCase(path: "im2col grouped", h: 20, w: 20, cin: 24, cout: 32, k: 3, stride: 2, groups: 4, act: .silu, residual: true),
        ConvCase(path: "im2col grouped", h: 6, w: 6, cin: 24, cout: 48, k: 3, groups: 2, act: slopes48),
        ConvCase(path: "im2col sgemm", h: 14, w: 14, cin: 24, cout: 48, k: 3, act: slopes48),
        // Grouped layers with 2–8 channels per group in and out, as sums of depthwise convolutions.
        ConvCase(path: "small groups", h: 11, w: 13, cin: 32, cout: 32, k: 3, groups: 16, act: slopes48.sliced(32), residual: true),
        ConvCase(path: "small groups", h: 11, w: 13, cin: 34, cout: 34, k: 3, stride: 2, groups: 17, act: .relu),
        ConvCase(path: "small groups", n: 1, h: 8, w: 9, cin: 64, cout: 64, k: 5, padding: .symmetric(2), groups: 8, act: .none),
    ]

    @Test(arguments: convCases)
    func conv2d(_ c: ConvCase) {
        let x = referenceValues([c.n, c.h, c.w, c.cin], seed: 1)
        let weight = referenceValues([c.cout, c.cin / c.groups, c.k, c.k], seed: 2)
        let bias = referenceValues([c.cout], seed: 3).data
        let conv = Conv2D(weight: Tensor(weight), bias: Tensor(shape: [c.cout], values: bias), stride: (c.stride, c.stride),
                          padding: c.padding, dilation: (c.dilation, c.dilation), groups: c.groups, activation: c.act)
        let (oh, ow) = conv.outputSize(height: c.h, width: c.w)
        let residual = c.residual ? referenceValues([c.n, oh, ow, c.cout], seed: 4) : nil
        let expected = Reference.conv2d(x, weight: weight, bias: bias, stride: (c.stride, c.stride), padding: c.padding,
                                        dilation: (c.dilation, c.dilation), groups: c.groups, activation: c.act, residual: residual)
        let terms = c.k * c.k * c.cin / c.groups
        acrossThreadCounts { t in
            expectClose(conv(Tensor(x), residual: residual.map { Tensor($0) }), expected, "\(c), \(t) threads", terms: terms)
        }
        // Images as PyTorch lays them out: read in place by the stem kernel, transposed first by the others.
        if c.residual == false {
            expectClose(conv(nchw: Tensor(x).permuted([0, 3, 1, 2])), expected, "\(c) from NCHW", terms: terms)
        }
    }

    /// The squeeze-and-excitation gate on the input channels of a pointwise convolution: on the packed GEMM
    /// it scales the weights per image on wide maps and the pixels otherwise; on sgemm (PReLU) likewise with
    /// row tiles, and the pixels per tile without.
    @Test(arguments: [(h: 3, cout: 48, prelu: false), (h: 40, cout: 40, prelu: false), (h: 3, cout: 48, prelu: true),
                      (h: 40, cout: 48, prelu: true)])
    func pointwiseWithInputScale(_ p: (h: Int, cout: Int, prelu: Bool)) {
        let x = referenceValues([2, p.h, p.h, 24], seed: 5)
        let weight = referenceValues([p.cout, 24, 1, 1], seed: 6), bias = referenceValues([p.cout], seed: 7).data
        let scale = referenceValues([2, 24], seed: 8).data
        let residual = referenceValues([2, p.h, p.h, p.cout], seed: 9)
        let act: Activation = p.prelu ? .prelu((0..<p.cout).map { Float($0) / 50 }) : .silu
        let conv = Conv2D(weight: Tensor(weight), bias: Tensor(shape: [p.cout], values: bias), activation: act)
        let expected = Reference.conv2d(x, weight: weight, bias: bias, activation: act, residual: residual, inputScale: scale)
        acrossThreadCounts { t in
            expectClose(conv(Tensor(x), residual: Tensor(residual), inputScale: Tensor(shape: [2, 24], values: scale)),
                        expected, "pointwise \(p), \(t) threads", terms: 24)
        }
    }

    /// Depthwise convolutions that also return the channel means of their output (the squeeze of a
    /// following squeeze-and-excitation), on each depthwise path.
    @Test(arguments: [(k: 3, stride: 1, c: 48, h: 15, w: 13), (k: 5, stride: 2, c: 32, h: 15, w: 29), (k: 3, stride: 2, c: 17, h: 9, w: 9),
                      (k: 3, stride: 1, c: 32, h: 15, w: 61), (k: 7, stride: 1, c: 16, h: 8, w: 9), (k: 3, stride: 1, c: 8, h: 7, w: 9)])
    func depthwiseWithMeans(_ p: (k: Int, stride: Int, c: Int, h: Int, w: Int)) {
        let x = referenceValues([2, p.h, p.w, p.c], seed: 10)
        let weight = referenceValues([p.c, 1, p.k, p.k], seed: 11), bias = referenceValues([p.c], seed: 12).data
        for act in [Activation.silu, .gelu] {
            let conv = Conv2D(weight: Tensor(weight), bias: Tensor(shape: [p.c], values: bias), stride: (p.stride, p.stride),
                              padding: .tfSame, groups: p.c, activation: act)
            let expected = Reference.conv2d(x, weight: weight, bias: bias, stride: (p.stride, p.stride), padding: .tfSame,
                                            groups: p.c, activation: act)
            let means = Reference.globalAveragePool(expected)
            acrossThreadCounts { t in
                let (y, m) = conv.depthwiseWithMeans(Tensor(x))
                expectClose(y, expected, "depthwise \(p) \(act), \(t) threads", terms: p.k * p.k)
                expectClose(m, means, "channel means \(p) \(act), \(t) threads", terms: p.k * p.k)
            }
        }
    }

    /// A BatchNorm folded into the convolution before it, and applied on its own, against the unfolded formula.
    @Test func batchNormFoldedAndAlone() {
        let x = referenceValues([2, 9, 8, 12], seed: 13)
        let weight = referenceValues([16, 12, 3, 3], seed: 14), bias = referenceValues([16], seed: 15).data
        let gamma = referenceValues([16], seed: 16).data, beta = referenceValues([16], seed: 17).data
        let mean = referenceValues([16], seed: 18).data, variance = referenceValues([16], seed: 19).data.map { $0 + 1.5 }
        let bn = BatchNorm(gamma: Tensor(shape: [16], values: gamma), beta: Tensor(shape: [16], values: beta),
                           mean: Tensor(shape: [16], values: mean), variance: Tensor(shape: [16], values: variance), eps: 1e-3)
        let conv = Reference.conv2d(x, weight: weight, bias: bias, padding: .symmetric(1))
        let expected = Reference.batchNorm(conv, gamma: gamma, beta: beta, mean: mean, variance: variance, eps: 1e-3, activation: .relu6)
        let folded = Conv2D(weight: Tensor(weight), bias: Tensor(shape: [16], values: bias), batchNorm: bn, padding: .symmetric(1),
                            activation: .relu6)
        acrossThreadCounts { t in
            expectClose(folded(Tensor(x)), expected, "folded, \(t) threads", terms: 108)
            expectClose(bn(Tensor(conv), activation: .relu6), expected, "alone, \(t) threads")
        }
    }

    /// 1-D convolutions: the `Conv2D` wrapper (padding, dilation, groups), the in-place strided GEMM (plain
    /// and block-wise with an epilogue), and the grouped padded GEMM (with trailing frames dropped).
    @Test(arguments: [(cin: 1, cout: 24, k: 10, stride: 5, t: 301), (cin: 20, cout: 24, k: 3, stride: 2, t: 57),
                      (cin: 16, cout: 32, k: 2, stride: 2, t: 40), (cin: 7, cout: 16, k: 4, stride: 1, t: 9)])
    func conv1d(_ p: (cin: Int, cout: Int, k: Int, stride: Int, t: Int)) {
        let x = referenceValues([2, p.t, p.cin], seed: 20)
        let weight = referenceValues([p.cout, p.cin, p.k], seed: 21), bias = referenceValues([p.cout], seed: 22).data
        let b = Tensor(shape: [p.cout], values: bias)
        let expected = Reference.conv1d(x, weight: weight, bias: bias, stride: p.stride, activation: .gelu)
        let strided = StridedConv1D(weight: Tensor(weight), bias: b, stride: p.stride, activation: .gelu)
        let padded = Reference.conv1d(x, weight: weight, bias: bias, stride: p.stride, padding: 2, dilation: 2, activation: .relu)
        let wrapped = Conv1D(weight: Tensor(weight), bias: b, stride: p.stride, padding: 2, dilation: 2, activation: .relu)
        let groups = p.cin % 4 == 0 ? 4 : 1
        let groupedWeight = referenceValues([p.cout, p.cin / groups, p.k], seed: 23)
        let grouped = Reference.conv1d(x, weight: groupedWeight, bias: bias, padding: p.k / 2, groups: groups, activation: .gelu)
        let groupedConv = GroupedConv1D(weight: Tensor(groupedWeight), bias: b, padding: p.k / 2, groups: groups, activation: .gelu)
        let terms = p.k * p.cin
        acrossThreadCounts { t in
            expectClose(strided(Tensor(x)), expected, "StridedConv1D \(p), \(t) threads", terms: terms)
            expectClose(strided(Tensor(x), blockFrames: 7) { _, _ in }, expected, "StridedConv1D blocks \(p), \(t) threads", terms: terms)
            expectClose(wrapped(Tensor(x)), padded, "Conv1D \(p), \(t) threads", terms: terms)
            expectClose(groupedConv(Tensor(x)), grouped, "GroupedConv1D \(p), \(t) threads", terms: terms)
        }
        // Fewer frames than the padding allows: the leading ones.
        let frames = max(0, grouped.shape[1] - 1)
        let first = Reference.Values(shape: [2, frames, p.cout], data: (0..<2).flatMap { i in
            grouped.data[(i * grouped.shape[1] * p.cout)..<((i * grouped.shape[1] + frames) * p.cout)]
        })
        expectClose(groupedConv(Tensor(x), frames: frames), first, "GroupedConv1D \(p), \(frames) frames", terms: terms)
    }

    // MARK: Matrix products and attention

    /// Linear layers on the packed GEMM (4096 weights and more) and on sgemm (smaller), with several leading
    /// axes and a residual.
    @Test(arguments: [(rows: 1, i: 64, o: 64), (rows: 13, i: 45, o: 70), (rows: 37, i: 200, o: 129), (rows: 5, i: 12, o: 20),
                      (rows: 130, i: 31, o: 7)])
    func linear(_ p: (rows: Int, i: Int, o: Int)) {
        let x = referenceValues([p.rows, 1, p.i], seed: 30)
        let weight = referenceValues([p.o, p.i], seed: 31), bias = referenceValues([p.o], seed: 32).data
        let residual = referenceValues([p.rows, 1, p.o], seed: 33)
        for act in [Activation.gelu, .tanh, .prelu((0..<p.o).map { Float($0 % 5) / 10 })] {
            let layer = Linear(weight: Tensor(weight), bias: Tensor(shape: [p.o], values: bias), activation: act)
            let expected = Reference.linear(x, weight: weight, bias: bias, activation: act, residual: residual)
            acrossThreadCounts { t in
                expectClose(layer(Tensor(x), adding: Tensor(residual)), expected, "linear \(p) \(act), \(t) threads", terms: p.i)
            }
        }
    }

    /// `sgemm` splits rows when m ≥ n and columns otherwise (above 1e6 multiply-adds); `matmul` batches it.
    @Test(arguments: [(m: 200, n: 40, k: 150), (m: 24, n: 300, k: 170), (m: 3, n: 5, k: 7)])
    func matmul(_ p: (m: Int, n: Int, k: Int)) {
        let a = referenceValues([2, p.m, p.k], seed: 34)
        for transposeB in [false, true] {
            let b = referenceValues(transposeB ? [2, p.n, p.k] : [2, p.k, p.n], seed: 35)
            let expected = Reference.matmul(a, b, transposeB: transposeB)
            acrossThreadCounts { t in
                expectClose(AffectKernels.matmul(Tensor(a), Tensor(b), transposeB: transposeB), expected,
                            "matmul \(p) transposeB \(transposeB), \(t) threads", terms: p.k)
            }
        }
    }

    struct AttentionCase: CustomStringConvertible, Sendable {
        var batch: Int, length: Int, heads: Int, headSize: Int
        /// Attended keys per item (right padding); nil: no mask. A negative count also masks key 1 (a hole).
        var keys: [Int]?
        var description: String { "b\(batch) L\(length) \(heads)×\(headSize) keys \(keys.map { "\($0)" } ?? "all")" }

        var mask: [Float]? {
            keys.map { keys in
                var m = [Float](repeating: 0, count: batch * length)
                for (i, k) in keys.enumerated() {
                    for j in 0..<abs(k) { m[i * length + j] = 1 }
                    if k < 0 { m[i * length + 1] = 0 }
                }
                return m
            }
        }
    }

    static let attentionCases = [
        AttentionCase(batch: 1, length: 1, heads: 1, headSize: 8, keys: nil),
        AttentionCase(batch: 2, length: 17, heads: 3, headSize: 20, keys: nil),
        AttentionCase(batch: 1, length: 70, heads: 2, headSize: 64, keys: nil),
        AttentionCase(batch: 3, length: 67, heads: 2, headSize: 64, keys: [67, 40, 0]),
        AttentionCase(batch: 2, length: 29, heads: 2, headSize: 64, keys: [29, -20]),
        AttentionCase(batch: 2, length: 23, heads: 2, headSize: 32, keys: [23, 11]),
        AttentionCase(batch: 2, length: 9, heads: 2, headSize: 80, keys: [9, 3]),
    ]

    /// Every attention kernel on the same inputs: separate q, k, v (BLAS, per pair or split across threads),
    /// one fused projection (BLAS per head), the register-tiled kernel for narrow heads and the one for long
    /// sequences of 64-channel heads (each handing other shapes over).
    @Test(arguments: attentionCases)
    func attention(_ c: AttentionCase) {
        let width = c.heads * c.headSize
        let qkv = referenceValues([c.batch, c.length, 3 * width], seed: UInt64(c.length * 131 + width), scale: 2)
        let expected = Reference.attention(qkv: qkv, heads: c.heads, keyMask: c.mask)
        let fused = Tensor(qkv)
        func part(_ i: Int) -> Tensor {
            let t = Tensor(uninitialized: [c.batch, c.length, width])
            for r in 0..<(c.batch * c.length) { (t.data + r * width).update(from: fused.data + r * 3 * width + i * width, count: width) }
            return t
        }
        let (q, k, v) = (part(0), part(1), part(2))
        acrossThreadCounts { t in
            expectClose(AffectKernels.attention(q: q, k: k, v: v, heads: c.heads, keyMask: c.mask), expected,
                        "attention(q:k:v:) \(c), \(t) threads", terms: c.length)
            expectClose(AffectKernels.attention(qkv: fused, heads: c.heads, keyMask: c.mask), expected,
                        "attention(qkv:) \(c), \(t) threads", terms: c.length)
            expectClose(longAttention(qkv: fused, heads: c.heads, keyMask: c.mask), expected,
                        "longAttention \(c), \(t) threads", terms: c.length)
            if c.keys == nil {
                expectClose(tileAttention(qkv: fused, heads: c.heads), expected, "tileAttention \(c), \(t) threads", terms: c.length)
            }
        }
        let scaled = Reference.attention(qkv: qkv, heads: c.heads, keyMask: c.mask, scale: 0.5)
        expectClose(AffectKernels.attention(qkv: fused, heads: c.heads, keyMask: c.mask, scale: 0.5), scaled, "scale 0.5 \(c)", terms: c.length)
        if c.keys == nil {
            expectClose(tileAttention(qkv: fused, heads: c.heads, scale: 0.5), scaled, "tileAttention scale 0.5 \(c)", terms: c.length)
        }
    }

    // MARK: Normalisation, activations, pooling

    @Test(arguments: [(rows: 3, d: 37), (rows: 50, d: 64), (rows: 1, d: 768)])
    func layerNorm(_ p: (rows: Int, d: Int)) {
        let x = referenceValues([p.rows, p.d], seed: 40, scale: 3)
        let weight = referenceValues([p.d], seed: 41).data, bias = referenceValues([p.d], seed: 42).data
        let ln = LayerNorm(weight: Tensor(shape: [p.d], values: weight), bias: Tensor(shape: [p.d], values: bias), eps: 1e-5)
        for act in [Activation.none, .gelu] {
            let expected = Reference.layerNorm(x, weight: weight, bias: bias, eps: 1e-5, activation: act)
            acrossThreadCounts { t in
                expectClose(ln(Tensor(x), activation: act), expected, "layerNorm \(p) \(act), \(t) threads", terms: p.d)
                expectClose(ln(Tensor(x), activation: act, inPlace: true), expected, "layerNorm in place \(p) \(act), \(t) threads", terms: p.d)
            }
        }
        // Without weight and bias.
        expectClose(LayerNorm(weight: nil, bias: nil, eps: 1e-5, size: p.d)(Tensor(x)),
                    Reference.layerNorm(x, weight: nil, bias: nil, eps: 1e-5), "layerNorm plain \(p)", terms: p.d)
    }

    /// Positions over 256 split the statistics into chunks across threads; a large mean checks the two-pass
    /// variance.
    @Test(arguments: [(positions: 30, c: 20, groups: 5), (positions: 1100, c: 32, groups: 4), (positions: 600, c: 17, groups: 1)])
    func groupNorm(_ p: (positions: Int, c: Int, groups: Int)) {
        var x = referenceValues([2, p.positions, p.c], seed: 43)
        x.data = x.data.map { $0 + 20 }
        let weight = referenceValues([p.c], seed: 44).data, bias = referenceValues([p.c], seed: 45).data
        let gn = GroupNorm(groups: p.groups, weight: Tensor(shape: [p.c], values: weight), bias: Tensor(shape: [p.c], values: bias), eps: 1e-5)
        let expected = Reference.groupNorm(x, groups: p.groups, weight: weight, bias: bias, eps: 1e-5, activation: .silu)
        acrossThreadCounts { t in
            expectClose(gn(Tensor(x), activation: .silu), expected, "groupNorm \(p), \(t) threads", tolerance: 2e-5)
        }
    }

    static let activations: [Activation] = [.none, .relu, .relu6, .silu, .gelu, .sigmoid, .tanh, .hardSwish, .prelu([0.25]),
                                            .prelu((0..<37).map { Float($0) / 37 - 0.5 })]

    /// Every activation over values in [-8, 8), 37 channels per row (a tail past the last vector), in place
    /// (`activation`) and in a layer's epilogue (`biasActivation`); softmax along rows.
    @Test(arguments: activations)
    func activation(_ act: Activation) {
        let x = referenceValues([5, 37], seed: 46, scale: 8)
        let expected = Reference.activation(x, act)
        acrossThreadCounts { t in
            expectClose(AffectKernels.activation(Tensor(x), act), expected, "\(act), \(t) threads")
            let y = Tensor(x)
            let zeros = [Float](repeating: 0, count: 37)
            zeros.withUnsafeBufferPointer { biasActivation(y.data, rows: 5, cols: 37, bias: $0.baseAddress!, act: act) }
            expectClose(y, expected, "biasActivation \(act), \(t) threads")
        }
    }

    @Test func softmax() {
        var x = referenceValues([6, 37], seed: 47, scale: 10)
        for j in 0..<37 { x.data[37 + j] = -.infinity }       // a fully masked row: zeros
        x.data[2 * 37 + 5] = -.infinity
        let expected = Reference.softmax(x)
        acrossThreadCounts { t in expectClose(AffectKernels.softmax(Tensor(x)), expected, "softmax, \(t) threads") }
    }

    struct PoolCase: CustomStringConvertible, Sendable {
        var h: Int, w: Int, c: Int, k: Int, stride: Int, padding: Padding, ceil: Bool, countPad: Bool
        var description: String { "\(h)×\(w)×\(c) \(k)/\(stride) \(padding) ceil \(ceil) countPad \(countPad)" }
    }

    @Test(arguments: [PoolCase(h: 9, w: 10, c: 20, k: 3, stride: 2, padding: .symmetric(1), ceil: false, countPad: true),
                      PoolCase(h: 9, w: 10, c: 32, k: 3, stride: 2, padding: .symmetric(1), ceil: true, countPad: true),
                      PoolCase(h: 11, w: 7, c: 16, k: 2, stride: 2, padding: .valid, ceil: true, countPad: false),
                      PoolCase(h: 7, w: 8, c: 35, k: 3, stride: 2, padding: .tfSame, ceil: false, countPad: true),
                      PoolCase(h: 6, w: 6, c: 3, k: 3, stride: 1, padding: .explicit(top: 0, left: 1, bottom: 2, right: 1), ceil: false, countPad: false)])
    func pooling(_ p: PoolCase) {
        let x = referenceValues([2, p.h, p.w, p.c], seed: 48)
        let expectedMax = Reference.maxPool2d(x, kernel: (p.k, p.k), stride: (p.stride, p.stride), padding: p.padding, ceilMode: p.ceil)
        let expectedAvg = Reference.avgPool2d(x, kernel: (p.k, p.k), stride: (p.stride, p.stride), padding: p.padding, ceilMode: p.ceil,
                                              countIncludePad: p.countPad)
        acrossThreadCounts { t in
            expectClose(maxPool2d(Tensor(x), kernel: (p.k, p.k), stride: (p.stride, p.stride), padding: p.padding, ceilMode: p.ceil),
                        expectedMax, "maxPool2d \(p), \(t) threads", tolerance: 0)
            expectClose(avgPool2d(Tensor(x), kernel: (p.k, p.k), stride: (p.stride, p.stride), padding: p.padding, ceilMode: p.ceil,
                                  countIncludePad: p.countPad), expectedAvg, "avgPool2d \(p), \(t) threads", terms: p.k * p.k)
            expectClose(globalAveragePool(Tensor(x)), Reference.globalAveragePool(x), "globalAveragePool \(p), \(t) threads",
                        terms: p.h * p.w)
        }
    }

    /// Every resampling method, shrinking and enlarging, one image and a batch; the 8-bit area resize with
    /// its scale and offset.
    @Test(arguments: [ResizeMethod.bilinear, .bilinearAntialias, .area])
    func resize(_ method: ResizeMethod) {
        let x = referenceValues([2, 13, 17, 3], seed: 49)
        for (h, w) in [(5, 7), (13, 17), (20, 31), (1, 1)] {
            let expected = (0..<2).map { i in
                Reference.resize(Reference.Values(shape: [13, 17, 3], data: Array(x.data[(i * 663)..<((i + 1) * 663)])),
                                 height: h, width: w, method: method)
            }
            acrossThreadCounts { t in
                let batch = AffectKernels.resize(Tensor(x), height: h, width: w, method: method)
                expectClose(batch.reshaped([2 * h, w, 3]), Reference.Values(shape: [2 * h, w, 3], data: expected[0].data + expected[1].data),
                            "\(method) to \(h)×\(w), \(t) threads", terms: 10)
                expectClose(AffectKernels.resize(Tensor(x).item(1), height: h, width: w, method: method), expected[1],
                            "\(method) one image to \(h)×\(w), \(t) threads", terms: 10)
            }
        }
        guard method == .area else { return }
        let bytes: [UInt8] = (0..<(13 * 17 * 3)).map { (i: Int) -> UInt8 in UInt8((i * 37 + 11) % 256) }
        let image = Reference.Values(shape: [13, 17, 3], data: bytes.map { Float($0) })
        for (h, w) in [(5, 7), (13, 17), (4, 40)] {
            var expected = Reference.resize(image, height: h, width: w, method: .area)
            expected.data = expected.data.map { (v: Float) -> Float in v / 255 * 2 - 1 }
            let out = Tensor(uninitialized: [h, w, 3])
            bytes.withUnsafeBufferPointer {
                resizeAreaBytes($0.baseAddress!, rowStride: 17 * 3, height: 13, width: 17, channels: 3, outHeight: h, outWidth: w,
                                scale: 2 / 255, offset: -1, into: out.data)
            }
            expectClose(out, expected, "resizeAreaBytes to \(h)×\(w)", terms: 10)
        }
    }

    // MARK: Element-wise

    @Test func elementwise() {
        let a = referenceValues([2, 3, 37], seed: 50)
        let shapes: [[Int]] = [[2, 3, 37], [37], [3, 37], [1, 3, 1], [2, 1, 37], [2, 3, 1]]
        acrossThreadCounts { t in
            for shape in shapes {
                let b = referenceValues(shape, seed: 51)
                expectClose(add(Tensor(a), Tensor(b)), Reference.add(a, b), "add \(shape), \(t) threads", tolerance: 0)
                expectClose(sub(Tensor(a), Tensor(b)), Reference.sub(a, b), "sub \(shape), \(t) threads", tolerance: 0)
                expectClose(mul(Tensor(a), Tensor(b)), Reference.mul(a, b), "mul \(shape), \(t) threads", tolerance: 0)
            }
            // Broadcasting both ways.
            let column = referenceValues([3, 1], seed: 52), row = referenceValues([2, 1, 4], seed: 53)
            expectClose(add(Tensor(row), Tensor(column)), Reference.add(row, column), "add [2, 1, 4] + [3, 1], \(t) threads", tolerance: 0)
            let sum = Tensor(a)
            addInPlace(sum, Tensor(a))
            expectClose(sum, Reference.add(a, a), "addInPlace, \(t) threads", tolerance: 0)
            let b = referenceValues([2, 5, 37], seed: 54), d = referenceValues([2, 3, 4], seed: 55)
            expectClose(concat([Tensor(a), Tensor(b)], axis: 1), Reference.concat([a, b], axis: 1), "concat axis 1, \(t) threads", tolerance: 0)
            expectClose(concat([Tensor(a), Tensor(d)], axis: -1), Reference.concat([a, d], axis: -1), "concat axis -1, \(t) threads", tolerance: 0)
        }
    }

    @Test func squeezeExcite() {
        let x = referenceValues([2, 6, 5, 40], seed: 56)
        let w1 = referenceValues([10, 40, 1, 1], seed: 57), b1 = referenceValues([10], seed: 58).data
        let w2 = referenceValues([40, 10], seed: 59), b2 = referenceValues([40], seed: 60).data
        let se = SqueezeExcite(reduceWeight: Tensor(w1), reduceBias: Tensor(shape: [10], values: b1), expandWeight: Tensor(w2),
                               expandBias: Tensor(shape: [40], values: b2))
        let expected = Reference.squeezeExcite(x, reduceWeight: w1, reduceBias: b1, expandWeight: w2, expandBias: b2)
        acrossThreadCounts { t in expectClose(se(Tensor(x)), expected, "squeeze-and-excitation, \(t) threads", terms: 40) }
    }
}

extension Activation {
    /// The case name (a PReLU's slope count rather than its slopes).
    var label: String {
        if case .prelu(let s) = self { return "prelu(\(s.count))" }
        return "\(self)"
    }

    /// A PReLU's first `n` slopes (other activations unchanged).
    func sliced(_ n: Int) -> Activation {
        if case .prelu(let s) = self { return .prelu(Array(s.prefix(n))) }
        return self
    }
}
