import Foundation

/// Exact (erf) GELU on 16 lanes: `0.5·x·(1 + erf(x/√2))`.
///
/// erf by Abramowitz & Stegun 7.1.26: `erf(a) = 1 − (a₁t + a₂t² + a₃t³ + a₄t⁴ + a₅t⁵)·e^(−a²)`, `t = 1/(1 + p·a)`
/// for `a ≥ 0` (odd symmetry otherwise), absolute error below 1.5·10⁻⁷ — about one float ulp of 1 + erf, so the
/// GELU differs from libm's `erff` form by ~|x|·10⁻⁷ while running vectorised (libm's scalar `erff` was 6 % of
/// a BERT forward pass).
@inlinable @inline(__always)
public func vgelu(_ x: Vec) -> Vec {
    let z: Vec = x * Vec(repeating: 0.70710678118654752)
    let a: Vec = z.replacing(with: -z, where: z .< 0)
    let one = Vec(repeating: 1)
    let t: Vec = one / (one + Vec(repeating: 0.3275911) * a)
    var poly = Vec(repeating: 1.061405429)
    poly = poly * t + Vec(repeating: -1.453152027)
    poly = poly * t + Vec(repeating: 1.421413741)
    poly = poly * t + Vec(repeating: -0.284496736)
    poly = poly * t + Vec(repeating: 0.254829592)
    poly = poly * t
    let erfAbs: Vec = one - poly * vexp(-(a * a))
    let erf: Vec = erfAbs.replacing(with: -erfAbs, where: z .< 0)
    return Vec(repeating: 0.5) * x * (one + erf)
}

/// `row += bias; row = GELU(row)` for `rows` rows of `cols` values, in place, across threads: the epilogue of
/// a transformer's intermediate (FFN) projection in one pass.
public func biasGeluInPlace(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, bias: UnsafePointer<Float>?) {
    parallelFor(rows, minChunk: max(1, 8192 / max(cols, 1))) { r0, r1 in
        for r in r0..<r1 {
            let row = p + r * cols
            var j = 0
            if let b = bias {
                while j + 16 <= cols { store(vgelu(load(row + j) + load(b + j)), row + j); j += 16 }
                while j < cols { let x = row[j] + b[j]; row[j] = 0.5 * x * (1 + erff(x * 0.70710678118654752)); j += 1 }
            } else {
                while j + 16 <= cols { store(vgelu(load(row + j)), row + j); j += 16 }
                while j < cols { let x = row[j]; row[j] = 0.5 * x * (1 + erff(x * 0.70710678118654752)); j += 1 }
            }
        }
    }
}
