import Foundation
import AffectKernels

/// The training losses of the seed's heads, each on the network's logits `z` `[rows, n]`, with its gradient
/// ∂loss/∂z. Sums run in double precision.
public enum Loss: Equatable, Sendable {
    /// `nn.CrossEntropyLoss(weight=w)` (mean reduction: Σ w_y·(−log softmax(z)_y) / Σ w_y); targets hold
    /// one class index per row. `nil` weights: every class 1.
    case crossEntropy(classWeights: [Float]?)
    /// `nn.BCEWithLogitsLoss()`, mean over rows × outputs; targets 0 or 1 (AU, AH, the gate).
    case binaryCrossEntropy
    /// 1 − Lin's concordance correlation of `tanh(z)` with the targets, column by column (population
    /// moments over the batch), averaged over columns (valence and arousal).
    case concordance
    /// `nn.MSELoss()`, mean over rows × outputs (EMI intensities).
    case meanSquaredError

    /// The loss's name in logs and head metadata.
    public var name: String {
        switch self {
        case .crossEntropy(let w): return w == nil ? "cross-entropy" : "weighted cross-entropy"
        case .binaryCrossEntropy: return "binary cross-entropy"
        case .concordance: return "1 - CCC (tanh outputs)"
        case .meanSquaredError: return "mean squared error"
        }
    }

    /// Values per row of the targets: 1 (a class index) for cross-entropy, else the output width.
    public func targetWidth(outputs: Int) -> Int {
        if case .crossEntropy = self { return 1 }
        return outputs
    }

    /// The loss of logits `z` against `targets` `[rows, targetWidth]`; writes ∂loss/∂z into `gradient`.
    public func evaluate(logits z: UnsafePointer<Float>, targets t: UnsafePointer<Float>, rows: Int, outputs n: Int,
                         gradient g: UnsafeMutablePointer<Float>) -> Double {
        guard rows > 0 else { return 0 }
        switch self {
        case .crossEntropy(let weights):
            var total = 0.0, weightSum = 0.0
            var p = [Double](repeating: 0, count: n)
            for r in 0..<rows {
                let row = z + r * n
                let y = Int(t[r])   // class indices were validated when the labels were read
                let w = Double(weights?[y] ?? 1)
                var m = -Double.infinity
                for j in 0..<n { m = max(m, Double(row[j])) }
                var s = 0.0
                for j in 0..<n { p[j] = exp(Double(row[j]) - m); s += p[j] }
                total += w * (log(s) + m - Double(row[y]))
                weightSum += w
                for j in 0..<n { g[r * n + j] = Float(w * (p[j] / s - (j == y ? 1 : 0))) }
            }
            // A batch whose rows all have weight 0 contributes nothing (PyTorch would give NaN).
            guard weightSum > 0 else {
                g.initialize(repeating: 0, count: rows * n)
                return 0
            }
            let scale = 1 / weightSum
            for i in 0..<(rows * n) { g[i] = Float(Double(g[i]) * scale) }
            return total * scale
        case .binaryCrossEntropy:
            var total = 0.0
            let scale = 1 / Double(rows * n)
            for i in 0..<(rows * n) {
                let x = Double(z[i]), y = Double(t[i])
                total += max(x, 0) - x * y + log1p(exp(-abs(x)))
                g[i] = Float((1 / (1 + exp(-x)) - y) * scale)
            }
            return total * scale
        case .meanSquaredError:
            var total = 0.0
            let scale = 1 / Double(rows * n)
            for i in 0..<(rows * n) {
                let d = Double(z[i]) - Double(t[i])
                total += d * d
                g[i] = Float(2 * d * scale)
            }
            return total * scale
        case .concordance:
            let count = Double(rows)
            var total = 0.0
            var o = [Double](repeating: 0, count: rows)
            for j in 0..<n {
                var mx = 0.0, my = 0.0
                for r in 0..<rows { o[r] = tanh(Double(z[r * n + j])); mx += o[r]; my += Double(t[r * n + j]) }
                mx /= count; my /= count
                var vx = 0.0, vy = 0.0, cxy = 0.0
                for r in 0..<rows {
                    let dx = o[r] - mx, dy = Double(t[r * n + j]) - my
                    vx += dx * dx; vy += dy * dy; cxy += dx * dy
                }
                vx /= count; vy /= count; cxy /= count
                let num = 2 * cxy, den = vx + vy + (mx - my) * (mx - my)
                // A constant prediction of constant targets (den = 0): CCC is undefined; no gradient flows.
                guard den > 0 else {
                    for r in 0..<rows { g[r * n + j] = 0 }
                    total += 1
                    continue
                }
                total += 1 - num / den
                // ∂ccc/∂o_r = (2(y_r − ȳ)·den − num·2(o_r − x̄ + x̄ − ȳ)) / (N·den²); loss = mean over columns of 1 − ccc.
                for r in 0..<rows {
                    let dy = Double(t[r * n + j]) - my
                    let dccc = (2 * dy * den - num * 2 * (o[r] - my)) / (count * den * den)
                    g[r * n + j] = Float(-dccc / Double(n) * (1 - o[r] * o[r]))
                }
            }
            return total / Double(n)
        }
    }
}

/// How a head's outputs are made from its logits (what the head file's `output` records).
public enum OutputActivation: String, Sendable {
    case softmax, sigmoid, tanh, linear

    /// Applies the activation in place to `rows` rows of `n` logits.
    public func apply(_ z: UnsafeMutablePointer<Float>, rows: Int, outputs n: Int) {
        switch self {
        case .softmax:
            for r in 0..<rows {
                let row = z + r * n
                var m = -Float.infinity
                for j in 0..<n { m = max(m, row[j]) }
                var s: Float = 0
                for j in 0..<n { row[j] = expf(row[j] - m); s += row[j] }
                for j in 0..<n { row[j] /= s }
            }
        case .sigmoid: for i in 0..<(rows * n) { z[i] = 1 / (1 + expf(-z[i])) }
        case .tanh: for i in 0..<(rows * n) { z[i] = tanhf(z[i]) }
        case .linear: break
        }
    }
}
