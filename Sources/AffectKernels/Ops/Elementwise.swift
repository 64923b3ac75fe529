import Foundation

/// NumPy broadcasting of two shapes, or nil if they are incompatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        if da != db && da != 1 && db != 1 { return nil }
        out[i] = max(da, db) == 1 ? min(da, db) : max(da, db)
    }
    return out
}

/// Element-wise binary operation with NumPy broadcasting. Fast paths: equal shapes, and a right operand
/// that repeats along the leading axes (per-channel bias/scale in channels-last layout).
@inlinable
func binary(_ a: Tensor, _ b: Tensor, _ op: (Vec, Vec) -> Vec, _ sop: (Float, Float) -> Float) -> Tensor {
    guard let shape = broadcastShape(a.shape, b.shape) else {
        preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let out = Tensor(uninitialized: shape)
    let n = out.count
    let pa = a.data, pb = b.data, po = out.data
    if a.shape == b.shape {
        parallelFor(n, minChunk: 1 << 14) { s, e in
            var i = s
            while i + 16 <= e { store(op(load(pa + i), load(pb + i)), po + i); i += 16 }
            while i < e { po[i] = sop(pa[i], pb[i]); i += 1 }
        }
        return out
    }
    if a.shape == shape, b.count > 0, shape.suffix(b.rank).elementsEqual(b.shape) || b.shape.drop(while: { $0 == 1 }).elementsEqual(shape.suffix(b.shape.drop(while: { $0 == 1 }).count)) {
        let inner = b.count
        parallelFor(n / inner, minChunk: max(1, 8192 / inner)) { r0, r1 in
            for r in r0..<r1 {
                let x = pa + r * inner, o = po + r * inner
                var i = 0
                while i + 16 <= inner { store(op(load(x + i), load(pb + i)), o + i); i += 16 }
                while i < inner { o[i] = sop(x[i], pb[i]); i += 1 }
            }
        }
        return out
    }
    // General case: strides with 0 along broadcast axes.
    let r = shape.count
    func strides(_ s: [Int]) -> [Int] {
        var st = [Int](repeating: 0, count: r)
        var acc = 1
        for i in stride(from: s.count - 1, through: 0, by: -1) {
            st[i + r - s.count] = s[i] == 1 ? 0 : acc
            acc *= s[i]
        }
        return st
    }
    let sa = strides(a.shape), sb = strides(b.shape)
    let last = shape[r - 1]
    parallelFor(n / max(last, 1), minChunk: 64) { r0, r1 in
        for row in r0..<r1 {
            var rem = row, ia = 0, ib = 0
            for d in stride(from: r - 2, through: 0, by: -1) {
                let k = rem % shape[d]; rem /= shape[d]
                ia += k * sa[d]; ib += k * sb[d]
            }
            for j in 0..<last { po[row * last + j] = sop(pa[ia + j * sa[r - 1]], pb[ib + j * sb[r - 1]]) }
        }
    }
    return out
}

public func add(_ a: Tensor, _ b: Tensor) -> Tensor { binary(a, b, { $0 + $1 }, { $0 + $1 }) }
public func sub(_ a: Tensor, _ b: Tensor) -> Tensor { binary(a, b, { $0 - $1 }, { $0 - $1 }) }
public func mul(_ a: Tensor, _ b: Tensor) -> Tensor { binary(a, b, { $0 * $1 }, { $0 * $1 }) }

/// `a += b` for equal shapes, into `a`'s storage (only for tensors the caller owns).
public func addInPlace(_ a: Tensor, _ b: Tensor) {
    precondition(a.shape == b.shape, "addInPlace: \(a.shape) vs \(b.shape)")
    let pa = a.data, pb = b.data
    parallelFor(a.count, minChunk: 1 << 14) { s, e in
        var i = s
        while i + 16 <= e { store(load(pa + i) + load(pb + i), pa + i); i += 16 }
        while i < e { pa[i] += pb[i]; i += 1 }
    }
}

/// Softmax along the last axis (max-subtracted, as PyTorch).
public func softmax(_ x: Tensor) -> Tensor {
    let out = x.copy()
    softmaxInPlace(out.data, rows: x.count / max(x.shape.last ?? 1, 1), cols: x.shape.last ?? 1)
    return out
}

public func softmaxInPlace(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    parallelFor(rows, minChunk: max(1, 4096 / max(cols, 1))) { r0, r1 in
        for r in r0..<r1 { softmaxRow(p + r * cols, cols) }
    }
}

@inlinable
public func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
    var m = -Float.infinity
    var j = 0
    var mv = Vec(repeating: -.infinity)
    while j + 16 <= n { mv = vmax(mv, load(row + j)); j += 16 }
    m = mv.max(); while j < n { m = max(m, row[j]); j += 1 }
    if m == -.infinity { row.initialize(repeating: 0, count: n); return }
    var sv = Vec(); j = 0
    let mm = Vec(repeating: m)
    while j + 16 <= n { let e = vexp(load(row + j) - mm); store(e, row + j); sv += e; j += 16 }
    var s = sv.sum()
    while j < n { row[j] = expf(row[j] - m); s += row[j]; j += 1 }
    let inv = 1 / s
    j = 0
    while j + 16 <= n { store(load(row + j) * inv, row + j); j += 16 }
    while j < n { row[j] *= inv; j += 1 }
}

/// Concatenation along `axis`.
public func concat(_ xs: [Tensor], axis: Int) -> Tensor {
    precondition(!xs.isEmpty)
    let r = xs[0].rank
    let ax = axis < 0 ? axis + r : axis
    var shape = xs[0].shape
    shape[ax] = xs.map { $0.shape[ax] }.reduce(0, +)
    for t in xs { precondition(t.rank == r && (0..<r).allSatisfy { $0 == ax || t.shape[$0] == shape[$0] }, "concat shapes differ") }
    let out = Tensor(uninitialized: shape)
    let outer = shape[..<ax].reduce(1, *)
    let innerOut = shape[ax...].reduce(1, *)
    var off = 0
    for t in xs {
        let inner = t.shape[ax...].reduce(1, *)
        let src = t.data, dst = out.data
        let o = off
        parallelFor(outer, minChunk: 16) { a, b in
            for i in a..<b { (dst + i * innerOut + o).update(from: src + i * inner, count: inner) }
        }
        off += inner
    }
    return out
}

/// Squeeze-and-excitation over NHWC: channel scale = gate(expand(act(reduce(mean over H, W)))).
public struct SqueezeExcite: Sendable {
    public let reduce: Linear
    public let expand: Linear

    /// Weights may be 1×1 conv kernels `[out, in, 1, 1]` or linear `[out, in]`.
    public init(reduceWeight: Tensor, reduceBias: Tensor?, expandWeight: Tensor, expandBias: Tensor?,
                activation: Activation = .silu, gate: Activation = .sigmoid) {
        reduce = Linear(weight: reduceWeight.reshaped([reduceWeight.shape[0], -1]), bias: reduceBias, activation: activation)
        expand = Linear(weight: expandWeight.reshaped([expandWeight.shape[0], -1]), bias: expandBias, activation: gate)
    }

    /// The per-image channel factors `[N, C]` from the channel means `[N, C]` (the squeeze).
    public func scales(means: Tensor) -> Tensor { expand(reduce(means)) }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let s = scales(means: globalAveragePool(x))
        let (n, c) = (x.shape[0], x.shape[x.rank - 1])
        let positions = x.count / (n * c)
        let out = Tensor(uninitialized: x.shape)
        parallelFor(n * positions, minChunk: max(1, 4096 / c)) { p0, p1 in
            for p in p0..<p1 {
                let img = p / positions
                let i = x.data + p * c, o = out.data + p * c, g = s.data + img * c
                var j = 0
                while j + 16 <= c { store(load(i + j) * load(g + j), o + j); j += 16 }
                while j < c { o[j] = i[j] * g[j]; j += 1 }
            }
        }
        return out
    }
}
