import AffectKernels

/// Named inputs of a forward pass, as a reference file holds them (`input.<name>` without the prefix).
public struct ModelInputs: Sendable {
    public var floats: [String: Tensor] = [:]
    public var ints: [String: IntTensor] = [:]
    public init(floats: [String: Tensor] = [:], ints: [String: IntTensor] = [:]) {
        self.floats = floats; self.ints = ints
    }

    public func float(_ name: String, source: String) throws -> Tensor {
        guard let t = floats[name] else { throw AffectError.badInput("\(source): input `input.\(name)` is missing or not a float tensor.") }
        return t
    }
    public func int(_ name: String, source: String) throws -> IntTensor {
        guard let t = ints[name] else { throw AffectError.badInput("\(source): input `input.\(name)` is missing or not an integer tensor.") }
        return t
    }
}

/// Sizes `affect bench` asks a model to make synthetic inputs for.
public struct BenchShape: Sendable {
    public var batch = 1
    public var audioSeconds = 10.0
    public var tokens = 128
    public init(batch: Int = 1, audioSeconds: Double = 10, tokens: Int = 128) {
        self.batch = batch; self.audioSeconds = audioSeconds; self.tokens = tokens
    }
}

/// A model loaded from a weight file that runs reference-style inputs (<doc:FileFormats#Reference-file>).
public protocol InferenceModel: Sendable {
    /// The `affect.arch` it was loaded from.
    var arch: String { get }
    /// Runs the forward pass on `inputs`; returns outputs named as a reference file names them (`features`, `logits`, ...,
    /// without the `output.` prefix). `source` names the input file in errors.
    func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor]
    /// Synthetic inputs of the requested size for benchmarking.
    func benchInputs(_ shape: BenchShape) -> ModelInputs
    /// Multiply-accumulate count × 2 for `inputs`, if known (for GFLOP/s in `bench`).
    func flops(_ inputs: ModelInputs) -> Double?
}

extension InferenceModel {
    public func flops(_ inputs: ModelInputs) -> Double? { nil }
}

/// Opens a weight file as the model its `affect.arch` names (one of ``Architectures/all``).
public enum ModelLoader {
    /// - Parameter precision: ``Precision/int8`` quantises the transformer encoders' linear layers (wav2vec2,
    ///   HuBERT, BERT, RoBERTa, Whisper) and EfficientNet's expansion and head convolutions; other architectures ignore it.
    public static func load(_ path: String, precision: Precision = .float32) throws -> any InferenceModel {
        try load(WeightFile(path: path, precision: precision))
    }

    public static func load(_ w: WeightFile) throws -> any InferenceModel {
        guard let a = Architectures.named(w.arch) else {
            throw AffectError.badInput("\(w.path): unknown architecture `\(w.arch)` in `affect.arch` (known: \(Architectures.all.map(\.name).joined(separator: ", "))).")
        }
        return try a.load(w)
    }
}

/// Counts 2 × multiply-accumulates layer by layer, following the feature map's size through a network, for
/// `InferenceModel.flops` (norms, activations and pooling are left out).
struct FLOPCounter {
    private(set) var height: Int
    private(set) var width: Int
    private(set) var total = 0.0

    init(height: Int, width: Int) { (self.height, self.width) = (height, width) }

    mutating func conv(_ c: Conv2D) {
        let o = c.outputSize(height: height, width: width)
        total += 2 * Double(o.h * o.w * c.outChannels * c.kernel.h * c.kernel.w * (c.inChannels / c.groups))
        (height, width) = (o.h, o.w)
    }

    mutating func linear(_ l: Linear, rows: Double = 1) { total += 2 * rows * Double(l.inFeatures * l.outFeatures) }

    mutating func add(_ flops: Double) { total += flops }
}
