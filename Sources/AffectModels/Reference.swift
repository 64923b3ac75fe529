import Foundation
import AffectKernels

/// A reference file (<doc:FileFormats#Reference-file>): `input.*` tensors a model receives and `output.*` tensors the reference
/// framework produced from them.
public struct ReferenceFile: Sendable {
    public let path: String
    public let inputs: ModelInputs
    public let outputs: [String: Tensor]
    /// `affect.reference` metadata (framework, version, model) as text, if present.
    public let provenance: [String: String]

    public init(path: String) throws {
        let f = try SafeTensorsFile(path: path)
        self.path = path
        var inputs = ModelInputs()
        var outputs: [String: Tensor] = [:]
        for t in f.tensors {
            if t.name.hasPrefix("input.") {
                let n = String(t.name.dropFirst(6))
                if t.dtype.isFloat { inputs.floats[n] = try f.tensor(t) } else { inputs.ints[n] = try f.intTensor(t.name) }
            } else if t.name.hasPrefix("output.") {
                guard t.dtype.isFloat else { continue }
                outputs[String(t.name.dropFirst(7))] = try f.tensor(t)
            }
        }
        if inputs.floats.isEmpty && inputs.ints.isEmpty {
            throw AffectError.badInput("\(path): the file has no `input.*` tensors.")
        }
        self.inputs = inputs
        self.outputs = outputs
        provenance = ((try? f.jsonMetadata("affect.reference") as? [String: Any]) ?? [:]).mapValues { "\($0)" }
    }
}

/// How far one of our outputs is from the reference's.
public struct OutputComparison: Sendable {
    public let name: String
    public let shape: [Int]
    public let referenceShape: [Int]
    public let maxAbsError: Double
    /// `maxAbsError / max|reference|`.
    public let relativeError: Double
    public let cosine: Double
    /// The fraction of rows (over the last axis) whose largest value is at the same index in both: top-1
    /// agreement of logits. 1 for a rank-0 tensor.
    public let topOneAgreement: Double
    public var shapesMatch: Bool { shape == referenceShape }

    public func passes(tolerance: Double) -> Bool { shapesMatch && relativeError <= tolerance }

    /// The stated bound of ``Precision/int8`` against a float32 reference: cosine ≥ ``int8MinCosine`` for every
    /// output, and for logits (`logits`, `*.logits`) also top-1 agreement on ≥ ``int8MinTopOne`` of the rows.
    public var passesInt8Bound: Bool {
        guard shapesMatch, cosine >= Self.int8MinCosine else { return false }
        return !isLogits || topOneAgreement >= Self.int8MinTopOne
    }
    /// Whether the output holds class scores (`logits`, `*.logits`, `*_logits`), so top-1 agreement means something.
    public var isLogits: Bool { name == "logits" || name.hasSuffix(".logits") || name.hasSuffix("_logits") }
    public static let int8MinCosine = 0.999
    public static let int8MinTopOne = 0.99

    public init(name: String, ours: Tensor, reference: Tensor) {
        self.name = name
        shape = ours.shape; referenceShape = reference.shape
        guard ours.shape == reference.shape else {
            maxAbsError = .infinity; relativeError = .infinity; cosine = .nan; topOneAgreement = 0
            return
        }
        var maxAbs = 0.0, maxRef = 0.0, dot = 0.0, na = 0.0, nb = 0.0
        let a = ours.data, b = reference.data
        var nonFinite = false
        for i in 0..<ours.count {
            let x = Double(a[i]), y = Double(b[i])
            if !x.isFinite || !y.isFinite {
                // Matching infinities (e.g. masked scores) agree; anything else is a mismatch.
                if !(x == y) { nonFinite = true }
                continue
            }
            maxAbs = max(maxAbs, abs(x - y)); maxRef = max(maxRef, abs(y))
            dot += x * y; na += x * x; nb += y * y
        }
        maxAbsError = nonFinite ? .infinity : maxAbs
        relativeError = nonFinite ? .infinity : (maxRef > 0 ? maxAbs / maxRef : (maxAbs == 0 ? 0 : .infinity))
        cosine = (na > 0 && nb > 0) ? dot / (na.squareRoot() * nb.squareRoot()) : (na == nb ? 1 : 0)
        let width = ours.shape.last ?? 1, rows = width > 0 ? ours.count / width : 0
        var agree = 0
        for r in 0..<rows {
            var (ia, ib) = (0, 0)
            for j in 1..<max(width, 1) {
                if a[r * width + j] > a[r * width + ia] { ia = j }
                if b[r * width + j] > b[r * width + ib] { ib = j }
            }
            if ia == ib { agree += 1 }
        }
        topOneAgreement = rows > 0 ? Double(agree) / Double(rows) : 1
    }
}

public enum Verification {
    /// Runs `model` on the reference's inputs and compares every output the reference holds.
    /// Outputs the reference has but the model does not produce are reported as missing.
    public static func verify(_ model: any InferenceModel, _ ref: ReferenceFile) throws -> (compared: [OutputComparison], missing: [String]) {
        let ours = try model.run(ref.inputs, source: ref.path)
        var compared: [OutputComparison] = []
        var missing: [String] = []
        for name in ref.outputs.keys.sorted() {
            guard let o = ours[name] else { missing.append(name); continue }
            compared.append(OutputComparison(name: name, ours: o, reference: ref.outputs[name]!))
        }
        return (compared, missing)
    }
}
