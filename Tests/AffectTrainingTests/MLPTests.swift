import Foundation
import Testing
import AffectKernels
import AffectTraining

let fitFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/fit").path

/// 50 full-batch Adam steps from PyTorch's initial weights against PyTorch's own 50 steps, one case per loss
/// (fixtures from `Tools/make_fit_reference.py Tests/Fixtures/fit`).
@Suite struct MLPTests {
    static let cases = ["ce", "ce_decay", "ccc", "bce", "mse", "gate"]

    @Test(arguments: cases)
    func fiftyAdamStepsMatchPyTorch(_ name: String) throws {
        let f = try SafeTensorsFile(path: "\(fitFixtures)/\(name).safetensors")
        let x = try f.tensor("x"), targets = try f.tensor("targets")
        let layers = Int(f.metadata["layers"] ?? "") ?? 0
        try #require(layers >= 1)
        var widths = [x.shape[1]]
        var weights: [[Float]] = [], biases: [[Float]] = []
        for l in 0..<layers {
            let w = try f.tensor("init.\(l).weight")
            widths.append(w.shape[0]); weights.append(w.array); biases.append(try f.tensor("init.\(l).bias").array)
        }
        let model = try MLP(widths: widths, weights: weights, biases: biases)
        let loss: Loss
        switch f.metadata["loss"] {
        case "ce": loss = .crossEntropy(classWeights: try f.tensor("class_weights").array)
        case "ccc": loss = .concordance
        case "bce", "gate": loss = .binaryCrossEntropy
        case "mse": loss = .meanSquaredError
        default: Issue.record("unknown loss \(f.metadata["loss"] ?? "")"); return
        }
        let adam = Adam(parameterCount: model.parameterCount, learningRate: Double(f.metadata["lr"] ?? "") ?? 0,
                        weightDecay: Double(f.metadata["weight_decay"] ?? "") ?? -1)
        let rows = x.shape[0]
        let ws = MLPWorkspace(model, batch: rows)
        var random = SeededRandom(seed: 0)
        let referenceLosses = try f.tensor("losses").array
        for step in 0..<referenceLosses.count {
            model.forward(input: x.data, rows: rows, workspace: ws, random: &random)
            let value = loss.evaluate(logits: ws.logits, targets: targets.data, rows: rows, outputs: model.outputWidth,
                                      gradient: ws.logitGradient)
            #expect(abs(value - Double(referenceLosses[step])) <= 1e-5 * max(1, abs(Double(referenceLosses[step]))),
                    "\(name) step \(step): loss \(value) vs PyTorch \(referenceLosses[step])")
            model.backward(input: x.data, rows: rows, workspace: ws)
            adam.update(model.parameters, gradients: ws.parameterGradients)
        }
        for l in 0..<layers {
            for (what, ours) in [("weight", model.weightArray(l)), ("bias", model.biasArray(l))] {
                let ref = try f.tensor("final.\(l).\(what)").array
                let scale = ref.map { abs($0) }.max() ?? 1
                let err = zip(ours, ref).map { abs($0 - $1) }.max() ?? 0
                #expect(err <= 1e-5 * scale, "\(name) layer \(l) \(what): max error \(err) relative to \(scale)")
            }
        }
    }

    /// The analytic gradient of every loss (through ReLU and dropout) against central differences in double
    /// precision of the same forward pass.
    @Test(arguments: [Loss.crossEntropy(classWeights: [1, 2, 0.5]), .binaryCrossEntropy, .meanSquaredError, .concordance])
    func gradientsMatchFiniteDifferences(_ loss: Loss) throws {
        var random = SeededRandom(seed: 7)
        let rows = 9, d = 5, n = 3
        let model = MLP(widths: [d, 6, n], random: &random)
        let x = (0..<(rows * d)).map { _ in random.unit() * 2 - 1 }
        let t: [Float] = {
            switch loss {
            case .crossEntropy: return (0..<rows).map { Float($0 % n) }
            case .binaryCrossEntropy: return (0..<(rows * n)).map { Float($0 % 2) }
            default: return (0..<(rows * n)).map { _ in random.unit() * 1.6 - 0.8 }
            }
        }()
        let ws = MLPWorkspace(model, batch: rows)
        // One fixed dropout mask: the same random stream replayed for every evaluation.
        func lossValue() -> Double {
            var r = SeededRandom(seed: 99)
            model.forward(input: x, rows: rows, workspace: ws, dropout: 0.3, random: &r)
            return loss.evaluate(logits: ws.logits, targets: t, rows: rows, outputs: n, gradient: ws.logitGradient)
        }
        _ = lossValue()
        model.backward(input: x, rows: rows, workspace: ws)
        let analytic = Array(UnsafeBufferPointer(start: ws.parameterGradients, count: model.parameterCount))
        for i in stride(from: 0, to: model.parameterCount, by: 3) {
            let saved = model.parameters[i], h: Float = 1e-2
            model.parameters[i] = saved + h; let up = lossValue()
            model.parameters[i] = saved - h; let down = lossValue()
            model.parameters[i] = saved
            let numeric = (up - down) / Double(2 * h)
            #expect(abs(numeric - Double(analytic[i])) <= 2e-3 + 2e-2 * abs(numeric), "\(loss) parameter \(i): \(analytic[i]) vs \(numeric)")
        }
    }

    @Test func seededRandomIsStableAndUniform() {
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
        let sa = (0..<8).map { _ in a.next() }, sb = (0..<8).map { _ in b.next() }, sc = (0..<8).map { _ in c.next() }
        #expect(sa == sb && sa != sc)
        var r = SeededRandom(seed: 1)
        var order = (0..<Int32(1000)).map { $0 }
        r.shuffle(&order)
        #expect(Set(order).count == 1000 && order != (0..<Int32(1000)).map { $0 })
        let mean = (0..<10_000).reduce(0.0) { s, _ in s + Double(r.unit()) } / 10_000
        #expect(abs(mean - 0.5) < 0.02)
    }
}
