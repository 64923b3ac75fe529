/// Max pooling over NHWC, PyTorch semantics (padding counts as −∞, optional ceil mode) or TF "SAME".
public func maxPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int), padding: Padding = .valid,
                      ceilMode: Bool = false) -> Tensor {
    pool2d(x, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode, isMax: true, countPadding: false)
}

/// Average pooling over NHWC. `countIncludePad` as PyTorch's `count_include_pad`; TF "SAME" never counts padding.
public func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int), padding: Padding = .valid,
                      ceilMode: Bool = false, countIncludePad: Bool = true) -> Tensor {
    pool2d(x, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode, isMax: false,
           countPadding: countIncludePad && padding != .tfSame)
}

private func pool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int), padding: Padding, ceilMode: Bool,
                    isMax: Bool, countPadding: Bool) -> Tensor {
    precondition(x.rank == 4, "pooling expects NHWC, got \(x.shape)")
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let rh = padding.resolve(input: h, kernel: kernel.0, stride: stride.0, dilation: 1, axis: 0, ceilMode: ceilMode)
    let rw = padding.resolve(input: w, kernel: kernel.1, stride: stride.1, dilation: 1, axis: 1, ceilMode: ceilMode)
    let (oh, ow) = (rh.out, rw.out)
    // PyTorch divides by the window clipped to the padded input (not the ceil-mode overhang).
    var padBottom = 0, padRight = 0
    if case .explicit(_, _, let b, let r) = padding { padBottom = b; padRight = r }
    let out = Tensor(uninitialized: [n, oh, ow, c])
    let src = x.data, dst = out.data
    parallelFor(n * oh) { r0, r1 in
        for r in r0..<r1 {
            let img = r / oh, oy = r % oh
            let y0 = oy * stride.0 - rh.before
            for ox in 0..<ow {
                let x0 = ox * stride.1 - rw.before
                let ys = max(y0, 0), ye = min(y0 + kernel.0, h)
                let xs = max(x0, 0), xe = min(x0 + kernel.1, w)
                let o = dst + ((img * oh + oy) * ow + ox) * c
                var divisor = Float((ye - ys) * (xe - xs))
                if countPadding {
                    let ph = min(y0 + kernel.0, h + padBottom) - y0
                    let pw = min(x0 + kernel.1, w + padRight) - x0
                    divisor = Float(ph * pw)
                }
                var cb = 0
                while cb < c {
                    let lanes = min(16, c - cb)
                    if lanes == 16 {
                        var acc = isMax ? Vec(repeating: -.infinity) : Vec()
                        for yy in ys..<max(ys, ye) { for xx in xs..<max(xs, xe) {
                            let v = load(src + ((img * h + yy) * w + xx) * c + cb)
                            acc = isMax ? vmax(acc, v) : acc + v
                        } }
                        store(isMax ? acc : acc / divisor, o + cb)
                    } else {
                        for k in cb..<cb + lanes {
                            var acc: Float = isMax ? -.infinity : 0
                            for yy in ys..<max(ys, ye) { for xx in xs..<max(xs, xe) {
                                let v = src[((img * h + yy) * w + xx) * c + k]
                                acc = isMax ? max(acc, v) : acc + v
                            } }
                            o[k] = isMax ? acc : acc / divisor
                        }
                    }
                    cb += lanes
                }
            }
        }
    }
    return out
}

/// Mean over all spatial positions: `[N, ..., C]` → `[N, C]`.
public func globalAveragePool(_ x: Tensor) -> Tensor {
    let n = x.shape[0], c = x.shape[x.rank - 1]
    let positions = x.count / max(n * c, 1)
    let out = Tensor.zeros([n, c])
    parallelFor(n * ((c + 15) / 16)) { k0, k1 in
        for k in k0..<k1 {
            let img = k / ((c + 15) / 16), cb = (k % ((c + 15) / 16)) * 16
            let lanes = min(16, c - cb)
            let base = x.data + img * positions * c + cb
            if lanes == 16 {
                var acc = Vec()
                for p in 0..<positions { acc += load(base + p * c) }
                store(acc / Float(positions), out.data + img * c + cb)
            } else {
                for l in 0..<lanes {
                    var s: Float = 0
                    for p in 0..<positions { s += base[p * c + l] }
                    out.data[img * c + cb + l] = s / Float(positions)
                }
            }
        }
    }
    return out
}
