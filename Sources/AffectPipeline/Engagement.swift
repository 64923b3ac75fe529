import Foundation
import AffectKernels
import AffectModels

/// Engagement of one reported track (EmotiEffLib's engagement head on the face model's features).
public struct TrackEngagement: Sendable {
    public let track: Int
    /// Frames per window: the model's window (EmotiEffLib's 128), or the whole track when it is shorter.
    public let window: Int
    /// One row per row of the track (``TrackAnalysis/rows``): the class probabilities of the window of
    /// ``window`` frames around that frame.
    public let probabilities: FeatureMatrix
    /// The most probable class per row.
    public let predicted: [Int]
    /// Mean probability per class over the track's rows.
    public let meanProbabilities: [Double]
    /// The class with the highest mean probability.
    public var dominant: Int { meanProbabilities.indices.max { meanProbabilities[$0] < meanProbabilities[$1] } ?? 0 }
}

/// `affect analyze --engagement-model`: per-frame engagement of every reported track and a per-track summary.
///
/// EmotiEffLib's `classify_engagement` slides windows of 128 frames over a clip's EfficientNet-B0 features and
/// refuses clips of 128 frames or fewer. A video analysis needs a value on every frame of every track, so here
/// each frame takes the window of `W` consecutive frames of its track centred on it (moved inwards at the track's
/// ends), over the features the heads read (linearly interpolated across frames without the face). A track
/// shorter than the window is one window of all its frames (the attention head's softmax runs over any length),
/// and its summary records that shorter window.
public struct EngagementAnalysis: Sendable {
    public let modelPath: String
    public let classes: [String]
    /// Results by track id.
    public let tracks: [Int: TrackEngagement]

    /// Throws unless `model` reads features of the face model's width (checked before any decoding).
    public static func validate(_ model: EngagementModel, faceModel: any FaceModel) throws {
        guard model.featureWidth == faceModel.featureWidth else {
            throw AffectError.badInput("\(model.path): the engagement model reads \(model.featureWidth) features per frame, but the face model \(faceModel.path) gives \(faceModel.featureWidth); EmotiEffLib's engagement model reads EfficientNet-B0's 1280 (e.g. enet_b0_8_best_vgaf).")
        }
    }

    /// Windows are scored this many at a time (bounds the memory of long tracks).
    static let block = 256

    public init(_ analysis: VideoAnalysis, model: EngagementModel) throws {
        modelPath = model.path
        classes = model.labels
        let scan = analysis.scan
        guard scan.featureWidth == model.featureWidth else {
            throw AffectError.badInput("\(model.path): the engagement model reads \(model.featureWidth) features per frame, but the face model \(analysis.modelPath) gives \(scan.featureWidth).")
        }
        var byTrack = [Int: TrackObservations]()
        for t in scan.tracks { byTrack[t.id] = t }
        var out: [Int: TrackEngagement] = [:]
        for t in analysis.tracks {
            guard let obs = byTrack[t.id], let first = t.rows.first, !obs.frames.isEmpty else { continue }
            let d = scan.featureWidth
            var values = [[Float]?](repeating: nil, count: t.rows.count)
            for (i, f) in obs.frames.enumerated() where f >= first && f - first < values.count {
                values[f - first] = Array(obs.features[(i * d)..<((i + 1) * d)])
            }
            let features = try FrameTimeline(times: t.rows.map { scan.times[$0] }, values: values, width: d).filled().tensor
            let n = t.rows.count, w = min(model.window, n)
            let startOf = (0..<n).map { r in min(max(r - w / 2, 0), n - w) }
            var unique = Array(Set(startOf)).sorted()
            var scoreOf = [Int: Int]()
            for (k, s) in unique.enumerated() { scoreOf[s] = k }
            let c = model.classes
            var scores = [Float](repeating: 0, count: unique.count * c)
            var k0 = 0
            while k0 < unique.count {
                let k1 = min(k0 + Self.block, unique.count)
                let s = model.scores(features: features, starts: Array(unique[k0..<k1]), width: w)
                for i in 0..<(s.count) { scores[k0 * c + i] = s.data[i] }
                k0 = k1
            }
            unique.removeAll()
            var probs = FeatureMatrix(rows: n, columns: c)
            var predicted = [Int](repeating: 0, count: n)
            var mean = [Double](repeating: 0, count: c)
            for r in 0..<n {
                let k = scoreOf[startOf[r]]!
                var best = 0
                for j in 0..<c {
                    let p = scores[k * c + j]
                    probs[r, j] = p
                    mean[j] += Double(p) / Double(n)
                    if p > scores[k * c + best] { best = j }
                }
                predicted[r] = best
            }
            out[t.id] = TrackEngagement(track: t.id, window: w, probabilities: probs, predicted: predicted, meanProbabilities: mean)
        }
        tracks = out
    }
}

// MARK: - Report columns (hooks called from AnalysisReport)

extension AnalysisReport {
    /// CSV columns with an engagement model: `engagement_<class>` probabilities, then `engagement` (the class).
    func engagementHeader() -> [String] {
        guard let e = engagement else { return [] }
        return e.classes.map { "engagement_\($0)" } + ["engagement"]
    }

    func engagementCells(_ t: TrackAnalysis, row r: Int) -> [String] {
        guard let e = engagement else { return [] }
        guard let te = e.tracks[t.id] else { return [String](repeating: "", count: e.classes.count + 1) }
        return te.probabilities.row(r).map { fmt($0, 6) } + [e.classes[te.predicted[r]]]
    }

    /// Per-track JSON: window, mean probabilities, share of frames per class, the dominant class.
    func engagementSummary(_ t: TrackAnalysis) -> AnalysisDocument.EngagementSummary? {
        guard let e = engagement, let te = e.tracks[t.id] else { return nil }
        let n = Double(max(te.predicted.count, 1))
        var share = [String: Double]()
        for c in e.classes { share[c] = 0 }
        for p in te.predicted { share[e.classes[p], default: 0] += 1 / n }
        return AnalysisDocument.EngagementSummary(dominant: e.classes[te.dominant], meanProbabilities: labelled(zip(e.classes, te.meanProbabilities)),
                                                  share: share, window: te.window)
    }

    func engagementRow(_ t: TrackAnalysis, row r: Int) -> [Double]? {
        engagement?.tracks[t.id].map { $0.probabilities.row(r).map(Double.init) }
    }

    func engagementLine(_ t: TrackAnalysis) -> String? {
        guard let e = engagement, let te = e.tracks[t.id] else { return nil }
        let d = te.dominant
        let share = Double(te.predicted.filter { $0 == d }.count) / Double(max(te.predicted.count, 1))
        return "  engagement: \(e.classes[d]) (mean probability \(fmt(te.meanProbabilities[d], 3)), \(fmt(share * 100, 1)) % of frames; windows of \(te.window) frames)"
    }
}
