import ArgumentParser
import Foundation
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

/// Options of the commands that run a speech model over a whole file.
struct AudioModelOptions: ParsableArguments {
    @Option(name: .long, help: "A weight file: wav2vec2 or hubert (Tools/convert.py from a Hugging Face folder); for transcribe also whisper.")
    var model: String
    @Option(help: "Window length in seconds for long audio, above 0 and at most 120 (see README: long audio).")
    var window: Double = 20
    @Option(help: "Overlap between neighbouring windows in seconds, at least 0 and less than --window (at least the positional convolution's 2.56 s keeps hidden_states.0 exact).")
    var overlap: Double = 3

    /// The options against their ranges, before any model is loaded.
    func check() throws {
        try checkPositive(window, atMost: AudioWindowing.maxWindow, "--window", " s")
        guard overlap >= 0, overlap < window else {
            throw AffectError.badUsage("--overlap must be at least 0 and less than --window (\(number(window)) s), got \(number(overlap)).")
        }
        _ = try AudioWindowing(window: window, overlap: overlap).frames(framesPerSecond: 50)
    }

    func load() throws -> (Wav2Vec2, LongAudio) {
        try check()
        let m = try Wav2Vec2(weights: WeightFile(path: resolveWeights(model)))
        let w = AudioWindowing(window: window, overlap: overlap)
        _ = try w.frames(framesPerSecond: Double(m.config.sampleRate) / Double(m.config.hop))
        return (m, LongAudio(model: m, windowing: w))
    }
}

/// Runs the two streaming passes of ``LongAudio`` over `file`, decoding it afresh for each.
func runLongAudio(_ long: LongAudio, file: String, layer: Int? = nil, logits: Bool = false,
                  emit: (LongAudio.Segment) throws -> Void) throws -> LongAudio.Statistics {
    let rate = long.model.config.sampleRate
    let first = try AudioDecoder(path: file, sampleRate: rate)
    let stats = try long.statistics { try first.read() }
    let second = try AudioDecoder(path: file, sampleRate: rate)
    try long.run({ try second.read() }, statistics: stats, layer: layer, logits: logits, emit: emit)
    return stats
}

struct Transcribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transcribe speech with Whisper, or with a CTC model (Wav2Vec2ForCTC / HubertForCTC).",
        discussion: """
        The audio track of any file FFmpeg reads is decoded to 16 kHz mono. A Whisper weight file (arch whisper) \
        is run as openai-whisper's transcribe(): 30 s windows seeking to the last timestamp, temperature fallback \
        0, 0.2 … 1.0, no-speech skipping, greedy or beam-search decoding (--beam), the language detected by \
        multilingual models unless --language is given. A CTC model is run in windows (--window, --overlap) and \
        decoded greedily with word times from its 20 ms frames. An audio track with no samples (or under 25 ms) \
        gives an empty transcript.
        """)

    @Argument(help: "An audio or video file.") var file: String
    @OptionGroup var audio: AudioModelOptions
    @Option(help: "Output format: text, json (Whisper: segments with start, end, text, tokens, avg_logprob, no_speech_prob, compression_ratio, temperature; CTC: words with times), srt or vtt (Whisper).")
    var format: String = "text"
    @Option(help: "Whisper: the spoken language as a code (en, de, fr, …); default: detected (multilingual models) or en.")
    var language: String?
    @Option(help: "Whisper: beam-search width at temperature 0, 1 to 64 (default: greedy).")
    var beam: Int?
    @Option(help: "Whisper: beam-search patience, above 0 and at most 64 (with --beam).")
    var patience: Double?
    @Flag(help: "Whisper: decode at temperature 0 only (no fallback to 0.2 … 1.0), as whisper.cpp's --no-fallback.")
    var noFallback = false
    @Flag(help: "Whisper: no timestamp tokens (one segment per 30 s window), as whisper.cpp's --no-timestamps.")
    var noTimestamps = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        guard ["text", "json", "srt", "vtt"].contains(format) else { throw AffectError.badUsage("--format must be text, json, srt or vtt.") }
        if let b = beam { try checkRange(b, 1...64, "--beam", "") }
        if let p = patience {
            guard beam != nil else { throw AffectError.badUsage("--patience needs --beam.") }
            guard p > 0, p <= 64 else { throw AffectError.badUsage("--patience must be above 0 and at most 64, got \(number(p)).") }
        }
        let path = try resolveWeights(audio.model)
        if try WeightFile(path: path).arch == "whisper" { return try runWhisper(path) }
        guard language == nil, beam == nil, !noFallback, !noTimestamps else {
            throw AffectError.badUsage("--language, --beam, --no-fallback and --no-timestamps are Whisper options; \(audio.model) is a CTC model.")
        }
        guard format == "text" || format == "json" else { throw AffectError.badUsage("--format srt and vtt need a Whisper model.") }
        let (model, long) = try audio.load()
        guard let ctc = model.ctc else {
            throw AffectError.badInput("\(audio.model): the model has no CTC head (lm_head and vocabulary), so it cannot transcribe.")
        }
        var ids: [Int] = []
        let stats = try runLongAudio(long, file: file, logits: true) { seg in
            guard let l = seg.logits else { return }
            ids += ctc.argmax(l.data, frames: l.shape[0])
        }
        let t = ctc.decode(ids: ids)
        if format == "text" {
            print(t.text)
            return
        }
        let obj: [String: Any] = [
            "file": file, "model": audio.model,
            "duration": Double(stats.count) / Double(model.config.sampleRate), "frames": ids.count,
            "text": t.text,
            "words": t.words.map { ["word": $0.word, "start": rounded($0.start), "end": rounded($0.end)] as [String: Any] },
        ]
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    func runWhisper(_ path: String) throws {
        var whisper = try WhisperTranscriber(weights: path)
        if let l = language {
            let code = l.lowercased()
            guard whisper.transcriber.decoder.model.config.multilingual || code == "en" else {
                throw AffectError.badUsage("--language \(l): \(audio.model) is an English-only model.")
            }
            guard whisper.transcriber.decoder.tokenizer.languageToken(code) != nil else {
                throw AffectError.badUsage("--language \(l) is not one of the model's languages (codes such as en, de, fr, ja).")
            }
            whisper.options.decoding.language = code
        }
        whisper.options.decoding.beamSize = beam
        whisper.options.decoding.patience = patience
        if noFallback { whisper.options.temperatures = [0] }
        whisper.options.decoding.withoutTimestamps = noTimestamps
        let r = try whisper.run(audioOf: file)
        func stamp(_ x: Double, _ sep: String) -> String {
            let ms = Int((max(0, x) * 1000).rounded())
            return String(format: "%02d:%02d:%02d\(sep)%03d", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
        }
        let spoken = r.segments.filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }
        switch format {
        case "text":
            print(r.text.trimmingCharacters(in: .whitespacesAndNewlines))
        case "srt":
            for (i, s) in spoken.enumerated() {
                print("\(i + 1)\n\(stamp(s.start, ",")) --> \(stamp(s.end, ","))\n\(s.text.trimmingCharacters(in: .whitespaces))\n")
            }
        case "vtt":
            print("WEBVTT\n")
            for s in spoken { print("\(stamp(s.start, ".")) --> \(stamp(s.end, "."))\n\(s.text.trimmingCharacters(in: .whitespaces))\n") }
        default:
            func finite(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
            let obj: [String: Any] = [
                "file": file, "model": audio.model, "language": r.language, "text": r.text,
                "segments": r.segments.map { s -> [String: Any] in
                    ["id": s.id, "seek": s.seek, "start": rounded(s.start), "end": rounded(s.end), "text": s.text, "tokens": s.tokens,
                     "temperature": s.temperature, "avg_logprob": finite(s.avgLogprob), "compression_ratio": finite(s.compressionRatio),
                     "no_speech_prob": finite(s.noSpeechProb)]
                },
            ]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

/// Seconds to the millisecond (frames are 20 ms).
private func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

struct EmbedAudio: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed-audio",
        abstract: "Write wav2vec 2.0 / HuBERT embeddings of a file's audio: per 20 ms frame (50 Hz) or pooled.",
        discussion: """
        Output: a safetensors file with `embeddings` ([frames, hidden] for --pool none; [1, hidden] for mean; \
        [1, 4·hidden] for stat = mean, std, min, max concatenated, std with ddof 0) and, per frame, \
        `frame_times` (start of each frame in seconds). Metadata `affect.embedding` records the file, model, \
        layer, pooling and windowing. Audio with no frames (empty or under 25 ms) gives zero rows.
        """)

    @Argument(help: "An audio or video file.") var file: String
    @OptionGroup var audio: AudioModelOptions
    @Option(help: "hidden_states.K as transformers numbers them (0 = encoder input, num layers = last layer's output); default: last_hidden_state.")
    var layer: Int?
    @Option(help: "none (frames), mean or stat.") var pool: String = "none"
    @Option(name: .shortAndLong, help: "Output .safetensors file.") var output: String
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        guard ["none", "mean", "stat"].contains(pool) else { throw AffectError.badUsage("--pool must be none, mean or stat.") }
        try audio.check()
        if let k = layer, k < 0 { throw AffectError.badUsage("--layer must be at least 0, got \(k).") }
        try checkOutputs([("-o", output)], inputs: [file, audio.model])
        let (model, long) = try audio.load()
        if let k = layer, !(0...model.config.layers).contains(k) {
            throw AffectError.badUsage("--layer must be between 0 and \(model.config.layers) for \(audio.model).")
        }
        let h = model.config.hiddenSize
        var count = 0
        var meta: [String: Any] = [
            "file": file, "model": audio.model, "arch": model.arch, "layer": layer.map { "hidden_states.\($0)" } ?? "last_hidden_state",
            "pool": pool, "frame_rate": Double(model.config.sampleRate) / Double(model.config.hop),
            "sample_rate": model.config.sampleRate, "window": audio.window, "overlap": audio.overlap,
        ]
        func metadata(frames: Int, samples: Int) throws -> [String: String] {
            meta["frames"] = frames; meta["samples"] = samples
            return ["affect.embedding": String(decoding: try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys]), as: UTF8.self)]
        }
        var samples = 0
        if pool == "none" {
            // Frames go to the output file as they come (it is as long as the recording: 150 KB a second for
            // wav2vec2-base), then their times; the header is written last.
            try AtomicFile.write(to: output) { tmp in
                let out = try SafeTensorsStreamWriter(path: tmp, metadata: try metadata(frames: Int.max, samples: Int.max))
                out.begin("embeddings", columns: h)
                samples = try runLongAudio(long, file: file, layer: layer) { seg in
                    try out.append(seg.hidden.data, rows: seg.hidden.shape[0])
                    count += seg.hidden.shape[0]
                }.count
                out.begin("frame_times", columns: 0)
                let spf = Double(model.config.hop) / Double(model.config.sampleRate)
                for start in stride(from: 0, to: count, by: 1 << 16) {
                    let times = (start..<min(count, start + (1 << 16))).map { Float(Double($0) * spf) }
                    try times.withUnsafeBufferPointer { try out.append($0.baseAddress!, rows: times.count) }
                }
                out.metadata = try metadata(frames: count, samples: samples)
                try out.finish()
            }
        } else {
            // Pooled output keeps running sums only.
            var running = RunningPooling(columns: h)
            samples = try runLongAudio(long, file: file, layer: layer) { seg in
                running.add(seg.hidden.data, rows: seg.hidden.shape[0])
                count += seg.hidden.shape[0]
            }.count
            var writer = SafeTensorsWriter()
            if count == 0 {
                writer.add("embeddings", shape: [0, pool == "stat" ? 4 * h : h], floats: [])
            } else {
                let v = pool == "stat" ? try running.stat() : try running.means()
                writer.add("embeddings", shape: [1, v.count], floats: v)
            }
            writer.metadata = try metadata(frames: count, samples: samples)
            try writer.write(to: output)
        }
        print("\(output): embeddings \(pool == "none" ? "\(count)×\(h)" : (count == 0 ? "0 rows" : "1×\(pool == "stat" ? 4 * h : h)")) from \(count) frames (\(String(format: "%.2f", Double(samples) / Double(model.config.sampleRate))) s)")
    }
}

struct DecodeAudio: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode-audio",
        abstract: "Decode a file's audio track to mono at 16 kHz (what the speech models hear) and write it as WAV or FLAC.",
        discussion: "Same samples as `ffmpeg -i FILE -ac 1 -ar 16000`. .wav is written as 32-bit float, .flac as 16-bit.")

    @Argument(help: "An audio or video file.") var file: String
    @Option(name: .shortAndLong, help: "Output .wav or .flac file.") var output: String
    @Option(help: "Output sample rate, 1000 to 384000 Hz.") var sampleRate: Int = 16000

    func run() throws {
        let ext = URL(fileURLWithPath: output).pathExtension.lowercased()
        guard ext == "wav" || ext == "flac" else { throw AffectError.badUsage("-o must end in .wav or .flac.") }
        try checkRange(sampleRate, 1000...384_000, "--sample-rate", " Hz")
        try checkOutputs([("-o", output)], inputs: [file])
        let decoder = try AudioDecoder(path: file, sampleRate: sampleRate)
        var count = 0
        // libsndfile writes the temporary file a chunk at a time (memory stays bounded however long the
        // audio); it is renamed into place only once complete.
        try AtomicFile.write(to: output) { tmp in
            let w = try SoundFile.Writer(path: tmp, sampleRate: sampleRate, format: ext == "wav" ? .wavFloat : .flac16)
            while true {
                let chunk = try decoder.read(maxSamples: 1 << 18)
                if chunk.isEmpty { break }
                try w.write(chunk)
                count += chunk.count
            }
            try w.close()
        }
        print("\(output): \(count) samples, \(String(format: "%.3f", Double(count) / Double(sampleRate))) s at \(sampleRate) Hz")
    }
}
