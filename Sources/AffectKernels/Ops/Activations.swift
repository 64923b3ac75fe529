import Foundation
import CAffectInt8

/// Point-wise non-linearities. Convolutions and linear layers apply them in their epilogue, fused with
/// the bias, so activations are written once.
public enum Activation: Sendable, Equatable {
    case none, relu, relu6, silu, gelu, sigmoid, tanh, hardSwish
    /// Per-channel PReLU (slopes along the last axis).
    case prelu([Float])
}

public typealias Vec = SIMD16<Float>

@inlinable @inline(__always)
func load(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inlinable @inline(__always)
func load(_ p: UnsafeMutablePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }
@inlinable @inline(__always)
func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

/// Lane-wise max/min. The standard library's `pointwiseMax`/`pointwiseMin` (and `clamped`) compile to a
/// scalar loop over the 16 lanes; a compare-and-blend is one vector instruction pair.
@_transparent
public func vmax(_ a: Vec, _ b: Vec) -> Vec { a.replacing(with: b, where: a .< b) }
@_transparent
public func vmin(_ a: Vec, _ b: Vec) -> Vec { a.replacing(with: b, where: b .< a) }

/// Sum and maximum of the 16 lanes by halving (4 vector steps). The standard library's `sum()` and `max()`
/// on `SIMD16<Float>` are out-of-line generic calls that add the lanes one by one.
@_transparent
public func hsum(_ v: Vec) -> Float {
    let a = v.lowHalf + v.highHalf, b = a.lowHalf + a.highHalf, c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}
@_transparent
public func hmax(_ v: Vec) -> Float {
    let a = v.lowHalf.replacing(with: v.highHalf, where: v.lowHalf .< v.highHalf)
    let b = a.lowHalf.replacing(with: a.highHalf, where: a.lowHalf .< a.highHalf)
    return max(max(b[0], b[1]), max(b[2], b[3]))
}

/// exp(x) for 16 lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial (Taylor terms,
/// error below 2 ulp on the reduced range), 2^n by building the exponent bits.
///
/// Rounding and the float→int conversion use the 1.5·2²³ "magic number" (adding it leaves round(n) in the
/// low mantissa bits) because the generic `SIMD16<Int32>(_:rounding:)` initialiser is not vectorised.
@_transparent
public func vexp(_ x: Vec) -> Vec {
    let xc = vmin(vmax(x, Vec(repeating: -87.3)), Vec(repeating: 88.3))
    let magic = Vec(repeating: 12582912)
    // Written as explicit FMAs: Swift does not contract `a * b + c`, and the separate multiply and add
    // doubled the instruction count of every exp (softmax, SiLU, sigmoid, GELU).
    let shifted: Vec = magic.addingProduct(xc, Vec(repeating: 1.442695040888963))
    let n: Vec = shifted - magic
    // ln2 split in two so n·ln2 is exact in its high part.
    // The constants negated rather than n: Swift's SIMD `-n` is `0 − n`, one more instruction per FMA.
    var r: Vec = xc.addingProduct(n, Vec(repeating: -0.693145751953125))
    r = r.addingProduct(n, Vec(repeating: -1.428606765330187e-06))
    var p = Vec(repeating: 1.0 / 720)
    p = Vec(repeating: 1.0 / 120).addingProduct(p, r)
    p = Vec(repeating: 1.0 / 24).addingProduct(p, r)
    p = Vec(repeating: 1.0 / 6).addingProduct(p, r)
    p = Vec(repeating: 0.5).addingProduct(p, r)
    p = Vec(repeating: 1).addingProduct(p, r)
    p = Vec(repeating: 1).addingProduct(p, r)
    let ni: SIMD16<Int32> = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- SIMD16<Int32>(repeating: 0x4B40_0000)
    let bits: SIMD16<Int32> = (ni &+ SIMD16<Int32>(repeating: 127)) &<< SIMD16<Int32>(repeating: 23)
    return p * unsafeBitCast(bits, to: Vec.self)
}

/// 1/x for 16 lanes: the CPU's reciprocal estimate (`affect_rcp16`) and one Newton step, r + r·(1 − x·r):
/// within about 2 ulp of the division, for a fraction of its cost (two `vdivps` per 16 lanes were about a
/// third of SiLU's cycles with AVX2). Lanes whose reciprocal is below the normal range (|x| > 2¹²⁶) give 0.
@_transparent
public func vrecip(_ x: Vec) -> Vec {
    let r: Vec = affect_rcp16(x)
    // −0 − x is LLVM's exact negation (folded into the FMA); Swift's SIMD `-x` is `0 − x`, a subtraction.
    return r.addingProduct(r, Vec(repeating: 1).addingProduct(Vec(repeating: -0.0) - x, r))
}

/// 1 + e⁻ᵛ for 16 lanes, the denominator of the logistic: 16 vector instructions per 8 lanes where
/// ``vexp(_:)`` of −v plus the add took 22. SiLU and sigmoid run over every activation of EfficientNet
/// (about a fifth of its time at one thread), so the savings are worth a second exp:
/// - the negation is folded into the constants (the polynomial is in s = −r, its odd terms negated);
/// - one FMA reduces the argument: n·ln2 with n ≤ 127 and ln2 rounded to float is off by n·1.9·10⁻⁹,
///   at most 2.4·10⁻⁷ relative, where ``vexp(_:)`` needs its two-part ln2 for softmax's wider use;
/// - e^r is a degree-5 minimax polynomial on [−ln2/2, ln2/2] (2·10⁻⁷ relative in float arithmetic);
/// - the exponent bias 127 rides in the rounding constant (1.5·2²³ + 127), so 2ⁿ is one shift of its bits;
/// - the final 2ⁿ·e^r + 1 is one FMA.
@_transparent
public func vOnePlusExpNegative(_ v: Vec) -> Vec {
    // e⁻ᵛ stays a normal float for v in [−88.3, 87.3]: n + 127 in [1, 254].
    let vc = vmin(vmax(v, Vec(repeating: -88.3)), Vec(repeating: 87.3))
    let magic = Vec(repeating: 12583039)
    let shifted: Vec = magic.addingProduct(vc, Vec(repeating: -1.442695040888963))
    let n: Vec = shifted - magic
    let s: Vec = vc.addingProduct(n, Vec(repeating: 0.6931471805599453))
    var p = Vec(repeating: -0.008297654800117016)
    p = Vec(repeating: 0.04191538318991661).addingProduct(p, s)
    p = Vec(repeating: -0.16667574644088745).addingProduct(p, s)
    p = Vec(repeating: 0.49998894333839417).addingProduct(p, s)
    p = Vec(repeating: -0.9999997019767761).addingProduct(p, s)
    p = Vec(repeating: 1.0000001192092896).addingProduct(p, s)
    let scale = unsafeBitCast(unsafeBitCast(shifted, to: SIMD16<Int32>.self) &<< SIMD16<Int32>(repeating: 23),
                              to: Vec.self)
    return Vec(repeating: 1).addingProduct(p, scale)
}

/// SiLU, x·σ(x) = x / (1 + e⁻ˣ), for 16 lanes (the division as ``vrecip(_:)``).
@_transparent
public func vsilu(_ v: Vec) -> Vec { v * vrecip(vOnePlusExpNegative(v)) }

/// The logistic sigmoid 1 / (1 + e⁻ˣ) for 16 lanes (the division as ``vrecip(_:)``).
@_transparent
public func vsigmoid(_ v: Vec) -> Vec { vrecip(vOnePlusExpNegative(v)) }

@inlinable @inline(__always)
public func vtanh(_ x: Vec) -> Vec {
    // tanh = sign(x)·(1 − e^{−2|x|})/(1 + e^{−2|x|}); small |x| via the odd series for relative accuracy.
    let a: Vec = x.replacing(with: -x, where: x .< 0)
    let e: Vec = vexp(Vec(repeating: -2) * a)
    let one = Vec(repeating: 1)
    var t: Vec = (one - e) / (one + e)
    let x2: Vec = x * x
    var poly: Vec = Vec(repeating: 2.0 / 15) - x2 * Vec(repeating: 17.0 / 315)
    poly = Vec(repeating: 1.0 / 3) - x2 * poly
    let series: Vec = a * (one - x2 * poly)
    t.replace(with: series, where: a .< Vec(repeating: 0.0625))
    return t.replacing(with: -t, where: x .< 0)
}

/// Applies `act` in place to `count` values; channel `c` of a PReLU is `(i mod channels)`.
@inlinable
public func applyActivation(_ act: Activation, _ p: UnsafeMutablePointer<Float>, count: Int, channels: Int = 1) {
    if case .none = act { return }
    let simdEnd = count & ~15
    switch act {
    case .none: return
    case .relu:
        var i = 0
        while i < simdEnd { store(vmax(load(p + i), Vec()), p + i); i += 16 }
        while i < count { p[i] = max(p[i], 0); i += 1 }
    case .relu6:
        var i = 0
        while i < simdEnd { store(vmin(vmax(load(p + i), Vec()), Vec(repeating: 6)), p + i); i += 16 }
        while i < count { p[i] = min(max(p[i], 0), 6); i += 1 }
    case .silu:
        var i = 0
        while i < simdEnd { store(vsilu(load(p + i)), p + i); i += 16 }
        while i < count { p[i] = p[i] / (1 + expf(-p[i])); i += 1 }
    case .sigmoid:
        var i = 0
        while i < simdEnd { store(vsigmoid(load(p + i)), p + i); i += 16 }
        while i < count { p[i] = 1 / (1 + expf(-p[i])); i += 1 }
    case .tanh:
        var i = 0
        while i < simdEnd { store(vtanh(load(p + i)), p + i); i += 16 }
        while i < count { p[i] = tanhf(p[i]); i += 1 }
    case .gelu:
        // Exact GELU, x·Φ(x) with erf, as torch's default and HF's "gelu" (see vgelu for the accuracy).
        geluInPlace(p, count: count)
    case .hardSwish:
        var i = 0
        while i < simdEnd {
            let v = load(p + i)
            store(v * vmin(vmax(v + 3, Vec()), Vec(repeating: 6)) * (1.0 / 6), p + i); i += 16
        }
        while i < count { let x = p[i]; p[i] = x * min(max(x + 3, 0), 6) / 6; i += 1 }
    case .prelu(let slopes):
        slopes.withUnsafeBufferPointer { s in
            if slopes.count == 1 {
                for i in 0..<count where p[i] < 0 { p[i] *= s[0] }
                return
            }
            precondition(channels == slopes.count, "PReLU has \(slopes.count) slopes for \(channels) channels")
            var i = 0
            while i < count {
                let row = p + i
                var c = 0
                while c + 16 <= channels {
                    let v = load(row + c)
                    store(v.replacing(with: v * load(s.baseAddress! + c), where: v .< 0), row + c); c += 16
                }
                while c < channels { if row[c] < 0 { row[c] *= s[c] }; c += 1 }
                i += channels
            }
        }
    }
}

extension Activation {
    /// True for activations without a form in registers here (tanh, GELU): kernels leave them to a pass over
    /// their finished rows (``VectorActivation/needsRowPass``).
    var needsRowPass: Bool { self == .tanh || self == .gelu }
}

/// An activation applied to one vector in registers (a kernel's epilogue), with the same formulas as
/// ``applyActivation(_:_:count:channels:)``. Tanh and GELU have no vector form here: ``needsRowPass`` tells the
/// kernel to leave values untouched and run `applyActivation` over its output instead.
public struct VectorActivation: @unchecked Sendable {
    @usableFromInline let kind: Int
    /// Per-channel PReLU slopes (nil otherwise); a single shared slope is broadcast.
    public let slopes: UnsafePointer<Float>?
    @usableFromInline let slope: Float
    private let owner: SlopeBuffer?

    /// Owns a PReLU's slopes at a fixed address for the kernel's lifetime.
    private final class SlopeBuffer {
        let pointer: UnsafeMutablePointer<Float>
        init(_ s: [Float]) {
            pointer = .allocate(capacity: s.count)
            pointer.initialize(from: s, count: s.count)
        }
        deinit { pointer.deallocate() }
    }

    public init(_ act: Activation) {
        var st: [Float] = []
        var one: Float = 0
        switch act {
        case .none: kind = 0
        case .relu: kind = 1
        case .relu6: kind = 2
        case .silu: kind = 3
        case .sigmoid: kind = 4
        case .hardSwish: kind = 5
        case .prelu(let s): kind = s.count == 1 ? 6 : 7; st = s; one = s.first ?? 0
        case .tanh, .gelu: kind = -1
        }
        slope = one
        owner = kind == 7 ? SlopeBuffer(st) : nil
        slopes = owner.map { UnsafePointer($0.pointer) }
    }

    /// True for activations that must run as a separate pass (tanh, GELU).
    public var needsRowPass: Bool { kind < 0 }

    /// `act(v)`; `channelSlopes` is the PReLU slope vector of this vector's 16 channels (ignored otherwise).
    @_transparent
    public func callAsFunction(_ v: Vec, _ channelSlopes: Vec) -> Vec {
        switch kind {
        case 1: return vmax(v, Vec())
        case 2: return vmin(vmax(v, Vec()), Vec(repeating: 6))
        case 3: return vsilu(v)
        case 4: return vsigmoid(v)
        case 5: return v * vmin(vmax(v + 3, Vec()), Vec(repeating: 6)) * (1.0 / 6)
        case 6: return v.replacing(with: v * slope, where: v .< 0)
        case 7: return v.replacing(with: v * channelSlopes, where: v .< 0)
        default: return v
        }
    }

    /// `act(x)` for one value of channel `channel`.
    @inlinable @inline(__always)
    public func scalar(_ x: Float, channel: Int) -> Float {
        switch kind {
        case 1: return max(x, 0)
        case 2: return min(max(x, 0), 6)
        case 3: return x / (1 + expf(-x))
        case 4: return 1 / (1 + expf(-x))
        case 5: return x * min(max(x + 3, 0), 6) / 6
        case 6: return x < 0 ? x * slope : x
        case 7: return x < 0 ? x * slopes![channel] : x
        default: return x
        }
    }
}

/// A new tensor with `act` applied (the input is left untouched).
public func activation(_ x: Tensor, _ act: Activation) -> Tensor {
    let out = x.copy()
    let ch = x.shape.last ?? 1
    let rows = x.count / max(ch, 1)
    parallelFor(rows, minChunk: max(1, 4096 / max(ch, 1))) { r0, r1 in
        applyActivation(act, out.data + r0 * ch, count: (r1 - r0) * ch, channels: ch)
    }
    return out
}

/// Applies `act` in place to a tensor the caller has just allocated.
public func activateInPlace(_ x: Tensor, _ act: Activation) {
    if act == .none { return }
    let ch = x.shape.last ?? 1
    let rows = x.count / max(ch, 1)
    parallelFor(rows, minChunk: max(1, 4096 / max(ch, 1))) { r0, r1 in
        applyActivation(act, x.data + r0 * ch, count: (r1 - r0) * ch, channels: ch)
    }
}
