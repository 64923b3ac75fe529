import Foundation
import AffectKernels

/// A converted weight file (<doc:FileFormats#Weight-file>): a validated safetensors file plus its `affect.*` metadata.
public struct WeightFile: @unchecked Sendable {
    public let path: String
    public let file: SafeTensorsFile
    /// `affect.arch`.
    public let arch: String
    /// `affect.config` (architecture hyper-parameters).
    public let config: [String: Any]
    /// `affect.labels`, where the model classifies.
    public let labels: [String]
    /// `affect.preprocess`.
    public let preprocess: [String: Any]
    /// The precision the transformer encoders' linear layers and EfficientNet's expansions and head load at
    /// (``Precision/int8``: quantised per output channel at load, inputs per row or pixel at run time).
    /// Embeddings, norms, other convolutions and heads stay float32.
    public var precision: Precision = .float32

    /// Every `affect.arch` the engine runs (``Architectures/all``).
    public static var knownArchitectures: [String] { Architectures.all.map(\.name) }

    public init(path: String, precision: Precision = .float32) throws {
        try self.init(file: SafeTensorsFile(path: path), precision: precision)
    }

    public init(file: SafeTensorsFile, precision: Precision = .float32) throws {
        self.file = file
        self.precision = precision
        path = file.path
        guard let a = file.metadata["affect.arch"] else {
            throw AffectError.badInput("\(path): metadata `affect.arch` is missing; this is not an Affect weight file (convert it with Tools/convert.py).")
        }
        arch = a
        func object(_ key: String) throws -> [String: Any] {
            guard let v = try file.jsonMetadata(key) else { return [:] }
            guard let d = v as? [String: Any] else { throw AffectError.badInput("\(file.path): metadata `\(key)` is not a JSON object.") }
            return d
        }
        config = try object("affect.config")
        preprocess = try object("affect.preprocess")
        if let v = try file.jsonMetadata("affect.labels") {
            guard let l = v as? [String] else { throw AffectError.badInput("\(file.path): metadata `affect.labels` is not a JSON array of strings.") }
            labels = l
        } else { labels = [] }
    }

    /// A required tensor, checked against `shape` when given (−1 matches any size; any other negative size
    /// matches nothing). Every tensor is checked to have no empty dimension and only finite values (one
    /// vectorised scan): the forward passes index by these shapes and never meet a NaN or an infinity from the file.
    public func tensor(_ name: String, shape: [Int]? = nil) throws -> Tensor {
        guard let info = file.info(name) else {
            throw AffectError.badInput("\(path): tensor `\(name)` is missing (arch \(arch)).")
        }
        if let s = shape {
            guard info.shape.count == s.count, zip(info.shape, s).allSatisfy({ $1 == -1 || $0 == $1 }) else {
                throw AffectError.badInput("\(path): tensor `\(name)` has shape \(info.shape), expected [\(s.map { $0 == -1 ? "?" : String($0) }.joined(separator: ", "))].")
            }
        }
        guard !info.shape.contains(0) else {
            throw AffectError.badInput("\(path): tensor `\(name)` has shape \(info.shape), with an empty dimension.")
        }
        guard info.dtype.isFloat else {
            throw AffectError.badInput("\(path): tensor `\(name)` is \(info.dtype.rawValue), expected a float type.")
        }
        let t = try file.tensor(info)
        if let i = firstNonFinite(t.data, count: t.count) {
            throw AffectError.badInput("\(path): tensor `\(name)` holds \(t.data[i]) at index \(i); weights must be finite.")
        }
        return t
    }

    public func optionalTensor(_ name: String, shape: [Int]? = nil) throws -> Tensor? {
        file.contains(name) ? try tensor(name, shape: shape) : nil
    }

    public func contains(_ name: String) -> Bool { file.contains(name) }
    public func shape(_ name: String) -> [Int]? { file.info(name)?.shape }

    /// Config values, with a clear error when present but of the wrong type. Numbers come through the bounded
    /// accessors (``configInt(_:default:in:)``, ``configDouble(_:default:in:)``, ``configInts(_:default:in:count:)``).
    public func configString(_ key: String, default d: String? = nil) throws -> String {
        if let v = config[key] as? String { return v }
        if config[key] == nil, let d { return d }
        throw AffectError.badInput("\(path): config `\(key)` is missing or not a string.")
    }
    public func configBool(_ key: String, default d: Bool) -> Bool {
        (config[key] as? NSNumber)?.boolValue ?? d
    }

    /// Throws unless the file's arch is one of `expected`.
    public func require(arch expected: String...) throws {
        guard expected.contains(arch) else {
            throw AffectError.badInput("\(path): this is a `\(arch)` weight file, expected \(expected.joined(separator: " or ")).")
        }
    }

    public var parameterCount: Int { file.tensors.reduce(0) { $0 + $1.count } }
}
