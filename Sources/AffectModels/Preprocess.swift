import Foundation
import AffectKernels

/// PIL's `Image.resize(size, BILINEAR)` on 8-bit images, reproduced exactly: a triangle filter widened by the
/// scale factor when shrinking, coefficients in 22-bit fixed point, horizontal pass then vertical, each
/// rounded back to 8 bits. torchvision's `Resize` on a PIL image (EmotiEffLib's torch path) is this.
public enum PILResize {
    static let precisionBits = 32 - 8 - 2

    struct Coefficients {
        var bounds: [(start: Int, count: Int)]
        var weights: [[Int32]]
    }

    static func coefficients(inSize: Int, outSize: Int) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 1.0 * filterScale
        var bounds: [(Int, Int)] = [], weights: [[Int32]] = []
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1 / filterScale
            // C's (int) truncates toward zero, as Int(_:) does.
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var k = [Double](repeating: 0, count: max(xmax, 0))
            var ww = 0.0
            for x in 0..<max(xmax, 0) {
                let t = abs((Double(x + xmin) - center + 0.5) * ss)
                let w = t < 1 ? 1 - t : 0
                k[x] = w; ww += w
            }
            let fixed = k.map { v -> Int32 in
                let n = ww != 0 ? v / ww : v
                return Int32(n < 0 ? -0.5 + n * Double(1 << precisionBits) : 0.5 + n * Double(1 << precisionBits))
            }
            bounds.append((xmin, max(xmax, 0))); weights.append(fixed)
        }
        return Coefficients(bounds: bounds, weights: weights)
    }

    @inline(__always) static func clip8(_ v: Int32) -> UInt8 { UInt8(clamping: v >> Int32(precisionBits)) }

    /// Resizes `image` to `width × height`: horizontal pass, then vertical, each rounded to 8 bits, as PIL's
    /// `ImagingResample` does. PIL accumulates in 32-bit ints, as here; the sums are exact (nonnegative weights
    /// summing to 2²² give at most 255 · 2²² + 2²¹ < 2³¹), so the order of the adds does not matter and the
    /// vertical pass sums 16 bytes of a row at a time.
    public static func resize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        var img = image
        let half = Int32(1 << (precisionBits - 1))
        if width != img.width {
            let c = coefficients(inSize: img.width, outSize: width)
            let (w, h) = (img.width, img.height)
            // Every output column's taps in one array: `first[x]` is where column x's start.
            var first = [Int](repeating: 0, count: width + 1)
            for x in 0..<width { first[x + 1] = first[x] + c.bounds[x].count }
            let taps = c.weights.flatMap { $0 }
            let out = [UInt8](unsafeUninitializedCapacity: width * h * 3) { dst, count in
                img.pixels.withUnsafeBufferPointer { src in taps.withUnsafeBufferPointer { wk in first.withUnsafeBufferPointer { f0 in
                    for y in 0..<h {
                        let row = src.baseAddress! + y * w * 3, o = dst.baseAddress! + y * width * 3
                        for x in 0..<width {
                            var p = row + c.bounds[x].start * 3
                            var a0 = half, a1 = half, a2 = half
                            for k in f0[x]..<f0[x + 1] {
                                let f = wk[k]
                                a0 &+= Int32(p[0]) &* f; a1 &+= Int32(p[1]) &* f; a2 &+= Int32(p[2]) &* f
                                p += 3
                            }
                            o[x * 3] = clip8(a0); o[x * 3 + 1] = clip8(a1); o[x * 3 + 2] = clip8(a2)
                        }
                    }
                } } }
                count = width * h * 3
            }
            img = RGBImage(width: width, height: h, pixels: out)
        }
        if height != img.height {
            let c = coefficients(inSize: img.height, outSize: height)
            let rowBytes = img.width * 3
            let out = [UInt8](unsafeUninitializedCapacity: rowBytes * height) { dst, count in
                img.pixels.withUnsafeBufferPointer { src in
                    let base = src.baseAddress!
                    for y in 0..<height {
                        let (s, n) = c.bounds[y]
                        let o = dst.baseAddress! + y * rowBytes
                        c.weights[y].withUnsafeBufferPointer { wk in
                            var i = 0
                            while i + 16 <= rowBytes {
                                var acc = SIMD16<Int32>(repeating: half)
                                for k in 0..<n {
                                    let bytes = UnsafeRawPointer(base + (s + k) * rowBytes + i).loadUnaligned(as: SIMD16<UInt8>.self)
                                    acc &+= SIMD16<Int32>(truncatingIfNeeded: bytes) &* SIMD16<Int32>(repeating: wk[k])
                                }
                                let v = (acc &>> Int32(precisionBits)).clamped(lowerBound: .zero, upperBound: SIMD16(repeating: 255))
                                UnsafeMutableRawPointer(o + i).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: v), as: SIMD16<UInt8>.self)
                                i += 16
                            }
                            while i < rowBytes {
                                var acc = half
                                for k in 0..<n { acc &+= Int32(base[(s + k) * rowBytes + i]) &* wk[k] }
                                o[i] = clip8(acc)
                                i += 1
                            }
                        }
                    }
                }
                count = rowBytes * height
            }
            img = RGBImage(width: img.width, height: height, pixels: out)
        }
        return img
    }
}

/// How a facial model wants its input: size, normalisation and resize method (from `affect.preprocess`).
public struct ImagePreprocessing: Sendable {
    public var size: Int
    public var mean: [Float]
    public var std: [Float]
    /// `bilinear_antialias` (PIL, EmotiEffLib's torch path) or `bilinear` (cv2, its ONNX path).
    public var resize: String

    public init(size: Int, mean: [Float], std: [Float], resize: String = "bilinear_antialias") {
        self.size = size; self.mean = mean; self.std = std; self.resize = resize
    }

    public init(weights w: WeightFile, defaultSize: Int) throws {
        size = try w.preprocessInt("input_size", default: defaultSize, in: WeightFile.Limits.imageSide)
        func floats(_ key: String, _ d: [Float]) throws -> [Float] {
            guard let raw = w.preprocess[key] else { return d }
            // Finite in Float and of a sane magnitude; std also positive (it divides).
            guard let v = (raw as? [NSNumber])?.map({ Float($0.doubleValue) }), v.count == 3,
                  v.allSatisfy({ $0.isFinite && abs($0) <= 1e6 }), key != "std" || v.allSatisfy({ $0 >= 1e-6 }) else {
                throw w.problem("metadata affect.preprocess `\(key)` is \(raw), expected three finite numbers\(key == "std" ? " ≥ 1e-6" : "").")
            }
            return v
        }
        mean = try floats("mean", [0.485, 0.456, 0.406])
        std = try floats("std", [0.229, 0.224, 0.225])
        resize = (w.preprocess["resize"] as? String) ?? "bilinear_antialias"
        guard resize == "bilinear" || resize == "bilinear_antialias" else {
            throw w.problem("metadata affect.preprocess `resize` is `\(resize)`, expected bilinear or bilinear_antialias.")
        }
    }

    /// Face crops → `[N, size, size, 3]` normalised (NHWC, our layout).
    public func callAsFunction(_ faces: [RGBImage]) -> Tensor {
        let out = Tensor(uninitialized: [faces.count, size, size, 3])
        for (i, face) in faces.enumerated() {
            let dst = out.data + i * size * size * 3
            if resize == "bilinear" {
                let r = AffectKernels.resize(face.tensor(), height: size, width: size, method: .bilinear)
                for p in 0..<(size * size) { for c in 0..<3 { dst[p * 3 + c] = (r.data[p * 3 + c] / 255 - mean[c]) / std[c] } }
            } else {
                let r = PILResize.resize(face, width: size, height: size)
                for p in 0..<(size * size) { for c in 0..<3 { dst[p * 3 + c] = (Float(r.pixels[p * 3 + c]) / 255 - mean[c]) / std[c] } }
            }
        }
        return out
    }
}
