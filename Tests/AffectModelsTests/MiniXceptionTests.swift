import Foundation
import Testing
import AffectKernels
import AffectModels

/// mini-Xception's single-image fast path against its layer-by-layer path (which `PreprocessTests` checks
/// against Keras), on the committed real weights, at sizes that exercise partial vectors, odd maps
/// (pooling windows that hang over an edge) and one-pixel maps.
@Suite struct MiniXceptionTests {
    static let weights = URL(fileURLWithPath: modelFixtures).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Weights/mini_xception.safetensors").path

    func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(s >> 40) % 2000 - 1000) / 1000
        }
    }

    @Test(arguments: [(1, 64, 64), (3, 64, 64), (2, 48, 53), (1, 5, 5), (2, 6, 21), (1, 37, 8)])
    func singleImagePlanMatchesLayerwise(n: Int, h: Int, w: Int) throws {
        let model = try MiniXception(weights: WeightFile(path: Self.weights))
        #expect(model.usesSingleImagePlan)
        let x = Tensor(shape: [n, h, w, 1], values: values(n * h * w, seed: UInt64(h * 100 + w)))
        let fast = model.logits(nhwc: x), reference = model.layerwiseLogits(nhwc: x)
        #expect(fast.shape == reference.shape && fast.shape == [n, 7])
        let scale = reference.array.map(abs).max()!
        let err = zip(fast.array, reference.array).map { abs($0 - $1) }.max()!
        #expect(err <= 1e-4 * scale, "\(n)×\(h)×\(w): max error \(err) (scale \(scale))")
    }

    /// Images in one batch must not share workspace: each image alone gives the same scores as in the batch.
    @Test func batchedImagesAreIndependent() throws {
        let model = try MiniXception(weights: WeightFile(path: Self.weights))
        let (n, h, w) = (5, 64, 64)
        let x = Tensor(shape: [n, h, w, 1], values: values(n * h * w, seed: 9))
        let batched = model.logits(nhwc: x)
        for i in 0..<n {
            let one = Tensor(shape: [1, h, w, 1], values: Array(x.array[(i * h * w)..<((i + 1) * h * w)]))
            #expect(model.logits(nhwc: one).array == Array(batched.array[(i * 7)..<((i + 1) * 7)]))
        }
    }

    @Test func tooSmallAnImageIsABadInput() throws {
        let model = try MiniXception(weights: WeightFile(path: Self.weights))
        let inputs = ModelInputs(floats: ["pixels": Tensor.filled([1, 1, 4, 64], with: 0)])
        #expect(throws: AffectError.self) { try model.run(inputs, source: "tiny.safetensors") }
    }
}
