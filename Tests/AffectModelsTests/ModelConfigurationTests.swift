import Foundation
import Testing
import AffectKernels
import AffectModels

/// Configurations are `Decodable` values: absent keys take the architecture's defaults, numbers are bounded,
/// relations between keys are checked, and a weight file's failure names the file and the key.
@Suite struct ModelConfigurationTests {
    func decode<C: ModelConfiguration>(_ type: C.Type, _ json: String) throws -> C {
        let c = try JSONDecoder().decode(C.self, from: Data(json.utf8))
        try c.validate()
        return c
    }

    @Test func absentKeysTakeTheDefaults() throws {
        let w = try decode(Wav2Vec2.Config.self, "{}")
        #expect(w.hiddenSize == 768 && w.heads == 12 && w.convKernels == [10, 3, 3, 3, 3, 2, 2] && w.hop == 320 && w.receptiveField == 400)
        let e = try decode(EfficientNet.Config.self, #"{"bn_eps": 1e-5, "pad_type": "symmetric", "input_size": 260.0}"#)
        #expect(e.bnEps == 1e-5 && e.padType == "symmetric" && e.inputSize == 260 && e.stageStrides == [1, 2, 2, 2, 1, 2, 1])
        let t = try decode(TextTransformer.Config.self, #"{"num_attention_heads": 12, "pooling": "mean"}"#)
        #expect(t.heads == 12 && t.pooling == .mean && t.hiddenSize == nil && t.padTokenId == nil)
    }

    @Test(arguments: [
        (#"{"hidden_size": 0}"#, "hidden_size"),
        (#"{"hidden_size": 768.5}"#, "hidden_size"),
        (#"{"num_attention_heads": "twelve"}"#, "num_attention_heads"),
        (#"{"hidden_size": 768, "num_attention_heads": 5}"#, "divisible"),
        (#"{"conv_kernel": [10, 3]}"#, "equal length"),
        (#"{"conv_stride": [5, 2, 2, 2, 2, 2, -2]}"#, "conv_stride[6]"),
        (#"{"layer_norm_eps": 0}"#, "layer_norm_eps"),
        (#"{"feat_extract_norm": "batch"}"#, "feat_extract_norm"),
        (#"{"add_adapter": true}"#, "add_adapter"),
    ])
    func badValuesNameTheirKey(json: String, mention: String) {
        do {
            _ = try decode(Wav2Vec2.Config.self, json)
            Issue.record("\(json) was accepted")
        } catch {
            #expect("\(error)".contains(mention), "\(json): \(error)")
        }
    }

    @Test func headLayersAreDecodedWithTheirLayout() throws {
        let h = try decode(MLPHead.Config.self, #"""
            {"input_width": 8, "output": "softmax", "layers": [
              {"weight": "0.weight", "bias": "0.bias", "layout": "out_in", "activation": "relu"},
              {"weight": "d/kernel", "bias": null, "layout": "in_out", "activation": "softmax"}]}
            """#)
        #expect(h.layers.count == 2 && h.layers[0].layout == .outIn && h.layers[1].layout == .inOut && h.layers[1].bias == nil)
        #expect(throws: (any Error).self) { try decode(MLPHead.Config.self, #"{"input_width": 8, "output": "softmax", "layers": []}"#) }
        #expect(throws: (any Error).self) { try decode(MLPHead.Config.self, #"{"input_width": 8, "output": "tanh", "layers": [{"weight": "w", "layout": "out_in"}]}"#) }
    }

    /// Through a weight file the message is one sentence naming the file and the key.
    @Test func weightFileErrorsNameTheFileAndKey() throws {
        var f = try SafeTensorsRewrite("\(modelFixtures)/models/mobilevit_tiny.safetensors")
        try f.json("affect.config") { $0["patch_size"] = 0 }
        let path = try f.write("patch0")
        do {
            _ = try MobileViT(weights: WeightFile(path: path))
            Issue.record("patch_size 0 was accepted")
        } catch let e as AffectError {
            #expect(e.description.hasPrefix(path) && e.description.contains("`patch_size` is 0"), "\(e)")
        }
    }
}
