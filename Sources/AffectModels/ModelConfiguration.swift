import Foundation
import AffectKernels

/// An architecture's hyper-parameters as a `Decodable` value, decoded from a weight file's `affect.config`
/// (for Hugging Face models, the checkpoint's own `config.json` keys).
///
/// Each architecture declares its configuration once, as a struct whose `init(from:)` reads every key with its
/// default and its bound through the ``KeyedDecodingContainer`` helpers below (`int(_:default:in:)` and
/// friends), then checks relations between keys in ``validate()``. ``WeightFile/configuration(_:)`` decodes it
/// and turns any failure into one sentence naming the file and the key:
///
/// ```swift
/// struct Config: ModelConfiguration {
///     var hiddenSize = 768, heads = 12
///     enum CodingKeys: String, CodingKey { case hiddenSize = "hidden_size", heads = "num_attention_heads" }
///     init(from decoder: Decoder) throws {
///         let c = try decoder.container(keyedBy: CodingKeys.self)
///         hiddenSize = try c.int(.hiddenSize, default: 768, in: WeightFile.Limits.width)
///         heads = try c.int(.heads, default: 12, in: WeightFile.Limits.heads)
///     }
///     func validate() throws(ConfigurationError) {
///         guard hiddenSize % heads == 0 else { throw ConfigurationError("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads).") }
///     }
/// }
/// ```
public protocol ModelConfiguration: Decodable, Sendable {
    /// Relations between keys (divisibility, equal list lengths) once every key is in range.
    func validate() throws(ConfigurationError)
}

extension ModelConfiguration {
    public func validate() throws(ConfigurationError) {}
}

/// Why a configuration was refused: the message names the key (without the file, which the caller adds).
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension WeightFile {
    /// `affect.config` decoded as `C` (an absent config is an empty one: every key takes its default), bounds
    /// and relations checked; a failure is a ``AffectKernels/AffectError/badInput(_:)`` naming this file.
    public func configuration<C: ModelConfiguration>(_ type: C.Type) throws -> C {
        let data = Data((file.metadata["affect.config"] ?? "{}").utf8)
        do {
            let c = try JSONDecoder().decode(C.self, from: data)
            try c.validate()
            return c
        } catch let e as ConfigurationError {
            throw problem("config \(e.description)")
        } catch let e as DecodingError {
            throw problem("config \(Self.describe(e))")
        }
    }

    private static func describe(_ e: DecodingError) -> String {
        func path(_ p: [CodingKey]) -> String {
            p.isEmpty ? "(the whole object)" : "`" + p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") + "`"
        }
        switch e {
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "\(path(c.codingPath)) has the wrong type: \(c.debugDescription)"
        case .keyNotFound(let k, let c): return "\(path(c.codingPath + [k])) is missing."
        case .dataCorrupted(let c): return "\(path(c.codingPath)) is not valid JSON: \(c.debugDescription)"
        @unknown default: return "cannot be read."
        }
    }
}

extension KeyedDecodingContainer {
    /// How a JSON value at `key` reads in a message: its text for numbers and strings, else its kind.
    private func found(_ key: Key) -> String {
        if (try? decodeNil(forKey: key)) == true { return "null" }
        if let d = try? decode(Double.self, forKey: key) { return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) }
        if let s = try? decode(String.self, forKey: key) { return "\"\(s)\"" }
        if let b = try? decode(Bool.self, forKey: key) { return String(b) }
        return "not a number"
    }

    private static func expected(_ r: ClosedRange<Int>) -> String {
        r.upperBound == Int.max ? "at least \(r.lowerBound)" : "in \(r.lowerBound)…\(r.upperBound)"
    }

    /// An exact integer (`3` or `3.0`) in `range`; `d` when the key is absent or null.
    public func int(_ key: Key, default d: Int? = nil, in range: ClosedRange<Int>) throws -> Int {
        if try !contains(key) || decodeNil(forKey: key) {
            guard let d else { throw ConfigurationError("`\(key.stringValue)` is missing, expected an integer \(Self.expected(range)).") }
            return d
        }
        guard let v = try? decode(Double.self, forKey: key), v == v.rounded(), abs(v) < 9e15, range.contains(Int(v)) else {
            throw ConfigurationError("`\(key.stringValue)` is \(found(key)), expected an integer \(Self.expected(range)).")
        }
        return Int(v)
    }

    /// A list of `count` exact integers, each in `range`; `d` when the key is absent.
    public func ints(_ key: Key, default d: [Int], in range: ClosedRange<Int>, count: ClosedRange<Int> = 0 ... 1024) throws -> [Int] {
        guard contains(key) else { return d }
        guard let list = try? decode([Double].self, forKey: key) else {
            throw ConfigurationError("`\(key.stringValue)` is \(found(key)), expected a list of integers.")
        }
        guard count.contains(list.count) else {
            throw ConfigurationError("`\(key.stringValue)` has \(list.count) entries, expected \(Self.expected(count)).")
        }
        return try list.enumerated().map { i, v in
            guard v == v.rounded(), abs(v) < 9e15, range.contains(Int(v)) else {
                throw ConfigurationError("`\(key.stringValue)[\(i)]` is \(v), expected an integer \(Self.expected(range)).")
            }
            return Int(v)
        }
    }

    /// A finite number in `range`; `d` when the key is absent.
    public func double(_ key: Key, default d: Double, in range: ClosedRange<Double>) throws -> Double {
        guard contains(key) else { return d }
        guard let v = try? decode(Double.self, forKey: key), v.isFinite, range.contains(v) else {
            throw ConfigurationError("`\(key.stringValue)` is \(found(key)), expected a number in \(range.lowerBound)…\(range.upperBound).")
        }
        return v
    }

    /// A normalisation epsilon: positive (also as a Float) and at most 1; `d` when the key is absent.
    public func eps(_ key: Key, default d: Double) throws -> Float {
        let e = contains(key) ? ((try? decode(Double.self, forKey: key)) ?? .nan) : d
        guard e.isFinite, e <= 1, Float(e) > 0 else {
            throw ConfigurationError("`\(key.stringValue)` is \(found(key)), expected a positive epsilon of at most 1.")
        }
        return Float(e)
    }

    /// A boolean (JSON `true`/`false`, or a number: 0 is false); `d` when the key is absent or null.
    public func bool(_ key: Key, default d: Bool) throws -> Bool {
        if try !contains(key) || decodeNil(forKey: key) { return d }
        if let b = try? decode(Bool.self, forKey: key) { return b }
        if let n = try? decode(Double.self, forKey: key) { return n != 0 }
        throw ConfigurationError("`\(key.stringValue)` is \(found(key)), expected true or false.")
    }

    /// A string, one of `allowed` when given; `d` when the key is absent.
    public func string(_ key: Key, default d: String, oneOf allowed: [String]? = nil) throws -> String {
        let s: String
        if contains(key) {
            guard let v = try? decode(String.self, forKey: key) else {
                throw ConfigurationError("`\(key.stringValue)` is \(found(key)), expected a string.")
            }
            s = v
        } else { s = d }
        if let allowed, !allowed.contains(s) {
            throw ConfigurationError("`\(key.stringValue)` is \"\(s)\", expected one of \(allowed.joined(separator: ", ")).")
        }
        return s
    }
}
