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
        parallelFor(count, minChunk: 32_768) { i0, i1 in
            for i in i0..<i1 {
                let g = wd != 0 ? gradients[i] + wd * parameters[i] : gradients[i]
                m[i] = m[i] + b1 * (g - m[i])
                v[i] = v[i] * b2 + c2 * g * g
                let denom = v[i].squareRoot() / correction2 + eps
                parameters[i] = parameters[i] + stepSize * m[i] / denom
            }
        }
    }
}
