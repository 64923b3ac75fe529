import Foundation
import AffectKernels

/// A reference file (<doc:FileFormats#Reference-file>): `input.*` tensors a model receives and `output.*` tensors the reference
/// framework produced from them.
public struct ReferenceFile: @unchecked Sendable {
    public let path: String
    public let inputs: ModelInputs
    public let outputs: [String: Tensor]
    /// `affect.reference` metadata (framework, version, model), if present.
    public let provenance: [String: Any]

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
        provenance = (try? f.jsonMetadata("affect.reference") as? [String: Any]) ?? [:]
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
    public var shapesMatch: Bool { shape == referenceShape }

    public func passes(tolerance: Double) -> Bool { shapesMatch && relativeError <= tolerance }

    public init(name: String, ours: Tensor, reference: Tensor) {
        self.name = name
        shape = ours.shape; referenceShape = reference.shape
        guard ours.shape == reference.shape else {
            maxAbsError = .infinity; relativeError = .infinity; cosine = .nan
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
