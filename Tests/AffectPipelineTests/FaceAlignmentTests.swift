import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

struct AlignmentFixture: Decodable {
    struct Case: Decodable {
        var image: String
        var width: Int, height: Int, size: Int
        var landmarks: [[Double]]
        var matrix: [Double]
        var sample_stride: Int
        var samples: [Int]
    }
    var cases: [Case]
}

/// The synthetic picture of Tools/references/mtcnn.py `pattern`: ramps in R and G, an 8-pixel checkerboard in B.
func alignmentPattern(width w: Int, height h: Int) -> RGBImage {
    var px = [UInt8](repeating: 0, count: w * h * 3)
    for y in 0..<h { for x in 0..<w {
        let i = (y * w + x) * 3
        px[i] = UInt8(x * 255 / (w - 1)); px[i + 1] = UInt8(y * 255 / (h - 1))
        px[i + 2] = (x / 8 + y / 8) % 2 == 0 ? 40 : 220
    } }
    return RGBImage(width: w, height: h, pixels: px)
}

/// Aligned crops against NumPy (Umeyama via SVD, as scikit-image) and SciPy bilinear sampling with a zero
/// border (Tools/make_reference.py alignment; cv2.estimateAffinePartial2D and cv2.warpAffine agree with it to
/// 1e-5 and 1 level).
@Suite struct FaceAlignmentTests {
    let fixture: AlignmentFixture = {
        let url = repoRoot.appendingPathComponent("Tests/Fixtures/faces/alignment.json")
        return try! JSONDecoder().decode(AlignmentFixture.self, from: Data(contentsOf: url))
    }()

    func check(_ c: AlignmentFixture.Case, _ image: RGBImage) {
        let marks = c.landmarks.map { (x: Float($0[0]), y: Float($0[1])) }
        let face = FaceDetection(x1: 0, y1: 0, x2: 1, y2: 1, probability: 1, landmarks: marks)
        guard let t = FaceAlignment.transform(for: face, size: c.size) else { Issue.record("\(c.image): no transform"); return }
        let worstM = zip(t.matrix, c.matrix).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        #expect(worstM < 1e-5, "\(c.image): matrix \(t.matrix) vs \(c.matrix)")
        let crop = image.faceCrop(face, style: .aligned(size: c.size))
        #expect(crop.width == c.size && crop.height == c.size)
        var worst = 0, off = 0
        for (k, v) in c.samples.enumerated() {
            let d = abs(Int(crop.pixels[k * c.sample_stride]) - v)
            worst = max(worst, d); if d > 0 { off += 1 }
        }
        // Float rounding can put a value on the other side of .5: at most one level, rarely.
        #expect(worst <= 1 && off * 100 <= c.samples.count, "\(c.image): \(off) samples differ, by up to \(worst) levels")
    }

    @Test func syntheticTiltedFacePartlyOutsideTheFrame() {
        let c = fixture.cases.first { $0.image == "synthetic" }!
        check(c, alignmentPattern(width: c.width, height: c.height))
    }

    @Test func portraitWithFacenetLandmarks() throws {
        let c = try #require(fixture.cases.first { $0.image == "portrait.png" })
        check(c, try ImageDecoder.decode(path: "\(testMedia)/portrait.png"))
    }

    @Test func transformRoundTripsAndRecoversAKnownSimilarity() {
        let known = SimilarityTransform(a: 0.8, b: -0.3, tx: 12, ty: -7)
        let src: [(x: Float, y: Float)] = [(10, 20), (50, 22), (30, 45), (15, 70), (48, 66)]
        let dst = src.map { p in known.apply(Double(p.x), Double(p.y)) }.map { (x: Float($0.x), y: Float($0.y)) }
        let t = SimilarityTransform.estimate(from: src, to: dst)!
        #expect(zip(t.matrix, known.matrix).allSatisfy { abs($0 - $1) < 1e-4 })
        let back = t.inverse!.apply(Double(dst[2].x), Double(dst[2].y))
        #expect(abs(back.x - 30) < 1e-3 && abs(back.y - 45) < 1e-3)
        #expect(SimilarityTransform.estimate(from: [(1, 1), (1, 1)], to: [(0, 0), (5, 5)]) == nil)
    }

    /// Landmarks almost on one point (a damaged detector can give them) make the inverse map the crop far
    /// beyond `Int`'s range (±1e160 here), or to NaN: such pixels are border and nothing traps.
    @Test func nearlyDegenerateTransformDoesNotTrap() {
        let img = alignmentPattern(width: 40, height: 30)
        let huge = img.warped(by: SimilarityTransform(a: 1e-160, b: 1e-160, tx: 5, ty: 5), width: 8, height: 8)
        #expect(huge.width == 8 && huge.height == 8 && huge.pixels.count == 8 * 8 * 3)
        #expect(huge.pixels[0..<3].allSatisfy { $0 == 0 }, "pixel (0, 0) maps to x = -5e160")
        for t in [SimilarityTransform(a: 1e-300, b: 0, tx: 0, ty: 0), SimilarityTransform(a: 1, b: 0, tx: .nan, ty: 0)] {
            let crop = img.warped(by: t, width: 8, height: 8)
            #expect(crop.width == 8 && crop.height == 8)
            #expect(crop.pixels.allSatisfy { $0 == 0 }, "\(t)")
        }
    }

    @Test func faceWithoutLandmarksFallsBackToTheBoxCrop() {
        let img = alignmentPattern(width: 40, height: 30)
        let f = FaceDetection(x1: 5, y1: 4, x2: 25, y2: 20, probability: 1, landmarks: [])
        #expect(img.faceCrop(f, style: .aligned(size: 32)) == img.crop(f))
        #expect(img.faceCrop(f, style: .box(margin: 0.1)) == img.crop(f, margin: 0.1))
    }
}
