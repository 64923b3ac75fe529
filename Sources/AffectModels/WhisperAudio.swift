import Foundation
import AffectKernels
import CBLAS

/// Whisper's audio front end, as openai-whisper's `whisper.audio` computes it.
///
/// ```
/// 16 kHz mono samples (+ `padding` zeros)
///   ─ STFT: n_fft 400, hop 160, periodic Hann window, centred (reflect padding of 200), last frame dropped
///   ─ power |X|² of the 201 bins ─ mel filter bank [mels, 201] (librosa's Slaney filters)
///   ─ log10(max(·, 1e-10)) ─ max(·, max − 8) ─ (· + 4) / 4        → [mels, frames], 100 frames per second
/// ```
/// The DFT and the filter bank run in double precision (torch runs float32 FFTs; the exact values keep us within
/// its rounding), the logarithm in single precision as torch does.
public enum WhisperAudio {
    public static let sampleRate = 16_000
    public static let fftSize = 400
    public static let hop = 160
    /// Samples in one 30 s window (`N_SAMPLES`).
    public static let windowSamples = 480_000
    /// Mel frames in one window (`N_FRAMES`).
    public static let windowFrames = 3_000
    /// Frequency bins of one frame.
    public static let bins = fftSize / 2 + 1

    /// `pad_or_trim`: the first `length` samples, zero-padded at the end when shorter.
    public static func padOrTrim(_ samples: [Float], length: Int = windowSamples) -> [Float] {
        if samples.count >= length { return Array(samples[0..<length]) }
        return samples + [Float](repeating: 0, count: length - samples.count)
    }

    /// librosa's `filters.mel(sr=16000, n_fft=400, n_mels=mels)` (Slaney mel scale, Slaney area normalisation),
    /// `[mels, 201]` row-major: what openai-whisper's `mel_filters.npz` holds for 80 and 128 bins.
    ///
    /// librosa evaluates the triangles in float64, stores them in a float32 array, then scales that array in
    /// place by the float64 normalisation: both roundings are reproduced.
    public static func melFilters(mels: Int) -> [Float] {
        precondition(mels > 0 && mels <= 1024)
        let fMin = 0.0, fMax = Double(sampleRate) / 2
        // Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
        let fsp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fsp, logStep = log(6.4) / 27
        func hzToMel(_ f: Double) -> Double { f >= minLogHz ? minLogMel + log(f / minLogHz) / logStep : f / fsp }
        func melToHz(_ m: Double) -> Double { m >= minLogMel ? minLogHz * exp(logStep * (m - minLogMel)) : fsp * m }
        let (lo, hi) = (hzToMel(fMin), hzToMel(fMax))
        // np.linspace(lo, hi, mels + 2): start + i·step, the last point exactly hi.
        let step = (hi - lo) / Double(mels + 1)
        let melF = (0..<(mels + 2)).map { i in melToHz(i == mels + 1 ? hi : lo + Double(i) * step) }
        let fftStep = fMax / Double(bins - 1)
        let fftFreqs = (0..<bins).map { i in i == bins - 1 ? fMax : Double(i) * fftStep }
        var weights = [Float](repeating: 0, count: mels * bins)
        for m in 0..<mels {
            let dLower = melF[m + 1] - melF[m], dUpper = melF[m + 2] - melF[m + 1]
            let enorm = 2.0 / (melF[m + 2] - melF[m])
            for k in 0..<bins {
                let lower = -(melF[m] - fftFreqs[k]) / dLower
                let upper = (melF[m + 2] - fftFreqs[k]) / dUpper
                let w = Float(max(0, min(lower, upper)))
                weights[m * bins + k] = Float(Double(w) * enorm)
            }
        }
        return weights
    }

    /// Filter banks by size, made once.
    private static let filterCache = FilterCache()
    private final class FilterCache: @unchecked Sendable {
        let lock = NSLock()
        var banks: [Int: [Float]] = [:]
        func get(_ mels: Int) -> [Float] {
            lock.lock(); defer { lock.unlock() }
            if let b = banks[mels] { return b }
            let b = WhisperAudio.melFilters(mels: mels)
            banks[mels] = b
            return b
        }
    }

    /// A log-Mel spectrogram of `mels` bins by `frames` frames (100 a second).
    ///
    /// Stored in blocks of ``blockFrames`` frames, each frame-major, as ``LogMelStream`` makes them: a long
    /// recording's spectrogram grows block by block without ever being copied whole.
    public struct Spectrogram: Sendable {
        public let mels: Int
        public let frames: Int
        /// Blocks of `blockFrames` frames (the last may be shorter), each `[frames, mels]` row-major.
        let blocks: [[Float]]

        /// The value of mel bin `m` at frame `t`.
        public subscript(mel m: Int, frame t: Int) -> Float {
            blocks[t / blockFrames][(t % blockFrames) * mels + m]
        }

        /// Frames `start ..< start + count` (`mel[:, seek:seek+N]`) as `[mels, count]` row-major, zero-padded at the
        /// end when fewer remain, as `pad_or_trim` does along the time axis.
        public func window(start: Int, count: Int = WhisperAudio.windowFrames) -> [Float] {
            var out = [Float](repeating: 0, count: mels * max(0, count))
            let n = start < 0 ? 0 : max(0, min(count, frames - start))
            for t in 0..<n {
                let f = start + t, block = blocks[f / blockFrames], base = (f % blockFrames) * mels
                for m in 0..<mels { out[m * count + t] = block[base + m] }
            }
            return out
        }

        /// The whole spectrogram, `[mels, frames]` row-major.
        public var values: [Float] { window(start: 0, count: frames) }
    }

    /// Frames computed together: one GEMM against the windowed DFT basis per block.
    public static let blockFrames = 256
    /// The longest audio the front end takes at once (2 hours), in samples, padding included.
    public static let maxSamples = 7200 * sampleRate

    /// `log_mel_spectrogram(audio, n_mels, padding)`: `padding` zeros are appended before the transform (the
    /// long-form transcriber pads 30 s, so the last window sees silence rather than a short frame).
    /// - Throws: when the padded audio has 200 samples or fewer (the centred STFT's reflection needs more), or
    ///   would be longer than 2 hours.
    public static func logMel(_ samples: [Float], mels: Int, padding: Int = 0) throws -> Spectrogram {
        var stream = try LogMelStream(mels: mels, padding: padding)
        try stream.append(samples)
        return try stream.finish()
    }

    /// ``logMel(_:mels:padding:)`` of audio that arrives in chunks, in memory that does not grow with the
    /// recording beyond the spectrogram itself (80 floats per 10 ms): each block of frames is transformed as soon
    /// as its samples are in, and the samples behind it are dropped. Only the last frames, which reflect the end
    /// of the signal, wait for ``finish()``. The values are those of ``logMel(_:mels:padding:)`` of the whole
    /// recording, bit for bit (the same blocks, the same arithmetic).
    public struct LogMelStream {
        public let mels: Int
        public let padding: Int
        /// Samples appended so far.
        public private(set) var count = 0
        /// Samples from `tailStart` on: what the blocks not yet transformed read.
        private var tail: [Float] = []
        private var tailStart = 0
        /// Finished blocks (log10 power, before the dynamic-range floor).
        private var blocks: [[Float]] = []
        private var top = -Float.infinity
        private let filters: [Double]

        /// - Throws: for a bin count outside 1…1024 or a negative padding.
        public init(mels: Int, padding: Int = 0) throws {
            guard (1 ... 1024).contains(mels) else { throw AffectError.badInput("a Whisper front end of \(mels) mel bins is not supported.") }
            guard (0 ... WhisperAudio.maxSamples).contains(padding) else {
                throw AffectError.badInput("a padding of \(padding) samples is outside 0…\(WhisperAudio.maxSamples).")
            }
            self.mels = mels
            self.padding = padding
            filters = filterCache.get(mels).map(Double.init)
        }

        /// Appends samples (16 kHz mono) and transforms every block of frames they complete.
        /// - Throws: when the audio (with the padding) would be longer than 2 hours; nothing is appended then.
        public mutating func append(_ samples: [Float]) throws {
            guard samples.count <= WhisperAudio.maxSamples - padding - count else {
                throw AffectError.badInput("the audio is longer than \((WhisperAudio.maxSamples - padding) / sampleRate) s, the most the Whisper front end takes at once (2 hours with its \(padding / sampleRate) s of padding).")
            }
            tail += samples
            count += samples.count
            // Block b is complete once its last frame's last sample, (f0 + 255)·hop + 199, has arrived.
            var ready = 0
            while (blocks.count + ready + 1) * blockFrames * hop - hop + fftSize / 2 <= count { ready += 1 }
            guard ready > 0 else { return }
            transform(blocks: blocks.count ..< blocks.count + ready, length: nil)
            // Keep what the next block reads: from its first frame's first sample (f0·hop − 200) on.
            let keepFrom = max(0, blocks.count * blockFrames * hop - fftSize / 2)
            if keepFrom > tailStart {
                tail.removeFirst(keepFrom - tailStart)
                tailStart = keepFrom
            }
        }

        /// The spectrogram, after appending `padding` zeros.
        /// - Throws: when the padded audio has 200 samples or fewer (the centred STFT's reflection needs more).
        public mutating func finish() throws -> Spectrogram {
            let length = count + padding
            guard length > fftSize / 2 else {
                throw AffectError.badInput("the audio has \(count) samples; the Whisper front end needs more than \(fftSize / 2).")
            }
            let frames = length / hop      // 1 + length/hop frames, the last dropped
            let total = (frames + blockFrames - 1) / blockFrames
            if total > blocks.count { transform(blocks: blocks.count ..< total, length: length) }
            let floor = top - 8
            for b in blocks.indices {
                blocks[b].withUnsafeMutableBufferPointer { v in
                    for i in v.indices { v[i] = (max(v[i], floor) + 4) / 4 }
                }
            }
            tail = []
            return Spectrogram(mels: mels, frames: frames, blocks: blocks)
        }

        /// Transforms `range` of blocks. `length` is the padded signal's length once it is known (at `finish`),
        /// nil while streaming (the blocks then read appended samples only).
        private mutating func transform(blocks range: Range<Int>, length: Int?) {
            let half = fftSize / 2, mels = self.mels, count = self.count, tailStart = self.tailStart
            let frames = length.map { $0 / hop } ?? range.upperBound * blockFrames
            let cols = 2 * bins
            var made = [[Float]](repeating: [], count: range.count)
            var tops = [Float](repeating: -.infinity, count: range.count)
            tail.withUnsafeBufferPointer { sig in basis.withUnsafeBufferPointer { bas in filters.withUnsafeBufferPointer { fil in
                made.withUnsafeMutableBufferPointer { out in tops.withUnsafeMutableBufferPointer { blockTop in
                    // Sample s of the centred signal: the samples, then the padding's zeros, reflected by 200 at
                    // each end (the end is known once `length` is).
                    func x(_ i: Int) -> Float { i < count ? sig[i - tailStart] : 0 }
                    func signal(_ s: Int) -> Float {
                        if s < 0 { return x(-s) }
                        if let length, s >= length { return x(2 * (length - 1) - s) }
                        return x(s)
                    }
                    parallelFor(range.count, minChunk: 1) { i0, i1 in
                        var framed = [Double](repeating: 0, count: blockFrames * fftSize)
                        var spec = [Double](repeating: 0, count: blockFrames * cols)
                        var power = [Double](repeating: 0, count: blockFrames * bins)
                        var mel = [Double](repeating: 0, count: mels * blockFrames)
                        for i in i0..<i1 {
                            let f0 = (range.lowerBound + i) * blockFrames, n = min(blockFrames, frames - f0)
                            // BLAS needs rows at least K apart: the overlapping frames are copied out first.
                            for t in 0..<n {
                                let s0 = (f0 + t) * hop - half
                                if s0 >= 0 && s0 + fftSize <= count {
                                    for j in 0..<fftSize { framed[t * fftSize + j] = Double(sig[s0 - tailStart + j]) }
                                } else {
                                    for j in 0..<fftSize { framed[t * fftSize + j] = Double(signal(s0 + j)) }
                                }
                            }
                            framed.withUnsafeBufferPointer { a in spec.withUnsafeMutableBufferPointer { s in
                                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(cols), Int32(fftSize), 1,
                                            a.baseAddress!, Int32(fftSize), bas.baseAddress!, Int32(cols), 0, s.baseAddress!, Int32(cols))
                            } }
                            for t in 0..<n {
                                for k in 0..<bins {
                                    let re = spec[t * cols + k], im = spec[t * cols + bins + k]
                                    power[t * bins + k] = re * re + im * im
                                }
                            }
                            power.withUnsafeBufferPointer { p in mel.withUnsafeMutableBufferPointer { m in
                                // mel[mels, n] = filters[mels, 201] · powerᵀ
                                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(mels), Int32(n), Int32(bins), 1,
                                            fil.baseAddress!, Int32(bins), p.baseAddress!, Int32(bins), 0, m.baseAddress!, Int32(blockFrames))
                            } }
                            var block = [Float](repeating: 0, count: n * mels)
                            var high = -Float.infinity
                            for t in 0..<n {
                                for m in 0..<mels {
                                    let v = log10f(max(Float(mel[m * blockFrames + t]), 1e-10))
                                    block[t * mels + m] = v
                                    high = max(high, v)
                                }
                            }
                            out[i] = block
                            blockTop[i] = high
                        }
                    }
                } }
            } } }
            blocks += made
            for t in tops { top = max(top, t) }
        }
    }

    /// The periodic Hann window folded into the DFT basis, `[400, 2·201]`: basis[n][k] (cos) and
    /// basis[n][201 + k] (−sin), in double precision.
    private static let basis: [Double] = {
        let cols = 2 * bins
        var basis = [Double](repeating: 0, count: fftSize * cols)
        for n in 0..<fftSize {
            let w = 0.5 - 0.5 * cos(2 * Double.pi * Double(n) / Double(fftSize))
            for k in 0..<bins {
                let angle = 2 * Double.pi * Double((k * n) % fftSize) / Double(fftSize)
                basis[n * cols + k] = w * cos(angle)
                basis[n * cols + bins + k] = -w * sin(angle)
            }
        }
        return basis
    }()
}
