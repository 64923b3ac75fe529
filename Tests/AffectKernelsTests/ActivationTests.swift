import Foundation
import Testing
import AffectKernels

/// The vector activations whose division runs as a reciprocal estimate plus a Newton step (`vrecip`,
/// `vsilu`, `vsigmoid`) against the same formulas in Double, over a dense sweep of inputs.
@Suite struct ActivationTests {
    /// Every `step`-th value of [lo, hi], 16 at a time, through `f`, against `ref`: relative error ≤ `tolerance`
    /// (absolute 1e-30 for results that underflow).
    func sweep(_ lo: Float, _ hi: Float, count: Int, tolerance: Double, _ f: (Vec) -> Vec, _ ref: (Double) -> Double,
               _ what: String) {
        var worst = 0.0, at: Float = 0
        var i = 0
        while i < count {
            var v = Vec()
            for l in 0..<16 { v[l] = lo + (hi - lo) * Float(min(i + l, count - 1)) / Float(count - 1) }
            let y = f(v)
            for l in 0..<16 {
                let r = ref(Double(v[l]))
                let err = abs(Double(y[l]) - r) / (abs(r) + 1e-30)
                if abs(Double(y[l]) - r) > 1e-30 && err > worst { worst = err; at = v[l] }
            }
            i += 16
        }
        #expect(worst <= tolerance, "\(what): relative error \(worst) at \(at)")
    }

    @Test func reciprocalIsAsCloseAsADivision() {
        sweep(1, 1e6, count: 200_003, tolerance: 4e-7, vrecip, { 1 / $0 }, "vrecip [1, 1e6]")
        sweep(-1e-3, -1e3, count: 50_000, tolerance: 4e-7, vrecip, { 1 / $0 }, "vrecip negative")
        sweep(1e-30, 1e30, count: 50_000, tolerance: 4e-7, vrecip, { 1 / $0 }, "vrecip wide")
    }

    @Test func siluAndSigmoidMatchTheirDefinitions() {
        let silu: (Double) -> Double = { $0 / (1 + Foundation.exp(-$0)) }
        let sigmoid: (Double) -> Double = { 1 / (1 + Foundation.exp(-$0)) }
        sweep(-20, 20, count: 400_000, tolerance: 1e-6, vsilu, silu, "vsilu [-20, 20]")
        sweep(-87, 100, count: 100_000, tolerance: 1e-6, vsilu, silu, "vsilu [-87, 100]")
        sweep(-20, 20, count: 400_000, tolerance: 1e-6, vsigmoid, sigmoid, "vsigmoid [-20, 20]")
        // Far below the exp range the result is 0 or a denormal: only its sign and smallness matter.
        let far = vsilu(Vec(repeating: -200)), tiny = vsigmoid(Vec(repeating: -200))
        #expect(far[0] <= 0 && far[0] > -1e-30 && tiny[0] >= 0 && tiny[0] < 1e-30)
        #expect(abs(vsilu(Vec(repeating: 200))[0] - 200) <= 2e-4 && abs(vsigmoid(Vec(repeating: 200))[0] - 1) <= 1e-6)
    }
}
