import Foundation
import AffectKernels
import AffectModels
import AffectPipeline

/// 16 kHz PCM chunks on `/v1/stream`, run through a loaded wav2vec2 / HuBERT model as they arrive.
///
/// Framing: a binary message that starts with the four ASCII bytes `S16L` carries mono signed 16-bit
/// little-endian samples after them, one with `F32L` mono 32-bit float little-endian samples (nominally in
/// [-1, 1]); both at the audio model's rate (16 kHz for every wav2vec2 / HuBERT checkpoint). Any other binary
/// message is a picture. A chunk holds 1 sample to ``maxChunkSeconds`` of audio.
///
/// Each chunk is answered with the 20 ms frames it completes (frame `j` covers samples `[j·320, j·320 + 400)`,
/// so a frame is complete once its last sample has arrived): their mean last hidden state (`embedding`) and,
/// for models with a CTC head, the characters their greedy CTC decoding adds (`text`, the word delimiter as a
/// space; a run of one token continuing from the previous chunk is not repeated). Concatenating the `text`s
/// gives the stream's transcript.
///
/// The model runs on the new frames plus ``contextSeconds`` of the audio before them (frames aligned to the
/// stream's own 20 ms grid), normalised over that stretch as ``LongAudio`` normalises a file: the first chunk's
/// answer equals `/v1/embed-audio?pool=mean` and `/v1/transcribe` on the same samples. Later chunks see only
/// that much past context and no future, the price of answering as the audio arrives. Only the context and
/// the samples of the unfinished frame are kept between chunks, so memory is bounded whatever the stream's length.
final class AudioStream: @unchecked Sendable {
    /// Longest chunk accepted, in seconds (attention cost grows with the square of the stretch run).
    static let maxChunkSeconds = 30.0
    /// Past audio run with each chunk, in seconds (covers the positional convolution's reach of ±1.28 s).
    static let contextSeconds = 2.0
    /// Largest float sample magnitude accepted: far beyond any recording's range, so bytes that are not
    /// float samples (random data read as floats spans ±3e38 and NaN) are refused instead of analysed.
    static let maxFloatMagnitude: Float = 16

    static let int16Header: [UInt8] = Array("S16L".utf8)
    static let float32Header: [UInt8] = Array("F32L".utf8)

    let name: String
    let speech: SpeechModel
    /// Samples from `bufferStart` on: the context and the unfinished frame's samples.
    private var buffer: [Float] = []
    private var bufferStart = 0
    /// Samples received (accepted chunks only).
    private(set) var received = 0
    /// Frames answered so far.
    private var emitted = 0
    /// The CTC token of the last frame answered, so that a run continuing into the next chunk is not repeated.
    private var lastToken: Int?
    private(set) var chunks = 0

    init(name: String, speech: SpeechModel) {
        self.name = name; self.speech = speech
    }

    var sampleRate: Int { speech.model.config.sampleRate }

    /// Whether a binary message announces PCM (one of the two headers).
    static func isPCM(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && (bytes.prefix(4).elementsEqual(int16Header) || bytes.prefix(4).elementsEqual(float32Header))
    }

    /// The samples of a PCM message (``isPCM(_:)`` true), validated; every problem is one sentence.
    static func samples(_ bytes: UnsafeRawBufferPointer, sampleRate: Int) throws -> [Float] {
        let int16 = bytes.prefix(4).elementsEqual(int16Header)
        let width = int16 ? 2 : 4
        let payload = bytes.count - 4
        let maxSamples = Int(maxChunkSeconds) * sampleRate
        guard payload > 0 else { throw ServerError(.badRequest, "the PCM chunk holds no samples after its header.") }
        guard payload % width == 0 else {
            throw ServerError(.badRequest, "the PCM chunk's \(payload) bytes after the header are not whole \(int16 ? "16-bit" : "32-bit float") samples (\(width) bytes each).")
        }
        let n = payload / width
        guard n <= maxSamples else {
            throw ServerError(.badRequest, "the PCM chunk holds \(n) samples; at most \(Int(maxChunkSeconds)) s (\(maxSamples) samples at \(sampleRate) Hz) go in one chunk.")
        }
        var out = [Float](repeating: 0, count: n)
        if int16 {
            for i in 0..<n {
                let lo = UInt16(bytes[4 + 2 * i]), hi = UInt16(bytes[5 + 2 * i])
                out[i] = Float(Int16(bitPattern: lo | hi << 8)) / 32768
            }
        } else {
            for i in 0..<n {
                var bits: UInt32 = 0
                for b in 0..<4 { bits |= UInt32(bytes[4 + 4 * i + b]) << (8 * b) }
                let v = Float(bitPattern: bits)
                guard v.isFinite, abs(v) <= maxFloatMagnitude else {
                    throw ServerError(.badRequest, "sample \(i) of the F32L chunk is \(v), not a finite sample within ±\(Int(maxFloatMagnitude)) (send float samples in [-1, 1], little-endian).")
                }
                out[i] = v
            }
        }
        return out
    }

    /// Appends one chunk, runs the model on the frames it completes and returns the answer. Blocking (run it on a
    /// request worker). The stream's state changes only when the chunk succeeded.
    func append(_ chunk: [Float]) throws -> [String: Any] {
        let model = speech.model
        let hop = model.config.hop
        let rate = Double(sampleRate)
        let start = received
        let total = received + chunk.count
        let frames = model.frameCount(samples: total)
        let context = Int(Self.contextSeconds * rate) / hop
        var reply: [String: Any] = ["chunk": chunks, "model": name, "sample_rate": sampleRate,
                                    "start": Double(start) / rate, "end": Double(total) / rate,
                                    "first_frame": emitted, "frames": frames - emitted]
        var token = lastToken
        if frames > emitted {
            // From a frame boundary `context` frames back: the run's frames lie on the stream's grid.
            let firstRun = max(0, emitted - context)
            let x = Array(buffer[(firstRun * hop - bufferStart)...]) + chunk
            let keep = (emitted - firstRun)..<(frames - firstRun)
            let ctc = model.ctc
            var hidden: [Float] = [], ids: [Int] = [], rows = 0
            var fed = false
            let next = { () -> [Float] in defer { fed = true }; return fed ? [] : x }
            let stats = try speech.long.statistics(next)
            fed = false
            try speech.long.run(next, statistics: stats, logits: ctc != nil) { seg in
                let h = seg.hidden.shape[1]
                for r in 0..<seg.hidden.shape[0] where keep.contains(seg.firstFrame + r) {
                    hidden.append(contentsOf: UnsafeBufferPointer(start: seg.hidden.data + r * h, count: h))
                    rows += 1
                    if let ctc, let l = seg.logits { ids += ctc.argmax(l.data + r * l.shape[1], frames: 1) }
                }
            }
            guard rows == keep.count else {
                throw ServerError(.internalServerError, "the audio model gave \(rows) frames for \(keep.count) new ones.")
            }
            let mean = try Pooling.mean(FeatureMatrix(rows: rows, columns: model.config.hiddenSize, values: hidden))
            reply["embedding"] = mean.map { JSON.finite($0) }
            if let ctc {
                var text = ""
                for id in ids {
                    if id != token && id != ctc.blank && ctc.vocabulary.indices.contains(id) {
                        let t = ctc.vocabulary[id]
                        text += t == ctc.wordDelimiter ? " " : t
                    }
                    token = id
                }
                reply["text"] = ctc.lowercase ? text.lowercased() : text
            }
        }
        // Commit: keep the context of the next run and the unfinished frame's samples.
        buffer += chunk
        received = total
        emitted = frames
        lastToken = token
        chunks += 1
        let keepFrom = max(0, emitted - context) * hop
        if keepFrom > bufferStart {
            buffer.removeFirst(min(keepFrom - bufferStart, buffer.count))
            bufferStart = keepFrom
        }
        return reply
    }
}
