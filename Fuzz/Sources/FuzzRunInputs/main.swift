import AffectKernels
import AffectModels
import FuzzSupport

/// `affect run` inputs: a reference-style file of `input.*` tensors given to one of the small committed models of
/// each family (image, audio, text, two heads). The first byte picks the model: running all five on every input
/// made each execution five forward passes under AddressSanitizer (60 exec/s), while the validation being
/// fuzzed is each model's own.
private let models: [any InferenceModel] = {
    let root = FuzzFile.repoRoot
    return ["Tests/Fixtures/models/efficientnet_tiny.safetensors", "Tests/Fixtures/audio/wav2vec2_tiny.safetensors",
            "Tests/Fixtures/text/tiny_roberta_go.safetensors", "Weights/mini_xception.safetensors",
            "Tests/Fixtures/fusion/head_keras.safetensors"].map { try! ModelLoader.load("\(root)/\($0)") }
}()

runFuzzer { bytes, count in
    guard let bytes, count > 1 else { return 0 }
    let model = models[Int(bytes[0]) % models.count]
    let path = FuzzFile.write(UnsafeRawPointer(bytes + 1), count - 1, ext: "safetensors")
    guard let ref = try? ReferenceFile(path: path) else { return 0 }
    _ = try? model.run(ref.inputs, source: path)
    return 0
}
