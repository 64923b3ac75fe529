import Foundation

extension Reference {
    /// Resizes `[H, W, C]` to `height × width`: each output pixel is a weighted sum of input pixels,
    /// `y[oy, ox] = Σ_{iy, ix} a(oy, iy) · b(ox, ix) · x[iy, ix]`, with the 1-D weights of ``resizeWeights(from:to:method:)``
    /// along each axis.
    public static func resize(_ x: Values, height: Int, width: Int, method: ResizeMethod) -> Values {
        let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2])
        let rowWeights = resizeWeights(from: h, to: height, method: method)
        let colWeights = resizeWeights(from: w, to: width, method: method)
        var y = Values(zeros: [height, width, c])
        for oy in 0..<height { for ox in 0..<width { for ch in 0..<c {
            var sum = 0.0
            for iy in 0..<h where rowWeights[oy][iy] != 0 {
                for ix in 0..<w where colWeights[ox][ix] != 0 {
                    sum += rowWeights[oy][iy] * colWeights[ox][ix] * Double(x.data[(iy * w + ix) * c + ch])
                }
            }
            y.data[(oy * width + ox) * c + ch] = Float(sum)
        } } }
        return y
    }

    /// The weight of each of `input` pixels in each of `output` pixels along one axis (`[output][input]`), scale
    /// `s = input / output`:
    /// - `.bilinear` (half-pixel centres, OpenCV / torch `align_corners=False`): output `o` samples
    ///   `u = max((o + ½)·s − ½, 0)`, weights `1 − f` and `f` on pixels `⌊u⌋` and `⌊u⌋ + 1` (`f = u − ⌊u⌋`),
    ///   the last pixel alone past the end;
    /// - `.bilinearAntialias` (PIL `BILINEAR`): a triangle filter of half-width `max(s, 1)` centred on
    ///   `(o + ½)·s`, over the pixels whose centres `i + ½` it covers, normalised to sum to 1;
    /// - `.area` (torch `mode="area"`): the mean of pixels `⌊o·s⌋ ..< ⌈(o + 1)·s⌉`.
    public static func resizeWeights(from input: Int, to output: Int, method: ResizeMethod) -> [[Double]] {
        let s = Double(input) / Double(output)
        var weights = [[Double]](repeating: [Double](repeating: 0, count: input), count: output)
        for o in 0..<output {
            switch method {
            case .bilinear:
                let u = max((Double(o) + 0.5) * s - 0.5, 0)
                let i = Int(u.rounded(.down))
                if i >= input - 1 { weights[o][input - 1] = 1; continue }
                weights[o][i] = 1 - (u - Double(i)); weights[o][i + 1] = u - Double(i)
            case .bilinearAntialias:
                let support = max(s, 1), centre = (Double(o) + 0.5) * s
                let first = max(Int(centre - support + 0.5), 0), end = min(Int(centre + support + 0.5), input)
                for i in first..<max(first, end) { weights[o][i] = max(0, 1 - abs((Double(i) + 0.5 - centre) / support)) }
                let total = weights[o].reduce(0, +)
                if total != 0 { weights[o] = weights[o].map { $0 / total } }
            case .area:
                let first = o * input / output, end = ((o + 1) * input + output - 1) / output
                for i in first..<end { weights[o][i] = 1 / Double(end - first) }
            }
        }
        return weights
    }
}
