import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectTestSupport

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
/// The repository's own test media (Tools/make_test_media.sh): a public-domain portrait, a group picture and clips
/// made from it with ffmpeg, espeak-ng speech.
let testMedia = repoRoot.appendingPathComponent("Tests/Fixtures/media").path

struct FaceCase: Decodable {
    var box: [Int]
    var label: String
    var logits: [Float]
    var fer_box: [Int]
    var fer_probs: [Float]
    var fer_label: Int
}
struct ImageCase: Decodable { var image: String; var faces: [FaceCase] }
struct FaceFixture: Decodable { var model: String; var images: [ImageCase] }

/// Real faces (facenet-pytorch boxes over Tests/Fixtures/media) through the whole facial chain, against
/// EmotiEffLib's own torch path and fer's own preprocessing with Keras (Tools/references/preprocess.py).
@Suite struct FaceExpressionTests {
    let fixture: FaceFixture = {
        let url = repoRoot.appendingPathComponent("Tests/Fixtures/preprocess/emotiefflib_faces.json")
        return try! JSONDecoder().decode(FaceFixture.self, from: Data(contentsOf: url))
    }()

    @Test func emotiEffLibTorchPathOnRealFaces() throws {
        let rec = try EmotionRecognizer(weights: WeightFile(path: repoRoot.appendingPathComponent(fixture.model).path))
        var faces = 0
        var worst: Float = 0
        for img in fixture.images {
            let image = try ImageDecoder.decode(path: "\(testMedia)/\(img.image)")
            for f in img.faces {
                let crop = image.cropped(x0: f.box[0], y0: f.box[1], x1: f.box[2], y1: f.box[3])
                let p = try rec.predictEmotions([crop], logits: true)
                let ours = p.scores.array
                let err = zip(ours, f.logits).map { abs($0 - $1) }.max() ?? .infinity
                #expect(err <= 1e-2, "\(img.image) face \(f.box): logits differ by \(err)")
                worst = max(worst, err)
                #expect(p.labels == [f.label], "\(img.image) face \(f.box): \(p.labels) vs \(f.label)")
                faces += 1
            }
        }
        print("EmotiEffLib torch path on real faces: max |logit − torch| = \(worst)")
        #expect(faces == 5)
    }

    @Test func miniXceptionClassEqualsKerasOnRealFaces() throws {
        let model = try MiniXception(weights: WeightFile(path: repoRoot.appendingPathComponent("Weights/mini_xception.safetensors").path))
        var worst: Float = 0
        for img in fixture.images {
            let image = try ImageDecoder.decode(path: "\(testMedia)/\(img.image)")
            for f in img.faces {
                let x = try MiniXception.ferInput(image, box: (f.fer_box[0], f.fer_box[1], f.fer_box[2], f.fer_box[3]))
                let probs = softmax(model.logits(nhwc: x)).array
                let best = probs.indices.max { probs[$0] < probs[$1] }!
                #expect(best == f.fer_label, "\(img.image) face \(f.fer_box): class \(best) vs Keras \(f.fer_label)")
                worst = max(worst, zip(probs, f.fer_probs).map { abs($0 - $1) }.max()!)
            }
        }
        print("mini-Xception on real faces: max |p − p_keras| = \(worst)")
        #expect(worst < 0.05)
    }

    @Test func decoderRejectsBadFiles() throws {
        let dir = Scratch.directory("img")
        let empty = dir.appendingPathComponent("empty.jpg").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        let garbage = dir.appendingPathComponent("garbage.png").path
        FileManager.default.createFile(atPath: garbage, contents: Data((0..<4096).map { UInt8(($0 * 31) % 256) }))
        for path in [empty, garbage, dir.appendingPathComponent("missing.png").path] {
            #expect {
                _ = try ImageDecoder.decode(path: path)
            } throws: { e in
                guard let a = e as? AffectError, case .badInput(let m) = a else { return false }
                return m.hasPrefix(path)
            }
        }
    }
}
