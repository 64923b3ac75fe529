import Foundation
import AffectKernels
import AffectMedia
import AffectModels

/// Which faces `affect analyze` reports.
public enum TrackSelection: String, CaseIterable, Sendable {
    /// The track with the largest total face area (the subject of a single-person video), on every frame.
    case largest
    /// Every track, each on the frames from its first to its last detection.
    case all
}

/// Settings of the per-frame analysis (sampling, detection, fusion, smoothing).
public struct AnalyzerOptions: Sendable {
    /// Analyse one decoded frame in `every` (the others are filled by interpolation).
    public var every = 1
    /// Analyse about this many frames per second instead (nil: use `every`).
    public var fps: Double?
    /// MTCNN's smallest face side in pixels.
    public var minFaceSize: Float = 40
    public var tracks: TrackSelection = .largest
    /// Temporal smoothing of every per-frame output (nil: none).
    public var smoother: TemporalSmoother?
    /// Confidence filter threshold t (nil: off): where the smoothed pre-trained expression probability of
    /// its best class exceeds t, that class wins over the EXPR head's.
    public var threshold: Float?
    /// Late-fusion weights of the heads of one task, in the order given (nil: equal; one value w with two
    /// heads: w and 1 − w).
    public var weights: [Float]?
    public var auThresholds: AUThresholds = try! AUThresholds()
    /// Frames a track may miss before a face is taken for someone new (in decoded frames).
    public var maxTrackGap = 25
    /// With ``TrackSelection/all``: tracks with fewer detections are not reported (passers-by, false
    /// detections).
    public var minTrackDetections = 1

    public init() {}

    /// Accepted ranges (``validate()``): `every` in frames, `fps` per second, `minFaceSize` in pixels,
    /// `maxTrackGap` in frames.
    public static let everyRange = 1...10_000
    public static let fpsRange = 0.001...1000.0
    public static let minFaceSizeRange: ClosedRange<Float> = 12...10_000
    public static let maxTrackGapRange = 0...1_000_000

    /// Throws when a setting is out of its range (NaN included), so nothing downstream converts or sizes
    /// anything from it: `every`, `fps`, `minFaceSize`, `maxTrackGap`, `minTrackDetections` ≥ 1, `threshold`
    /// and fusion weights in [0, 1], and the smoother's parameters (``TemporalSmoother/validate()``).
    public func validate() throws {
        func bad(_ m: String) -> AffectError { .badUsage(m) }
        guard Self.everyRange.contains(every) else {
            throw bad("the frame step every must be between 1 and \(Self.everyRange.upperBound), got \(every).")
        }
        if let f = fps, !Self.fpsRange.contains(f) {
            throw bad("the sampling rate fps must be between \(Self.fpsRange.lowerBound) and \(Self.fpsRange.upperBound) frames per second, got \(f).")
        }
        guard Self.minFaceSizeRange.contains(minFaceSize) else {
            throw bad("the smallest face size must be between 12 and 10000 pixels, got \(minFaceSize).")
        }
        guard Self.maxTrackGapRange.contains(maxTrackGap) else {
            throw bad("the track gap must be between 0 and \(Self.maxTrackGapRange.upperBound) frames, got \(maxTrackGap).")
        }
        guard minTrackDetections >= 1 else { throw bad("the minimum track length must be at least 1 detection, got \(minTrackDetections).") }
        if let t = threshold, !(t >= 0 && t <= 1) { throw bad("the confidence threshold t must be in [0, 1], got \(t).") }
        if let w = weights, let x = w.first(where: { !($0 >= 0 && $0 <= 1) }) {
            throw bad("late-fusion weights must be in [0, 1], got \(x).")
        }
        try smoother?.validate()
    }
}

/// What the streaming pass keeps of one face track: per analysed frame with this face, its box, features
/// and logits (no pixels: memory grows with frames × feature width, not with the picture size).
public struct TrackObservations: Sendable {
    public let id: Int
    /// Positions (decoded-frame indices) of the frames with this face, increasing.
    public internal(set) var frames: [Int] = []
    public internal(set) var boxes: [FaceDetection] = []
    /// Row-major `frames.count × featureWidth`.
    public internal(set) var features: [Float] = []
    /// Row-major `frames.count × logitWidth`: each face's expression logits followed, for multi-task models,
    /// by its valence and arousal (``FacePrediction/packedLogits``, what `affect extract` stores).
    public internal(set) var logits: [Float] = []
    public var totalArea: Float { boxes.reduce(0) { $0 + $1.area } }

    public init(id: Int) { self.id = id }

    /// Appends face `row` of `prediction`, seen in frame `position` with box `box`.
    mutating func append(_ prediction: FacePrediction, row i: Int, position: Int, box: FaceDetection) {
        frames.append(position)
        boxes.append(box)
        let (d, k) = (prediction.features.shape[1], prediction.logits.shape[1])
        features.append(contentsOf: UnsafeBufferPointer(start: prediction.features.data + i * d, count: d))
        logits.append(contentsOf: UnsafeBufferPointer(start: prediction.logits.data + i * k, count: k))
        if let va = prediction.valenceArousal { logits += [va.data[2 * i], va.data[2 * i + 1]] }
    }

    /// `[frames, classes]` softmax of the stored expression logits, and `[frames, 2]` valence/arousal when the
    /// rows carry them (`logitWidth == classes + 2`): the split of ``logits``' packing.
    func expressionScores(classes k: Int, logitWidth c: Int) -> (probabilities: FeatureMatrix, valenceArousal: FeatureMatrix?) {
        var probs = FeatureMatrix(rows: frames.count, columns: k)
        var va: FeatureMatrix? = c == k + 2 ? FeatureMatrix(rows: frames.count, columns: 2) : nil
        for i in 0..<frames.count {
            var row = Array(logits[(i * c)..<(i * c + k)])
            row.withUnsafeMutableBufferPointer { softmaxRow($0.baseAddress!, k) }
            for j in 0..<k { probs[i, j] = row[j] }
            if va != nil { va![i, 0] = logits[i * c + k]; va![i, 1] = logits[i * c + k + 1] }
        }
        return (probs, va)
    }

    /// A track from given observations (e.g. read back from `affect extract` files); throws on inconsistent sizes.
    public init(id: Int, frames: [Int], boxes: [FaceDetection], features: [Float], logits: [Float]) throws {
        guard boxes.count == frames.count, frames.isEmpty || (features.count % frames.count == 0 && logits.count % frames.count == 0) else {
            throw AffectError.badInput("track \(id): \(frames.count) frames, \(boxes.count) boxes, \(features.count) feature and \(logits.count) logit values do not match.")
        }
        for i in frames.indices.dropFirst() where frames[i] <= frames[i - 1] {
            throw AffectError.badInput("track \(id): frame positions must increase (\(frames[i]) after \(frames[i - 1])).")
        }
        self.id = id; self.frames = frames; self.boxes = boxes; self.features = features; self.logits = logits
    }
}

/// The result of decoding a video once: every frame's time, which frames were analysed, and the face tracks.
public struct VideoScan: Sendable {
    public let path: String
    public let width: Int
    public let height: Int
    public let frameRate: Double?
    /// Presentation time of every decoded frame (strictly increasing).
    public internal(set) var times: [Double] = []
    /// Whether each decoded frame went through detection.
    public internal(set) var analyzed: [Bool] = []
    /// Number of faces detected in each decoded frame (0 for frames not analysed).
    public internal(set) var faceCounts: [Int] = []
    public internal(set) var tracks: [TrackObservations] = []
    public let featureWidth: Int
    public let logitWidth: Int

    init(path: String, width: Int, height: Int, frameRate: Double?, featureWidth: Int, logitWidth: Int) {
        self.path = path; self.width = width; self.height = height; self.frameRate = frameRate
        self.featureWidth = featureWidth; self.logitWidth = logitWidth
    }

    /// A scan from given frames and tracks (every frame analysed), e.g. to re-run the heads on stored
    /// observations. Throws when a track's rows do not fit the widths or reach past the frames.
    public init(path: String, width: Int, height: Int, frameRate: Double?, times: [Double],
                tracks: [TrackObservations], featureWidth: Int, logitWidth: Int) throws {
        self.init(path: path, width: width, height: height, frameRate: frameRate, featureWidth: featureWidth, logitWidth: logitWidth)
        for t in tracks {
            guard t.features.count == t.frames.count * featureWidth, t.logits.count == t.frames.count * logitWidth,
                  (t.frames.last ?? 0) < max(times.count, 1) else {
                throw AffectError.badInput("track \(t.id) does not fit \(times.count) frames of \(featureWidth) features and \(logitWidth) logits.")
            }
        }
        self.times = times; self.tracks = tracks
        analyzed = [Bool](repeating: true, count: times.count)
        faceCounts = [Int](repeating: 0, count: times.count)
        for t in tracks { for f in t.frames { faceCounts[f] += 1 } }
    }

    public var frameCount: Int { times.count }
    /// Last frame time plus one frame.
    public var duration: Double {
        guard let last = times.last else { return 0 }
        return last + 1 / (frameRate ?? (times.count > 1 ? Double(times.count - 1) / max(last - times[0], 1e-9) : VideoDecoder.fallbackFrameRate))
    }
    /// The track of largest total face area, if any face was found.
    public var mainTrack: TrackObservations? { tracks.max { $0.totalArea < $1.totalArea } }
}

/// A configuration the analyzer cannot run, in the library's own terms (a command-line tool words it with its
/// options; `affect` does).
public enum AnalyzerConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A head reads a modality whose model (``Analyzer/audio``, or ``Analyzer/text`` with a transcript or a
    /// speech recogniser) is not set.
    case missingModality(head: String, Modality)
    /// The video gate reads the mean text features, but there is no text model with a transcript.
    case gateWithoutText
    /// A video gate without an AH head to gate.
    case gateWithoutAHHead
    /// ``AnalyzerOptions/weights`` does not give one weight per head of a task (or one for two heads).
    case fusionWeightCount(task: AnalysisTask, weights: Int, heads: Int)

    public var description: String {
        switch self {
        case .missingModality(let head, let m):
            return "\(head) reads \(m.rawValue) features, which need \(m == .audio ? "an audio embedder" : "a text embedder and a transcript or speech recogniser")."
        case .gateWithoutText:
            return "the AH gate reads the mean text features, which need a text embedder and a transcript or speech recogniser."
        case .gateWithoutAHHead:
            return "the AH gate needs an AH head to gate."
        case .fusionWeightCount(let task, let w, let n):
            return "\(w) late-fusion weight\(w == 1 ? "" : "s") given, but the \(task.rawValue.uppercased()) task has \(n) heads to blend."
        }
    }
}

/// One reported face track after interpolation, heads, fusion, smoothing and filtering.
public struct TrackAnalysis: Sendable {
    public let id: Int
    /// Decoded-frame positions this track reports, increasing.
    public let rows: [Int]
    /// The detected box on each row, nil where none (not analysed, no face, or another face).
    public let boxes: [FaceDetection?]
    /// The expression model's class probabilities (softmax of its expression logits) per row, filled over
    /// frames without the face by linear interpolation, then smoothed.
    public let probabilities: FeatureMatrix
    /// EXPR head output (ABAW classes), fused and smoothed, if an EXPR head ran.
    public let expression: FeatureMatrix?
    /// Predicted class per row: an index into ``classLabels``.
    public let predicted: [Int]
    /// ABAW class names with an EXPR head, the expression model's labels without.
    public let classLabels: [String]
    /// Valence, arousal per row (from a VA head, else from a multi-task expression model).
    public let valenceArousal: FeatureMatrix?
    /// 12 AU probabilities per row.
    public let actionUnits: FeatureMatrix?
    /// AH probability per row (zeroed when the video gate closes).
    public let ambivalence: [Float]?
    /// EMI intensities of this track (one per video when one track is reported).
    public let mimicry: [Float]?
    /// The video gate's probability, if a gate ran.
    public let gateProbability: Float?
    public var faceFrames: Int { boxes.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
}

/// A whole video's analysis.
public struct VideoAnalysis: Sendable {
    public let scan: VideoScan
    public let modelPath: String
    public let modelLabels: [String]
    public let tracks: [TrackAnalysis]
    public let transcript: TimedTranscript?
    public let auThresholds: AUThresholds
    public let options: AnalyzerOptions
}

/// `affect analyze` as a library: video → frames → MTCNN → tracker → crops → expression model → per-track
/// timeline → interpolation over frames without the face → heads (early fusion inside one head, late
/// fusion across heads of a task) → smoothing → confidence filter → video gate.
///
/// Decoding streams: one frame's pixels are alive at a time, and only boxes, features and logits are kept.
public final class Analyzer {
    public let detector: MTCNN
    public let faceModel: any FaceModel
    public var options: AnalyzerOptions
    public private(set) var heads: [HeadSpec]
    /// Video gate for AH on the mean text features.
    public var gate: VideoGate?
    public var audio: (any AudioEmbedder)?
    public var text: (any TextEmbedder)?
    public var transcript: TimedTranscript?
    public var speech: (any SpeechRecognizer)?

    public init(detector: MTCNN, faceModel: any FaceModel, options: AnalyzerOptions = AnalyzerOptions(),
                heads: [HeadSpec] = []) {
        var d = detector
        d.minFaceSize = options.minFaceSize
        self.detector = d; self.faceModel = faceModel; self.options = options; self.heads = heads
    }

    /// Width of each modality's features, nil when that modality is not available.
    func width(of m: Modality) -> Int? {
        switch m {
        case .face: return faceModel.featureWidth
        case .audio: return audio?.width
        case .text: return (transcript != nil || speech != nil) ? text?.width : nil
        }
    }

    /// Checks every head against the models before any decoding: input widths (a head trained on another
    /// backbone's features is an error, not garbage), output widths, available modalities, fusion weights.
    public func validate() throws {
        try options.validate()
        for i in heads.indices {
            let spec = heads[i]
            var total = 0
            for m in spec.modalities {
                guard let w = width(of: m) else { throw AnalyzerConfigurationError.missingModality(head: spec.description, m) }
                total += w
            }
            let names = spec.modalities.map { m -> String in
                m == .face ? "the face model \(faceModel.path)" : "\(m.rawValue) (\(m == .audio ? audio!.path : text!.path))"
            }.joined(separator: " + ")
            if spec.task == .emi {
                if spec.head.inputWidth == 4 * total { heads[i].statPooling = true } else if spec.head.inputWidth != total {
                    throw AffectError.badInput("\(spec.head.path): the EMI head expects \(spec.head.inputWidth) input values, but \(names) give\(spec.modalities.count == 1 ? "s" : "") \(total) features per frame (\(4 * total) with STAT pooling); it was trained on another backbone.")
                }
            } else if spec.head.inputWidth != total {
                throw AffectError.badInput("\(spec.head.path): the \(spec.task.rawValue.uppercased()) head expects \(spec.head.inputWidth) input values, but \(names) give\(spec.modalities.count == 1 ? "s" : "") \(total) features per frame; it was trained on another backbone.")
            }
            let want = spec.task.outputNames.count
            let ok = spec.head.outputWidth == want || (spec.task == .ah && spec.head.outputWidth == 2)
            guard ok else {
                throw AffectError.badInput("\(spec.head.path): a \(spec.task.rawValue.uppercased()) head must give \(want) outputs (\(spec.task.outputNames.joined(separator: ", "))), this one gives \(spec.head.outputWidth).")
            }
        }
        for task in AnalysisTask.allCases {
            let n = heads.filter { $0.task == task }.count
            if n > 1 { _ = try fusionWeights(count: n, task: task) }
        }
        if gate != nil && width(of: .text) == nil {
            throw AnalyzerConfigurationError.gateWithoutText
        }
        if gate != nil && !heads.contains(where: { $0.task == .ah }) {
            throw AnalyzerConfigurationError.gateWithoutAHHead
        }
        if options.threshold != nil && heads.contains(where: { $0.task == .expr }) {
            _ = try ClassMapping(from: faceModel.expressionLabels, to: ClassMapping.abawExpression)
        }
    }

    func fusionWeights(count n: Int, task: AnalysisTask) throws -> [Float] {
        guard let w = options.weights else { return [Float](repeating: 1 / Float(n), count: n) }
        if n == 2 && w.count == 1 { return [w[0], 1 - w[0]] }
        guard w.count == n else {
            throw AnalyzerConfigurationError.fusionWeightCount(task: task, weights: w.count, heads: n)
        }
        return w
    }

    /// Decodes the video once: samples frames, detects and tracks faces, runs the expression model on
    /// every tracked face. `progress(done, total)` is called after each decoded frame (total is the
    /// container's frame count, if it states one); `onFrame` with each analysed frame's faces as soon as
    /// they are known (an error it throws ends the scan).
    public func scan(path: String, progress: ((Int, Int?) -> Void)? = nil,
                     onFrame: ((FrameObservation) throws -> Void)? = nil) throws -> VideoScan {
        try options.validate()
        let decoder = try VideoDecoder(path: path)
        if let t = transcript, let d = decoder.declaredDuration { try t.validate(duration: d) }
        var scan = VideoScan(path: path, width: decoder.width, height: decoder.height, frameRate: decoder.frameRate,
                             featureWidth: faceModel.featureWidth, logitWidth: faceModel.packedLogitWidth)
        var tracker = FaceTracker(maxGap: max(options.maxTrackGap, 2 * options.every))
        var trackIndex: [Int: Int] = [:]
        var nextSample = 0.0
        let frames = FramePrefetcher(decoder)
        while let frame = try frames.next() {
            let position = scan.times.count
            // Broken timestamps (repeated pts) would make the timeline non-monotonic; nudge them forward.
            let time = position > 0 ? max(frame.time, scan.times[position - 1] + 1e-6) : frame.time
            scan.times.append(time)
            var take = position % options.every == 0
            if let fps = options.fps {
                take = time + 1e-9 >= nextSample
                if take { nextSample = (floor(time * fps + 1e-9) + 1) / fps }
            }
            scan.analyzed.append(take)
            guard take else { scan.faceCounts.append(0); progress?(position + 1, decoder.declaredFrameCount); continue }
            let found = try detectFaces(in: frame.image, position: position, tracker: &tracker)
            let (faces, ids) = (found.boxes, found.tracks)
            scan.faceCounts.append(faces.count)
            if let p = found.prediction {
                for (k, id) in ids.enumerated() {
                    let t: Int
                    if let existing = trackIndex[id] { t = existing } else {
                        t = scan.tracks.count; trackIndex[id] = t
                        scan.tracks.append(TrackObservations(id: id))
                    }
                    scan.tracks[t].append(p, row: k, position: position, box: faces[k])
                }
            }
            try onFrame?(observation(found, position: position, time: time))
            progress?(position + 1, decoder.declaredFrameCount)
        }
        guard scan.frameCount > 0 else {
            throw AffectError.badInput("\(path): no video frame could be decoded (the file is truncated or corrupt).")
        }
        // A file cut short still opens when its index comes first; the frames it declares then go missing.
        if let declared = decoder.declaredFrameCount, declared > 10, scan.frameCount < declared * 9 / 10 {
            throw AffectError.badInput("\(path): the video is truncated or corrupt: \(scan.frameCount) of the \(declared) frames its header declares could be decoded.")
        }
        return scan
    }

    /// The whole analysis of one video.
    public func analyze(path: String, progress: ((Int, Int?) -> Void)? = nil) throws -> VideoAnalysis {
        try validate()
        let scan = try self.scan(path: path, progress: progress)
        return try analyze(scan: scan)
    }

    /// Everything after decoding: other modalities, then each reported track.
    public func analyze(scan: VideoScan) throws -> VideoAnalysis {
        // Audio and text on the frame times: one shared function with `affect extract` (FeatureExtraction.swift).
        let needed = Set(heads.flatMap(\.modalities)).union(gate != nil ? [.text] : [])
        let modal = try ModalityExtractor(audio: audio, text: text, transcript: transcript, speech: speech)
            .features(mediaPath: scan.path, times: scan.times, duration: scan.duration, needed: needed)
        let timed = modal.transcript, textRows = modal.textSegments
        var aligned: [Modality: FeatureMatrix] = [:]
        for m in [Modality.audio, .text] { if let f = modal[m] { aligned[m] = f } }
        let chosen: [TrackObservations]
        switch options.tracks {
        case .largest: chosen = scan.mainTrack.map { [$0] } ?? []
        case .all: chosen = scan.tracks.filter { $0.frames.count >= options.minTrackDetections }.sorted { $0.id < $1.id }
        }
        let tracks = try chosen.map { obs -> TrackAnalysis in
            let rows = options.tracks == .largest ? Array(0..<scan.frameCount) : Array(obs.frames.first!...obs.frames.last!)
            return try analyze(track: obs, rows: rows, scan: scan, aligned: aligned, textRows: textRows)
        }
        return VideoAnalysis(scan: scan, modelPath: faceModel.path, modelLabels: faceModel.expressionLabels, tracks: tracks,
                             transcript: timed, auThresholds: options.auThresholds, options: options)
    }

    /// One track: fill, heads, fusion, smoothing, filter, gate.
    func analyze(track obs: TrackObservations, rows: [Int], scan: VideoScan, aligned: [Modality: FeatureMatrix],
                 textRows: FeatureMatrix?) throws -> TrackAnalysis {
        let rowTimes = rows.map { scan.times[$0] }
        let first = rows[0]
        let k = faceModel.expressionLabels.count
        var boxes = [FaceDetection?](repeating: nil, count: rows.count)
        for (f, b) in zip(obs.frames, obs.boxes) { boxes[f - first] = b }

        /// Face-frame rows → every row of the track: linear interpolation over frames without the face.
        func fill(_ m: FeatureMatrix) throws -> FeatureMatrix {
            var values = [[Float]?](repeating: nil, count: rows.count)
            for (i, f) in obs.frames.enumerated() { values[f - first] = m.row(i) }
            return try FrameTimeline(times: rowTimes, values: values, width: m.columns).filled()
        }
        let smooth: (FeatureMatrix) throws -> FeatureMatrix = { m in try self.options.smoother?.apply(m) ?? m }

        // The expression model: softmax over its expression logits; valence/arousal of multi-task models raw.
        let (probs, modelVA) = obs.expressionScores(classes: k, logitWidth: scan.logitWidth)
        let probabilities = try smooth(try fill(probs))

        let faceFeatures = try FeatureMatrix(rows: obs.frames.count, columns: scan.featureWidth, values: obs.features)
        func inputs(_ spec: HeadSpec, faceRows: Bool) throws -> FeatureMatrix {
            let positions = faceRows ? obs.frames : rows
            let parts = try spec.modalities.map { m -> FeatureMatrix in
                if m == .face { return faceFeatures }
                let all = aligned[m]!
                var sub = FeatureMatrix(rows: positions.count, columns: all.columns)
                for (i, p) in positions.enumerated() { for j in 0..<all.columns { sub[i, j] = all[p, j] } }
                return sub
            }
            return try Fusion.concatenate(parts)
        }
        /// A frame-level task: each head on its inputs (filled over frames without the face when it reads
        /// the face), blended, smoothed.
        func frameTask(_ task: AnalysisTask) throws -> FeatureMatrix? {
            let specs = heads.filter { $0.task == task }
            guard !specs.isEmpty else { return nil }
            let outs = try specs.map { spec -> FeatureMatrix in
                let onFaces = spec.modalities.contains(.face)
                var p = try FeatureMatrix(spec.head.predict(try inputs(spec, faceRows: onFaces).tensor, source: spec.description))
                if task == .ah && p.columns == 2 { p = try FeatureMatrix(p.column(1).map { [$0] }, columns: 1) }
                return onFaces ? try fill(p) : p
            }
            let fused = outs.count == 1 ? outs[0] : try Fusion.blend(outs, weights: try fusionWeights(count: outs.count, task: task))
            return try smooth(fused)
        }

        let expr = try frameTask(.expr)
        var va = try frameTask(.va)
        if va == nil, let m = modelVA { va = try smooth(try fill(m)) }
        let au = try frameTask(.au)
        var ah = try frameTask(.ah)?.column(0)
        var gateP: Float?
        if let g = gate, let tr = textRows, let a = ah {
            let p = try g.probability(textFeatures: tr)
            gateP = p
            if p < g.threshold { ah = [Float](repeating: 0, count: a.count) }
        }

        let predicted: [Int], classLabels: [String]
        if let e = expr {
            classLabels = ClassMapping.abawExpression
            if let t = options.threshold {
                let filter = ConfidenceFilter(threshold: t, mapping: try ClassMapping(from: faceModel.expressionLabels))
                predicted = try filter.apply(task: e, model: probabilities)
            } else {
                predicted = e.argmaxPerRow()
            }
        } else {
            classLabels = faceModel.expressionLabels
            predicted = probabilities.argmaxPerRow()
        }

        var emi: [Float]?
        let emiSpecs = heads.filter { $0.task == .emi }
        if !emiSpecs.isEmpty {
            let outs = try emiSpecs.map { spec -> [Float] in
                let x = try inputs(spec, faceRows: spec.modalities.contains(.face))
                let pooled = spec.statPooling ? try Pooling.stat(x) : try Pooling.mean(x)
                return try spec.head.predict(Tensor(shape: [1, pooled.count], values: pooled), source: spec.description).array
            }
            let w = outs.count == 1 ? [1] : try fusionWeights(count: outs.count, task: .emi)
            emi = (0..<outs[0].count).map { j in zip(outs, w).reduce(0) { $0 + $1.0[j] * $1.1 } }
        }
        return TrackAnalysis(id: obs.id, rows: rows, boxes: boxes, probabilities: probabilities, expression: expr,
                             predicted: predicted, classLabels: classLabels, valenceArousal: va, actionUnits: au,
                             ambivalence: ah, mimicry: emi, gateProbability: gateP)
    }
}
