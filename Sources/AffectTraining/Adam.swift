import Foundation
import AffectKernels

/// Adam as `torch.optim.Adam` computes it (its single-tensor CPU path), with its defaults: β₁ 0.9, β₂ 0.999,
/// ε 1e-8, and weight decay as an L2 term added to the gradient (`grad + weight_decay·param`, not AdamW).
///
/// The float operations follow PyTorch's order so that the same gradients give the same weights:
/// `m ← m + (1−β₁)(g − m)`, `v ← v·β₂ + (1−β₂)·g·g`, `p ← p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)`, the
/// bias corrections in double precision as Python computes them.
public final class Adam {
    public var learningRate: Double
    public let beta1: Double, beta2: Double, epsilon: Double
    public var weightDecay: Double
    public private(set) var step = 0
    let count: Int
    let m: UnsafeMutablePointer<Float>
    let v: UnsafeMutablePointer<Float>

    public init(parameterCount: Int, learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0) {
        count = parameterCount
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.weightDecay = weightDecay
        m = .allocate(capacity: max(count, 1)); m.initialize(repeating: 0, count: max(count, 1))
        v = .allocate(capacity: max(count, 1)); v.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { m.deallocate(); v.deallocate() }

    /// One update of `parameters` from `gradients` (both `parameterCount` long). Element-wise, so the split
    /// across threads cannot change a result.
    public func update(_ parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>) {
        step += 1
        let wd = Float(weightDecay), b1 = Float(1 - beta1), b2 = Float(beta2), c2 = Float(1 - beta2)
        let stepSize = Float(-(learningRate / (1 - pow(beta1, Double(step)))))
        let correction2 = Float((1 - pow(beta2, Double(step))).squareRoot())
        let eps = Float(epsilon)
        let (m, v) = (self.m, self.v)
        // Eight lanes at a time: the same IEEE operations as the scalar tail (square root and division are
        // correctly rounded), so the vector width changes no result. The four buffers may alias as far as
        // the compiler knows, which kept the scalar loop from vectorising (9 % of a fit's time).
        typealias V = SIMD8<Float>
        parallelFor(count, minChunk: 32_768) { i0, i1 in
            var i = i0
            while i + 8 <= i1 {
                let p = UnsafeRawPointer(parameters + i).loadUnaligned(as: V.self)
                var g = UnsafeRawPointer(gradients + i).loadUnaligned(as: V.self)
                if wd != 0 { g = g + wd * p }
                let mi = UnsafeRawPointer(m + i).loadUnaligned(as: V.self)
                let vi = UnsafeRawPointer(v + i).loadUnaligned(as: V.self)
                let mn = mi + b1 * (g - mi)
                let vn = vi * b2 + c2 * g * g
                let denom = vn.squareRoot() / correction2 + eps
                UnsafeMutableRawPointer(m + i).storeBytes(of: mn, as: V.self)
                UnsafeMutableRawPointer(v + i).storeBytes(of: vn, as: V.self)
                UnsafeMutableRawPointer(parameters + i).storeBytes(of: p + stepSize * mn / denom, as: V.self)
                i += 8
            }
            while i < i1 {
                let g = wd != 0 ? gradients[i] + wd * parameters[i] : gradients[i]
                m[i] = m[i] + b1 * (g - m[i])
                v[i] = v[i] * b2 + c2 * g * g
                let denom = v[i].squareRoot() / correction2 + eps
                parameters[i] = parameters[i] + stepSize * m[i] / denom
                i += 1
            }
        }
    }
}
