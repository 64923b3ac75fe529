import Foundation
import AffectKernels
import AffectModels

/// The per-frame and per-video tasks of `affect analyze`.
public enum AnalysisTask: String, CaseIterable, Sendable {
    /// Expressions, 8 ABAW classes per frame.
    case expr
    /// Valence and arousal per frame.
    case va
    /// 12 action units per frame (probabilities; thresholds per AU decide activity).
    case au
    /// Ambivalence/hesitancy per frame.
    case ah
    /// Emotional mimicry intensity: 6 values per video (track).
    case emi

    /// Output columns a head for this task must produce.
    public var outputNames: [String] {
        switch self {
        case .expr: return ClassMapping.abawExpression
        case .va: return ["valence", "arousal"]
        case .au: return EvaluationTask.auNames
        case .ah: return ["ah"]
        case .emi: return EvaluationTask.emiNames
        }
    }
}

/// A feature stream heads read.
public enum Modality: String, CaseIterable, Sendable {
    /// The expression model's features of the tracked face (frames with a face).
    case face
    /// Audio embeddings interpolated onto the frame times.
    case audio
    /// Transcript segment embeddings interpolated onto the frame times.
    case text
}

/// One head file of one task, reading the concatenation of one or more modalities (early fusion).
/// Several heads of a task are blended with weights (late fusion).
public struct HeadSpec: Sendable {
    public let task: AnalysisTask
    public let modalities: [Modality]
    public let head: MLPHead

    public init(task: AnalysisTask, modalities: [Modality] = [.face], head: MLPHead) {
        self.task = task; self.modalities = modalities; self.head = head
    }

    /// How messages name the head: its task, file and modalities.
    public var description: String { "the \(task.rawValue.uppercased()) head \(head.path) (\(modalities.map(\.rawValue).joined(separator: "+")))" }
}

/// Per-AU activity thresholds (AU probability ≥ threshold ⇒ active), in ``EvaluationTask/auNames`` order.
public struct AUThresholds: Sendable, Equatable {
    public var values: [Float]
    public init(_ values: [Float] = [Float](repeating: 0.5, count: 12)) throws {
        guard values.count == 12, values.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
            throw AffectError.badUsage("AU thresholds must be 12 values in [0, 1] (\(EvaluationTask.auNames.joined(separator: ", "))), got \(values.count).")
        }
        self.values = values
    }
}

/// Post-processing values `affect fit` tuned on validation for a head, stored in its file's metadata
/// (`affect.training` → `tuned`): the confidence filter threshold t (EXPR), the smoothing window delta (a
/// window mean over frames i−delta … i+delta), the late-fusion weight w of this head when blended with the
/// head named `blendWith`, and per-AU thresholds. `affect analyze` uses them when its options do not say
/// otherwise.
public struct HeadDefaults: Sendable, Equatable {
    public var threshold: Float?
    public var smoothingDelta: Int?
    public var blendWeight: Float?
    /// File name (last path component) of the head `blendWeight` was tuned with.
    public var blendWith: String?
    public var auThresholds: [Float]?

    public init(threshold: Float? = nil, smoothingDelta: Int? = nil, blendWeight: Float? = nil, blendWith: String? = nil,
                auThresholds: [Float]? = nil) {
        self.threshold = threshold; self.smoothingDelta = smoothingDelta; self.blendWeight = blendWeight
        self.blendWith = blendWith; self.auThresholds = auThresholds
    }

    public var isEmpty: Bool { self == HeadDefaults() }

    /// The tuned values of the head file at `path` (none when it has no `affect.training` metadata or no
    /// `tuned` entry). Metadata is untrusted: a value of the wrong type or outside its range is an error
    /// naming the file.
    public init(headFile path: String) throws {
        self.init()
        let file = try SafeTensorsFile(path: path)
        guard let training = try file.jsonMetadata("affect.training") else { return }
        guard let obj = training as? [String: Any] else { throw AffectError.badInput("\(path): metadata `affect.training` is not a JSON object.") }
        guard let raw = obj["tuned"] else { return }
        guard let tuned = raw as? [String: Any] else { throw AffectError.badInput("\(path): `affect.training` entry `tuned` is not a JSON object.") }
        func number(_ key: String, _ range: ClosedRange<Double>) throws -> Double? {
            guard let v = tuned[key], !(v is NSNull) else { return nil }
            guard let d = (v as? NSNumber)?.doubleValue, range.contains(d) else {
                throw AffectError.badInput("\(path): tuned value `\(key)` must be a number between \(range.lowerBound) and \(range.upperBound), got \(v).")
            }
            return d
        }
        threshold = try number("t", 0...1).map { Float($0) }
        if let d = try number("delta", 0...Double(TemporalSmoother.maxRadius)) {
            guard d == d.rounded() else { throw AffectError.badInput("\(path): tuned value `delta` must be a whole number of frames, got \(d).") }
            smoothingDelta = Int(d)
        }
        blendWeight = try number("w", 0...1).map { Float($0) }
        if let b = tuned["blend_with"], !(b is NSNull) {
            guard let s = b as? String else { throw AffectError.badInput("\(path): tuned value `blend_with` must be a file name.") }
            blendWith = s
        }
        if let a = tuned["au_thresholds"], !(a is NSNull) {
            guard let v = a as? [NSNumber], v.count == 12, v.allSatisfy({ (0...1).contains($0.doubleValue) }) else {
                throw AffectError.badInput("\(path): tuned value `au_thresholds` must be 12 numbers in [0, 1].")
            }
            auThresholds = v.map { $0.floatValue }
        }
    }
}
