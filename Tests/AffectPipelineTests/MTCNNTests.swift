import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectTestSupport

struct DetectedFace: Decodable { var box: [Float]; var prob: Float; var landmarks: [[Float]] }
struct DetectedImage: Decodable { var image: String; var faces: [DetectedFace] }
struct DetectionFixture: Decodable { var images: [DetectedImage] }

/// MTCNN against `facenet_pytorch.MTCNN(keep_all=True, min_face_size=40).detect` on Tests/Fixtures/media
/// (Tools/make_reference.py mtcnn): same faces, boxes and landmarks within 2 px, probabilities within 1e-3.
@Suite struct MTCNNTests {
    let mtcnn = try! MTCNN(weights: WeightFile(path: repoRoot.appendingPathComponent("Weights/mtcnn.safetensors").path))

    @Test func matchesFacenetPyTorchOnImages() throws {
        let url = repoRoot.appendingPathComponent("Tests/Fixtures/faces/mtcnn_images.json")
        let fixture = try JSONDecoder().decode(DetectionFixture.self, from: Data(contentsOf: url))
        var worstBox: Float = 0, worstProb: Float = 0
        for img in fixture.images {
            let faces = mtcnn.detect(try ImageDecoder.decode(path: "\(testMedia)/\(img.image)"))
            #expect(faces.count == img.faces.count, "\(img.image): \(faces.count) faces vs \(img.faces.count)")
            for (ours, ref) in zip(faces, img.faces) {
                let box = zip([ours.x1, ours.y1, ours.x2, ours.y2], ref.box).map { abs($0 - $1) }.max()!
                let marks = zip(ours.landmarks, ref.landmarks).map { max(abs($0.x - $1[0]), abs($0.y - $1[1])) }.max()!
                #expect(box <= 2 && marks <= 2, "\(img.image): box off by \(box) px, landmarks by \(marks) px")
                #expect(abs(ours.probability - ref.prob) <= 1e-3, "\(img.image): p \(ours.probability) vs \(ref.prob)")
                worstBox = max(worstBox, box, marks); worstProb = max(worstProb, abs(ours.probability - ref.prob))
            }
        }
        print("MTCNN vs facenet-pytorch: max box/landmark difference \(worstBox) px, max probability difference \(worstProb)")
    }

    @Test func imageWithoutFacesGivesNoDetections() throws {
        // A smooth gradient, written as a binary PPM that FFmpeg decodes.
        let (w, h) = (160, 120)
        var ppm = Data("P6\n\(w) \(h)\n255\n".utf8)
        for y in 0..<h { for x in 0..<w { ppm.append(contentsOf: [UInt8(x * 255 / w), UInt8(y * 255 / h), 128]) } }
        let path = Scratch.path("gradient.ppm")
        try ppm.write(to: URL(fileURLWithPath: path))
        let image = try ImageDecoder.decode(path: path)
        #expect(image.width == w && image.height == h)
        #expect(image.pixels[(10 * w + 80) * 3] == UInt8(80 * 255 / w))
        #expect(mtcnn.detect(image).isEmpty)
    }

    @Test func tinyImageGivesNoDetections() {
        #expect(mtcnn.detect(RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 9, count: 192))).isEmpty)
    }
}
