import Foundation
import AffectKernels

/// Hyper-parameters of a fit (the `affect fit` options), with the seed's head as the default shape.
public struct TrainingSettings: Sendable {
    /// Hidden layer widths (`[128]`: the seed's MLP; `[]`: logistic or linear regression).
    public var hidden: [Int] = [128]
    public var epochs = 30
    public var batchSize = 256
    public var learningRate = 1e-3
    /// L2 weight decay as `torch.optim.Adam` applies it (added to the gradient).
    public var weightDecay = 0.0
    /// Dropout probability on hidden outputs, in [0, 0.95].
    public var dropout: Float = 0
    public var seed: UInt64 = 0
    /// Epochs without a better validation metric before training stops.
    public var patience = 5
    /// Per-class loss weights for EXPR (nil: all 1).
    public var classWeights: [Float]?

    public init() {}

    /// Bounds every setting: a fit never starts on values that cannot finish or cannot mean anything.
    public func validate() throws {
        func check(_ ok: Bool, _ m: String) throws { if !ok { throw AffectError.badUsage(m) } }
        try check(hidden.count <= 8 && hidden.allSatisfy { (1...65_536).contains($0) }, "hidden widths must be 1 to 65536 (at most 8 layers), got \(hidden).")
        try check((1...100_000).contains(epochs), "epochs must be between 1 and 100000, got \(epochs).")
        try check((1...65_536).contains(batchSize), "the batch size must be between 1 and 65536, got \(batchSize).")
        try check(learningRate > 0 && learningRate <= 10, "the learning rate must be above 0 and at most 10, got \(learningRate).")
        try check(weightDecay >= 0 && weightDecay <= 10, "the weight decay must be between 0 and 10, got \(weightDecay).")
        try check(dropout >= 0 && dropout <= 0.95, "dropout must be between 0 and 0.95, got \(dropout).")
        try check((1...100_000).contains(patience), "patience must be between 1 and 100000 epochs, got \(patience).")
        if let w = classWeights {
            try check(w.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1e6 } && w.contains { $0 > 0 },
                      "class weights must be between 0 and 1000000, not all 0, got \(w).")
        }
    }
}

/// One epoch's figures, as printed and logged.
public struct EpochRecord: Sendable {
    public let epoch: Int
    /// Mean training loss over the epoch's batches (weighted by their rows).
    public let trainLoss: Double
    /// The validation metric after the epoch (nil without a validation set).
    public let metric: Double?
    /// Whether this epoch's weights are the best so far (kept).
    public let best: Bool
    public let seconds: Double
}

/// What a fit produced: the kept weights and how they were chosen.
public struct FitResult {
    public let model: MLP
    public let records: [EpochRecord]
    /// The epoch whose weights were kept (1-based).
    public let bestEpoch: Int
    public let bestMetric: Double?
    /// AU thresholds tuned on validation for the kept weights.
    public let thresholds: [Float]?
    /// True when patience ran out before `epochs`.
    public let stoppedEarly: Bool
}

/// Trains a head with mini-batch Adam: a seeded shuffle every epoch, the task's loss, early stopping on the
/// validation metric. Every random draw (initial weights, shuffles, dropout masks) comes from one seeded
/// stream in a fixed order and every product from ``TrainingGEMM``, so the same settings give the same
/// weights on 1 or 2 threads.
public final class HeadTrainer {
    public let task: TrainingTask
    public let settings: TrainingSettings
    public let model: MLP
    let adam: Adam
    var random: SeededRandom

    /// The most trainable parameters of a head: 2^26 (256 MiB per copy; training keeps five copies).
    public static let maxParameters = 1 << 26
    /// The most floats of one batch's input or of one activation buffer set: 2^27 (512 MiB).
    public static let maxBatchValues = 1 << 27

    public init(task: TrainingTask, settings: TrainingSettings, inputWidth: Int) throws {
        try settings.validate()
        guard (1...1 << 20).contains(inputWidth) else { throw AffectError.badInput("feature width \(inputWidth) is out of range (1 to 1048576).") }
        if let w = settings.classWeights, task != .expr || w.count != task.outputs {
            throw AffectError.badUsage(task == .expr ? "EXPR needs \(task.outputs) class weights, got \(w.count)." : "class weights apply to EXPR only.")
        }
        self.task = task
        self.settings = settings
        random = SeededRandom(seed: settings.seed)
        let hidden = task == .gate ? [] : settings.hidden
        let widths = [inputWidth] + hidden + [task.outputs]
        // Widths are bounded (2^20 and 2^16, 8 layers), so this sum cannot overflow; the model, its gradient,
        // Adam's two moments and the best epoch's copy each take 4 bytes per parameter.
        let parameters = zip(widths, widths.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 + $1.1 }
        guard parameters <= Self.maxParameters else {
            throw AffectError.badUsage("a head of widths \(widths) has \(parameters) parameters, more than the \(Self.maxParameters) a fit trains (5 copies of 4 bytes each); use a smaller --hidden or narrower features.")
        }
        model = MLP(widths: widths, random: &random)
        adam = Adam(parameterCount: model.parameterCount, learningRate: settings.learningRate, weightDecay: settings.weightDecay)
    }

    /// Class weights `N / (C · count_c)` (scikit-learn's "balanced"); classes absent from the training set get 0.
    public static func balancedClassWeights(_ rows: LabelledRows, classes: Int) -> [Float] {
        var counts = [Int](repeating: 0, count: classes)
        for i in 0..<rows.count { counts[Int(rows.targets[i])] += 1 }
        return counts.map { $0 > 0 ? Float(Double(rows.count) / Double(classes * $0)) : 0 }
    }

    /// Trains on `train`, choosing the epoch by `validation` when given (else the last epoch is kept).
    /// `progress` is called after every epoch.
    public func fit(train: LabelledRows, validation: LabelledRows?, progress: (EpochRecord) -> Void = { _ in }) throws -> FitResult {
        guard train.features.width == model.inputWidth, validation.map({ $0.features.width == model.inputWidth }) ?? true else {
            throw AffectError.badInput("training and validation features must both be \(model.inputWidth) wide.")
        }
        let loss = task.loss(classWeights: settings.classWeights)
        let batch = min(settings.batchSize, train.count)
        let activations = 3 * model.widths.dropFirst().reduce(0, +)      // outputs, masks and gradients per row
        guard batch * model.inputWidth <= Self.maxBatchValues, batch * activations <= Self.maxBatchValues else {
            throw AffectError.badUsage("a batch of \(batch) rows of \(model.inputWidth) features (hidden \(model.widths.dropFirst().dropLast())) needs more than \(Self.maxBatchValues) floats of memory; use a smaller --batch-size.")
        }
        let ws = MLPWorkspace(model, batch: batch)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: batch * model.inputWidth)
        let t = UnsafeMutablePointer<Float>.allocate(capacity: batch * train.targetWidth)
        defer { x.deallocate(); t.deallocate() }
        var order = (0..<Int32(train.count)).map { $0 }
        var rows = [Int32](repeating: 0, count: batch)
        var records: [EpochRecord] = []
        var best: (epoch: Int, metric: Double, weights: [Float], thresholds: [Float]?)?
        var stale = 0
        for epoch in 1...settings.epochs {
            let started = Date()
            random.shuffle(&order)
            var total = 0.0
            var start = 0
            while start < train.count {
                let n = min(batch, train.count - start)
                for i in 0..<n {
                    let s = Int(order[start + i])
                    rows[i] = train.rows[s]
                    for j in 0..<train.targetWidth { t[i * train.targetWidth + j] = train.targets[s * train.targetWidth + j] }
                }
                rows.withUnsafeBufferPointer { train.features.gather(UnsafeBufferPointer(rebasing: $0[0..<n]), into: x) }
                total += Double(n) * step(input: x, targets: t, rows: n, loss: loss, workspace: ws)
                start += n
            }
            let trainLoss = total / Double(train.count)
            guard trainLoss.isFinite else {
                throw AffectError.badInput("training diverged at epoch \(epoch) (the loss is \(trainLoss)); lower the learning rate.")
            }
            var metric: Double?, improved = false
            if let validation {
                let (value, thresholds) = try evaluate(validation)
                metric = value
                if best == nil || value > best!.metric {
                    best = (epoch, value, model.snapshot(), thresholds); improved = true; stale = 0
                } else {
                    stale += 1
                }
            }
            let record = EpochRecord(epoch: epoch, trainLoss: trainLoss, metric: metric, best: improved,
                                     seconds: Date().timeIntervalSince(started))
            records.append(record)
            progress(record)
            if validation != nil && stale >= settings.patience { break }
        }
        if let best { model.restore(best.weights) }
        return FitResult(model: model, records: records, bestEpoch: best?.epoch ?? records.count, bestMetric: best?.metric,
                         thresholds: best?.thresholds, stoppedEarly: records.count < settings.epochs)
    }

    /// One Adam step on a batch `input` `[rows, D]` with `targets`; returns the batch loss.
    @discardableResult
    public func step(input: UnsafePointer<Float>, targets: UnsafePointer<Float>, rows: Int, loss: Loss, workspace ws: MLPWorkspace) -> Double {
        model.forward(input: input, rows: rows, workspace: ws, dropout: settings.dropout, random: &random)
        let value = loss.evaluate(logits: ws.logits, targets: targets, rows: rows, outputs: model.outputWidth, gradient: ws.logitGradient)
        model.backward(input: input, rows: rows, workspace: ws)
        adam.update(model.parameters, gradients: ws.parameterGradients)
        return value
    }

    /// The model's outputs (after the task's activation) for every row of `set`, `[set.count, outputs]`.
    public func predict(_ set: LabelledRows) -> [Float] {
        // Rows per pass: 1024, fewer for wide features, so the gathered input stays within 2^24 floats (64 MiB).
        let n = model.outputWidth, chunk = max(1, min(1024, (1 << 24) / (model.inputWidth + 3 * model.widths.dropFirst().reduce(0, +))))
        let ws = MLPWorkspace(model, batch: min(chunk, set.count))
        let x = UnsafeMutablePointer<Float>.allocate(capacity: min(chunk, set.count) * model.inputWidth)
        defer { x.deallocate() }
        var out = [Float](repeating: 0, count: set.count * n)
        var start = 0
        while start < set.count {
            let m = min(chunk, set.count - start)
            set.rows.withUnsafeBufferPointer { set.features.gather(UnsafeBufferPointer(rebasing: $0[start..<(start + m)]), into: x) }
            model.predict(input: x, rows: m, workspace: ws)
            task.activation.apply(ws.logits, rows: m, outputs: n)
            out.withUnsafeMutableBufferPointer { ($0.baseAddress! + start * n).update(from: ws.logits, count: m * n) }
            start += m
        }
        return out
    }

    /// The validation metric (and tuned AU thresholds) of the current weights on `set`.
    public func evaluate(_ set: LabelledRows) throws -> (Double, [Float]?) {
        let outputs = predict(set)
        if let i = outputs.firstIndex(where: { !$0.isFinite }) {
            throw AffectError.badInput("the head's output for validation row \(i / model.outputWidth) is \(outputs[i]); training diverged.")
        }
        return ValidationMetric.evaluate(task, outputs: outputs, targets: set.targets, rows: set.count)
    }
}
