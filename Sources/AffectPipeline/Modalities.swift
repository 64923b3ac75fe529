import Foundation
import AffectKernels
import AffectModels

/// A per-face expression model: face crops of one frame in, features and logits per face out.
///
/// The analyzer calls it once per analysed frame with every face to be analysed in that frame (a batch).
public protocol FaceExpressionModel {
    /// The weight file (named in messages).
    var path: String { get }
    /// Expression class names, in the order of the first ``expressionCount`` logits.
    var labels: [String] { get }
    /// Width of the feature vector per face (what heads on the face modality receive).
    var featureWidth: Int { get }
    /// Whether the last two logits are valence and arousal (EmotiEffLib `*_va_mtl` models).
    var hasValenceArousal: Bool { get }
    /// `[N, featureWidth]` features and `[N, labels.count (+2)]` logits of the faces `boxes` in `frame`.
    func run(frame: RGBImage, boxes: [FaceDetection]) throws -> (features: Tensor, logits: Tensor)
}

/// The `fer` package's mini-Xception with fer's own preprocessing of each box (gray, padded, ±10 px, 64×64).
/// Its penultimate layer is the global average of its 7-channel class map, so its features are its logits.
public struct MiniXceptionFaces: FaceExpressionModel {
    public let path: String
    public let model: MiniXception
    public var labels: [String] { model.labels }
    public var featureWidth: Int { model.labels.count }
    public var hasValenceArousal: Bool { false }

    public init(weights path: String) throws {
        self.path = path
        model = try MiniXception(weights: WeightFile(path: path))
        guard !model.labels.isEmpty else { throw AffectError.badInput("\(path): the mini-Xception file names no class labels.") }
    }

    public func run(frame: RGBImage, boxes: [FaceDetection]) throws -> (features: Tensor, logits: Tensor) {
        try requireFinite(boxes, path: path)
        // The file's labels were checked against the classifier's width at load.
        let c = labels.count
        let logits = Tensor(uninitialized: [boxes.count, c])
        for (i, b) in boxes.enumerated() {
            // fer receives integer boxes (`int()` truncation of the detector's floats).
            let box = (FaceDetection.pixel(b.x1), FaceDetection.pixel(b.y1), FaceDetection.pixel(b.x2), FaceDetection.pixel(b.y2))
            let x = try MiniXception.ferInput(frame, box: box, size: model.inputSize)
            let l = model.logits(nhwc: x)
            for j in 0..<c { logits.data[i * c + j] = l.data[j] }
        }
        return (logits, logits)
    }
}

/// An EmotiEffLib backbone (EfficientNet, MobileViT, MobileFaceNet) with its classifier, on
/// EmotiEffLib's crops `frame[y1:y2, x1:x2]` of each box.
public struct EmotiEffLibFaces: FaceExpressionModel {
    public let path: String
    public let recognizer: EmotionRecognizer
    public let featureWidth: Int
    /// Box growth on every side as a fraction of its size (0: EmotiEffLib's own crop).
    public var margin: Float
    public var labels: [String] { recognizer.expressionLabels }
    public var hasValenceArousal: Bool { recognizer.isMultiTask }

    public init(weights path: String, margin: Float = 0) throws {
        self.path = path
        self.margin = margin
        recognizer = try EmotionRecognizer(weights: path)
        // The feature width is the backbone's; one tiny forward pass finds it (and proves there is a classifier).
        let probe = RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 128, count: 8 * 8 * 3))
        let f = try recognizer.extractFeatures([probe])
        guard recognizer.backbone.logits(features: f) != nil else {
            throw AffectError.badInput("\(path): the weight file has no expression classifier; affect analyze needs one.")
        }
        featureWidth = f.shape[1]
    }

    public func run(frame: RGBImage, boxes: [FaceDetection]) throws -> (features: Tensor, logits: Tensor) {
        try requireFinite(boxes, path: path)
        let crops = boxes.map { frame.crop($0, margin: margin) }
        if let bad = crops.firstIndex(where: { $0.width == 0 || $0.height == 0 }) {
            // A box entirely outside the frame: MTCNN can return one at the border; give it one pixel.
            var fixed = crops
            fixed[bad] = frame.cropped(x0: 0, y0: 0, x1: 1, y1: 1)
            return try run(crops: fixed)
        }
        return try run(crops: crops)
    }

    private func run(crops: [RGBImage]) throws -> (features: Tensor, logits: Tensor) {
        let f = try recognizer.extractFeatures(crops)
        guard let l = recognizer.backbone.logits(features: f) else {
            throw AffectError.badInput("\(path): the weight file has no expression classifier.")
        }
        return (f, l)
    }
}

/// Throws unless every box is finite: a NaN or infinite corner has no pixel to crop (``MTCNN`` never returns
/// one; this guards boxes from anywhere else).
func requireFinite(_ boxes: [FaceDetection], path: String) throws {
    if let i = boxes.firstIndex(where: { !$0.isFinite }) {
        let b = boxes[i]
        throw AffectError.badInput("\(path): face box \(i) (\(b.x1), \(b.y1), \(b.x2), \(b.y2)) is not finite; no face can be cropped from it.")
    }
}

/// Opens a facial expression weight file as the model its architecture names.
public func loadFaceExpressionModel(_ path: String) throws -> any FaceExpressionModel {
    let w = try WeightFile(path: path)
    switch w.arch {
    case "mini_xception": return try MiniXceptionFaces(weights: path)
    case "efficientnet", "mobilevit", "mobilefacenet": return try EmotiEffLibFaces(weights: path)
    default:
        throw AffectError.badInput("\(path): a `\(w.arch)` model is not a facial expression model (expected mini_xception, efficientnet, mobilevit or mobilefacenet).")
    }
}

/// Sentence (or segment) embeddings of text, e.g. all-MiniLM-L6-v2 through sentence-transformers pooling.
public protocol TextEmbedder {
    /// The weight file (named in messages).
    var path: String { get }
    /// Width of one embedding.
    var width: Int { get }
    /// One row per text.
    func embed(_ texts: [String]) throws -> FeatureMatrix
}

/// Frame-level embeddings of a video's sound track, e.g. wav2vec 2.0 / HuBERT `last_hidden_state` at 50 Hz.
public protocol AudioEmbedder {
    var path: String { get }
    var width: Int { get }
    /// Embedding frames per second (50 for wav2vec 2.0 / HuBERT); frame `i` is centred at
    /// ``Alignment/audioFrameTimes(count:rate:receptiveField:)``.
    var frameRate: Double { get }
    /// One row per audio frame of the audio stream of `mediaPath`.
    func embed(audioOf mediaPath: String) throws -> FeatureMatrix
}

/// Speech to text with times (e.g. a CTC head with greedy decoding), for `--asr`.
public protocol SpeechRecognizer {
    var path: String { get }
    /// Timed segments of what is said in the audio stream of `mediaPath` (named `mediaPath` in errors).
    func transcribe(audioOf mediaPath: String) throws -> TimedTranscript
}

/// Features from one model (for the heads) and expression probabilities from another (for the
/// probabilities reported and the confidence filter), on the same faces.
public struct CombinedFaceModel: FaceExpressionModel {
    public let features: any FaceExpressionModel
    public let expression: any FaceExpressionModel
    public init(features: any FaceExpressionModel, expression: any FaceExpressionModel) {
        self.features = features; self.expression = expression
    }
    public var path: String { expression.path }
    public var labels: [String] { expression.labels }
    public var featureWidth: Int { features.featureWidth }
    public var hasValenceArousal: Bool { expression.hasValenceArousal }
    public func run(frame: RGBImage, boxes: [FaceDetection]) throws -> (features: Tensor, logits: Tensor) {
        (try features.run(frame: frame, boxes: boxes).features, try expression.run(frame: frame, boxes: boxes).logits)
    }
}
