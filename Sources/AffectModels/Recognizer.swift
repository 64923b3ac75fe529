import AffectKernels

/// A facial backbone with EmotiEffLib's split: penultimate features, then a linear classifier.
public protocol FacialBackbone: InferenceModel {
    /// Class names in output order (`affect.labels`); for `*_va_mtl` models the last two are valence, arousal.
    var labels: [String] { get }
    /// Default input side in pixels.
    var inputSize: Int { get }
    /// Normalised NHWC pixels → `[N, D]` features (EmotiEffLib's `extract_features`).
    func features(nhwc: Tensor) -> Tensor
    /// The same from NCHW pixels (PyTorch's layout). By default the pixels are transposed to NHWC first;
    /// a backbone whose stem reads NCHW in place skips that pass.
    func features(nchw: Tensor) -> Tensor
    /// `[N, D]` features → `[N, C]` logits, if the file has a classifier.
    func logits(features: Tensor) -> Tensor?
    /// `D`, the width of ``features(nhwc:)``'s rows (known from the weights, no forward pass needed).
    var featureWidth: Int { get }
    /// Whether the file has a classifier (``logits(features:)`` returns logits).
    var hasClassifier: Bool { get }
}

extension EfficientNet: FacialBackbone {}

extension FacialBackbone {
    public func features(nchw pixels: Tensor) -> Tensor { features(nhwc: pixels.nchwToNHWC()) }

    /// `features` and (with a classifier) `logits` from PyTorch-layout pixels, as the reference files name them.
    public func outputs(pixelsNCHW pixels: Tensor) -> [String: Tensor] {
        let f = features(nchw: pixels)
        var out = ["features": f]
        if let l = logits(features: f) { out["logits"] = l }
        return out
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        ModelInputs(floats: ["pixels": Tensor.filled([shape.batch, 3, inputSize, inputSize], with: 0.1)])
    }
}

/// What ``EmotionRecognizer/classifyEmotions(_:logits:)`` returns for each face.
public struct EmotionPrediction: Sendable {
    /// The best expression class of each face.
    public var labels: [String]
    /// `[N, C]`: expression logits (or softmax probabilities), followed for multi-task models by the
    /// untouched valence and arousal outputs, exactly as EmotiEffLib returns them.
    public var scores: Tensor
    /// Valence and arousal per face, for multi-task (`*_va_mtl`) models.
    public var valence: [Float]?
    public var arousal: [Float]?
}

/// EmotiEffLib's recogniser in Swift: `extractFeatures`, `classifyEmotions`, `predictEmotions` over RGB face
/// crops of any size, with EmotiEffLib's torch-path preprocessing (PIL bilinear resize, ToTensor, Normalize).
///
/// ```swift
/// let recognizer = try EmotionRecognizer(weights: WeightFile(path: "enet_b0_8_best_afew.safetensors"))
/// let prediction = try recognizer.predictEmotions(faces, logits: false)
/// ```
/// It is also the ``FaceModel`` of these backbones: called on a frame and its face boxes, it crops each box
/// as EmotiEffLib does and returns a typed ``FacePrediction``.
public struct EmotionRecognizer: Sendable {
    /// The weight file (named in messages).
    public let path: String
    public let backbone: any FacialBackbone
    public let preprocessing: ImagePreprocessing
    /// True when the classifier's last two outputs are valence and arousal (`*_va_mtl`).
    public let isMultiTask: Bool
    /// Expression class names (without valence/arousal).
    public let expressionLabels: [String]
    /// Box growth on every side as a fraction of its size when cropping faces from a frame (0: EmotiEffLib's
    /// own crop `frame[y1:y2, x1:x2]`).
    public let margin: Float

    public init(weights w: WeightFile, margin: Float = 0) throws {
        path = w.path
        guard margin.isFinite, margin >= 0, margin <= 1 else { throw w.problem("a crop margin of \(margin) is outside 0 to 1.") }
        self.margin = margin
        guard let model = try ModelLoader.load(w) as? any FacialBackbone else {
            throw AffectError.badInput("\(path): a `\(w.arch)` model is not a facial expression backbone.")
        }
        backbone = model
        preprocessing = try ImagePreprocessing(weights: w, defaultSize: model.inputSize)
        isMultiTask = model.labels.suffix(2) == ["Valence", "Arousal"]
        expressionLabels = isMultiTask ? Array(model.labels.dropLast(2)) : model.labels
        // The backbone checked the labels against its classifier's width; a multi-task head also needs an
        // expression class before valence and arousal.
        guard !isMultiTask || !expressionLabels.isEmpty else {
            throw AffectError.badInput("\(path): metadata `affect.labels` names valence and arousal but no expression class.")
        }
    }

    /// Penultimate features `[N, D]` of RGB face crops.
    public func extractFeatures(_ faces: [RGBImage]) throws -> Tensor {
        guard !faces.isEmpty else { return Tensor.zeros([0, 0]) }
        if let bad = faces.firstIndex(where: { $0.width == 0 || $0.height == 0 }) {
            throw AffectError.badInput("face \(bad) is an empty crop (\(faces[bad].width)×\(faces[bad].height)).")
        }
        return backbone.features(nhwc: preprocessing(faces))
    }

    /// Expression scores from features; `logits: false` applies softmax to the expression part only.
    public func classifyEmotions(_ features: Tensor, logits: Bool = true) throws -> EmotionPrediction {
        guard let raw = backbone.logits(features: features) else {
            throw AffectError.badInput("the weight file has no classifier, so it cannot classify emotions.")
        }
        let (n, c) = (raw.shape[0], raw.shape[1])
        let k = isMultiTask ? c - 2 : c
        guard k == expressionLabels.count || expressionLabels.isEmpty else {
            throw AffectError.badInput("the classifier has \(k) expression outputs but the file names \(expressionLabels.count) labels.")
        }
        let scores = raw.copy()
        var labels: [String] = []
        var valence: [Float] = [], arousal: [Float] = []
        for i in 0..<n {
            let row = scores.data + i * c
            var best = 0
            for j in 1..<k where row[j] > row[best] { best = j }
            labels.append(best < expressionLabels.count ? expressionLabels[best] : String(best))
            if !logits { softmaxRow(row, k) }
            if isMultiTask { valence.append(row[c - 2]); arousal.append(row[c - 1]) }
        }
        return EmotionPrediction(labels: labels, scores: scores, valence: isMultiTask ? valence : nil,
                                 arousal: isMultiTask ? arousal : nil)
    }

    /// `extractFeatures` then `classifyEmotions`.
    public func predictEmotions(_ faces: [RGBImage], logits: Bool = true) throws -> EmotionPrediction {
        try classifyEmotions(try extractFeatures(faces), logits: logits)
    }
}
