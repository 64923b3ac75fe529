import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectTestSupport

/// mini-Xception's single-image fast path against its layer-by-layer path (which `PreprocessTests` checks
/// against Keras), on the committed real weights, at sizes that exercise partial vectors, odd maps
/// (pooling windows that hang over an edge) and one-pixel maps.
@Suite struct MiniXceptionTests {
    static let weights = URL(fileURLWithPath: modelFixtures).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Weights/mini_xception.safetensors").path

    func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(s >> 40) % 2000 - 1000) / 1000
        }
    }

    @Test(arguments: [(1, 64, 64), (3, 64, 64), (2, 48, 53), (1, 5, 5), (2, 6, 21), (1, 37, 8)])
    func singleImagePlanMatchesLayerwise(n: Int, h: Int, w: Int) throws {
        let model = try MiniXception(weights: WeightFile(path: Self.weights))
        #expect(model.usesSingleImagePlan)
        let x = Tensor(shape: [n, h, w, 1], values: values(n * h * w, seed: UInt64(h * 100 + w)))
        let fast = model.logits(nhwc: x), reference = model.layerwiseLogits(nhwc: x)
        #expect(fast.shape == reference.shape && fast.shape == [n, 7])
        let scale = reference.array.map(abs).max()!
        let err = zip(fast.array, reference.array).map { abs($0 - $1) }.max()!
        #expect(err <= 1e-4 * scale, "\(n)×\(h)×\(w): max error \(err) (scale \(scale))")
    }

    /// Images in one batch must not share workspace: each image alone gives the same scores as in the batch.
    @Test func batchedImagesAreIndependent() throws {
        let model = try MiniXception(weights: WeightFile(path: Self.weights))
        let (n, h, w) = (5, 64, 64)
        let x = Tensor(shape: [n, h, w, 1], values: values(n * h * w, seed: 9))
        let batched = model.logits(nhwc: x)
        for i in 0..<n {
            let one = Tensor(shape: [1, h, w, 1], values: Array(x.array[(i * h * w)..<((i + 1) * h * w)]))
            #expect(model.logits(nhwc: one).array == Array(batched.array[(i * 7)..<((i + 1) * 7)]))
        }
    }

    /// One image splits its larger layers by rows across the threads: every thread count gives the same bits
    /// as one thread (each output keeps its order of operations), on maps that split unevenly and at sizes
    /// where only some layers split.
    @Test(arguments: [(64, 64), (48, 53), (21, 37)])
    func singleImageRowSplitIsExact(h: Int, w: Int) throws {
        let model = try MiniXception(weights: WeightFile(path: Self.weights))
        let x = Tensor(shape: [1, h, w, 1], values: values(h * w, seed: UInt64(h * 7 + w)))
        let saved = Threading.threads
        defer { Threading.setThreads(saved) }
        Threading.setThreads(1)
        let one = model.logits(nhwc: x).array
        for t in [2, 3, 5, 8] {
            Threading.setThreads(t)
            #expect(model.logits(nhwc: x).array == one, "\(h)×\(w) at \(t) threads")
        }
        let reference = model.layerwiseLogits(nhwc: x).array
        let scale = reference.map(abs).max()!
        #expect(zip(one, reference).allSatisfy { abs($0 - $1) <= 1e-4 * scale })
    }

    /// The committed weights re-wired through their config: `edit` changes the parsed `affect.config`.
    func rewired(_ tag: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let src = try SafeTensorsFile(path: Self.weights)
        var meta = src.metadata
        var config = try JSONSerialization.jsonObject(with: Data(meta["affect.config"]!.utf8)) as! [String: Any]
        edit(&config)
        meta["affect.config"] = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        var writer = SafeTensorsWriter(metadata: meta)
        for t in src.tensors { writer.add(t.name, try src.tensor(t)) }
        let path = Scratch.path("mxc-\(tag).safetensors")
        try writer.write(to: path)
        return path
    }

    /// Stems of one and three convs (the last writes the bordered map; three ping-pong between buffers) and
    /// 2×2 pooling windows take the fast path too and agree with the layer-by-layer one.
    @Test(arguments: ["stem1", "stem3", "pool2"])
    func rewiredNetworksMatchLayerwise(variant: String) throws {
        let path = try rewired(variant) { config in
            var stem = config["stem"] as! [[String: Any]]
            var modules = config["modules"] as! [[String: Any]]
            switch variant {
            case "stem1": stem = [stem[0]]
            case "stem3": stem.append(stem[1])
            default: for i in modules.indices { modules[i]["pool"] = 2 }
            }
            config["stem"] = stem
            config["modules"] = modules
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try MiniXception(weights: WeightFile(path: path))
        #expect(model.usesSingleImagePlan)
        for (n, h, w) in [(2, 64, 64), (1, 19, 23)] {
            let x = Tensor(shape: [n, h, w, 1], values: values(n * h * w, seed: 5))
            let fast = model.logits(nhwc: x), reference = model.layerwiseLogits(nhwc: x)
            let scale = reference.array.map(abs).max()!
            let err = zip(fast.array, reference.array).map { abs($0 - $1) }.max()!
            #expect(err <= 1e-4 * scale, "\(variant) \(h)×\(w): max error \(err) (scale \(scale))")
        }
    }

    @Test func zeroPoolingWindowIsABadWeightFile() throws {
        let path = try rewired("pool0") { config in
            var modules = config["modules"] as! [[String: Any]]
            modules[1]["pool"] = 0
            config["modules"] = modules
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try MiniXception(weights: WeightFile(path: path))
            Issue.record("a pooling window of 0 was accepted")
        } catch let error as AffectError {
            #expect("\(error)".contains(path) && "\(error)".contains("pool"))
        }
    }

    @Test func tooSmallAnImageIsABadInput() throws {
        let model = try MiniXception(weights: WeightFile(path: Self.weights))
        let inputs = ModelInputs(floats: ["pixels": Tensor.filled([1, 1, 4, 64], with: 0)])
        #expect(throws: AffectError.self) { try model.run(inputs, source: "tiny.safetensors") }
    }
}
