import Foundation
import AffectKernels

/// How long inputs are cut into windows for ``Wav2Vec2``.
///
/// Window `i` covers output frames `[i·h, i·h + w)` with `w = window·50` and `h = (window − overlap)·50`
/// (20 ms frames); it starts on a sample that is a multiple of the 320-sample hop, so its frames lie exactly
/// on the single-pass frame grid. Neighbouring windows share `overlap` seconds; each keeps the frames up to the
/// middle of the shared part and drops the rest, so every kept frame has at least `overlap / 2` seconds of
/// context on each side (except at the ends of the file). Default 20 s windows with 3 s overlap: attention cost
/// is quadratic in the window, so 20 s keeps a window's pass near the cost of the models' usual utterances
/// (linear in duration overall), and 1.5 s of context either side of every kept frame covers the positional
/// convolution's reach (128 frames = 2.56 s, ±1.28 s; the convolutional feature encoder's frames are the
/// single pass's own, since windows start on the frame grid).
///
/// What makes windows equal the single pass: the input normalisation (zero mean, unit variance) and, for the
/// group-norm feature encoder, the first layer's per-channel GroupNorm statistics are measured over the whole
/// file in a first streaming pass (``LongAudio/Statistics``), not per window. With an overlap of at least the
/// positional kernel, everything before the first attention layer (`hidden_states.0`) is then identical to the
/// single pass in every kept frame; what remains different is only the attention's reach: frames attend
/// within their window instead of the whole file. (An overlap of 2 s left frames within 0.28 s of a cut with
/// zero padding in the positional convolution: up to 15 % off in `hidden_states.0` on 4 s windows.)
public struct AudioWindowing: Sendable, Equatable {
    public var window: Double
    public var overlap: Double
    public init(window: Double = 20, overlap: Double = 3) { self.window = window; self.overlap = overlap }

    /// The longest window accepted, in seconds: attention memory grows with the square of the window.
    public static let maxWindow = 120.0

    /// Window and overlap in frames for a model with `framesPerSecond` output frames per second. Throws
    /// unless `0 < window ≤ maxWindow` seconds (at least one frame), `0 ≤ overlap < window`, and both are finite.
    public func frames(framesPerSecond: Double) throws -> (window: Int, overlap: Int) {
        // Checked before any conversion to Int: NaN or 1e300 must not reach `Int(_:)`.
        guard framesPerSecond.isFinite, framesPerSecond > 0, framesPerSecond <= 1e6,
              window.isFinite, overlap.isFinite, window > 0, window <= Self.maxWindow, overlap >= 0, overlap < window else {
            throw AffectError.badUsage("the audio window must be between 0 and \(Int(Self.maxWindow)) s and longer than its overlap, and the overlap must not be negative (got window \(window) s, overlap \(overlap) s).")
        }
        let w = Int((window * framesPerSecond).rounded()), o = Int((overlap * framesPerSecond).rounded())
        guard w >= 1, o < w else {
            throw AffectError.badUsage("the audio window (\(window) s) must hold at least one frame more than its overlap (\(overlap) s) at \(framesPerSecond) frames per second.")
        }
        return (w, o)
    }
}

/// Runs ``Wav2Vec2`` over audio of any length in windows (``AudioWindowing``), from a re-readable stream of
/// sample chunks, in two passes: statistics, then windows. Memory is bounded by one window's activations plus
/// what the caller keeps of the output.
public struct LongAudio: Sendable {
    public let model: Wav2Vec2
    public let windowing: AudioWindowing

    public init(model: Wav2Vec2, windowing: AudioWindowing = AudioWindowing()) {
        self.model = model; self.windowing = windowing
    }

    /// Whole-file statistics from the first pass.
    public struct Statistics: Sendable {
        /// Samples in the file.
        public var count: Int
        public var mean: Double
        public var variance: Double
        /// First GroupNorm's statistics of the normalised input (group-norm feature encoders only).
        public var feature: Wav2Vec2.FeatureStatistics?
    }

    /// One stretch of stitched output.
    public struct Segment {
        /// Index of the first frame in the whole file.
        public var firstFrame: Int
        /// `[frames, hidden]` (the requested hidden state, or the last hidden state).
        public var hidden: Tensor
        /// `[frames, vocabulary]` for CTC models when requested.
        public var logits: Tensor?
    }

    /// Pass 1: count, mean and variance of the samples, and the first GroupNorm's channel statistics.
    /// `next` returns successive chunks, empty at the end.
    public func statistics(_ next: () throws -> [Float]) throws -> Statistics {
        var count = 0, sum = 0.0, sumSq = 0.0
        // Raw (un-normalised, bias-free) first-layer responses z_c = w_c · x, summed per channel.
        let first = model.featureLayers[0]
        let needFeature = first.groupNorm != nil
        let conv = needFeature ? StridedConv1D(weight: first.conv.weight, bias: nil, stride: first.conv.stride) : nil
        let channels = first.conv.outChannels
        var zSum = [Double](repeating: 0, count: channels), zSq = [Double](repeating: 0, count: channels)
        var frames = 0
        var carry: [Float] = []
        while true {
            let chunk = try next()
            if chunk.isEmpty { break }
            count += chunk.count
            var s = 0.0, q = 0.0
            for v in chunk { let d = Double(v); s += d; q += d * d }
            sum += s; sumSq += q
            guard let conv else { continue }
            carry += chunk
            let n = conv.outputLength(carry.count)
            if n == 0 { continue }
            let x = Tensor(shape: [1, carry.count, 1], values: carry)
            let z = conv(x)
            accumulateColumns(z, rows: n, channels: channels, sum: &zSum, sumSq: &zSq)
            frames += n
            carry.removeFirst(n * conv.stride)
        }
        let mean = count > 0 ? sum / Double(count) : 0
        let variance = count > 0 ? max(0, sumSq / Double(count) - mean * mean) : 0
        var feature: Wav2Vec2.FeatureStatistics? = nil
        if needFeature && frames > 0 {
            // The input the model sees is x' = (x − μ)/σ, so y_c = z_c/σ − μ·S_c/σ + b_c with S_c = Σ_j w_cj.
            let (mu, sigma) = model.config.normalizeInput ? (mean, (variance + 1e-7).squareRoot()) : (0, 1)
            var m = [Float](repeating: 0, count: channels), v = [Float](repeating: 0, count: channels)
            let k = first.conv.kernel
            for c in 0..<channels {
                var sc = 0.0
                for j in 0..<k { sc += Double(first.conv.weight.data[c * k + j]) }   // one input channel: [out, 1, k]
                let mz = zSum[c] / Double(frames)
                let vz = max(0, zSq[c] / Double(frames) - mz * mz)
                m[c] = Float(mz / sigma - mu * sc / sigma + Double(first.conv.bias?.data[c] ?? 0))
                v[c] = Float(vz / (sigma * sigma))
            }
            feature = Wav2Vec2.FeatureStatistics(mean: m, variance: v)
        }
        return Statistics(count: count, mean: mean, variance: variance, feature: feature)
    }

    /// Pass 2: runs the windows over the same chunks again and hands each stitched segment to `emit`, in order.
    /// - Parameters:
    ///   - layer: `hidden_states.<layer>` instead of the last hidden state.
    ///   - logits: also compute the CTC head's logits.
    public func run(_ next: () throws -> [Float], statistics st: Statistics, layer: Int? = nil, logits: Bool = false,
                    emit: (Segment) throws -> Void) throws {
        let hop = model.config.hop
        let total = model.frameCount(samples: st.count)
        if total == 0 { return }
        let (w, o) = try windowing.frames(framesPerSecond: Double(model.config.sampleRate) / Double(hop))
        let step = w - o
        let windowSamples = (w - 1) * hop + model.config.receptiveField
        let (mu, sigma) = model.config.normalizeInput ? (Float(st.mean), Float((st.variance + 1e-7).squareRoot())) : (0, 1)
        var buffer: [Float] = []
        var bufferStart = 0          // sample index of buffer[0]
        var exhausted = false
        var start = 0                // first frame of the current window
        while start < total {
            let s0 = start * hop
            while !exhausted && bufferStart + buffer.count < s0 + windowSamples {
                let chunk = try next()
                if chunk.isEmpty { exhausted = true } else { buffer += chunk }
            }
            let available = min(windowSamples, bufferStart + buffer.count - s0)
            let isLast = start + w >= total
            var x = [Float](repeating: 0, count: max(available, 0))
            for i in 0..<x.count { x[i] = (buffer[s0 - bufferStart + i] - mu) / sigma }
            let frames = model.frameCount(samples: x.count)
            guard frames > 0 else { break }
            let out = model.forward(Tensor(shape: [1, x.count], values: x), hiddenStates: layer.map { .only([$0]) } ?? .none,
                                    logits: logits, featureStatistics: st.feature)
            let keepFrom = start == 0 ? 0 : o / 2
            let keepTo = isLast ? frames : min(frames, step + o / 2)
            let hidden = layer.map { out.hiddenStates[$0]! } ?? out.lastHiddenState
            let h = hidden.shape[2]
            let seg = Segment(firstFrame: start + keepFrom,
                              hidden: rows(hidden, keepFrom, keepTo, width: h),
                              logits: out.logits.map { rows($0, keepFrom, keepTo, width: $0.shape[2]) })
            try emit(seg)
            if isLast { break }
            start += step
            // Drop samples no later window needs.
            let drop = start * hop - bufferStart
            if drop > 0 { buffer.removeFirst(min(drop, buffer.count)); bufferStart += drop }
        }
    }

    /// Rows `[a, b)` of the first item of `[1, frames, width]` as a contiguous `[b − a, width]`.
    private func rows(_ t: Tensor, _ a: Int, _ b: Int, width: Int) -> Tensor {
        let out = Tensor(uninitialized: [max(0, b - a), width])
        if b > a { out.data.update(from: t.data + a * width, count: (b - a) * width) }
        return out
    }

    private func accumulateColumns(_ z: Tensor, rows: Int, channels: Int, sum: inout [Double], sumSq: inout [Double]) {
        let p = z.data
        sum.withUnsafeMutableBufferPointer { s in sumSq.withUnsafeMutableBufferPointer { q in
            for r in 0..<rows {
                let row = p + r * channels
                for c in 0..<channels { let d = Double(row[c]); s[c] += d; q[c] += d * d }
            }
        } }
    }
}
