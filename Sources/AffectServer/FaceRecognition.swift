import Foundation
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

/// What `/v1/faces` and `/v1/stream` compute for one picture: `affect faces`'s detection (the same decoder,
/// the same MTCNN settings, so the same boxes), then the face model on every box.
struct FaceRequest: Sendable {
    var minFace: Float = 40
    /// A loaded face model's name (nil: the server's default).
    var model: String?
    var features = false

    /// Reads `min_face`, `model` and `features` from the query, with `affect faces`'s ranges.
    init(query: [String: [String]]) throws {
        try known(query, ["min_face", "model", "features"])
        if let v = try single(query, "min_face") {
            guard let f = Float(v), f.isFinite, AnalyzerOptions.minFaceSizeRange.contains(f) else {
                throw ServerError(.badRequest, "min_face must be a number from 12 to 10000 (pixels), got `\(v)`.")
            }
            minFace = f
        }
        model = try single(query, "model")
        if let v = try single(query, "features") { features = try flag(v, "features") }
    }

    init() {}
}

/// One analysed picture.
struct FaceResult {
    let width: Int
    let height: Int
    let model: String
    let labels: [String]
    let valenceArousal: Bool
    let faces: [FaceDetection]
    /// Row-major faces × feature width.
    let features: [Float]
    let featureWidth: Int
    /// Row-major faces × labels: softmax of the expression logits.
    let probabilities: [Float]
    /// Row-major faces × 2 (multi-task models only).
    let va: [Float]

    /// Decodes `path` and runs detection and the face model. Errors name the upload as `name`.
    static func run(path: String, name: String, request: FaceRequest, models: ModelSet) throws -> FaceResult {
        let image: RGBImage
        do { image = try ImageDecoder.decode(path: path) } catch let e as AffectError {
            throw ServerError(.badRequest, e.description.replacingOccurrences(of: path, with: name))
        }
        return try run(image: image, request: request, models: models)
    }

    static func run(image: RGBImage, request: FaceRequest, models: ModelSet) throws -> FaceResult {
        var detector = models.detector
        detector.minFaceSize = request.minFace
        let (name, model) = try models.faceModel(request.model)
        let faces = detector.detect(image)
        var probs: [Float] = [], va: [Float] = [], feats: [Float] = []
        if !faces.isEmpty {
            let p: FacePrediction
            do { p = try model.predict(image, faces: faces) } catch let e as AffectError {
                throw ServerError(.internalServerError, "the face model \(name) failed: \(e.description)")
            }
            let probabilities = p.probabilities
            probs = Array(UnsafeBufferPointer(start: probabilities.data, count: probabilities.count))
            if let v = p.valenceArousal { va = Array(UnsafeBufferPointer(start: v.data, count: v.count)) }
            if request.features { feats = Array(UnsafeBufferPointer(start: p.features.data, count: p.features.count)) }
        }
        return FaceResult(width: image.width, height: image.height, model: name, labels: model.expressionLabels,
                          valenceArousal: model.hasValenceArousal, faces: faces, features: feats,
                          featureWidth: model.featureWidth, probabilities: probs, va: va)
    }

    /// One face as JSON: `affect faces --format json`'s box, probability and landmarks, plus the expression
    /// probabilities, the top expression, valence/arousal and features where present.
    func face(_ i: Int, track: Int? = nil) -> [String: Any] {
        let f = faces[i]
        var d: [String: Any] = ["box": [f.x1, f.y1, f.x2, f.y2].map(Double.init), "probability": Double(f.probability),
                                "landmarks": f.landmarks.map { [Double($0.x), Double($0.y)] }]
        let k = labels.count
        let p = Array(probabilities[(i * k)..<((i + 1) * k)])
        var expressions: [String: Any] = [:]
        for (label, v) in zip(labels, p) { expressions[label] = JSON.finite(v) }
        d["expressions"] = expressions
        if let best = p.indices.max(by: { p[$0] < p[$1] }) { d["expression"] = labels[best] }
        if valenceArousal { d["valence"] = JSON.finite(va[2 * i]); d["arousal"] = JSON.finite(va[2 * i + 1]) }
        if !features.isEmpty {
            d["features"] = features[(i * featureWidth)..<((i + 1) * featureWidth)].map { JSON.finite($0) }
        }
        if let track { d["track"] = track }
        return d
    }

    var json: [String: Any] {
        ["width": width, "height": height, "model": model, "faces": faces.indices.map { face($0) }]
    }
}

/// The one value of a query parameter (nil when absent); given twice is an error.
func single(_ query: [String: [String]], _ key: String) throws -> String? {
    guard let v = query[key] else { return nil }
    guard v.count == 1 else { throw ServerError(.badRequest, "the query parameter \(key) is given \(v.count) times; give it once.") }
    return v[0]
}

func flag(_ v: String, _ key: String) throws -> Bool {
    switch v.lowercased() {
    case "1", "true", "yes", "": return true
    case "0", "false", "no": return false
    default: throw ServerError(.badRequest, "\(key) must be true or false, got `\(v)`.")
    }
}

/// A file name for an upload, by its first bytes (FFmpeg and libjpeg read the content, the extension only
/// helps FFmpeg's probe). Never derived from anything the client names.
func uploadName(sniffing path: String, fallback: String) -> String {
    guard let h = FileHandle(forReadingAtPath: path) else { return fallback }
    defer { try? h.close() }
    let b = [UInt8](h.readData(ofLength: 8))
    if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "image.jpg" }
    if b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "image.png" }
    return fallback
}
