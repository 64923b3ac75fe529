import Foundation
import AffectKernels
import AffectMedia
import AffectModels

/// Transcript segments as sentence embeddings from a BERT / RoBERTa weight file (all-MiniLM-L6-v2 with
/// sentence-transformers pooling by default: masked mean, L2-normalised).
public struct SentenceEmbedder: TextEmbedder {
    public let path: String
    public let encoder: TextEncoder
    public let pooling: TextTransformer.Pooling
    public var width: Int { encoder.model.hidden }

    /// - Parameter precision: of the encoder's linear layers (``Precision/int8``: dynamic int8).
    public init(weights path: String, pooling: TextTransformer.Pooling = .sentence, precision: Precision = .float32) throws {
        guard pooling != .token else {
            throw AffectError.badUsage("\(path): transcript segments need one vector each; use sentence, mean or cls pooling.")
        }
        self.path = path
        self.pooling = pooling
        encoder = try TextEncoder(weights: WeightFile(path: path, precision: precision))
    }

    public func embed(_ texts: [String]) throws -> FeatureMatrix {
        try FeatureMatrix(try encoder.embed(texts, pooling: pooling))
    }
}

/// Runs a wav2vec 2.0 / HuBERT file over a media file's sound track in windows (``LongAudio``, two streaming
/// passes over the decoded audio), for embeddings and for CTC transcripts.
public struct SpeechModel: Sendable {
    public let path: String
    public let model: Wav2Vec2
    public let long: LongAudio

    /// - Parameter precision: of the encoder's linear layers (``Precision/int8``: dynamic int8).
    public init(weights path: String, windowing: AudioWindowing = AudioWindowing(), precision: Precision = .float32) throws {
        self.path = path
        model = try Wav2Vec2(weights: WeightFile(path: path, precision: precision))
        _ = try windowing.frames(framesPerSecond: Double(model.config.sampleRate) / Double(model.config.hop))
        long = LongAudio(model: model, windowing: windowing)
    }

    /// Every stitched segment of the sound track of `mediaPath`, in order.
    func run(_ mediaPath: String, layer: Int?, logits: Bool, emit: (LongAudio.Segment) throws -> Void) throws {
        let rate = model.config.sampleRate
        let first = try AudioDecoder(path: mediaPath, sampleRate: rate)
        let stats = try long.statistics { try first.read() }
        let second = try AudioDecoder(path: mediaPath, sampleRate: rate)
        try long.run({ try second.read() }, statistics: stats, layer: layer, logits: logits, emit: emit)
    }
}

/// Audio embeddings: the last hidden state (or `hidden_states[layer]`) per 20 ms frame.
public struct SpeechEmbedder: AudioEmbedder {
    public let speech: SpeechModel
    public var layer: Int?
    public var path: String { speech.path }
    public var width: Int { speech.model.config.hiddenSize }
    public var frameRate: Double { Double(speech.model.config.sampleRate) / Double(speech.model.config.hop) }

    public init(weights path: String, layer: Int? = nil, windowing: AudioWindowing = AudioWindowing(),
                precision: Precision = .float32) throws {
        speech = try SpeechModel(weights: path, windowing: windowing, precision: precision)
        self.layer = layer
        if let l = layer, !(0...speech.model.config.layers).contains(l) {
            throw AffectError.badUsage("\(path): the model has hidden states 0…\(speech.model.config.layers), not \(l).")
        }
    }

    public func embed(audioOf mediaPath: String) throws -> FeatureMatrix {
        var values: [Float] = [], rows = 0
        try speech.run(mediaPath, layer: layer, logits: false) { seg in
            values.append(contentsOf: UnsafeBufferPointer(start: seg.hidden.data, count: seg.hidden.count))
            rows += seg.hidden.shape[0]
        }
        return try FeatureMatrix(rows: rows, columns: width, values: values)
    }
}

/// Speech to timed text with a CTC head (greedy decoding, word times from the 20 ms frames). Words become
/// segments at pauses of at least ``pause`` seconds (or every ``maxWords`` words), so each segment is a
/// phrase for the text model.
public struct CTCTranscriber: SpeechRecognizer {
    public let speech: SpeechModel
    public let decoder: CTCDecoder
    public var pause = 0.3
    public var maxWords = 20
    public var path: String { speech.path }

    public init(weights path: String, windowing: AudioWindowing = AudioWindowing(), precision: Precision = .float32) throws {
        speech = try SpeechModel(weights: path, windowing: windowing, precision: precision)
        guard let ctc = speech.model.ctc else {
            throw AffectError.badInput("\(path): the model has no CTC head (lm_head and vocabulary), so it cannot transcribe.")
        }
        decoder = ctc
    }

    public func transcribe(audioOf mediaPath: String) throws -> TimedTranscript {
        var ids: [Int] = []
        try speech.run(mediaPath, layer: nil, logits: true) { seg in
            if let l = seg.logits { ids += decoder.argmax(l.data, frames: l.shape[0]) }
        }
        let words = decoder.decode(ids: ids).words
        guard !words.isEmpty else {
            throw AffectError.badInput("\(mediaPath): the speech recogniser \(path) heard no words, so there is no text for the text model.")
        }
        return try TimedTranscript(source: "speech recognised in \(mediaPath)", segments: Self.phrases(words, pause: pause, maxWords: maxWords))
    }

    /// Consecutive words joined into segments, split at pauses and at `maxWords`.
    static func phrases(_ words: [TranscriptWord], pause: Double, maxWords: Int) -> [TimedTranscript.Segment] {
        var out: [TimedTranscript.Segment] = []
        var current: [TranscriptWord] = []
        func flush() {
            guard let f = current.first, let l = current.last else { return }
            out.append(.init(start: f.start, end: l.end, text: current.map(\.word).joined(separator: " ")))
            current = []
        }
        for w in words {
            if let last = current.last, w.start - last.end >= pause || current.count >= maxWords { flush() }
            current.append(w)
        }
        flush()
        return out
    }
}

/// Speech to timed text with Whisper (openai-whisper's `transcribe()`: 30 s windows, temperature fallback,
/// timestamps). Each Whisper segment becomes one transcript segment; empty segments are left out.
public struct WhisperTranscriber: SpeechRecognizer {
    public let path: String
    public let transcriber: WhisperLongForm
    public var options: WhisperLongForm.Options

    public init(weights path: String, options: WhisperLongForm.Options = .init(), precision: Precision = .float32) throws {
        self.path = path
        let w = try WeightFile(path: path, precision: precision)
        let model = try Whisper(weights: w)
        let tokenizer = try WhisperTokenizer(weights: w, vocabularySize: model.config.vocabularySize)
        transcriber = WhisperLongForm(decoder: try WhisperDecoder(model: model, tokenizer: tokenizer))
        self.options = options
    }

    /// A recogniser from an already loaded transcriber.
    public init(path: String, transcriber: WhisperLongForm, options: WhisperLongForm.Options = .init()) {
        self.path = path; self.transcriber = transcriber; self.options = options
    }

    /// The whole result of the sound track of `mediaPath` (decoded to 16 kHz mono).
    ///
    /// The track is decoded in chunks into the log-Mel spectrogram (``WhisperAudio/LogMelStream``): memory holds
    /// the spectrogram (about 115 MB an hour), not the samples, and a file that decodes to more than 2 hours (a
    /// few MB of compressed silence can) is refused when the decoder passes that mark.
    public func run(audioOf mediaPath: String, progress: (([WhisperSegment]) -> Void)? = nil) throws -> WhisperLongForm.Result {
        let audio = try AudioDecoder(path: mediaPath, sampleRate: WhisperAudio.sampleRate)
        var mel = try WhisperAudio.LogMelStream(mels: transcriber.decoder.model.config.mels, padding: WhisperAudio.windowSamples)
        do {
            while true {
                let chunk = try audio.read(maxSamples: 1 << 20)
                if chunk.isEmpty { break }
                try mel.append(chunk)
            }
        } catch AffectError.badInput(let message) where !message.hasPrefix(mediaPath) {
            throw AffectError.badInput("\(mediaPath): \(message)")
        }
        return try transcriber.transcribe(spectrogram: mel.finish(), options: options, progress: progress)
    }

    public func transcribe(audioOf mediaPath: String) throws -> TimedTranscript {
        let result = try run(audioOf: mediaPath)
        let segments = result.segments.compactMap { s -> TimedTranscript.Segment? in
            let text = s.text.trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : .init(start: s.start, end: max(s.end, s.start), text: text)
        }
        guard !segments.isEmpty else {
            throw AffectError.badInput("\(mediaPath): the speech recogniser \(path) heard no words, so there is no text for the text model.")
        }
        return try TimedTranscript(source: "speech recognised in \(mediaPath)", segments: segments)
    }
}

/// The speech recogniser a weight file holds: Whisper (arch `whisper`) or a CTC model (wav2vec2 / HuBERT).
public func speechRecognizer(weights path: String, precision: Precision = .float32) throws -> any SpeechRecognizer {
    let arch = try WeightFile(path: path).arch
    return arch == "whisper" ? try WhisperTranscriber(weights: path, precision: precision)
        : try CTCTranscriber(weights: path, precision: precision)
}
