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

    /// A log-Mel spectrogram, `[mels, frames]` row-major.
    public struct Spectrogram: Sendable {
        public var mels: Int
        public var frames: Int
        public var values: [Float]

        /// Frames `start ..< start + count` (`mel[:, seek:seek+N]`), zero-padded at the end when fewer remain,
        /// as `pad_or_trim` does along the time axis.
        public func window(start: Int, count: Int = WhisperAudio.windowFrames) -> [Float] {
            var out = [Float](repeating: 0, count: mels * count)
            let n = max(0, min(count, frames - start))
            if n > 0 {
                for m in 0..<mels {
                    for t in 0..<n { out[m * count + t] = values[m * frames + start + t] }
                }
            }
            return out
        }
    }

    /// `log_mel_spectrogram(audio, n_mels, padding)`: `padding` zeros are appended before the transform (the
    /// long-form transcriber pads 30 s, so the last window sees silence rather than a short frame).
    /// - Throws: when the padded audio has 200 samples or fewer (the centred STFT's reflection needs more), or
    ///   would be longer than 2 hours.
    public static func logMel(_ samples: [Float], mels: Int, padding: Int = 0) throws -> Spectrogram {
        let length = samples.count + padding
        guard padding >= 0, length > fftSize / 2 else {
            throw AffectError.badInput("the audio has \(samples.count) samples; the Whisper front end needs more than \(fftSize / 2).")
        }
        guard length <= 7200 * sampleRate else {
            throw AffectError.badInput("the audio is \(length / sampleRate) s long; the Whisper front end takes at most 2 hours at once.")
        }
        guard (1 ... 1024).contains(mels) else { throw AffectError.badInput("a Whisper front end of \(mels) mel bins is not supported.") }
        let half = fftSize / 2
        // Centred frames: the signal (samples, then `padding` zeros) reflected by 200 at each end. Sample `s` of
        // that signal is read through `signal(s)`, so no padded copy of a long recording is made.
        let count = samples.count
        func x(_ i: Int) -> Float { i < count ? samples[i] : 0 }
        func signal(_ s: Int) -> Float { s < 0 ? x(-s) : s < length ? x(s) : x(2 * (length - 1) - s) }
        let frames = length / hop      // 1 + length/hop frames, the last dropped
        // Periodic Hann window folded into the DFT basis: basis[n][k] (cos) and basis[n][bins + k] (−sin).
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
        let filters = filterCache.get(mels).map(Double.init)
        var out = [Float](repeating: 0, count: mels * frames)
        // Blocks of frames: their spectra (one GEMM against the windowed DFT basis), the power, then the
        // filter bank, in double precision.
        let block = 256
        let blocks = (frames + block - 1) / block
        samples.withUnsafeBufferPointer { sig in basis.withUnsafeBufferPointer { bas in filters.withUnsafeBufferPointer { fil in
            out.withUnsafeMutableBufferPointer { o in
                let outBase = o.baseAddress!
                parallelFor(blocks, minChunk: 1) { b0, b1 in
                    var framed = [Double](repeating: 0, count: block * fftSize)
                    var spec = [Double](repeating: 0, count: block * cols)
                    var power = [Double](repeating: 0, count: block * bins)
                    var mel = [Double](repeating: 0, count: mels * block)
                    for b in b0..<b1 {
                        let f0 = b * block, n = min(block, frames - f0)
                        // BLAS needs rows at least K apart: the overlapping frames are copied out first.
                        for t in 0..<n {
                            let s0 = (f0 + t) * hop - half
                            if s0 >= 0 && s0 + fftSize <= count {
                                for j in 0..<fftSize { framed[t * fftSize + j] = Double(sig[s0 + j]) }
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
                                        fil.baseAddress!, Int32(bins), p.baseAddress!, Int32(bins), 0, m.baseAddress!, Int32(block))
                        } }
                        for m in 0..<mels {
                            for t in 0..<n { outBase[m * frames + f0 + t] = log10f(max(Float(mel[m * block + t]), 1e-10)) }
                        }
                    }
                }
            }
        } } }
        var top = -Float.infinity
        for v in out { top = max(top, v) }
        let floor = top - 8
        for i in out.indices { out[i] = (max(out[i], floor) + 4) / 4 }
        return Spectrogram(mels: mels, frames: frames, values: out)
    }
}
