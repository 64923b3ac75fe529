import AffectKernels

/// A trainable multilayer perceptron `Dense(h₁) ReLU [dropout] … Dense(n)`, the seed's heads (one hidden
/// layer of 128) and, with no hidden layer, logistic or linear regression.
///
/// ```
/// X [B, D] ─ Z₁ = X·W₁ᵀ + b₁ ─ ReLU ─ dropout ─ … ─ Z = A·Wₙᵀ + bₙ (logits; the loss applies the output)
/// ```
///
/// Weights use PyTorch's `nn.Linear` layout `[out, in]` and initialisation (uniform in ±1/√in for weights
/// and biases), all in one contiguous buffer so Adam updates every parameter in one pass. Forward and
/// backward passes are GEMMs (``TrainingGEMM``), so a result never depends on the thread count.
public final class MLP {
    /// Layer widths `[D, h₁, …, n]`.
    public let widths: [Int]
    /// Every weight and bias: layer l's weight `[widths[l+1], widths[l]]`, then its bias.
    public let parameters: UnsafeMutablePointer<Float>
    public let parameterCount: Int
    let weightOffsets: [Int]
    let biasOffsets: [Int]

    public var layerCount: Int { widths.count - 1 }
    public var inputWidth: Int { widths[0] }
    public var outputWidth: Int { widths[widths.count - 1] }

    /// A network of `widths` with PyTorch's default initialisation drawn from `random`.
    public convenience init(widths: [Int], random: inout SeededRandom) {
        self.init(widths: widths)
        for l in 0..<layerCount {
            let bound = 1 / Float(widths[l]).squareRoot()
            let w = weight(l), b = bias(l)
            for i in 0..<(widths[l] * widths[l + 1]) { w[i] = (random.unit() * 2 - 1) * bound }
            for i in 0..<widths[l + 1] { b[i] = (random.unit() * 2 - 1) * bound }
        }
    }

    /// A network with the given weights (`[out, in]`, row-major) and biases, layer by layer.
    public convenience init(widths: [Int], weights: [[Float]], biases: [[Float]]) throws {
        guard weights.count == widths.count - 1, biases.count == widths.count - 1 else {
            throw AffectError.badInput("an MLP of \(widths.count - 1) layers needs as many weights and biases, got \(weights.count) and \(biases.count).")
        }
        self.init(widths: widths)
        for l in 0..<layerCount {
            guard weights[l].count == widths[l] * widths[l + 1], biases[l].count == widths[l + 1] else {
                throw AffectError.badInput("layer \(l) needs a \(widths[l + 1])×\(widths[l]) weight and \(widths[l + 1]) biases, got \(weights[l].count) and \(biases[l].count) values.")
            }
            weights[l].withUnsafeBufferPointer { weight(l).update(from: $0.baseAddress!, count: $0.count) }
            biases[l].withUnsafeBufferPointer { bias(l).update(from: $0.baseAddress!, count: $0.count) }
        }
    }

    private init(widths: [Int]) {
        precondition(widths.count >= 2 && widths.allSatisfy { $0 > 0 }, "MLP widths must be positive, got \(widths)")
        self.widths = widths
        var w: [Int] = [], b: [Int] = [], n = 0
        for l in 0..<(widths.count - 1) {
            w.append(n); n += widths[l] * widths[l + 1]
            b.append(n); n += widths[l + 1]
        }
        weightOffsets = w; biasOffsets = b; parameterCount = n
        parameters = .allocate(capacity: n)
        parameters.initialize(repeating: 0, count: n)
    }

    deinit { parameters.deallocate() }

    /// Layer `l`'s weight `[widths[l+1], widths[l]]`.
    public func weight(_ l: Int) -> UnsafeMutablePointer<Float> { parameters + weightOffsets[l] }
    /// Layer `l`'s bias `[widths[l+1]]`.
    public func bias(_ l: Int) -> UnsafeMutablePointer<Float> { parameters + biasOffsets[l] }

    public func weightArray(_ l: Int) -> [Float] { Array(UnsafeBufferPointer(start: weight(l), count: widths[l] * widths[l + 1])) }
    public func biasArray(_ l: Int) -> [Float] { Array(UnsafeBufferPointer(start: bias(l), count: widths[l + 1])) }

    /// A copy of every parameter (the best epoch's weights, kept for early stopping).
    public func snapshot() -> [Float] { Array(UnsafeBufferPointer(start: parameters, count: parameterCount)) }

    public func restore(_ values: [Float]) {
        precondition(values.count == parameterCount)
        values.withUnsafeBufferPointer { parameters.update(from: $0.baseAddress!, count: parameterCount) }
    }
}

/// Activations, dropout masks and gradients of one batch: allocated once for the largest batch and reused
/// by every step, so training allocates nothing per batch.
public final class MLPWorkspace {
    public let capacity: Int
    let widths: [Int]
    /// Outputs of layers 1…L (after ReLU and dropout for hidden layers, logits for the last).
    let outputs: [UnsafeMutablePointer<Float>]
    /// Dropout scales (0 or 1/(1−p)) of hidden layers' outputs.
    let masks: [UnsafeMutablePointer<Float>]
    /// Gradients with respect to each layer's output (pre-activation for hidden layers once back-propagated).
    let gradients: [UnsafeMutablePointer<Float>]
    /// Parameter gradients, laid out as ``MLP/parameters``.
    public let parameterGradients: UnsafeMutablePointer<Float>
    let parameterCount: Int
    /// Double-precision column sums for the bias gradients (the widest layer).
    let biasSums: UnsafeMutablePointer<Double>
    var maskUsed = false

    public init(_ model: MLP, batch: Int) {
        let rows = max(1, batch), layerWidths = Array(model.widths.dropFirst())
        capacity = rows
        widths = model.widths
        outputs = layerWidths.map { UnsafeMutablePointer<Float>.allocate(capacity: rows * $0) }
        masks = layerWidths.map { UnsafeMutablePointer<Float>.allocate(capacity: rows * $0) }
        gradients = layerWidths.map { UnsafeMutablePointer<Float>.allocate(capacity: rows * $0) }
        parameterCount = model.parameterCount
        parameterGradients = .allocate(capacity: model.parameterCount)
        parameterGradients.initialize(repeating: 0, count: model.parameterCount)
        biasSums = .allocate(capacity: layerWidths.max() ?? 1)
    }

    deinit {
        for p in outputs + masks + gradients { p.deallocate() }
        parameterGradients.deallocate()
        biasSums.deallocate()
    }

    /// The last layer's output (logits) of the last forward pass, `[rows, n]`.
    public var logits: UnsafeMutablePointer<Float> { outputs[outputs.count - 1] }
    /// Where the loss writes ∂loss/∂logits before ``MLP/backward(input:rows:workspace:)``.
    public var logitGradient: UnsafeMutablePointer<Float> { gradients[gradients.count - 1] }
}

extension MLP {
    /// Forward pass of `rows` rows of `input` (`[rows, D]`, row-major) into `workspace`. With
    /// `dropout` > 0 (training), hidden outputs are zeroed with probability `dropout` and the rest scaled by
    /// 1/(1−dropout), as `nn.Dropout` does; masks are drawn from `random` serially, row by row.
    public func forward(input: UnsafePointer<Float>, rows: Int, workspace ws: MLPWorkspace,
                        dropout: Float = 0, random: inout SeededRandom) {
        precondition(rows <= ws.capacity && ws.widths == widths)
        ws.maskUsed = dropout > 0
        var x = input
        for l in 0..<layerCount {
            let (k, n) = (widths[l], widths[l + 1])
            let y = ws.outputs[l]
            TrainingGEMM.gemm(transA: false, transB: true, m: rows, n: n, k: k, a: x, lda: k, b: weight(l), ldb: k, c: y, ldc: n)
            let b = bias(l)
            let hidden = l < layerCount - 1
            parallelFor(rows, minChunk: max(1, 16_384 / n)) { r0, r1 in
                for r in r0..<r1 {
                    let row = y + r * n
                    for j in 0..<n { row[j] += b[j] }
                    if hidden { for j in 0..<n { row[j] = max(row[j], 0) } }
                }
            }
            if hidden && dropout > 0 {
                let mask = ws.masks[l], scale = 1 / (1 - dropout)
                for i in 0..<(rows * n) {
                    mask[i] = random.unit() < dropout ? 0 : scale
                    y[i] *= mask[i]
                }
            }
            x = UnsafePointer(y)
        }
    }

    /// Forward pass without dropout: the logits of `rows` rows, `[rows, n]`, in `workspace.logits`.
    public func predict(input: UnsafePointer<Float>, rows: Int, workspace: MLPWorkspace) {
        var unused = SeededRandom(seed: 0)
        forward(input: input, rows: rows, workspace: workspace, dropout: 0, random: &unused)
    }

    /// Backward pass after ``forward(input:rows:workspace:dropout:random:)`` on the same `input`, given
    /// ∂loss/∂logits in `workspace.logitGradient`: fills `workspace.parameterGradients`.
    public func backward(input: UnsafePointer<Float>, rows: Int, workspace ws: MLPWorkspace) {
        for l in stride(from: layerCount - 1, through: 0, by: -1) {
            let (k, n) = (widths[l], widths[l + 1])
            let g = ws.gradients[l]
            let x = l == 0 ? input : UnsafePointer(ws.outputs[l - 1])
            // ∂W = gᵀ·x [n, k]; ∂b = Σ_rows g.
            TrainingGEMM.gemm(transA: true, transB: false, m: n, n: k, k: rows, a: g, lda: n, b: x, ldb: k,
                              c: ws.parameterGradients + weightOffsets[l], ldc: k)
            // Row by row into double sums: contiguous, so it vectorises; serial, so the order never changes.
            let db = ws.parameterGradients + biasOffsets[l], sums = ws.biasSums
            sums.initialize(repeating: 0, count: n)
            for r in 0..<rows {
                let row = g + r * n
                for j in 0..<n { sums[j] += Double(row[j]) }
            }
            for j in 0..<n { db[j] = Float(sums[j]) }
            guard l > 0 else { break }
            // ∂x = g·W [rows, k], then through dropout and ReLU of layer l−1's output.
            let dx = ws.gradients[l - 1]
            TrainingGEMM.gemm(transA: false, transB: false, m: rows, n: k, k: n, a: g, lda: n, b: weight(l), ldb: k, c: dx, ldc: k)
            let out = ws.outputs[l - 1], mask = ws.masks[l - 1], masked = ws.maskUsed
            parallelFor(rows * k, minChunk: 16_384) { i0, i1 in
                for i in i0..<i1 {
                    // A unit dropped by the mask has output 0 and gets no gradient either way.
                    dx[i] = out[i] > 0 ? (masked ? dx[i] * mask[i] : dx[i]) : 0
                }
            }
        }
    }
}
