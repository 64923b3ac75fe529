import AffectKernels

/// What a face model says about the faces of one frame, one row per face in the order they were given.
public struct FacePrediction {
    /// `[N, featureWidth]`: what heads on the face modality receive.
    public var features: Tensor
    /// `[N, expressionLabels.count]`: expression logits (no valence/arousal columns).
    public var logits: Tensor
    /// `[N, 2]`: valence and arousal as the model outputs them, for multi-task (`*_va_mtl`) models.
    public var valenceArousal: Tensor?
    /// The expression classes, in the order of ``logits``' columns.
    public var labels: [String]

    public init(features: Tensor, logits: Tensor, valenceArousal: Tensor?, labels: [String]) {
        self.features = features; self.logits = logits; self.valenceArousal = valenceArousal; self.labels = labels
    }

    /// Number of faces.
    public var count: Int { logits.shape[0] }

    /// `[N, C]` softmax of each face's expression logits.
    public var probabilities: Tensor { softmax(logits) }

    /// The best expression class of each face (the first of equal logits, as `argmax` takes it).
    public var topLabels: [String] {
        let c = logits.shape[1]
        return (0..<count).map { i in
            let row = logits.data + i * c
            var best = 0
            for j in 1..<c where row[j] > row[best] { best = j }
            return labels[best]
        }
    }

    /// `[N, C (+ 2)]`: the logits followed by valence and arousal, as EmotiEffLib's classifiers emit them
    /// and as `affect extract` stores them.
    public var packedLogits: Tensor {
        guard let va = valenceArousal else { return logits }
        return concat([logits, va], axis: 1)
    }
}

/// A facial expression model: the faces found in one frame in, typed predictions out.
///
/// Every facial architecture conforms: EmotiEffLib's backbones through ``EmotionRecognizer`` (crop of each
/// box, the library's preprocessing, features → classifier) and the `fer` package's ``MiniXception`` (its own
/// gray, padded crop of the frame). The model receives the whole frame and the boxes, not crops, because each
/// family crops differently. The analyzer calls it once per analysed frame with all of that frame's faces.
///
/// ```swift
/// let model = try FaceModels.load(WeightFile(path: "enet_b0_8_va_mtl.safetensors"))
/// let prediction = try model(frame, faces: detector.detect(frame))
/// print(prediction.topLabels, prediction.valenceArousal?.shape ?? [])
/// ```
public protocol FaceModel: Sendable {
    /// The weight file (named in messages).
    var path: String { get }
    /// Expression class names, in the order of ``FacePrediction/logits``' columns.
    var expressionLabels: [String] { get }
    /// Width of the feature vector per face.
    var featureWidth: Int { get }
    /// Whether predictions carry valence and arousal.
    var hasValenceArousal: Bool { get }
    /// Predictions for the faces `faces` of `frame` (an empty list gives empty tensors).
    func callAsFunction(_ frame: RGBImage, faces: [FaceDetection]) throws -> FacePrediction
}

extension FaceModel {
    /// Width of ``FacePrediction/packedLogits``: the expression classes, plus valence and arousal.
    public var packedLogitWidth: Int { expressionLabels.count + (hasValenceArousal ? 2 : 0) }

    /// The prediction for `faces`, checked to have one row per face and this model's widths (a model that
    /// breaks its own contract is reported, never indexed past).
    public func predict(_ frame: RGBImage, faces: [FaceDetection]) throws -> FacePrediction {
        try requireFinite(faces, path: path)
        let p = try self(frame, faces: faces)
        let n = faces.count
        guard p.features.shape == [n, featureWidth], p.logits.shape == [n, expressionLabels.count],
              p.valenceArousal.map({ $0.shape == [n, 2] }) ?? !hasValenceArousal else {
            throw AffectError.badInput("\(path): the model gave features \(p.features.shape), logits \(p.logits.shape) and valence/arousal \(p.valenceArousal?.shape ?? []) for \(n) faces.")
        }
        return p
    }
}

/// Opens facial expression weight files as the ``FaceModel`` their architecture names.
public enum FaceModels {
    /// Architectures that load as a ``FaceModel``.
    public static var architectures: [String] { Architectures.names(.face) }

    /// The face model of `w`. `margin` grows EmotiEffLib's crops on every side by that fraction of the box
    /// (0: the library's own crop); mini-Xception crops as `fer` does and ignores it. The model must classify
    /// expressions (a feature-only backbone is refused: use ``EmotionRecognizer`` for features alone).
    public static func load(_ w: WeightFile, margin: Float = 0) throws -> any FaceModel {
        switch w.arch {
        case "mini_xception":
            let m = try MiniXception(weights: w)
            guard !m.labels.isEmpty else { throw w.problem("the mini-Xception file names no class labels.") }
            return m
        case let arch where Architectures.names(.face).contains(arch):
            let r = try EmotionRecognizer(weights: w, margin: margin)
            guard r.backbone.hasClassifier else { throw w.problem("the weight file has no expression classifier, which a face model for analysis needs.") }
            return r
        default:
            throw w.problem("a `\(w.arch)` model is not a facial expression model (expected \(architectures.joined(separator: ", "))).")
        }
    }
}

/// Features from one model (for the heads) and expression predictions from another (for the probabilities
/// reported and the confidence filter), on the same faces.
public struct CombinedFaceModel: FaceModel {
    public let features: any FaceModel
    public let expression: any FaceModel
    public init(features: any FaceModel, expression: any FaceModel) {
        self.features = features; self.expression = expression
    }
    public var path: String { expression.path }
    public var expressionLabels: [String] { expression.expressionLabels }
    public var featureWidth: Int { features.featureWidth }
    public var hasValenceArousal: Bool { expression.hasValenceArousal }
    public func callAsFunction(_ frame: RGBImage, faces: [FaceDetection]) throws -> FacePrediction {
        var p = try expression.predict(frame, faces: faces)
        p.features = try features.predict(frame, faces: faces).features
        return p
    }
}

extension MiniXception: FaceModel {
    public var expressionLabels: [String] { labels }
    /// Its penultimate layer is the global average of its class map, so its features are its logits.
    public var featureWidth: Int { labels.count }
    public var hasValenceArousal: Bool { false }

    /// `fer`'s preprocessing of each box (gray, padded, ±10 px, 64×64, see ``ferInput(_:box:size:)``), one
    /// forward pass per face (the single-image path is the fast one for this small network).
    public func callAsFunction(_ frame: RGBImage, faces: [FaceDetection]) throws -> FacePrediction {
        guard !labels.isEmpty else { throw AffectError.badInput("\(path): the mini-Xception file names no class labels.") }
        let c = labels.count
        let logits = Tensor(uninitialized: [faces.count, c])
        for (i, b) in faces.enumerated() {
            // fer receives integer boxes (`int()` truncation of the detector's floats).
            let box = (FaceDetection.pixel(b.x1), FaceDetection.pixel(b.y1), FaceDetection.pixel(b.x2), FaceDetection.pixel(b.y2))
            let l = self.logits(nhwc: try Self.ferInput(frame, box: box, size: inputSize))
            for j in 0..<c { logits.data[i * c + j] = l.data[j] }
        }
        return FacePrediction(features: logits, logits: logits, valenceArousal: nil, labels: labels)
    }
}

extension EmotionRecognizer: FaceModel {
    public var hasValenceArousal: Bool { isMultiTask }
    public var featureWidth: Int { backbone.featureWidth }

    /// EmotiEffLib's crop `frame[y1:y2, x1:x2]` of each box (grown by ``margin``), then ``predictEmotions(_:logits:)``.
    public func callAsFunction(_ frame: RGBImage, faces: [FaceDetection]) throws -> FacePrediction {
        guard !faces.isEmpty else {
            return FacePrediction(features: Tensor.zeros([0, featureWidth]), logits: Tensor.zeros([0, expressionLabels.count]),
                                  valenceArousal: isMultiTask ? Tensor.zeros([0, 2]) : nil, labels: expressionLabels)
        }
        // A box entirely outside the frame (MTCNN can return one at the border) gets the corner pixel.
        let crops = faces.map { f -> RGBImage in
            let c = frame.crop(f, margin: margin)
            return c.width == 0 || c.height == 0 ? frame.cropped(x0: 0, y0: 0, x1: 1, y1: 1) : c
        }
        let features = try extractFeatures(crops)
        guard let raw = backbone.logits(features: features) else {
            throw AffectError.badInput("\(path): the weight file has no expression classifier.")
        }
        let k = expressionLabels.count
        guard raw.shape == [faces.count, k + (isMultiTask ? 2 : 0)] else {
            throw AffectError.badInput("\(path): the classifier gave \(raw.shape) scores for \(faces.count) faces and \(k) labels.")
        }
        guard isMultiTask else { return FacePrediction(features: features, logits: raw, valenceArousal: nil, labels: expressionLabels) }
        let logits = Tensor(uninitialized: [faces.count, k]), va = Tensor(uninitialized: [faces.count, 2])
        for i in 0..<faces.count {
            for j in 0..<k { logits.data[i * k + j] = raw.data[i * (k + 2) + j] }
            va.data[2 * i] = raw.data[i * (k + 2) + k]; va.data[2 * i + 1] = raw.data[i * (k + 2) + k + 1]
        }
        return FacePrediction(features: features, logits: logits, valenceArousal: va, labels: expressionLabels)
    }
}

extension RGBImage {
    /// EmotiEffLib's crop of a face box (`frame[y1:y2, x1:x2]` with integer-truncated corners, clamped to the
    /// image), optionally grown by `margin` (a fraction of the box size) on every side. Corners are truncated by
    /// ``FaceDetection/pixel(_:)``, which never traps; a box that is not finite (check
    /// ``FaceDetection/isFinite``) gives a meaningless crop.
    public func crop(_ face: FaceDetection, margin: Float = 0) -> RGBImage {
        let (mw, mh) = ((face.x2 - face.x1) * margin, (face.y2 - face.y1) * margin)
        return cropped(x0: FaceDetection.pixel(face.x1 - mw), y0: FaceDetection.pixel(face.y1 - mh),
                       x1: FaceDetection.pixel(face.x2 + mw), y1: FaceDetection.pixel(face.y2 + mh))
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
