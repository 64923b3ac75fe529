import ArgumentParser
import Foundation
import AffectKernels
import AffectModels
import AffectPipeline

/// `affect extract DIR -o OUTDIR --shard i/n`: per-video feature files for a dataset, resumable and sharded.
struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract per-frame face, audio and text features, logits and boxes for every video of a folder (resumable, sharded).",
        discussion: """
        Each video DIR/a/b.mp4 gives OUTDIR/a/b.mp4.safetensors (the video's extension is kept, so b.mp4 and \
        b.mkv both get theirs), written atomically, holding for the main face \
        track (largest total face area) one row per decoded frame: `times` [F], `analyzed` [F] (1 or 0), \
        `face` [F] (1 where the track has a detection), `boxes` [F, 4], `features` [F, D] and `logits` \
        [F, C] (zeros where there is no face); and every detection of every track: `detections.frame`, \
        `detections.track` (int64 [K]), `detections.box` [K, 4], `detections.probability` [K]. Metadata \
        `affect.extract` records the video, models, the face model's labels and the settings.
        With --audio-model, `audio` [F, Da]: the audio model's embeddings interpolated onto the frame times; \
        with --text-model and --transcript-dir (DIR2/a/b.srt, .vtt or .txt for DIR/a/b.mp4; DIR2/a/b.mp4.srt \
        etc. first) or --asr, `text` [F, Dt]: the transcript segments' embeddings interpolated onto the frame \
        times, plus `text.segments` [S, Dt] and `text.segment_times` [S, 2] (start, end in seconds; the AH \
        gate reads the segments' mean). Both are computed by the same code as in `affect analyze`, so a head \
        trained on them sees what it sees at analysis time.
        Videos whose complete output (from the same video path, with the tensors this run writes) already \
        exists are skipped, so a crashed or \
        pre-empted job is simply rerun; temporary files a killed run left are removed. \
        --shard i/n (0 ≤ i < n) keeps the videos whose FNV-1a hash of the relative path is i modulo n: every \
        video belongs to exactly one shard, and adding videos does not move the others (Slurm \
        `--shard $SLURM_ARRAY_TASK_ID/$N`, Kubernetes `--shard $JOB_COMPLETION_INDEX/$N`).
        A video that fails is reported and skipped; the exit status is then 2. Options are checked before the \
        output folder is created.
        """)

    @Argument(help: "Folder of videos (searched recursively).") var folder: String
    @Option(name: [.short, .customLong("output")], help: "Output folder.") var output: String
    @Option(help: "This process's shard, `i/n` with 0 ≤ i < n.") var shard: String = "0/1"
    @Option(help: "Face model (default Weights/mini_xception.safetensors, or an EmotiEffLib backbone).") var faceModel: String?
    @Option(help: "MTCNN weights (default Weights/mtcnn.safetensors).") var detector: String?
    @Option(help: "Audio model (wav2vec2 / hubert weight file): adds `audio` [F, Da].") var audioModel: String?
    @Option(help: "With --audio-model: use hidden_states[N] instead of the last hidden state.") var audioLayer: Int?
    @Option(help: "Text model (bert / roberta weight file, e.g. all-MiniLM-L6-v2): adds `text` [F, Dt] (needs --transcript-dir or --asr).") var textModel: String?
    @Option(help: "Text pooling: sentence (sentence-transformers: mean, L2-normalised), mean or cls.") var textPooling: String = "sentence"
    @Option(help: "Folder of transcripts (.srt, .vtt or .txt), one per video, matched by relative path.") var transcriptDir: String?
    @Option(help: "Transcribe each video with this Whisper or CTC model instead of --transcript-dir.") var asr: String?
    @Option(help: "Analyse one frame in N (1 to 10000).") var every: Int = 1
    @Option(help: "Analyse about this many frames per second, 0.001 to 1000 (instead of --every).") var fps: Double?
    @Option(help: "Smallest face side in pixels, 12 to 10000.") var minFace: Float = 40
    @Flag(help: "Show a progress bar on standard error even when it is not a terminal.") var progress = false
    @OptionGroup var compute: ComputeOptions

    static let videoExtensions: Set<String> = ["mp4", "avi", "mov", "mkv", "webm", "m4v", "mpg", "mpeg", "wmv", "flv", "3gp"]

    func run() throws {
        try compute.apply()
        let (index, count) = try Extract.parseShard(shard)
        // Every option is checked before anything is created.
        var options = AnalyzerOptions()
        try checkRange(every, AnalyzerOptions.everyRange, "--every")
        if let fps {
            try checkRange(fps, AnalyzerOptions.fpsRange, "--fps", " frames per second")
            guard every == 1 else { throw AffectError.badUsage("--every and --fps are alternatives: give one.") }
        }
        try checkRange(Double(minFace), 12...10_000, "--min-face", " pixels")
        options.every = every; options.fps = fps; options.minFaceSize = minFace
        try options.validate()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw AffectError.badInput("\(folder): no such folder.")
        }
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDir), !isDir.boolValue {
            throw AffectError.badInput("\(output): exists and is not a folder.")
        }
        if let d = transcriptDir {
            guard FileManager.default.fileExists(atPath: d, isDirectory: &isDir), isDir.boolValue else {
                throw AffectError.badInput("\(d): no such folder (--transcript-dir).")
            }
        }
        if transcriptDir != nil && asr != nil { throw AffectError.badUsage("give either --transcript-dir or --asr, not both.") }
        if textModel == nil, let given = transcriptDir.map({ _ in "--transcript-dir" }) ?? asr.map({ _ in "--asr" }) {
            throw AffectError.badUsage("\(given) gives text for --text-model; add --text-model.")
        }
        let videos = try Extract.videos(in: folder)
        let mine = videos.filter { Extract.shardOf($0, count: count) == index }
        var transcripts: [String: String] = [:]
        if let d = transcriptDir {
            var missing: [String] = []
            for rel in mine { if let t = Extract.transcript(for: rel, in: d) { transcripts[rel] = t } else { missing.append(rel) } }
            if !missing.isEmpty {
                throw AffectError.badInput("\(d): no transcript for \(missing.count) video\(missing.count == 1 ? "" : "s") (\(missing.prefix(3).joined(separator: ", "))\(missing.count > 3 ? ", ..." : "")); for a/b.mp4 it reads a/b.mp4.srt or a/b.srt (or .vtt, .txt).")
            }
        }
        let facePath = faceModel ?? defaultWeights("mini_xception.safetensors")
        var configuration = Analyzer.Configuration(detector: try MTCNN(weights: WeightFile(path: resolveWeights(detector ?? defaultWeights("mtcnn.safetensors")))),
                                                   faceModel: try FaceModels.load(WeightFile(path: resolveWeights(facePath))), options: options)
        let analyzer = try analyzerWithOptionNames(configuration)
        let modal = try ModalityModels.load(audioModel: audioModel, audioLayer: audioLayer, textModel: textModel, textPooling: textPooling,
                                            asr: asr, hasTranscript: transcriptDir != nil, transcriptOption: "--transcript-dir")
        var needed: Set<Modality> = []
        if modal.audio != nil { needed.insert(.audio) }
        if modal.text != nil { needed.insert(.text) }
        let required = ["features"] + needed.map(\.rawValue).sorted()
        var settings: [String: Any] = ["model": URL(fileURLWithPath: facePath).lastPathComponent, "labels": analyzer.faceModel.expressionLabels,
                                       "every": options.every, "fps": options.fps ?? 0, "min_face": Double(options.minFaceSize)]
        if let m = audioModel { settings["audio_model"] = URL(fileURLWithPath: m).lastPathComponent; settings["audio_layer"] = audioLayer ?? -1 }
        if let m = textModel { settings["text_model"] = URL(fileURLWithPath: m).lastPathComponent; settings["text_pooling"] = textPooling }
        if let a = asr { settings["asr"] = URL(fileURLWithPath: a).lastPathComponent }
        try makeFolder(output)
        print("shard \(index)/\(count): \(mine.count) of \(videos.count) videos in \(folder)")
        var done = 0, skipped = 0, failed: [String] = []
        for (k, rel) in mine.enumerated() {
            let out = URL(fileURLWithPath: output).appendingPathComponent(Extract.outputName(rel)).path
            if Extract.isComplete(out, video: rel, tensors: required) { skipped += 1; continue }
            let bar = ProgressBar(enabled: progress || isatty(STDERR_FILENO) == 1, label: "[\(k + 1)/\(mine.count)] \(rel)")
            do {
                let path = URL(fileURLWithPath: folder).appendingPathComponent(rel).path
                let transcript = try transcripts[rel].map { try TimedTranscript(path: $0) }
                // The analyzer checks the transcript against the container's duration before decoding.
                configuration.transcript = transcript
                let scan = try Analyzer(configuration).scan(path: path) { bar.update($0, $1) }
                bar.finish()
                let features = try ModalityExtractor(audio: modal.audio, text: modal.text, transcript: transcript, speech: modal.speech)
                    .features(mediaPath: path, times: scan.times, duration: scan.duration, needed: needed)
                var s = settings
                s["video"] = rel
                if let t = transcripts[rel] { s["transcript"] = t }
                try makeFolder(URL(fileURLWithPath: out).deletingLastPathComponent().path)
                try Extract.writer(scan, modalities: features, settings: s).write(to: out)
                done += 1
                print("\(rel): \(scan.frameCount) frames, \(scan.tracks.count) face track\(scan.tracks.count == 1 ? "" : "s") -> \(out)")
            } catch {
                bar.finish()
                failed.append(rel)
                printErr("error: \((error as? AffectError)?.description ?? (error as? CocoaError).map(describe) ?? "\(rel): \(error.localizedDescription)")")
            }
        }
        print("extracted \(done), already done \(skipped), failed \(failed.count)")
        if !failed.isEmpty {
            throw AffectError.badInput("\(failed.count) video\(failed.count == 1 ? "" : "s") of \(folder) could not be extracted: \(failed.prefix(5).joined(separator: ", "))\(failed.count > 5 ? ", ..." : "").")
        }
    }

    static func parseShard(_ s: String) throws -> (Int, Int) {
        let p = s.split(separator: "/")
        guard p.count == 2, let i = Int(p[0]), let n = Int(p[1]), n >= 1, (0..<n).contains(i) else {
            throw AffectError.badUsage("--shard must be i/n with 0 ≤ i < n, got `\(s)`.")
        }
        return (i, n)
    }

    /// Video files under `folder`, as sorted relative paths.
    static func videos(in folder: String) throws -> [String] {
        guard let e = FileManager.default.enumerator(atPath: folder) else { throw AffectError.badInput("\(folder): cannot list the folder.") }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            if videoExtensions.contains(URL(fileURLWithPath: rel).pathExtension.lowercased()) { out.append(rel) }
        }
        return out.sorted()
    }

    /// FNV-1a (64-bit) of the relative path's UTF-8 bytes, modulo `count`: stable across runs and machines.
    static func shardOf(_ rel: String, count: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in rel.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return Int(h % UInt64(count))
    }

    /// The output of the video at relative path `rel`: `a/b.mp4` → `a/b.mp4.safetensors`. Keeping the
    /// extension keeps `b.mp4` and `b.mkv` of one folder apart.
    static func outputName(_ rel: String) -> String { rel + ".safetensors" }

    /// An output counts as done when it is a readable safetensors file written by `extract` for this video
    /// holding `tensors` (files are renamed into place only once complete, so a crash leaves none under the
    /// final name; a file without a modality this run adds is redone).
    static func isComplete(_ path: String, video rel: String, tensors: [String]) -> Bool {
        guard FileManager.default.fileExists(atPath: path), let f = try? SafeTensorsFile(path: path),
              let settings = try? f.jsonMetadata("affect.extract") as? [String: Any] else { return false }
        // A file damaged after it was written (cut short, or tensors of different frame counts) is redone.
        guard settings["video"] as? String == rel, let times = f.info("times"), times.shape.count == 1 else { return false }
        return (tensors + ["analyzed", "face", "boxes", "logits"]).allSatisfy { f.info($0)?.shape.first == times.shape[0] }
    }

    /// Transcript files tried for the video `rel`, in order: `a/b.mp4.srt`, `.vtt`, `.txt`, then `a/b.srt`, `.vtt`, `.txt`.
    static func transcriptCandidates(_ rel: String) -> [String] {
        let stem = (rel as NSString).deletingPathExtension
        return [rel, stem].flatMap { base in ["srt", "vtt", "txt"].map { "\(base).\($0)" } }
    }

    /// The transcript of the video `rel` in `folder`, if there is one.
    static func transcript(for rel: String, in folder: String) -> String? {
        transcriptCandidates(rel).map { URL(fileURLWithPath: folder).appendingPathComponent($0).path }
            .first { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: $0, isDirectory: &d) && !d.boolValue }
    }

    static func writer(_ scan: VideoScan, modalities: ModalityFeatures, settings base: [String: Any]) -> SafeTensorsWriter {
        let n = scan.frameCount, d = scan.featureWidth, c = scan.logitWidth
        var face = [Float](repeating: 0, count: n), boxes = [Float](repeating: 0, count: n * 4)
        var features = [Float](repeating: 0, count: n * d), logits = [Float](repeating: 0, count: n * c)
        if let main = scan.mainTrack {
            for (i, p) in main.frames.enumerated() {
                face[p] = 1
                let b = main.boxes[i]
                boxes.replaceSubrange((p * 4)..<(p * 4 + 4), with: [b.x1, b.y1, b.x2, b.y2])
                features.replaceSubrange((p * d)..<(p * d + d), with: main.features[(i * d)..<(i * d + d)])
                logits.replaceSubrange((p * c)..<(p * c + c), with: main.logits[(i * c)..<(i * c + c)])
            }
        }
        var detFrame: [Int64] = [], detTrack: [Int64] = [], detBox: [Float] = [], detProb: [Float] = []
        for t in scan.tracks { for (p, b) in zip(t.frames, t.boxes) {
            detFrame.append(Int64(p)); detTrack.append(Int64(t.id))
            detBox += [b.x1, b.y1, b.x2, b.y2]; detProb.append(b.probability)
        } }
        var settings = base
        settings["width"] = scan.width; settings["height"] = scan.height; settings["frames"] = n
        settings["main_track"] = scan.mainTrack?.id ?? -1
        let json = (try? JSONSerialization.data(withJSONObject: settings, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        var w = SafeTensorsWriter(metadata: ["affect.extract": json])
        w.add("times", shape: [n], floats: scan.times.map(Float.init))
        w.add("analyzed", shape: [n], floats: scan.analyzed.map { $0 ? 1 : 0 })
        w.add("face", shape: [n], floats: face)
        w.add("boxes", shape: [n, 4], floats: boxes)
        w.add("features", shape: [n, d], floats: features)
        w.add("logits", shape: [n, c], floats: logits)
        w.add("detections.frame", IntTensor(shape: [detFrame.count], values: detFrame))
        w.add("detections.track", IntTensor(shape: [detTrack.count], values: detTrack))
        w.add("detections.box", shape: [detProb.count, 4], floats: detBox)
        w.add("detections.probability", shape: [detProb.count], floats: detProb)
        if let a = modalities.audio { w.add("audio", shape: [a.rows, a.columns], floats: a.values) }
        if let t = modalities.text { w.add("text", shape: [t.rows, t.columns], floats: t.values) }
        if let s = modalities.textSegments, let tr = modalities.transcript {
            w.add("text.segments", shape: [s.rows, s.columns], floats: s.values)
            w.add("text.segment_times", shape: [tr.segments.count, 2], floats: tr.segments.flatMap { [Float($0.start), Float($0.end)] })
        }
        return w
    }
}
