import Foundation
import AffectKernels
import AffectModels
import AffectPipeline

/// The models a server loads once at start and shares across requests, each under a name clients use.
///
/// Weight files are memory-mapped and only read at inference, so concurrent requests can share them.
/// Clients choose among these names; no client-given path ever reaches the filesystem.
public final class ModelSet: Sendable {
    /// One loaded model as `/v1/models` lists it.
    public struct Entry: Sendable {
        public let name: String
        public let path: String
        public let arch: String
        /// detector, face, head, audio or text.
        public let kind: String
        /// Class labels where the model classifies (face models, heads with labels).
        public let labels: [String]
    }

    public let detector: MTCNN
    public let detectorName: String
    /// Facial expression models by name; the first loaded is the default.
    public let faceModels: [String: any FaceModel]
    public let defaultFaceModel: String
    public let heads: [String: MLPHead]
    /// wav2vec2 / hubert models by name, for embeddings and (with a CTC head) transcription.
    public let speech: [String: SpeechModel]
    /// bert / roberta models by name.
    public let text: [String: TextEncoder]
    public let entries: [Entry]

    /// Loads every `(name, path)`: its `affect.arch` decides what it is. Exactly one MTCNN detector and at
    /// least one facial expression model are needed; names must be unique. `precision` applies to the audio and
    /// text models' transformer encoders and to EfficientNet face models (``Precision/int8``).
    public init(_ models: [(name: String, path: String)], precision: Precision = .float32) throws {
        var detector: (String, MTCNN)?
        var faces: [String: any FaceModel] = [:], firstFace: String?
        var heads: [String: MLPHead] = [:], speech: [String: SpeechModel] = [:], text: [String: TextEncoder] = [:]
        var entries: [Entry] = []
        for (name, path) in models {
            guard !name.isEmpty, name.utf8.count <= 200, !entries.contains(where: { $0.name == name }) else {
                throw AffectError.badUsage("\(path): the model name `\(name)` is empty, too long or given twice; rename the file or give each model once.")
            }
            let w = try WeightFile(path: path, precision: precision)
            let kind: String
            switch Architectures.named(w.arch)?.role {
            case .detector:
                if let other = detector?.0 { throw AffectError.badUsage("\(path): a second face detector (\(other) is loaded already); give one MTCNN file.") }
                detector = (name, try MTCNN(weights: w))
                kind = "detector"
            case .face:
                faces[name] = try FaceModels.load(w)
                if firstFace == nil { firstFace = name }
                kind = "face"
            case .head:
                heads[name] = try MLPHead(weights: w)
                kind = "head"
            case .audio:
                speech[name] = try SpeechModel(weights: path, precision: precision)
                kind = "audio"
            case .text:
                text[name] = try TextEncoder(weights: w)
                kind = "text"
            default:
                throw AffectError.badInput("\(path): a `\(w.arch)` model has no use in the server (expected a detector, a face, head, audio or text model).")
            }
            entries.append(Entry(name: name, path: path, arch: w.arch, kind: kind,
                                 labels: kind == "face" ? faces[name]!.expressionLabels : w.labels))
        }
        guard let found = detector else { throw AffectError.badUsage("the server needs an MTCNN face detector among its models.") }
        let (dname, d) = found
        guard let first = firstFace else { throw AffectError.badUsage("the server needs a facial expression model (mini_xception, efficientnet, mobilevit or mobilefacenet) among its models.") }
        self.detector = d; detectorName = dname
        faceModels = faces; defaultFaceModel = first
        self.heads = heads; self.speech = speech; self.text = text; self.entries = entries
    }

    /// The face model a request names (nil: the default); an unknown name is the client's error.
    func faceModel(_ name: String?) throws -> (name: String, model: any FaceModel) {
        let n = name ?? defaultFaceModel
        guard let m = faceModels[n] else {
            throw ServerError(.badRequest, "no face model named `\(n)` is loaded (loaded: \(faceModels.keys.sorted().joined(separator: ", "))).")
        }
        return (n, m)
    }

    /// `/v1/models`.
    var json: [String: Any] {
        ["models": entries.map { e -> [String: Any] in
            var d: [String: Any] = ["name": e.name, "arch": e.arch, "kind": e.kind]
            if !e.labels.isEmpty { d["labels"] = e.labels }
            if e.kind == "face", let m = faceModels[e.name] {
                d["feature_width"] = m.featureWidth
                d["valence_arousal"] = m.hasValenceArousal
                d["default"] = e.name == defaultFaceModel
            }
            if e.kind == "head", let h = heads[e.name] { d["input_width"] = h.inputWidth; d["output_width"] = h.outputWidth }
            if e.kind == "audio", let s = speech[e.name] { d["transcribes"] = s.model.ctc != nil }
            return d
        }]
    }
}
