import Foundation
import Testing
import AffectKernels
import AffectModels

/// MTCNN's three nets on their own (committed real weights) against facenet-pytorch's PNet/RNet/ONet
/// (Tools/make_reference.py mtcnn_nets): P-Net on a 61×83 image (odd sizes: ceil-mode pooling edges).
@Suite struct MTCNNNetTests {
    @Test func netsMatchFacenetPyTorch() throws {
        let weights = URL(fileURLWithPath: modelFixtures).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Weights/mtcnn.safetensors").path
        let model = try ModelLoader.load(weights)
        let (compared, missing) = try Verification.verify(model, try ReferenceFile(path: "\(modelFixtures)/models/mtcnn.b1.ref.safetensors"))
        #expect(missing.isEmpty)
        #expect(compared.map(\.name).sorted() == ["onet.landmarks", "onet.prob", "onet.reg", "pnet.prob", "pnet.reg", "rnet.prob", "rnet.reg"])
        for c in compared { #expect(c.passes(tolerance: 1e-4), "\(c.name): relative error \(c.relativeError)") }
    }
}
