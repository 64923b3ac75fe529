import Foundation
import Testing
import AffectKernels

/// The fused convolution paths (pointwise GEMM tiles with bias + residual + input scale + activation, the
/// depthwise kernel's unrolled widths, in-kernel channel means, the stem's direct kernel, from NHWC or NCHW) against a plain
/// loop over the definition (`Reference`), and the thread pool's chunk accounting under many back-to-back jobs.
@Suite struct FusedConvTests {
    /// Deterministic values in [-1, 1).
    func tensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            t.data[i] = Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000 - 1
        }
        return t
    }

    /// The convolution by its definition (`Reference.conv2d`);
    /// `weight` is PyTorch `[out, in/groups, kh, kw]`.
    func reference(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding, groups: Int,
                   act: Activation, residual: Tensor? = nil, scale: Tensor? = nil) -> Tensor {
        Tensor(Reference.conv2d(Reference.Values(x), weight: Reference.Values(weight), bias: bias?.array, stride: (stride, stride),
                                padding: padding, groups: groups, activation: act, residual: residual.map { Reference.Values($0) },
                                inputScale: scale?.array))
    }

    func expectClose(_ a: Tensor, _ b: Tensor, _ what: String) {
        #expect(a.shape == b.shape, "\(what): \(a.shape) vs \(b.shape)")
        guard a.shape == b.shape else { return }
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a.data[i] - b.data[i]) / max(1, abs(b.data[i]))) }
        #expect(worst < 1e-5, "\(what): max error \(worst)")
    }

    /// PReLU runs on sgemm (3×3 pixels × 2 images splits the output channels across threads; 40×40 uses row
    /// tiles), the rest on the packed GEMM, whose SE scale goes to the weights on 40×40 and to the pixels on
    /// 3×3; 40 and 20 output channels leave a partial panel.
    @Test(arguments: [(rows: 3, act: "silu", cout: 48), (rows: 3, act: "prelu", cout: 48), (rows: 40, act: "prelu", cout: 48),
                      (rows: 40, act: "none", cout: 48), (rows: 40, act: "silu", cout: 40), (rows: 3, act: "none", cout: 20)])
    func pointwiseWithResidualAndScale(_ c: (rows: Int, act: String, cout: Int)) {
        let (cin, cout) = (24, c.cout)
        let x = tensor([2, c.rows, c.rows, cin], seed: 1)
        let weight = tensor([cout, cin, 1, 1], seed: 2), bias = tensor([cout], seed: 3)
        let act: Activation = c.act == "silu" ? .silu : c.act == "prelu" ? .prelu((0..<cout).map { Float($0) / 50 }) : .none
        let conv = Conv2D(weight: weight, bias: bias, padding: .tfSame, activation: act)
        #expect(conv.isPointwise)
        let residual = tensor([2, c.rows, c.rows, cout], seed: 4), scale = tensor([2, cin], seed: 5)
        expectClose(conv(x, residual: residual, inputScale: scale),
                    reference(x, weight: weight, bias: bias, stride: 1, padding: .valid, groups: 1, act: act,
                              residual: residual, scale: scale), "pointwise \(c)")
        expectClose(conv(x), reference(x, weight: weight, bias: bias, stride: 1, padding: .valid, groups: 1, act: act),
                    "pointwise plain \(c)")
    }

    /// Widths 13 and 29 take the unrolled kernel's 8-, 4- and 1-pixel blocks; 3 and 2 leave every window cut
    /// by both edges (5×5 over 3 columns); c = 40 and 17 have channels past the last vector. Outputs 13 and 9
    /// wide on the small-map tile path run their last columns as vertical blocks (stride 1 and 2).
    @Test(arguments: [(k: 3, stride: 1, c: 48, w: 13), (k: 3, stride: 2, c: 40, w: 13), (k: 5, stride: 1, c: 32, w: 13),
                      (k: 5, stride: 2, c: 16, w: 13), (k: 7, stride: 1, c: 20, w: 13), (k: 3, stride: 1, c: 16, w: 29),
                      (k: 5, stride: 2, c: 32, w: 29), (k: 5, stride: 1, c: 17, w: 3), (k: 3, stride: 2, c: 16, w: 2),
                      (k: 5, stride: 2, c: 32, w: 17), (k: 3, stride: 2, c: 16, w: 18)])
    func depthwiseAndMeans(_ p: (k: Int, stride: Int, c: Int, w: Int)) {
        let x = tensor([2, 15, p.w, p.c], seed: 6)
        let weight = tensor([p.c, 1, p.k, p.k], seed: 7), bias = tensor([p.c], seed: 8)
        for (act, padding) in [(Activation.silu, Padding.tfSame), (.prelu((0..<p.c).map { Float($0) / 30 }), .symmetric(p.k / 2))] {
            let conv = Conv2D(weight: weight, bias: bias, stride: (p.stride, p.stride), padding: padding, groups: p.c, activation: act)
            let ref = reference(x, weight: weight, bias: bias, stride: p.stride, padding: padding, groups: p.c, act: act)
            expectClose(conv(x), ref, "depthwise \(p) \(act)")
            let (y, means) = conv.depthwiseWithMeans(x)
            expectClose(y, ref, "depthwiseWithMeans output \(p)")
            expectClose(means, globalAveragePool(ref), "depthwiseWithMeans means \(p)")
        }
    }

    /// The expansion fused into the depthwise layer (ExpandDepthwise.swift) gives the very floats of the two
    /// layers run in turn, and the definition's within rounding: 3×3 and 5×5, stride 1 and 2, TF "SAME" and
    /// symmetric padding, 1 to 4 threads (3 threads cut both images' row ranges mid-image), float32 and int8
    /// expansions, large maps (rows expanded into a ring) and small ones (tiles filled panel by panel).
    @Test(arguments: [(k: 3, stride: 1), (k: 3, stride: 2), (k: 5, stride: 1), (k: 5, stride: 2)])
    func expansionFusedIntoDepthwise(_ p: (k: Int, stride: Int)) {
        let (cin, mid) = (24, 48)
        let x = tensor([2, 30, 31, cin], seed: 20)
        let ew = tensor([mid, cin, 1, 1], seed: 21), eb = tensor([mid], seed: 22)
        let dw = tensor([mid, 1, p.k, p.k], seed: 23), db = tensor([mid], seed: 24)
        let expand = Conv2D(weight: ew, bias: eb, padding: .tfSame, activation: .silu)
        let expanded = reference(x, weight: ew, bias: eb, stride: 1, padding: .valid, groups: 1, act: .silu)
        for padding in [Padding.tfSame, .symmetric(p.k / 2)] {
            let conv = Conv2D(weight: dw, bias: db, stride: (p.stride, p.stride), padding: padding, groups: mid, activation: .silu)
            #expect(conv.fusesExpansion(expand, height: 30, width: 31))
            let ref = reference(expanded, weight: dw, bias: db, stride: p.stride, padding: padding, groups: mid, act: .silu)
            acrossThreadCounts { threads in
                let (y, means) = conv.depthwiseWithMeans(x, expandedBy: expand)
                let (y2, means2) = conv.depthwiseWithMeans(expand(x))
                #expect(y.shape == y2.shape && y.array == y2.array, "fused \(p) \(padding), \(threads) threads: not the unfused floats")
                #expect(means.array == means2.array, "fused means \(p) \(padding), \(threads) threads")
                #expect(conv(x, expandedBy: expand).array == y2.array, "fused without means \(p) \(padding), \(threads) threads")
                expectClose(y, ref, "fused \(p) \(padding), \(threads) threads")
                expectClose(means, globalAveragePool(ref), "fused means \(p) \(padding)")
            }
        }
        // Small maps take the tiled form (one image and weight panel at a time) with AVX2's panels, float32 only:
        // 12 × 12 and 9 × 9 maps, 48 and 400 channels (3 and 25 panels), two images. With AVX-512 they run
        // unfused, and the same comparison holds.
        for (side, channels) in [(12, mid), (9, 400)] {
            let small = tensor([2, side, side, cin], seed: 25)
            let e = Conv2D(weight: tensor([channels, cin, 1, 1], seed: 28), bias: tensor([channels], seed: 29), activation: .silu)
            let conv = Conv2D(weight: tensor([channels, 1, p.k, p.k], seed: 30), bias: tensor([channels], seed: 31),
                              stride: (p.stride, p.stride), padding: .tfSame, groups: channels, activation: .silu)
            acrossThreadCounts { threads in
                // Fused with AVX2's 16-wide panels, wherever each thread has four (image, panel) items.
                let panels = channels / 16
                let fused = GEMMTile.native == .rows6x16 && (threads == 1 || 2 * panels >= 4 * threads)
                #expect(conv.fusesExpansion(e, height: side, width: side, batch: 2) == fused, "small map \(side), \(threads) threads")
                let (y, means) = conv.depthwiseWithMeans(small, expandedBy: e)
                let (y2, means2) = conv.depthwiseWithMeans(e(small))
                #expect(y.shape == y2.shape && y.array == y2.array, "small map \(side) \(p), \(threads) threads: not the unfused floats")
                #expect(means.array == means2.array, "small map \(side) means \(p), \(threads) threads")
                #expect(conv(small, expandedBy: e).array == y2.array, "small map \(side) without means \(p), \(threads) threads")
            }
        }
        let conv = Conv2D(weight: dw, bias: db, stride: (p.stride, p.stride), padding: .tfSame, groups: mid, activation: .silu)
        // An int8 expansion (64 input channels: int8 reduces over at least 64) fuses on large maps, with the same
        // floats, and runs unfused on small ones.
        let int8 = Conv2D(weight: tensor([mid, 64, 1, 1], seed: 26), bias: eb, activation: .silu, precision: .int8)
        #expect(int8.precision == .int8 && conv.fusesExpansion(int8, height: 30, width: 31))
        #expect(!conv.fusesExpansion(int8, height: 12, width: 12))
        let small64 = tensor([1, 12, 12, 64], seed: 32)
        #expect(conv.depthwiseWithMeans(small64, expandedBy: int8).output.array == conv.depthwiseWithMeans(int8(small64)).output.array)
        let x64 = tensor([2, 30, 31, 64], seed: 27)
        acrossThreadCounts { threads in
            #expect(conv.depthwiseWithMeans(x64, expandedBy: int8).output.array == conv.depthwiseWithMeans(int8(x64)).output.array,
                    "int8 expansion fused \(p), \(threads) threads")
        }
    }

    @Test func stemDirectKernel() {
        for cout in [16, 32, 64, 96] {
            let x = tensor([2, 17, 19, 3], seed: 9)
            let weight = tensor([cout, 3, 3, 3], seed: 10), bias = tensor([cout], seed: 11)
            let conv = Conv2D(weight: weight, bias: bias, stride: (2, 2), padding: .tfSame, activation: .silu)
            expectClose(conv(x), reference(x, weight: weight, bias: bias, stride: 2, padding: .tfSame, groups: 1, act: .silu),
                        "stem \(cout)")
            // Symmetric padding (a cut window on the left) and per-channel slopes in the four-pixel blocks.
            let prelu = Activation.prelu((0..<cout).map { Float($0) / 40 })
            let padded = Conv2D(weight: weight, bias: bias, stride: (2, 2), padding: .symmetric(1), activation: prelu)
            expectClose(padded(x), reference(x, weight: weight, bias: bias, stride: 2, padding: .symmetric(1), groups: 1, act: prelu),
                        "stem \(cout) padded PReLU")
            // NCHW pixels read in place give the same result as the NHWC path.
            let nchw = x.permuted([0, 3, 1, 2])
            expectClose(conv(nchw: nchw), conv(x), "stem \(cout) from NCHW")
            expectClose(padded(nchw: nchw), padded(x), "stem \(cout) padded PReLU from NCHW")
        }
        // Layers the direct kernel does not take transpose first: a 1×1 over 3 channels, a 16→16 3×3.
        for (cin, cout, k) in [(3, 32, 1), (16, 16, 3)] {
            let x = tensor([1, 9, 7, cin], seed: 12)
            let conv = Conv2D(weight: tensor([cout, cin, k, k], seed: 13), bias: nil, padding: .symmetric(k / 2), activation: .relu)
            expectClose(conv(nchw: x.permuted([0, 3, 1, 2])), conv(x), "\(cin)→\(cout) \(k)×\(k) from NCHW")
        }
    }

    /// Grouped convolutions with 2–8 channels per group in and out run as sums of depthwise convolutions
    /// (MobileFaceNet's 64 groups of 2); 34 channels = 17 groups of 2 leave a channel tail.
    @Test(arguments: [(c: 32, perGroup: 2, stride: 1, k: 3), (c: 48, perGroup: 3, stride: 2, k: 3),
                      (c: 64, perGroup: 8, stride: 1, k: 5), (c: 34, perGroup: 2, stride: 2, k: 3)])
    func smallGroupConvolution(_ p: (c: Int, perGroup: Int, stride: Int, k: Int)) {
        let x = tensor([2, 11, 13, p.c], seed: 16)
        let weight = tensor([p.c, p.perGroup, p.k, p.k], seed: 17), bias = tensor([p.c], seed: 18)
        let groups = p.c / p.perGroup
        let prelu = Activation.prelu((0..<p.c).map { Float($0) / 70 })
        let conv = Conv2D(weight: weight, bias: bias, stride: (p.stride, p.stride), padding: .symmetric(p.k / 2),
                          groups: groups, activation: prelu)
        let ref = reference(x, weight: weight, bias: bias, stride: p.stride, padding: .symmetric(p.k / 2), groups: groups, act: prelu)
        expectClose(conv(x), ref, "small groups \(p)")
        let residual = tensor(ref.shape, seed: 19)
        expectClose(conv(x, residual: residual),
                    reference(x, weight: weight, bias: bias, stride: p.stride, padding: .symmetric(p.k / 2), groups: groups,
                              act: prelu, residual: residual), "small groups + residual \(p)")
    }

    @Test(arguments: [(size: 20, groups: 1, stride: 1), (size: 20, groups: 2, stride: 2), (size: 5, groups: 1, stride: 1),
                      (size: 6, groups: 4, stride: 1)])
    func generalConvolution(_ p: (size: Int, groups: Int, stride: Int)) {
        // 2×20×20 pixels: whole tiles per thread; 2×5×5: one shared gather and threaded GEMMs.
        let (cin, cout) = (24, 32)
        let x = tensor([2, p.size, p.size, cin], seed: 12)
        let weight = tensor([cout, cin / p.groups, 3, 3], seed: 13), bias = tensor([cout], seed: 14)
        for act in [Activation.silu, .none] {
            let conv = Conv2D(weight: weight, bias: act == .none ? nil : bias, stride: (p.stride, p.stride),
                              padding: .symmetric(1), groups: p.groups, activation: act)
            let residual = tensor([2, (p.size - 1) / p.stride + 1, (p.size - 1) / p.stride + 1, cout], seed: 15)
            expectClose(conv(x), reference(x, weight: weight, bias: act == .none ? nil : bias, stride: p.stride,
                                           padding: .symmetric(1), groups: p.groups, act: act), "general \(p) \(act)")
            expectClose(conv(x, residual: residual),
                        reference(x, weight: weight, bias: act == .none ? nil : bias, stride: p.stride, padding: .symmetric(1),
                                  groups: p.groups, act: act, residual: residual), "general + residual \(p) \(act)")
        }
    }

    @Test func everyChunkRunsOnceAcrossManyJobs() {
        let buffer = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
        defer { buffer.deallocate() }
        for job in 0..<20_000 {
            let count = 1 + job % 64
            buffer.initialize(repeating: 0, count: count)
            parallelFor(count, minChunk: 1) { s, e in for i in s..<e { buffer[i] += 1 } }
            let ok = (0..<count).allSatisfy { buffer[$0] == 1 }
            #expect(ok, "job \(job): an index ran \((0..<count).map { buffer[$0] }) times")
            if !ok { return }
        }
    }
}
