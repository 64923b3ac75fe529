import Foundation
import AffectKernels
import AffectModels

/// A 2-D similarity transform (rotation, uniform scale, translation):
/// `x' = a·x − b·y + tx`, `y' = b·x + a·y + ty`.
public struct SimilarityTransform: Sendable, Equatable {
    public var a, b, tx, ty: Double

    public init(a: Double, b: Double, tx: Double, ty: Double) {
        self.a = a; self.b = b; self.tx = tx; self.ty = ty
    }

    /// The least-squares similarity mapping `source` points onto `target` points (Umeyama's method without
    /// reflection, as scikit-image's `SimilarityTransform.estimate` computes it). Nil for fewer than two
    /// pairs, mismatched counts, or when all source points coincide.
    public static func estimate(from source: [(x: Float, y: Float)], to target: [(x: Float, y: Float)]) -> SimilarityTransform? {
        guard source.count == target.count, source.count >= 2 else { return nil }
        let n = Double(source.count)
        let smx = source.reduce(0) { $0 + Double($1.x) } / n, smy = source.reduce(0) { $0 + Double($1.y) } / n
        let tmx = target.reduce(0) { $0 + Double($1.x) } / n, tmy = target.reduce(0) { $0 + Double($1.y) } / n
        // With demeaned points s, t the optimum over rotation·scale [[a, −b], [b, a]] is closed-form:
        // a = Σ(s·t)/Σ|s|², b = Σ(s×t)/Σ|s|².
        var dot = 0.0, cross = 0.0, norm = 0.0
        for (s, t) in zip(source, target) {
            let (sx, sy) = (Double(s.x) - smx, Double(s.y) - smy)
            let (dx, dy) = (Double(t.x) - tmx, Double(t.y) - tmy)
            dot += sx * dx + sy * dy
            cross += sx * dy - sy * dx
            norm += sx * sx + sy * sy
        }
        guard norm > 0 else { return nil }
        let a = dot / norm, b = cross / norm
        return SimilarityTransform(a: a, b: b, tx: tmx - (a * smx - b * smy), ty: tmy - (b * smx + a * smy))
    }

    /// The image of point (`x`, `y`).
    public func apply(_ x: Double, _ y: Double) -> (x: Double, y: Double) {
        (a * x - b * y + tx, b * x + a * y + ty)
    }

    /// The inverse transform (nil when the scale is zero).
    public var inverse: SimilarityTransform? {
        let d = a * a + b * b
        guard d > 0 else { return nil }
        let (ia, ib) = (a / d, -b / d)
        return SimilarityTransform(a: ia, b: ib, tx: -(ia * tx - ib * ty), ty: -(ib * tx + ia * ty))
    }

    /// The 2×3 matrix `[[a, −b, tx], [b, a, ty]]` (OpenCV's `warpAffine` layout), row-major.
    public var matrix: [Double] { [a, -b, tx, b, a, ty] }
}

/// How a face is cut out of its frame.
public enum FaceCropStyle: Sendable, Equatable {
    /// EmotiEffLib's box crop (`frame[y1:y2, x1:x2]`, clamped), grown by `margin` × the box size per side.
    case box(margin: Float)
    /// Rotated, scaled and shifted so the five landmarks land on ``FaceAlignment/arcFaceTemplate`` scaled to a
    /// `size × size` crop (bilinear sampling, black outside the frame).
    case aligned(size: Int)
}

/// Landmark alignment of face crops.
public enum FaceAlignment {
    /// The five-point template of ArcFace/InsightFace crops (112 × 112 pixels): left eye, right eye, nose,
    /// left and right mouth corner, in the order MTCNN reports its landmarks.
    public static let arcFaceTemplate: [(x: Float, y: Float)] = [
        (38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041),
    ]

    /// The template scaled to a `size × size` crop.
    public static func template(size: Int) -> [(x: Float, y: Float)] {
        let s = Float(size) / 112
        return arcFaceTemplate.map { ($0.x * s, $0.y * s) }
    }

    /// The transform from frame coordinates to a `size × size` aligned crop of `face` (nil when the detection
    /// has no five distinct landmarks).
    public static func transform(for face: FaceDetection, size: Int) -> SimilarityTransform? {
        guard face.landmarks.count == 5 else { return nil }
        return SimilarityTransform.estimate(from: face.landmarks, to: template(size: size))
    }
}

extension RGBImage {
    /// The `width × height` image whose pixel (u, v) samples this one at `transform⁻¹(u, v)`, bilinearly, with
    /// pixel centres at integer coordinates and black beyond the border (OpenCV `warpAffine` with
    /// `INTER_LINEAR` and a constant zero border, computed in floating point; rounded to the nearest level).
    public func warped(by transform: SimilarityTransform, width outW: Int, height outH: Int) -> RGBImage {
        guard let inv = transform.inverse, outW > 0, outH > 0 else {
            return RGBImage(width: max(outW, 0), height: max(outH, 0), pixels: [UInt8](repeating: 0, count: max(outW, 0) * max(outH, 0) * 3))
        }
        var out = [UInt8](repeating: 0, count: outW * outH * 3)
        let (w, h) = (width, height)
        pixels.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { dst in
            for v in 0..<outH {
                for u in 0..<outW {
                    let (sx, sy) = inv.apply(Double(u), Double(v))
                    // Entirely outside: all four neighbours are border (zero). Tested before any `Int` conversion:
                    // a nearly degenerate transform (landmarks almost on one point) maps far beyond `Int`'s range.
                    guard sx >= -1, sy >= -1, sx < Double(w), sy < Double(h) else { continue }
                    let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                    let fx = sx - Double(x0), fy = sy - Double(y0)
                    var acc = (0.0, 0.0, 0.0)
                    func tap(_ x: Int, _ y: Int, _ wt: Double) {
                        guard x >= 0, x < w, y >= 0, y < h else { return }
                        let p = (y * w + x) * 3
                        acc.0 += wt * Double(src[p]); acc.1 += wt * Double(src[p + 1]); acc.2 += wt * Double(src[p + 2])
                    }
                    tap(x0, y0, (1 - fx) * (1 - fy)); tap(x0 + 1, y0, fx * (1 - fy))
                    tap(x0, y0 + 1, (1 - fx) * fy); tap(x0 + 1, y0 + 1, fx * fy)
                    let o = (v * outW + u) * 3
                    dst[o] = UInt8(min(max(acc.0.rounded(), 0), 255))
                    dst[o + 1] = UInt8(min(max(acc.1.rounded(), 0), 255))
                    dst[o + 2] = UInt8(min(max(acc.2.rounded(), 0), 255))
                }
            }
        } }
        return RGBImage(width: outW, height: outH, pixels: out)
    }

    /// A face crop in the given style. A detection without five usable landmarks cannot be aligned: its
    /// aligned crop is the plain box crop.
    public func faceCrop(_ face: FaceDetection, style: FaceCropStyle) -> RGBImage {
        switch style {
        case .box(let margin):
            return crop(face, margin: margin)
        case .aligned(let size):
            guard let t = FaceAlignment.transform(for: face, size: size) else { return crop(face) }
            return warped(by: t, width: size, height: size)
        }
    }
}
