import Foundation
import AffectKernels

/// A JSON value that keeps object key order and number literals, so metadata written from a source's
/// `config.json` or `tokenizer.json` reads like Python's `json.dumps` of the same data.
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The literal as written (`1e-05`, `16000`), so integers stay integers and floats keep their spelling.
    case number(String)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y || (Double(x) != nil && Double(x) == Double(y))
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            // Key order does not matter for equality; duplicate keys resolve to the last, as in Python.
            let dx = Dictionary(x, uniquingKeysWith: { $1 }), dy = Dictionary(y, uniquingKeysWith: { $1 })
            return dx == dy
        default: return false
        }
    }

    public static func int(_ v: Int) -> JSON { .number(String(v)) }
    /// A float spelled as Python's `repr` spells it (shortest round-trip form, `.0` on integral values).
    public static func double(_ v: Double) -> JSON { .number(v.description) }
    public static func strings(_ v: [String]) -> JSON { .array(v.map(JSON.string)) }

    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.0 == key })?.1
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// An integral number (`3`, `3.0`), as Python compares dict values with ints.
    public var intValue: Int? {
        guard case .number(let s) = self else { return nil }
        if let i = Int(s) { return i }
        if let d = Double(s), d.rounded() == d, abs(d) < 1e15 { return Int(d) }
        return nil
    }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: [(String, JSON)]? { if case .object(let o) = self { return o }; return nil }

    /// Sets (or appends) `key` in an object, keeping its position when present, as a Python dict does.
    public mutating func set(_ key: String, _ value: JSON) {
        guard case .object(var members) = self else { return }
        if let i = members.firstIndex(where: { $0.0 == key }) { members[i].1 = value } else { members.append((key, value)) }
        self = .object(members)
    }

    /// Python's `json.dumps(value, ensure_ascii=asciiOnly)`: `", "` and `": "` separators.
    public func serialized(asciiOnly: Bool = true) -> String {
        var out = ""
        write(to: &out, asciiOnly: asciiOnly)
        return out
    }

    private func write(to out: inout String, asciiOnly: Bool) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let s): out += s
        case .string(let s): JSON.quote(s, into: &out, asciiOnly: asciiOnly)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += ", " }
                v.write(to: &out, asciiOnly: asciiOnly)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (k, v)) in o.enumerated() {
                if i > 0 { out += ", " }
                JSON.quote(k, into: &out, asciiOnly: asciiOnly)
                out += ": "
                v.write(to: &out, asciiOnly: asciiOnly)
            }
            out += "}"
        }
    }

    private static func quote(_ s: String, into out: inout String, asciiOnly: Bool) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || (asciiOnly && u.value > 0x7E) {
                    // Python escapes astral characters as UTF-16 surrogate pairs.
                    for unit in String(u).utf16 { out += String(format: "\\u%04x", unit) }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// Parses JSON text; `origin` names the file in errors.
    public static func parse(_ data: Data, origin: String) throws(AffectError) -> JSON {
        var p = JSONParser(bytes: [UInt8](data), origin: origin)
        return try p.document()
    }

    /// Reads and parses a JSON file.
    public static func read(_ path: String) throws(AffectError) -> JSON {
        try parse(try readFile(path), origin: path)
    }
}

/// Reads a whole (small) file, with one sentence naming it when it cannot.
func readFile(_ path: String, limit: Int = 1 << 31) throws(AffectError) -> Data {
    guard let h = FileHandle(forReadingAtPath: path) else {
        throw .badInput("\(path): cannot open the file.")
    }
    defer { try? h.close() }
    let size = (try? h.seekToEnd()).map(Int.init) ?? 0
    guard size <= limit else { throw .badInput("\(path): the file is \(size) bytes, over the \(limit)-byte limit.") }
    try? h.seek(toOffset: 0)
    guard let d = try? h.readToEnd() else { return Data() }
    return d
}

/// A strict RFC 8259 parser with a nesting limit (a deeply nested file cannot overflow the stack).
private struct JSONParser {
    let bytes: [UInt8]
    let origin: String
    var i = 0
    var depth = 0
    static let maxDepth = 500

    init(bytes: [UInt8], origin: String) {
        self.bytes = bytes
        self.origin = origin
        // A UTF-8 byte order mark is allowed before the document.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
    }

    func fail(_ what: String) -> AffectError {
        .badInput("\(origin): not valid JSON (\(what) at byte \(i)).")
    }

    mutating func document() throws(AffectError) -> JSON {
        let v = try value()
        skipSpace()
        guard i == bytes.count else { throw fail("trailing characters") }
        return v
    }

    mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    mutating func literal(_ word: String, _ v: JSON) throws(AffectError) -> JSON {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else { throw fail("unexpected character") }
        i += w.count
        return v
    }

    mutating func value() throws(AffectError) -> JSON {
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            depth += 1
            guard depth <= JSONParser.maxDepth else { throw fail("nesting deeper than \(JSONParser.maxDepth)") }
            defer { depth -= 1 }
            i += 1
            var members: [(String, JSON)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let k = try string()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected `:`") }
                i += 1
                members.append((k, try value()))
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected `,` or `}`")
            }
        case UInt8(ascii: "["):
            depth += 1
            guard depth <= JSONParser.maxDepth else { throw fail("nesting deeper than \(JSONParser.maxDepth)") }
            defer { depth -= 1 }
            i += 1
            var items: [JSON] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try value())
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected `,` or `]`")
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        // Python's json module also reads these non-standard literals (config.json files written by it may hold them).
        case UInt8(ascii: "N"): return try literal("NaN", .number("NaN"))
        case UInt8(ascii: "I"): return try literal("Infinity", .number("Infinity"))
        default: return try number()
        }
    }

    mutating func number() throws(AffectError) -> JSON {
        let start = i
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "I") { _ = try literal("Infinity", .null); return .number("-Infinity") }
        }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.bytes.count, (0x30...0x39).contains(p.bytes[p.i]) { p.i += 1 }
            return p.i - s
        }
        guard digits(&self) > 0 else { throw fail("unexpected character") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&self) > 0 else { throw fail("bad number") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw fail("bad number") }
        }
        return .number(String(decoding: bytes[start..<i], as: UTF8.self))
    }

    mutating func hex4() throws(AffectError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() throws(AffectError) -> String {
        i += 1  // opening quote
        var out = String.UnicodeScalarView()
        var run = i
        func flush(_ p: JSONParser, _ out: inout String.UnicodeScalarView, _ from: Int) throws(AffectError) {
            guard from < p.i else { return }
            guard let s = String(validating: p.bytes[from..<p.i], as: UTF8.self) else { throw p.fail("invalid UTF-8") }
            out.append(contentsOf: s.unicodeScalars)
        }
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                try flush(self, &out, run)
                i += 1
                return String(out)
            }
            if c < 0x20 { throw fail("control character in a string") }
            if c != UInt8(ascii: "\\") { i += 1; continue }
            try flush(self, &out, run)
            i += 1
            guard i < bytes.count else { throw fail("unterminated string") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append("\"")
            case UInt8(ascii: "\\"): out.append("\\")
            case UInt8(ascii: "/"): out.append("/")
            case UInt8(ascii: "b"): out.append("\u{08}")
            case UInt8(ascii: "f"): out.append("\u{0C}")
            case UInt8(ascii: "n"): out.append("\n")
            case UInt8(ascii: "r"): out.append("\r")
            case UInt8(ascii: "t"): out.append("\t")
            case UInt8(ascii: "u"):
                var v = try hex4()
                if (0xD800..<0xDC00).contains(v), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"),
                   bytes[i + 1] == UInt8(ascii: "u") {
                    let save = i
                    i += 2
                    let lo = try hex4()
                    if (0xDC00..<0xE000).contains(lo) { v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00) } else { i = save }
                }
                // A lone surrogate (Python accepts it) becomes U+FFFD: Swift strings hold only scalars.
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default: throw fail("bad escape")
            }
            run = i
        }
    }
}
