import Foundation
import AffectKernels

/// One transcribed segment, as openai-whisper's `transcribe()` reports it.
public struct WhisperSegment: Sendable {
    public var id: Int
    /// Mel frame the window started at.
    public var seek: Int
    public var start: Double
    public var end: Double
    public var text: String
    /// The segment's tokens, timestamps included.
    public var tokens: [Int]
    public var temperature: Double
    public var avgLogprob: Double
    public var compressionRatio: Double
    public var noSpeechProb: Double
}

/// Long audio: openai-whisper's `transcribe()` (without word timestamps).
///
/// The whole file's log-Mel spectrogram is taken with 30 s of silence appended; windows of 3000 frames start at
/// `seek`. Each is decoded with temperature fallback (0, 0.2, … 1.0 while the text compresses more than 2.4× or
/// its mean log-probability is under −1, unless the window is silent), skipped when the no-speech probability
/// is over 0.6 and the text unconvincing, and cut into segments at pairs of timestamps; the next window starts
/// at the last timestamp (or after the whole window), conditioned on the text so far.
public struct WhisperLongForm: Sendable {
    public let decoder: WhisperDecoder

    public struct Options: Sendable {
        public var decoding = WhisperDecodingOptions()
        public var temperatures: [Double] = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
        public var compressionRatioThreshold: Double? = 2.4
        public var logprobThreshold: Double? = -1
        public var noSpeechThreshold: Double? = 0.6
        public var conditionOnPreviousText = true
        public var initialPrompt: String?
        public init() {}
    }

    public struct Result: Sendable {
        public var text: String
        public var segments: [WhisperSegment]
        public var language: String
    }

    public init(decoder: WhisperDecoder) { self.decoder = decoder }

    /// Transcribes 16 kHz mono samples. `progress` receives each window's segments as they are made.
    public func transcribe(_ samples: [Float], options: Options = Options(),
                           progress: (([WhisperSegment]) -> Void)? = nil) throws -> Result {
        let mel = try WhisperAudio.logMel(samples, mels: decoder.model.config.mels, padding: WhisperAudio.windowSamples)
        return try transcribe(spectrogram: mel, options: options, progress: progress)
    }

    /// Transcribes a recording given as its log-Mel spectrogram with 30 s of silence appended: what
    /// ``WhisperAudio/LogMelStream`` makes with `padding: WhisperAudio.windowSamples` from audio read in chunks,
    /// so a long recording is never held whole.
    public func transcribe(spectrogram mel: WhisperAudio.Spectrogram, options: Options = Options(),
                           progress: (([WhisperSegment]) -> Void)? = nil) throws -> Result {
        let model = decoder.model, t = decoder.tokenizer
        guard !options.temperatures.isEmpty, options.temperatures.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw AffectError.badUsage("temperatures must be a non-empty list of numbers ≥ 0.")
        }
        let frames = WhisperAudio.windowFrames
        guard mel.mels == model.config.mels, mel.frames >= frames else {
            throw AffectError.badInput("a spectrogram of \(mel.mels) bins × \(mel.frames) frames does not fit the model (\(model.config.mels) bins, 30 s of padding: at least \(frames) frames).")
        }
        let contentFrames = mel.frames - frames
        var decoding = options.decoding
        var language = "en"
        if model.config.multilingual {
            if let l = decoding.language {
                guard t.languageToken(l) != nil else { throw AffectError.badUsage("the model has no language `\(l)`; give a code such as en, de or fr.") }
                language = l
            } else {
                language = try decoder.detectLanguage(audio: decoder.encode(window: mel.window(start: 0))).code
            }
        }
        decoding.language = language
        let inputStride = frames / model.config.audioPositions          // 2 mel frames per audio position
        let precision = Double(inputStride * WhisperAudio.hop) / Double(WhisperAudio.sampleRate)   // 0.02 s
        let initialPromptTokens = options.initialPrompt.map { t.encode(" " + $0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? []
        var allTokens = initialPromptTokens
        var promptResetSince = 0
        var segments: [WhisperSegment] = []
        var seek = 0
        while seek < contentFrames {
            let timeOffset = Double(seek * WhisperAudio.hop) / Double(WhisperAudio.sampleRate)
            let segmentSize = min(frames, contentFrames - seek)
            let segmentDuration = Double(segmentSize * WhisperAudio.hop) / Double(WhisperAudio.sampleRate)
            // mel[:, seek:seek+size] padded to 3000 frames with zeros (not the spectrogram's following frames).
            var window = mel.window(start: seek, count: segmentSize)
            if segmentSize < frames {
                var padded = [Float](repeating: 0, count: model.config.mels * frames)
                for m in 0..<model.config.mels {
                    for j in 0..<segmentSize { padded[m * frames + j] = window[m * segmentSize + j] }
                }
                window = padded
            }
            decoding.prompt = Array(allTokens[promptResetSince...])
            let audio = try decoder.encode(window: window)
            let result = try decodeWithFallback(audio: audio, decoding, options)
            if let threshold = options.noSpeechThreshold, result.noSpeechProb > threshold,
               !(options.logprobThreshold.map { result.avgLogprob > $0 } ?? false) {
                seek += segmentSize
                continue
            }
            let tokens = result.tokens
            let isTimestamp = tokens.map { $0 >= t.timestampBegin }
            // `timestamp_tokens[-2:] == [False, True]`: the window ended inside a segment.
            let singleTimestampEnding = tokens.count >= 2 && !isTimestamp[tokens.count - 2] && isTimestamp[tokens.count - 1]
            var consecutive: [Int] = []
            if tokens.count >= 2 { for i in 0..<(tokens.count - 1) where isTimestamp[i] && isTimestamp[i + 1] { consecutive.append(i + 1) } }
            var current: [WhisperSegment] = []
            func segment(start: Double, end: Double, _ toks: [Int]) -> WhisperSegment {
                WhisperSegment(id: 0, seek: seek, start: start, end: end, text: t.decode(toks.filter { $0 < t.eot }), tokens: toks,
                               temperature: result.temperature, avgLogprob: result.avgLogprob,
                               compressionRatio: result.compressionRatio, noSpeechProb: result.noSpeechProb)
            }
            if !consecutive.isEmpty {
                var slices = consecutive
                if singleTimestampEnding { slices.append(tokens.count) }
                var last = 0
                for s in slices {
                    let sliced = Array(tokens[last..<s])
                    current.append(segment(start: timeOffset + Double(sliced[0] - t.timestampBegin) * precision,
                                           end: timeOffset + Double(sliced[sliced.count - 1] - t.timestampBegin) * precision, sliced))
                    last = s
                }
                if singleTimestampEnding { seek += segmentSize } else { seek += (tokens[last - 1] - t.timestampBegin) * inputStride }
            } else {
                var duration = segmentDuration
                if let lastTimestamp = tokens.last(where: { $0 >= t.timestampBegin }), lastTimestamp != t.timestampBegin {
                    duration = Double(lastTimestamp - t.timestampBegin) * precision
                }
                current.append(segment(start: timeOffset, end: timeOffset + duration, tokens))
                seek += segmentSize
            }
            // Instantaneous or empty segments keep their times but lose their text.
            for i in current.indices where current[i].start == current[i].end || current[i].text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                current[i].text = ""; current[i].tokens = []
            }
            for i in current.indices { current[i].id = segments.count + i }
            segments += current
            allTokens += current.flatMap(\.tokens)
            progress?(current)
            if !options.conditionOnPreviousText || result.temperature > 0.5 { promptResetSince = allTokens.count }
        }
        return Result(text: t.decode(Array(allTokens[initialPromptTokens.count...])), segments: segments, language: language)
    }

    /// `decode_with_fallback`: the first temperature whose result is neither repetitive nor improbable (a
    /// silent window is accepted as it is).
    func decodeWithFallback(audio: Tensor, _ base: WhisperDecodingOptions, _ options: Options) throws -> WhisperDecodingResult {
        var result: WhisperDecodingResult? = nil
        for (i, temperature) in options.temperatures.enumerated() {
            var o = base
            o.temperature = temperature
            if temperature > 0 { o.beamSize = nil; o.patience = nil; o.seed = UInt64(i) } else { o.bestOf = nil }
            let r = try decoder.decode(audio: audio, options: o)
            result = r
            var fallback = false
            if let c = options.compressionRatioThreshold, r.compressionRatio > c { fallback = true }
            if let l = options.logprobThreshold, r.avgLogprob < l { fallback = true }
            if let n = options.noSpeechThreshold, r.noSpeechProb > n, let l = options.logprobThreshold, r.avgLogprob < l { fallback = false }
            if !fallback { break }
        }
        return result!
    }
}
