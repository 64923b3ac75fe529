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
public enum AnalyzerConfigurationError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    /// A head reads a modality whose model (``Analyzer/Configuration/audio``, or ``Analyzer/Configuration/text``
    /// with a transcript or a speech recogniser) is not set.
    case missingModality(head: String, Modality)
    /// A head lists one modality twice (its features would be concatenated twice).
    case repeatedModality(head: String)
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
        case .repeatedModality(let head):
            return "\(head) lists a modality twice."
        case .gateWithoutText:
            return "the AH gate reads the mean text features, which need a text embedder and a transcript or speech recogniser."
        case .gateWithoutAHHead:
            return "the AH gate needs an AH head to gate."
        case .fusionWeightCount(let task, let w, let n):
            return "\(w) late-fusion weight\(w == 1 ? "" : "s") given, but the \(task.rawValue.uppercased()) task has \(n) heads to blend."
        }
    }

    public var errorDescription: String? { description }
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
/// An analyzer is built from a ``Configuration`` that its initializer validates once into a ``Plan``; it
/// cannot change afterwards, so every analysis runs a checked configuration. Decoding streams: one frame's
/// pixels are alive at a time, and only boxes, features and logits are kept.
public struct Analyzer: Sendable {
    /// Everything an analysis runs with: the models, the heads and the options.
    public struct Configuration: Sendable {
        public var detector: MTCNN
        public var faceModel: any FaceModel
        public var options: AnalyzerOptions
        /// Heads in the order given; several heads of one task are blended (late fusion) in this order.
        public var heads: [HeadSpec]
        /// Video gate for AH on the mean text features.
        public var gate: VideoGate?
        public var audio: (any AudioEmbedder)?
        public var text: (any TextEmbedder)?
        /// A transcript of the video (text features come from it, or from ``speech``).
        public var transcript: TimedTranscript?
        public var speech: (any SpeechRecognizer)?

        public init(detector: MTCNN, faceModel: any FaceModel, options: AnalyzerOptions = AnalyzerOptions(),
                    heads: [HeadSpec] = [], gate: VideoGate? = nil, audio: (any AudioEmbedder)? = nil,
                    text: (any TextEmbedder)? = nil, transcript: TimedTranscript? = nil, speech: (any SpeechRecognizer)? = nil) {
            self.detector = detector; self.faceModel = faceModel; self.options = options; self.heads = heads
            self.gate = gate; self.audio = audio; self.text = text; self.transcript = transcript; self.speech = speech
        }

        /// Width of each modality's features, nil when that modality is not available.
        func width(of m: Modality) -> Int? {
            switch m {
            case .face: return faceModel.featureWidth
            case .audio: return audio?.width
            case .text: return (transcript != nil || speech != nil) ? text?.width : nil
            }
        }

        /// The file a modality's features come from, as messages name it.
        func source(of m: Modality) -> String {
            switch m {
            case .face: return "the face model \(faceModel.path)"
            case .audio: return "audio (\(audio?.path ?? "none"))"
            case .text: return "text (\(text?.path ?? "none"))"
            }
        }
    }

    /// What validation resolved from a ``Configuration``: the decisions every analysis then only reads.
    public struct Plan: Sendable {
        /// A head with what its input width decided.
        public struct Head: Sendable {
            public let spec: HeadSpec
            /// For EMI: STAT pooling (mean, std, min, max) of the features when the head reads 4× their
            /// width, mean pooling when it reads their width. False for the frame-level tasks.
            public let statPooling: Bool
        }
        /// The heads of each task that has any, in the order given.
        public let heads: [AnalysisTask: [Head]]
        /// Late-fusion weights of each task with heads (one weight per head; `[1]` for a single head).
        public let fusionWeights: [AnalysisTask: [Float]]
        /// The confidence filter, when a threshold is set and an EXPR head runs: the face model's labels
        /// mapped onto the ABAW classes.
        public let confidenceFilter: ConfidenceFilter?
        /// Modalities besides the face that the heads or the gate read (their models run once per video).
        public let modalities: Set<Modality>

        func heads(_ task: AnalysisTask) -> [Head] { heads[task] ?? [] }
    }

    public let configuration: Configuration
    public let plan: Plan
    /// The configuration's detector with ``AnalyzerOptions/minFaceSize`` applied.
    public let detector: MTCNN

    public var faceModel: any FaceModel { configuration.faceModel }
    public var options: AnalyzerOptions { configuration.options }
    public var heads: [HeadSpec] { configuration.heads }
    public var gate: VideoGate? { configuration.gate }
    public var transcript: TimedTranscript? { configuration.transcript }

    /// Validates `configuration` (options in range, every head against the models: input widths — a head
    /// trained on another backbone's features is an error, not garbage — output widths, available
    /// modalities, fusion weights, the gate, the class mapping of the confidence filter) before any decoding.
    public init(_ configuration: Configuration) throws {
        try configuration.options.validate()
        self.configuration = configuration
        self.plan = try Self.plan(configuration)
        var d = configuration.detector
        d.minFaceSize = configuration.options.minFaceSize
        self.detector = d
    }

    /// An analyzer of faces only (no audio, text or gate).
    public init(detector: MTCNN, faceModel: any FaceModel, options: AnalyzerOptions = AnalyzerOptions(),
                heads: [HeadSpec] = []) throws {
        try self.init(Configuration(detector: detector, faceModel: faceModel, options: options, heads: heads))
    }

    static func plan(_ c: Configuration) throws -> Plan {
        var heads: [AnalysisTask: [Plan.Head]] = [:]
        for spec in c.heads {
            guard Set(spec.modalities).count == spec.modalities.count else {
                throw AnalyzerConfigurationError.repeatedModality(head: spec.description)
            }
            var total = 0
            for m in spec.modalities {
                guard let w = c.width(of: m) else { throw AnalyzerConfigurationError.missingModality(head: spec.description, m) }
                total += w
            }
            let names = spec.modalities.map(c.source(of:)).joined(separator: " + ")
            let task = spec.task.rawValue.uppercased(), gives = spec.modalities.count == 1 ? "gives" : "give"
            var statPooling = false
            if spec.task == .emi {
                if spec.head.inputWidth == 4 * total { statPooling = true } else if spec.head.inputWidth != total {
                    throw AffectError.badInput("\(spec.head.path): the EMI head expects \(spec.head.inputWidth) input values, but \(names) \(gives) \(total) features per frame (\(4 * total) with STAT pooling); it was trained on another backbone.")
                }
            } else if spec.head.inputWidth != total {
                throw AffectError.badInput("\(spec.head.path): the \(task) head expects \(spec.head.inputWidth) input values, but \(names) \(gives) \(total) features per frame; it was trained on another backbone.")
            }
            let want = spec.task.outputNames.count
            guard spec.head.outputWidth == want || (spec.task == .ah && spec.head.outputWidth == 2) else {
                throw AffectError.badInput("\(spec.head.path): a \(task) head must give \(want) outputs (\(spec.task.outputNames.joined(separator: ", "))), this one gives \(spec.head.outputWidth).")
            }
            heads[spec.task, default: []].append(Plan.Head(spec: spec, statPooling: statPooling))
        }
        var weights: [AnalysisTask: [Float]] = [:]
        for task in AnalysisTask.allCases {
            if let n = heads[task]?.count { weights[task] = n == 1 ? [1] : try fusionWeights(c.options.weights, count: n, task: task) }
        }
        if c.gate != nil && c.width(of: .text) == nil { throw AnalyzerConfigurationError.gateWithoutText }
        if c.gate != nil && heads[.ah] == nil { throw AnalyzerConfigurationError.gateWithoutAHHead }
        var filter: ConfidenceFilter?
        if let t = c.options.threshold, heads[.expr] != nil {
            filter = ConfidenceFilter(threshold: t, mapping: try ClassMapping(from: c.faceModel.expressionLabels, to: ClassMapping.abawExpression))
        }
        let modalities = Set(c.heads.flatMap(\.modalities)).union(c.gate != nil ? [.text] : []).subtracting([.face])
        return Plan(heads: heads, fusionWeights: weights, confidenceFilter: filter, modalities: modalities)
    }

    /// `n` heads of `task` blended: the weights given (one weight w for two heads: w and 1 − w), else equal.
    static func fusionWeights(_ given: [Float]?, count n: Int, task: AnalysisTask) throws -> [Float] {
        guard let w = given else { return [Float](repeating: 1 / Float(n), count: n) }
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
        let decoder = try VideoDecoder(path: path)
        if let t = transcript, let d = decoder.declaredDuration { try t.validate(duration: d) }
        var scan = VideoScan(path: path, width: decoder.width, height: decoder.height, frameRate: decoder.frameRate,
                             featureWidth: faceModel.featureWidth, logitWidth: faceModel.packedLogitWidth)
        var tracker = FaceTracker(maxGap: max(options.maxTrackGap, 2 * options.every))
        var trackIndex: [Int: Int] = [:]
        var nextSample = 0.0
        typealias Pulled = (frame: VideoFrame, position: Int, time: Double, take: Bool)
        typealias Done = (time: Double, take: Bool, found: Result<FrameFaces, any Error>?)
        var times: [Double] = []
        // The next decoded frame with its position, (monotonic) time and whether it is sampled.
        func pull(_ frames: FramePrefetcher) throws -> Pulled? {
            guard let frame = try frames.next() else { return nil }
            let position = times.count
            // Broken timestamps (repeated pts) would make the timeline non-monotonic; nudge them forward.
            let time = position > 0 ? max(frame.time, times[position - 1] + 1e-6) : frame.time
            times.append(time)
            var take = position % options.every == 0
            if let fps = options.fps {
                take = time + 1e-9 >= nextSample
                if take { nextSample = (floor(time * fps + 1e-9) + 1) / fps }
            }
            return (frame, position, time, take)
        }
        // Tracking and the callbacks, strictly in frame order.
        func record(position: Int, _ done: Done) throws {
            scan.analyzed.append(done.take)
            guard var faces = try done.found?.get() else {
                scan.faceCounts.append(0); progress?(position + 1, decoder.declaredFrameCount); return
            }
            faces.tracks = tracker.update(frame: position, detections: faces.boxes)
            scan.faceCounts.append(faces.boxes.count)
            if let p = faces.prediction {
                for (k, id) in faces.tracks.enumerated() {
                    let t: Int
                    if let existing = trackIndex[id] { t = existing } else {
                        t = scan.tracks.count; trackIndex[id] = t
                        scan.tracks.append(TrackObservations(id: id))
                    }
                    scan.tracks[t].append(p, row: k, position: position, box: faces.boxes[k])
                }
            }
            try onFrame?(observation(faces, position: position, time: done.time))
            progress?(position + 1, decoder.declaredFrameCount)
        }
        let threads = Threading.threads
        if threads == 1 || threads > Self.framesInFlight {
            // One frame at a time, its work split across all threads (with many threads, frames in parallel
            // would each hold a decoded frame).
            let frames = FramePrefetcher(decoder, ahead: 2)
            while let item = try pull(frames) {
                let found = item.take ? Result { try facesAndPrediction(in: item.frame.image) } : nil
                frames.recycle([item.frame.image])
                try record(position: item.position, (item.time, item.take, found))
            }
        } else {
            // Each thread takes the next frame as it finishes one and runs its detection and face model with
            // their inner loops serial: one frame per core keeps every core busy through MTCNN's many small
            // layers, where one frame split across cores waits at every layer's join. No thread waits for a
            // group of frames to finish (frames with more faces take longer); results wait in `ready` until
            // the calling thread records them in order.
            let frames = FramePrefetcher(decoder, ahead: 2 * threads)
            let source = NSLock(), state = NSLock()
            var ready: [Int: Done] = [:]
            var recorded = 0, exhausted = false
            var failure: (any Error)?
            let caller = pthread_self()
            func recordReady() {
                state.lock()
                while failure == nil, let done = ready.removeValue(forKey: recorded) {
                    let position = recorded
                    state.unlock()
                    var error: (any Error)?
                    do { try record(position: position, done) } catch let e { error = e }
                    state.lock()
                    recorded += 1
                    if let error { failure = error }
                }
                state.unlock()
            }
            parallelFor(threads) { _, _ in
                while true {
                    state.lock()
                    let stop = exhausted || failure != nil
                    state.unlock()
                    if stop { break }
                    source.lock()
                    let item: Pulled?
                    do { item = try pull(frames) } catch let e {
                        source.unlock()
                        state.lock(); failure = failure ?? e; state.unlock()
                        break
                    }
                    source.unlock()
                    guard let item else { state.lock(); exhausted = true; state.unlock(); break }
                    let found = item.take ? Result { try facesAndPrediction(in: item.frame.image) } : nil
                    frames.recycle([item.frame.image])
                    state.lock(); ready[item.position] = (item.time, item.take, found); state.unlock()
                    if pthread_equal(pthread_self(), caller) != 0 { recordReady() }
                }
            }
            recordReady()
            if let failure { throw failure }
        }
        scan.times = times
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
        let scan = try self.scan(path: path, progress: progress)
        return try analyze(scan: scan)
    }

    /// Everything after decoding: other modalities, then each reported track.
    public func analyze(scan: VideoScan) throws -> VideoAnalysis {
        // Audio and text on the frame times: one shared function with `affect extract` (FeatureExtraction.swift).
        let c = configuration
        let modal = try ModalityExtractor(audio: c.audio, text: c.text, transcript: c.transcript, speech: c.speech)
            .features(mediaPath: scan.path, times: scan.times, duration: scan.duration, needed: plan.modalities)
        var aligned: [Modality: FeatureMatrix] = [:]
        for m in [Modality.audio, .text] { if let f = modal[m] { aligned[m] = f } }
        let chosen: [TrackObservations]
        switch options.tracks {
        case .largest: chosen = scan.mainTrack.map { [$0] } ?? []
        case .all: chosen = scan.tracks.filter { $0.frames.count >= options.minTrackDetections }.sorted { $0.id < $1.id }
        }
        let tracks = try chosen.map { obs -> TrackAnalysis in
            // A track of `.all` covers its first to its last detection (a scan's tracks have at least one).
            let rows = options.tracks == .largest ? Array(0..<scan.frameCount) : Array((obs.frames.first ?? 0)...(obs.frames.last ?? 0))
            let pass = try TrackPass(analyzer: self, track: obs, rows: rows, scan: scan, aligned: aligned)
            return try pass.run(textRows: modal.textSegments)
        }
        return VideoAnalysis(scan: scan, modelPath: faceModel.path, modelLabels: faceModel.expressionLabels, tracks: tracks,
                             transcript: modal.transcript, auThresholds: options.auThresholds, options: options)
    }
}

/// One reported track through the steps after decoding: fill (interpolate over frames without the face),
/// heads (early fusion inside one head, late fusion across the heads of a task), smoothing, the confidence
/// filter, the video gate, and the per-track EMI.
struct TrackPass {
    let analyzer: Analyzer
    let track: TrackObservations
    /// Decoded-frame positions the track reports.
    let rows: [Int]
    let scan: VideoScan
    /// Audio and text features on every decoded frame.
    let aligned: [Modality: FeatureMatrix]
    /// The face model's features on the track's face frames.
    let faceFeatures: FeatureMatrix
    var plan: Analyzer.Plan { analyzer.plan }

    init(analyzer: Analyzer, track: TrackObservations, rows: [Int], scan: VideoScan, aligned: [Modality: FeatureMatrix]) throws {
        self.analyzer = analyzer; self.track = track; self.rows = rows; self.scan = scan; self.aligned = aligned
        faceFeatures = try FeatureMatrix(rows: track.frames.count, columns: scan.featureWidth, values: track.features)
    }

    func run(textRows: FeatureMatrix?) throws -> TrackAnalysis {
        var boxes = [FaceDetection?](repeating: nil, count: rows.count)
        for (f, b) in zip(track.frames, track.boxes) { boxes[f - rows[0]] = b }
        // The expression model: softmax over its expression logits; valence/arousal of multi-task models raw.
        let (probs, modelVA) = track.expressionScores(classes: analyzer.faceModel.expressionLabels.count, logitWidth: scan.logitWidth)
        let probabilities = try smooth(try fill(probs))

        let expr = try frameTask(.expr)
        var va = try frameTask(.va)
        if va == nil, let m = modelVA { va = try smooth(try fill(m)) }
        let au = try frameTask(.au)
        let (ah, gateP) = try gated(try frameTask(.ah)?.column(0), textRows: textRows)
        let (predicted, classLabels) = try classify(expr: expr, probabilities: probabilities)
        return TrackAnalysis(id: track.id, rows: rows, boxes: boxes, probabilities: probabilities, expression: expr,
                             predicted: predicted, classLabels: classLabels, valenceArousal: va, actionUnits: au,
                             ambivalence: ah, mimicry: try mimicry(), gateProbability: gateP)
    }

    /// Face-frame rows → every row of the track: linear interpolation over frames without the face.
    func fill(_ m: FeatureMatrix) throws -> FeatureMatrix {
        var values = [[Float]?](repeating: nil, count: rows.count)
        for (i, f) in track.frames.enumerated() { values[f - rows[0]] = m.row(i) }
        return try FrameTimeline(times: rows.map { scan.times[$0] }, values: values, width: m.columns).filled()
    }

    func smooth(_ m: FeatureMatrix) throws -> FeatureMatrix { try analyzer.options.smoother?.apply(m) ?? m }

    /// A head's input: its modalities concatenated, on the face frames or on every row.
    func inputs(_ spec: HeadSpec, faceRows: Bool) throws -> FeatureMatrix {
        let positions = faceRows ? track.frames : rows
        let parts = try spec.modalities.map { m -> FeatureMatrix in
            if m == .face { return faceFeatures }
            // The plan only admits heads whose modalities the analysis extracts.
            guard let all = aligned[m] else { throw AnalyzerConfigurationError.missingModality(head: spec.description, m) }
            var sub = FeatureMatrix(rows: positions.count, columns: all.columns)
            for (i, p) in positions.enumerated() { for j in 0..<all.columns { sub[i, j] = all[p, j] } }
            return sub
        }
        return try Fusion.concatenate(parts)
    }

    /// A frame-level task: each head on its inputs (filled over frames without the face when it reads the
    /// face), blended, smoothed.
    func frameTask(_ task: AnalysisTask) throws -> FeatureMatrix? {
        let heads = plan.heads(task)
        guard !heads.isEmpty else { return nil }
        let outs = try heads.map { h -> FeatureMatrix in
            let spec = h.spec, onFaces = spec.modalities.contains(.face)
            var p = try FeatureMatrix(spec.head.predict(try inputs(spec, faceRows: onFaces).tensor, source: spec.description))
            if task == .ah && p.columns == 2 { p = try FeatureMatrix(p.column(1).map { [$0] }, columns: 1) }
            return onFaces ? try fill(p) : p
        }
        let fused = outs.count == 1 ? outs[0] : try Fusion.blend(outs, weights: plan.fusionWeights[task] ?? [])
        return try smooth(fused)
    }

    /// The video gate on AH: the AH rows zeroed when the gate's probability is under its threshold.
    func gated(_ ah: [Float]?, textRows: FeatureMatrix?) throws -> ([Float]?, Float?) {
        guard let g = analyzer.gate, let tr = textRows, let a = ah else { return (ah, nil) }
        let p = try g.probability(textFeatures: tr)
        return (p < g.threshold ? [Float](repeating: 0, count: a.count) : a, p)
    }

    /// Predicted class per row and the class names: the EXPR head's (through the confidence filter when
    /// one is planned), else the expression model's.
    func classify(expr: FeatureMatrix?, probabilities: FeatureMatrix) throws -> ([Int], [String]) {
        guard let e = expr else { return (probabilities.argmaxPerRow(), analyzer.faceModel.expressionLabels) }
        let predicted = try plan.confidenceFilter.map { try $0.apply(task: e, model: probabilities) } ?? e.argmaxPerRow()
        return (predicted, ClassMapping.abawExpression)
    }

    /// EMI of the track: each head on its pooled inputs, blended.
    func mimicry() throws -> [Float]? {
        let heads = plan.heads(.emi)
        guard !heads.isEmpty else { return nil }
        let outs = try heads.map { h -> [Float] in
            let x = try inputs(h.spec, faceRows: h.spec.modalities.contains(.face))
            let pooled = h.statPooling ? try Pooling.stat(x) : try Pooling.mean(x)
            return try h.spec.head.predict(Tensor(shape: [1, pooled.count], values: pooled), source: h.spec.description).array
        }
        let w = plan.fusionWeights[.emi] ?? []
        return (0..<outs[0].count).map { j in zip(outs, w).reduce(0) { $0 + $1.0[j] * $1.1 } }
    }
}
