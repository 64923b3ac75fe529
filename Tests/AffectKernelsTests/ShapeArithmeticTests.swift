import Testing
import AffectKernels

/// Output sizes and padding of convolution and pooling windows, against PyTorch / TensorFlow formulas.
@Suite struct ShapeArithmeticTests {
    @Test func tfSamePaddingIsAsymmetric() {
        // TF: out = ceil(i / s); pad = max((out − 1)·s + (k − 1)·d + 1 − i, 0); the odd pixel goes after.
        let cases: [(i: Int, k: Int, s: Int, before: Int, out: Int)] = [
            (224, 3, 2, 0, 112), (225, 3, 2, 1, 113), (112, 5, 2, 1, 56), (113, 5, 2, 2, 57), (7, 3, 1, 1, 7), (1, 3, 2, 1, 1),
        ]
        for c in cases {
            let r = Padding.tfSame.resolve(input: c.i, kernel: c.k, stride: c.s, dilation: 1, axis: 0)
            #expect(r.before == c.before && r.out == c.out, "i=\(c.i) k=\(c.k) s=\(c.s): got \(r)")
        }
    }

    @Test func ceilModeDropsWindowsStartingInThePadding() {
        // torch.nn.MaxPool2d(3, 2, ceil_mode=True) on 112 → 56; on 5 with padding 1 → 3.
        #expect(Padding.valid.resolve(input: 112, kernel: 3, stride: 2, dilation: 1, axis: 0, ceilMode: true).out == 56)
        #expect(Padding.valid.resolve(input: 12, kernel: 2, stride: 2, dilation: 1, axis: 0, ceilMode: true).out == 6)
        #expect(Padding.valid.resolve(input: 11, kernel: 2, stride: 2, dilation: 1, axis: 0, ceilMode: true).out == 6)
        #expect(Padding.symmetric(1).resolve(input: 5, kernel: 2, stride: 2, dilation: 1, axis: 0, ceilMode: true).out == 3)
    }

    @Test func broadcastingFollowsNumPy() {
        #expect(broadcastShape([2, 1, 4], [3, 1]) == [2, 3, 4])
        #expect(broadcastShape([5], [2, 5]) == [2, 5])
        #expect(broadcastShape([2, 3], [3, 2]) == nil)
    }

    @Test func reshapeSharesStorageAndInfersOneAxis() {
        let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let r = t.reshaped([3, -1])
        #expect(r.shape == [3, 2])
        #expect(r.data == t.data)
        #expect(t.permuted([1, 0]).array == [1, 4, 2, 5, 3, 6])
    }
}
