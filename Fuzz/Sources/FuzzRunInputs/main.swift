import AffectKernels
import AffectModels
import FuzzSupport

/// `affect run` inputs: a reference-style file of `input.*` tensors given to small committed models of each
/// family (image, audio, text, head).
private let models: [any InferenceModel] = {
    let root = FuzzFile.repoRoot
    return ["Tests/Fixtures/models/efficientnet_tiny.safetensors", "Tests/Fixtures/audio/wav2vec2_tiny.safetensors",
            "Tests/Fixtures/text/tiny_roberta_go.safetensors", "Weights/mini_xception.safetensors",
            "Tests/Fixtures/fusion/head_keras.safetensors"].map { try! ModelLoader.load("\(root)/\($0)") }
}()

runFuzzer { bytes, count in
    guard let bytes else { return 0 }
    let start = UnsafeRawPointer(bytes)
    let path = FuzzFile.write(start, count, ext: "safetensors")
    guard let ref = try? ReferenceFile(path: path) else { return 0 }
    for m in models { _ = try? m.run(ref.inputs, source: path) }
    return 0
}
