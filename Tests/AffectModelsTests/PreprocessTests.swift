import Foundation
import Testing
import AffectKernels
import AffectModels

let modelFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path

@Suite struct PreprocessTests {
    /// PIL's BILINEAR resize is reproduced bit for bit (fixed-point coefficients, 8-bit intermediate).
    @Test func pilResizeIsExact() throws {
        let f = try SafeTensorsFile(path: "\(modelFixtures)/preprocess/pil_resize.safetensors")
        let src = try f.tensor("input.image")
        let image = RGBImage(width: src.shape[1], height: src.shape[0], pixels: src.array.map { UInt8($0) })
        let outputs = f.names.filter { $0.hasPrefix("output.resized_") }
        #expect(outputs.count == 5)
        for name in outputs {
            let ref = try f.tensor(name)
            let (h, w) = (ref.shape[0], ref.shape[1])
            let ours = PILResize.resize(image, width: w, height: h)
            let diffs = zip(ours.pixels, ref.array).filter { Float($0) != $1 }.count
            #expect(diffs == 0, "\(name): \(diffs) of \(ref.count) values differ from PIL")
        }
    }

    @Test func normalisationMatchesToTensorNormalize() {
        let pre = ImagePreprocessing(size: 2, mean: [0.5, 0.25, 0], std: [0.5, 0.5, 2])
        let img = RGBImage(width: 2, height: 2, pixels: [255, 0, 51, 255, 0, 51, 255, 0, 51, 255, 0, 51])
        let t = pre([img])
        #expect(t.shape == [1, 2, 2, 3])
        #expect(abs(t.data[0] - 1) < 1e-6 && abs(t.data[1] + 0.5) < 1e-6 && abs(t.data[2] - 0.1) < 1e-6)
    }

    @Test func cropClampsToTheImage() {
        let img = RGBImage(width: 4, height: 3, pixels: (0..<36).map { UInt8($0) })
        let c = img.cropped(x0: -2, y0: 1, x1: 2, y1: 10)
        #expect(c.width == 2 && c.height == 2)
        #expect(c.pixels[0] == 12 && c.pixels[6] == 24)
    }
}

@Suite struct EfficientNetTests {
    let weights = "\(modelFixtures)/models/efficientnet_tiny.safetensors"

    /// Tiny configurations of the real architectures against the framework (timm, EmotiEffLib's module).
    @Test(arguments: ["efficientnet_tiny.b1", "efficientnet_tiny.b3", "mobilefacenet_tiny.b1", "mobilefacenet_tiny.b3",
                      "mobilevit_tiny.b1", "mobilevit_tiny.b3"])
    func matchesReferenceFramework(ref: String) throws {
        let name = String(ref.split(separator: ".")[0])
        let model = try ModelLoader.load("\(modelFixtures)/models/\(name).safetensors")
        let (compared, missing) = try Verification.verify(model, try ReferenceFile(path: "\(modelFixtures)/models/\(ref).ref.safetensors"))
        #expect(missing.isEmpty)
        #expect(compared.map(\.name).sorted() == ["features", "logits"])
        for c in compared { #expect(c.passes(tolerance: 1e-4), "\(ref) \(c.name): relative error \(c.relativeError)") }
    }

    /// The committed real mini-Xception (fer's FER2013 weights) against Keras.
    @Test(arguments: ["mini_xception.b1", "mini_xception.b8"])
    func miniXceptionMatchesKeras(ref: String) throws {
        let weights = URL(fileURLWithPath: modelFixtures).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Weights/mini_xception.safetensors").path
        let model = try ModelLoader.load(weights)
        let (compared, missing) = try Verification.verify(model, try ReferenceFile(path: "\(modelFixtures)/models/\(ref).ref.safetensors"))
        #expect(missing.isEmpty && compared.map(\.name).sorted() == ["logits", "probs"])
        for c in compared { #expect(c.passes(tolerance: 1e-4), "\(ref) \(c.name): relative error \(c.relativeError)") }
    }

    @Test func multiTaskMobileFaceNetSplitsValenceArousal() throws {
        let rec = try EmotionRecognizer(weights: WeightFile(path: "\(modelFixtures)/models/mobilefacenet_tiny.safetensors"))
        #expect(rec.isMultiTask && rec.expressionLabels.count == 8 && rec.preprocessing.size == 112)
        let face = RGBImage(width: 40, height: 52, pixels: (0..<(40 * 52 * 3)).map { UInt8(($0 * 13) % 256) })
        let p = try rec.predictEmotions([face], logits: false)
        #expect(p.scores.shape == [1, 10] && p.valence?.count == 1 && p.arousal?.count == 1)
        let expr = Array(p.scores.array.prefix(8))
        #expect(abs(expr.reduce(0, +) - 1) < 1e-5)
    }

    @Test func recognizerClassifiesLikeEmotiEffLib() throws {
        let rec = try EmotionRecognizer(weights: WeightFile(path: weights))
        #expect(rec.expressionLabels == ["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"])
        #expect(!rec.isMultiTask)
        let face = RGBImage(width: 50, height: 61, pixels: (0..<(50 * 61 * 3)).map { UInt8(($0 * 7) % 251) })
        let logits = try rec.predictEmotions([face, face], logits: true)
        let probs = try rec.predictEmotions([face], logits: false)
        #expect(logits.scores.shape == [2, 7] && logits.labels.count == 2 && logits.labels[0] == logits.labels[1])
        let sum = probs.scores.array.reduce(0, +)
        #expect(abs(sum - 1) < 1e-5)
        #expect(probs.labels == [logits.labels[0]])
    }

    @Test func emptyCropIsAnError() throws {
        let rec = try EmotionRecognizer(weights: WeightFile(path: weights))
        #expect(throws: AffectError.self) { try rec.extractFeatures([RGBImage(width: 0, height: 0, pixels: [])]) }
    }
}
