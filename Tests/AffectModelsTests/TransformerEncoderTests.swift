import Foundation
import Testing
import AffectKernels
import AffectModels

/// The reusable encoder layer with wav2vec2 tensor names, post-norm and pre-norm ("stable layer norm"),
/// against transformers' Wav2Vec2EncoderLayer / Wav2Vec2EncoderLayerStableLayerNorm
/// (`Tools/make_reference.py encoder_layers Tests/Fixtures/text`). BERT names and post-norm are covered by
/// the RoBERTa references.
@Suite struct TransformerEncoderTests {
    @Test(arguments: [("post", TransformerEncoderLayer.NormPlacement.post), ("pre", .pre)])
    func matchesTransformersLayer(_ name: String, _ placement: TransformerEncoderLayer.NormPlacement) throws {
        let w = try WeightFile(path: "\(textFixtures)/encoder_layers.safetensors")
        let ref = try ReferenceFile(path: "\(textFixtures)/encoder_layers.ref.safetensors")
        let layer = try TransformerEncoderLayer(weights: w, prefix: name, names: .wav2vec2, heads: 2, eps: 1e-5,
                                                placement: placement)
        let x = try ref.inputs.float("hidden_states", source: "ref")
        let mask = try ref.inputs.int("attention_mask", source: "ref").values.map { Float($0) }
        let y = layer(x, keyMask: mask)
        let expected = ref.outputs[name]!
        #expect(y.shape == expected.shape)
        let scale = expected.array.map(abs).max()!
        let err = zip(y.array, expected.array).map { abs($0 - $1) }.max()!
        #expect(err <= 1e-5 * scale, "\(name): max error \(err) of \(scale)")
        // A stack of one layer is the layer.
        let stack = TransformerEncoder(layers: [layer])
        var seen = 0
        #expect(stack(x, keyMask: mask, hiddenStates: { i, _ in seen = i + 1 }).array == y.array)
        #expect(seen == 1)
    }

    @Test func missingOrMisshapedTensorsAreErrors() throws {
        let w = try WeightFile(path: "\(textFixtures)/encoder_layers.safetensors")
        do { _ = try TransformerEncoderLayer(weights: w, prefix: "post", names: .bert, heads: 2, eps: 1e-5); Issue.record("accepted") }
        catch let e as AffectError { #expect(e.description.contains("attention.self.query")) }
        do { _ = try TransformerEncoderLayer(weights: w, prefix: "post", names: .wav2vec2, heads: 3, eps: 1e-5); Issue.record("accepted") }
        catch let e as AffectError { #expect(e.description.contains("heads")) }
        #expect(throws: AffectError.self) { try TransformerEncoder(weights: w, prefix: "nothing", names: .wav2vec2, heads: 2, eps: 1e-5) }
    }
}
