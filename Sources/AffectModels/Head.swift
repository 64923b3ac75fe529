import Foundation
import AffectKernels

/// A small classifier or regressor on top of backbone features (arch `head`): the authors' Keras MLPs
/// `Dense(128, relu) → Dense(n, softmax|sigmoid)` (AH: `Dense(64, relu) → Dense(1, sigmoid)`), PyTorch
/// `nn.Sequential(Linear, ReLU, Linear)` state dicts and scikit-learn `LogisticRegression`, as written by
/// `Tools/converters/head.py`.
///
/// ```
/// features N×D ─ layer 0: x·W₀ + b₀, activation₀ ─ … ─ layer k: x·Wₖ + bₖ ─ output activation → probs N×n
/// ```
///
/// `affect.config`:
/// - `input_width`: D, the feature width the head was trained on (checked against every input);
/// - `layers`: one object per dense layer, in order: `weight` and `bias` (tensor names as in the source:
///   Keras `dense_1/dense_1/kernel:0`, PyTorch `0.weight`, sklearn `coef_`), `layout` (`in_out` for Keras
///   kernels `[in, out]`, `out_in` for PyTorch and sklearn `[out, in]`), `activation` (`relu`, `tanh`,
///   `sigmoid`, `linear`) for hidden layers;
/// - `output`: the last layer's activation: `softmax`, `sigmoid`, `linear`, `sklearn_binary` (sigmoid of
///   the single decision value, returned as the two columns `[1 − p, p]` like `predict_proba`) or
///   `sklearn_ovr` (per-class sigmoids normalised to sum 1, like one-vs-rest `predict_proba`).
///
/// Keras kernels are transposed once at load; PyTorch and sklearn weights are used in place.
public struct MLPHead: InferenceModel {
    public let arch = "head"
    public let path: String
    /// Class or output names, if the converter was given them.
    public let labels: [String]
    /// The feature width the head expects.
    public let inputWidth: Int
    /// Columns of `probs`.
    public let outputWidth: Int
    /// The output activation (see the type's documentation).
    public let output: String

    let layers: [Linear]

    /// `affect.config` of a head (see the type's documentation).
    public struct Config: ModelConfiguration {
        public enum Layout: String, Decodable, Sendable {
            /// Keras kernels `[in, out]`.
            case inOut = "in_out"
            /// PyTorch and sklearn `[out, in]`.
            case outIn = "out_in"
        }
        public struct Layer: Decodable, Sendable {
            public var weight: String
            public var bias: String?
            public var layout: Layout
            /// Hidden layers only: `relu`, `tanh`, `sigmoid` or `linear`.
            public var activation = "linear"

            enum CodingKeys: String, CodingKey { case weight, bias, layout, activation }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                weight = try c.decode(String.self, forKey: .weight)
                bias = try c.decodeIfPresent(String.self, forKey: .bias)
                let l = try c.string(.layout, default: "", oneOf: ["in_out", "out_in"])
                layout = Layout(rawValue: l)!
                // The last layer's is the head's `output` (a Keras file may name `softmax` here): checked per layer at load.
                activation = try c.string(.activation, default: "linear")
            }
        }

        public var inputWidth: Int
        public var layers: [Layer]
        public var output: String

        enum CodingKeys: String, CodingKey { case inputWidth = "input_width", layers, output }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            inputWidth = try c.int(.inputWidth, in: WeightFile.Limits.width)
            output = try c.string(.output, default: "", oneOf: ["softmax", "sigmoid", "linear", "sklearn_binary", "sklearn_ovr"])
            layers = try c.decode([Layer].self, forKey: .layers)
            guard !layers.isEmpty, WeightFile.Limits.layers.contains(layers.count) else {
                throw ConfigurationError("`layers` has \(layers.count) layers, expected 1 to \(WeightFile.Limits.layers.upperBound).")
            }
        }
    }

    public init(weights w: WeightFile) throws {
        try w.require(arch: "head")
        path = w.path
        labels = w.labels
        let config = try w.configuration(Config.self)
        inputWidth = config.inputWidth
        output = config.output
        var layers: [Linear] = []
        var width = inputWidth
        for (i, spec) in config.layers.enumerated() {
            let weight = switch spec.layout {
            case .outIn: try w.tensor(spec.weight, shape: [-1, width])
            case .inOut: try w.tensor(spec.weight, shape: [width, -1]).permuted([1, 0])
            }
            let out = weight.shape[0]
            let bias = try spec.bias.map { try w.tensor($0, shape: [out]) }
            var act = Activation.none
            if i < config.layers.count - 1 {
                switch spec.activation {
                case "relu": act = .relu
                case "tanh": act = .tanh
                case "sigmoid": act = .sigmoid
                case "linear": act = .none
                case let other: throw w.problem("config `layers[\(i)].activation` `\(other)` is not supported (relu, tanh, sigmoid, linear).")
                }
            }
            layers.append(Linear(weight: weight, bias: bias, activation: act))
            width = out
        }
        if output == "sklearn_binary" && width != 1 {
            throw AffectError.badInput("\(w.path): output `sklearn_binary` needs one decision value, the last layer has \(width).")
        }
        self.layers = layers
        outputWidth = output == "sklearn_binary" ? 2 : width
        if !labels.isEmpty && labels.count != outputWidth {
            throw w.problem("metadata `affect.labels` names \(labels.count) outputs but the head gives \(outputWidth) (config `layers[\(config.layers.count - 1)]`).")
        }
    }

    public init(path: String) throws { try self.init(weights: WeightFile(path: path)) }

    /// Probabilities (or values, for `linear`) for `features` `[N, inputWidth]` → `[N, outputWidth]`.
    /// `source` names the features' origin in the error raised when their width is not `inputWidth`.
    public func predict(_ features: Tensor, source: String = "features") throws -> Tensor {
        guard features.rank == 2, features.shape[1] == inputWidth else {
            throw AffectError.badInput("\(source): the head \(path) expects features of width \(inputWidth), got shape \(features.shape.map(String.init).joined(separator: "×")).")
        }
        var x = features
        for layer in layers { x = layer(x) }
        let n = x.shape[0], c = x.shape[1]
        switch output {
        case "softmax": softmaxInPlace(x.data, rows: n, cols: c)
        case "sigmoid": activateInPlace(x, .sigmoid)
        case "sklearn_binary":
            let out = Tensor(uninitialized: [n, 2])
            for i in 0..<n {
                let p = 1 / (1 + exp(-Double(x.data[i])))
                out.data[2 * i] = Float(1 - p); out.data[2 * i + 1] = Float(p)
            }
            return out
        case "sklearn_ovr":
            activateInPlace(x, .sigmoid)
            for i in 0..<n {
                let row = x.data + i * c
                var s: Float = 0
                for j in 0..<c { s += row[j] }
                if s > 0 { for j in 0..<c { row[j] /= s } }
            }
        default: break
        }
        return x
    }

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let x = try inputs.finiteFloat("features", rank: 2, expected: "N×\(inputWidth)", source: source)
        return ["probs": try predict(x, source: source)]
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        let x = Tensor(uninitialized: [shape.batch, inputWidth])
        for i in 0..<x.count { x.data[i] = Float(i % 17) * 0.05 - 0.4 }
        return ModelInputs(floats: ["features": x])
    }

    public func flops(_ inputs: ModelInputs) -> Double? {
        let n = Double(inputs.floats["features"]?.shape.first ?? 1)
        return layers.reduce(0) { $0 + 2 * n * Double($1.inFeatures * $1.outFeatures) }
    }
}
