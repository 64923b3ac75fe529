import AffectKernels
import AffectModels
import FuzzSupport

/// A weight file: the safetensors reader, `affect.*` metadata, each architecture's load-time validation, then
/// one small forward pass on whatever loaded (an accepted file must never make the forward pass read or write
/// outside its buffers).
runFuzzer { bytes, count in
    guard let bytes else { return 0 }
    let start = UnsafeRawPointer(bytes)
    let path = FuzzFile.write(start, count, ext: "safetensors")
    guard let model = try? ModelLoader.load(path) else { return 0 }
    _ = try? model.run(model.benchInputs(BenchShape(batch: 1, audioSeconds: 0.25, tokens: 6)), source: "fuzz")
    return 0
}
