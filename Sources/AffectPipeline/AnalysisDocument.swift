import Foundation
import AffectKernels

/// The JSON document of `affect analyze` (``AnalysisReport/document()``), as typed values.
///
/// Encoded with sorted keys and indented (``encoded()``); numbers are `Double` (a `Float` widened), so a
/// probability reads the same as the `Float` the analysis computed.
public struct AnalysisDocument: Encodable, Sendable {
    public struct ExpressionModel: Encodable, Sendable {
        public var file: String
        public var labels: [String]
    }

    /// ``AnalyzerOptions`` as the document records them.
    public struct Options: Encodable, Sendable {
        public var every: Int
        public var fps: Double?
        public var minFace: Double
        public var smoothing: Smoothing?
        public var t: Double?
        public var tracks: String
        public var w: [Double]?

        enum CodingKeys: String, CodingKey {
            case every
            case fps
            case minFace = "min_face"
            case smoothing
            case t
            case tracks
            case w
        }
    }

    /// `["mean", delta]`, `["median", delta]` or `["gaussian", sigma]`.
    public enum Smoothing: Encodable, Sendable {
        case window(String, Int)
        case gaussian(Double)

        public func encode(to encoder: Encoder) throws {
            var c = encoder.unkeyedContainer()
            switch self {
            case .window(let kind, let delta): try c.encode(kind); try c.encode(delta)
            case .gaussian(let sigma): try c.encode("gaussian"); try c.encode(sigma)
            }
        }
    }

    public struct Segment: Encodable, Sendable {
        public var end: Double
        public var start: Double
        public var text: String
    }

    public struct Video: Encodable, Sendable {
        public var analyzedFrames: Int
        public var duration: Double
        public var file: String
        public var fps: Double?
        public var frames: Int
        public var height: Int
        public var width: Int

        enum CodingKeys: String, CodingKey {
            case analyzedFrames = "analyzed_frames"
            case duration
            case file
            case fps
            case frames
            case height
            case width
        }
    }

    /// Engagement of one track (with an engagement model).
    public struct EngagementSummary: Encodable, Sendable {
        public var dominant: String
        public var meanProbabilities: [String: Double]
        public var share: [String: Double]
        public var window: Int

        enum CodingKeys: String, CodingKey {
            case dominant
            case meanProbabilities = "mean_probabilities"
            case share
            case window
        }
    }

    /// One track: its summary (``AnalysisReport/summary(_:)``) and, in the document, its rows.
    public struct Track: Encodable, Sendable {
        public var ahGateProbability: Double?
        /// Share of rows with AH at least ``EvaluationTask/presenceThreshold``.
        public var ahShare: Double?
        /// Share of rows where each AU is active.
        public var auActiveShare: [String: Double]?
        public var dominantExpression: String
        public var emi: [String: Double]?
        public var engagement: EngagementSummary?
        /// Share of rows per predicted class.
        public var expressionShare: [String: Double]
        public var faceFrames: Int
        public var firstFrame: Int
        public var frames: Int
        public var lastFrame: Int
        public var meanArousal: Double?
        public var meanExpr: [String: Double]?
        public var meanProbabilities: [String: Double]
        public var meanValence: Double?
        /// Per-row values (nil in a summary alone).
        public var rows: [Row]?
        public var track: Int

        enum CodingKeys: String, CodingKey {
            case ahGateProbability = "ah_gate_probability"
            case ahShare = "ah_share"
            case auActiveShare = "au_active_share"
            case dominantExpression = "dominant_expression"
            case emi
            case engagement
            case expressionShare = "expression_share"
            case faceFrames = "face_frames"
            case firstFrame = "first_frame"
            case frames
            case lastFrame = "last_frame"
            case meanArousal = "mean_arousal"
            case meanExpr = "mean_expr"
            case meanProbabilities = "mean_probabilities"
            case meanValence = "mean_valence"
            case rows
            case track
        }
    }

    public struct Row: Encodable, Sendable {
        public var ah: Double?
        public var analyzed: Bool
        public var arousal: Double?
        public var au: [Double]?
        public var box: [Double]?
        public var engagement: [Double]?
        public var expr: [Double]?
        public var expression: String
        public var faceProbability: Double?
        public var frame: Int
        public var probabilities: [Double]
        public var time: Double
        public var valence: Double?

        enum CodingKeys: String, CodingKey {
            case ah
            case analyzed
            case arousal
            case au
            case box
            case engagement
            case expr
            case expression
            case faceProbability = "face_probability"
            case frame
            case probabilities
            case time
            case valence
        }
    }

    public var expressionModel: ExpressionModel
    public var options: Options
    /// ``AnalysisReport/summaryText()``.
    public var summary: String
    public var tracks: [Track]
    public var transcript: [Segment]?
    public var video: Video

    /// The document as `affect analyze` writes it: indented, keys sorted (by code unit: `AU10` before `AU2`).
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    enum CodingKeys: String, CodingKey {
        case expressionModel = "expression_model"
        case options
        case summary
        case tracks
        case transcript
        case video
    }
}
