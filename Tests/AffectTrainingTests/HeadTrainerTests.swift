import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectTraining
import AffectTestSupport

/// A synthetic task made in the test: `classes` Gaussian clusters in `width` dimensions, or targets that
/// are a smooth function of the features.
func syntheticRows(task: TrainingTask, rows: Int, width: Int, seed: UInt64, noise: Float = 0.6) throws -> LabelledRows {
    var r = SeededRandom(seed: seed)
    var centres = SeededRandom(seed: 1000)   // the same task for every seed
    let n = task.outputs
    let means = (0..<(8 * width)).map { _ in centres.unit() * 2 - 1 }
    let mix = (0..<(n * width)).map { _ in centres.unit() * 2 - 1 }
    let x = Tensor(uninitialized: [rows, width])
    var targets: [Float] = []
    for i in 0..<rows {
        let c = i % 8
        for j in 0..<width { x.data[i * width + j] = means[c * width + j] + noise * (r.unit() * 2 - 1) }
        switch task {
        case .expr: targets.append(Float(c))
        case .va, .emi:
            for k in 0..<n {
                var s: Float = 0
                for j in 0..<width { s += mix[k * width + j] * x.data[i * width + j] }
                let v = tanh(s / Float(width).squareRoot())
                targets.append(task == .va ? v : (v + 1) / 2)
            }
        case .au, .ah, .gate:
            for k in 0..<n { targets.append(x.data[i * width + k % width] > means[c * width + k % width] ? 1 : 0) }
        }
    }
    let features = try TrainingFeatures(parts: [.init(name: "synthetic", tensors: [x])])
    return try LabelledRows(features: features, rows: (0..<Int32(rows)).map { $0 }, targets: targets, targetWidth: task.targetWidth)
}

@Suite(.serialized) struct HeadTrainerTests {
    func settings(_ seed: UInt64 = 3) -> TrainingSettings {
        var s = TrainingSettings()
        s.epochs = 4; s.batchSize = 128; s.seed = seed; s.dropout = 0.2; s.weightDecay = 1e-4; s.patience = 10
        return s
    }

    /// The same settings give bit-identical weights on 1 and 2 threads (the products are big enough to be split).
    @Test func sameWeightsOnOneAndTwoThreads() throws {
        let train = try syntheticRows(task: .expr, rows: 1500, width: 300, seed: 1)
        let val = try syntheticRows(task: .expr, rows: 300, width: 300, seed: 2)
        let saved = Threading.threads
        defer { Threading.setThreads(saved) }
        var weights: [[Float]] = [], metrics: [Double?] = []
        for threads in [1, 2] {
            Threading.setThreads(threads)
            let trainer = try HeadTrainer(task: .expr, settings: settings(), inputWidth: 300)
            let result = try trainer.fit(train: train, validation: val)
            weights.append(result.model.snapshot()); metrics.append(result.bestMetric)
        }
        #expect(weights[0] == weights[1])
        #expect(metrics[0] == metrics[1])
        // Another seed gives other weights.
        let other = try HeadTrainer(task: .expr, settings: settings(4), inputWidth: 300).fit(train: train, validation: val)
        #expect(other.model.snapshot() != weights[0])
    }

    /// Every task learns its synthetic problem well above chance, and early stopping keeps the best epoch.
    @Test(arguments: [TrainingTask.expr, .va, .au, .ah, .emi, .gate])
    func learns(_ task: TrainingTask) throws {
        let train = try syntheticRows(task: task, rows: 2000, width: 24, seed: 5)
        let val = try syntheticRows(task: task, rows: 500, width: 24, seed: 6)
        var s = settings()
        s.epochs = 15; s.dropout = 0; s.learningRate = 3e-3
        let trainer = try HeadTrainer(task: task, settings: s, inputWidth: 24)
        var seen: [EpochRecord] = []
        let result = try trainer.fit(train: train, validation: val) { seen.append($0) }
        #expect(seen.count == result.records.count && !seen.isEmpty)
        #expect(seen.first!.trainLoss > seen.last!.trainLoss, "\(task): loss did not fall")
        let best = try #require(result.bestMetric)
        #expect(best == seen.compactMap(\.metric).max())
        #expect(seen[result.bestEpoch - 1].best)
        let floor: Double = [.expr: 0.9, .va: 0.6, .au: 0.6, .ah: 0.6, .emi: 0.6, .gate: 0.6][task]!
        #expect(best > floor, "\(task): \(task.metricName) \(best)")
        // The kept weights are the best epoch's: evaluating them again gives its metric.
        #expect(abs(try trainer.evaluate(val).0 - best) < 1e-12)
        if task == .au { #expect(result.thresholds?.count == 12) }
    }

    /// A head file written by HeadExport loads as an `MLPHead` and gives the trainer's outputs.
    @Test(arguments: [TrainingTask.expr, .va, .au, .ah, .emi, .gate])
    func exportedHeadMatchesTrainer(_ task: TrainingTask) throws {
        let val = try syntheticRows(task: task, rows: 40, width: 10, seed: 8)
        let trainer = try HeadTrainer(task: task, settings: settings(), inputWidth: 10)
        _ = try trainer.fit(train: val, validation: nil)
        let labels = (0..<task.outputs).map { "out\($0)" }
        let path = Scratch.path("fit-export-\(task.rawValue).safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try HeadExport.writer(trainer.model, task: task, labels: labels, training: ["epochs": 4]).write(to: path)
        let head = try MLPHead(path: path)
        #expect(head.inputWidth == 10)
        let x = Tensor(uninitialized: [40, 10])
        val.rows.withUnsafeBufferPointer { val.features.gather($0, into: x.data) }
        let probs = try head.predict(x)
        let ours = trainer.predict(val)
        if task == .gate {
            #expect(head.outputWidth == 2 && head.labels == ["0", "1"])
            for r in 0..<40 { #expect(abs(probs.data[2 * r + 1] - ours[r]) < 1e-5 && abs(probs.data[2 * r] - (1 - ours[r])) < 1e-5) }
        } else {
            #expect(head.outputWidth == task.outputs && head.labels == labels)
            let err = zip(probs.array, ours).map { abs($0 - $1) }.max() ?? 1
            #expect(err < 1e-5, "\(task): max difference \(err)")
        }
        let w = try WeightFile(path: path)
        #expect((try w.file.jsonMetadata("affect.training") as? [String: Any])?["epochs"] as? Int == 4)
    }

    @Test func settingsAreBounded() throws {
        let changes: [(inout TrainingSettings) -> Void] = [{ $0.epochs = 0 }, { $0.batchSize = 0 }, { $0.learningRate = .nan },
                                                          { $0.dropout = 1 }, { $0.weightDecay = -1 }, { $0.hidden = [0] }, { $0.classWeights = [0, 0] }]
        for change in changes {
            var s = TrainingSettings()
            change(&s)
            #expect(throws: AffectError.self) { try s.validate() }
        }
        var s = TrainingSettings()
        s.classWeights = [1, 2, 3]
        #expect(throws: AffectError.self) { try HeadTrainer(task: .expr, settings: s, inputWidth: 4) }
        #expect(throws: AffectError.self) { try HeadTrainer(task: .va, settings: s, inputWidth: 4) }
        // Bounded widths can still multiply to more memory than a machine has: refused before allocating.
        var wide = TrainingSettings()
        wide.hidden = [65_536]
        #expect(throws: AffectError.self) { try HeadTrainer(task: .expr, settings: wide, inputWidth: 1 << 20) }
        wide.hidden = [65_536, 65_536]
        #expect(throws: AffectError.self) { try HeadTrainer(task: .expr, settings: wide, inputWidth: 4) }
    }
}
