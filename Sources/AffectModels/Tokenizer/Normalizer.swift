import Foundation
import AffectKernels

/// Text normalizers of `tokenizer.json` that the supported models use, applied to Unicode scalars (the
/// library's `char`s).
indirect enum Normalizer {
    /// `BertNormalizer`: clean text, isolate CJK ideographs, strip accents (defaults to `lowercase`), lower-case.
    case bert(cleanText: Bool, chineseChars: Bool, stripAccents: Bool, lowercase: Bool)
    case lowercase, nfd, nfc, nfkd, nfkc, stripAccents
    case sequence([Normalizer])

    static func parse(_ any: Any?, source: String) throws -> Normalizer? {
        guard let n = any as? [String: Any] else { return nil }
        let type = n["type"] as? String ?? ""
        switch type {
        case "BertNormalizer":
            let lower = (n["lowercase"] as? Bool) ?? true
            return .bert(cleanText: (n["clean_text"] as? Bool) ?? true, chineseChars: (n["handle_chinese_chars"] as? Bool) ?? true,
                         stripAccents: (n["strip_accents"] as? Bool) ?? lower, lowercase: lower)
        case "Lowercase": return .lowercase
        case "NFD": return .nfd
        case "NFC": return .nfc
        case "NFKD": return .nfkd
        case "NFKC": return .nfkc
        case "StripAccents": return .stripAccents
        case "Sequence":
            return .sequence(try (n["normalizers"] as? [Any] ?? []).compactMap { try parse($0, source: source) })
        default:
            throw AffectError.badInput("\(source): normalizer `\(type)` is not supported.")
        }
    }

    func apply(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case let .bert(clean, chinese, strip, lower):
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(s.count)
            for c in s {
                if clean {
                    if c.value == 0 || c.value == 0xFFFD || isControl(c) { continue }
                    if isWhitespace(c) { out.append(" "); continue }
                }
                if chinese && isChineseChar(c) { out += [" ", c, " "]; continue }
                out.append(c)
            }
            if strip { out = Normalizer.stripAccents.apply(out) }
            if lower { out = Normalizer.lowercase.apply(out) }
            return out
        case .lowercase:
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(s.count)
            for c in s {
                if c.isASCII {
                    out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c)
                } else {
                    out += c.properties.lowercaseMapping.unicodeScalars
                }
            }
            return out
        case .nfd: return Normalizer.piecewise(s, \.decomposedStringWithCanonicalMapping, cutBeforeStarters: true)
        case .nfc: return Normalizer.piecewise(s, \.precomposedStringWithCanonicalMapping, cutBeforeStarters: false)
        case .nfkd: return Normalizer.piecewise(s, \.decomposedStringWithCompatibilityMapping, cutBeforeStarters: false)
        case .nfkc: return Normalizer.piecewise(s, \.precomposedStringWithCompatibilityMapping, cutBeforeStarters: false)
        case .stripAccents:
            if s.allSatisfy(\.isASCII) { return s }
            return Normalizer.nfd.apply(s).filter { !isNonspacingMark($0) }
        case .sequence(let list):
            return list.reduce(s) { $1.apply($0) }
        }
    }
}

extension Normalizer {
    /// Pieces are cut once they reach this many scalars, at the next safe place.
    static let pieceLength = 4096
    /// Without a safe place for this long (a pathological run of combining marks), a piece is cut anyway
    /// before a scalar of combining class 0.
    static let forcedPieceLength = 65536

    /// A Unicode normalization form applied piece by piece. Foundation's normalization of a whole text took
    /// time growing faster than its length (153 s for a 10 MB line); normalizing pieces keeps time linear
    /// and memory bounded. Pieces are cut only where the form cannot act across the cut, so the result equals
    /// the whole-text normalization: before an ASCII character (it never reorders, decomposes or composes with
    /// what precedes it) in every form, and for NFD (`cutBeforeStarters`) also before any scalar of combining
    /// class 0 whose canonical decomposition starts with one (canonical reordering never crosses a starter).
    static func piecewise(_ s: [Unicode.Scalar], _ form: (String) -> String, cutBeforeStarters: Bool) -> [Unicode.Scalar] {
        if s.count <= pieceLength { return Array(form(scalarsString(s)).unicodeScalars) }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var start = 0
        func flush(_ end: Int) {
            out.append(contentsOf: form(scalarsString(Array(s[start..<end]))).unicodeScalars)
            start = end
        }
        for i in s.indices where i - start >= pieceLength {
            let c = s[i]
            if c.isASCII || (cutBeforeStarters && startsCanonicalDecompositionWithStarter(c)) {
                flush(i)
            } else if i - start >= forcedPieceLength && c.properties.canonicalCombiningClass == .notReordered {
                flush(i)
            }
        }
        if start < s.count { flush(s.count) }
        return out
    }

    /// Whether `c` has combining class 0 and so has the first scalar of its canonical decomposition. The only
    /// exceptions are three Tibetan vowel signs (U+0F73, U+0F75, U+0F81), which decompose to U+0F71 first.
    static func startsCanonicalDecompositionWithStarter(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return true }
        if c.value == 0x0F73 || c.value == 0x0F75 || c.value == 0x0F81 { return false }
        return c.properties.canonicalCombiningClass == .notReordered
    }
}

func scalarsString(_ s: [Unicode.Scalar]) -> String {
    var v = String.UnicodeScalarView()
    v.append(contentsOf: s)
    return String(v)
}

/// `tokenizers`' whitespace: tab, newline, carriage return and Unicode White_Space.
@inline(__always)
func isWhitespace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 9, 10, 13, 32: return true
    case 0..<128: return false
    default: return c.properties.isWhitespace
    }
}

/// `tokenizers` classifies characters with the `unicode_categories` crate, whose tables are Unicode 8.0:
/// characters assigned later are neither punctuation nor control characters nor accents to it. Swift's
/// tables are newer, so the categories below are taken only for scalars that Unicode 8.0 already had.
@inline(__always)
func inUnicode8(_ c: Unicode.Scalar) -> Bool {
    guard let age = c.properties.age else { return false }
    return age.major < 8 || (age.major == 8 && age.minor == 0)
}

/// Control characters BERT's `clean_text` removes: Cc, Cf and Co (Unicode 8.0) except tab, newline and
/// carriage return, which count as whitespace. Unassigned code points are kept.
func isControl(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 9, 10, 13: return false
    case 32..<127: return false
    default:
        switch c.properties.generalCategory {
        case .control, .privateUse: return true
        case .format: return inUnicode8(c)
        default: return false
        }
    }
}

/// Punctuation for BERT's pre-tokenizer: ASCII punctuation (which includes symbols such as `$+<=>^`|~`)
/// and the Unicode 8.0 P* categories (U+166D CANADIAN SYLLABICS CHI SIGN and U+111C9 SHARADA SANDHI MARK were
/// Po then).
func isBertPunctuation(_ c: Unicode.Scalar) -> Bool {
    let v = c.value
    if v < 128 { return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) }
    if v == 0x166D || v == 0x111C9 { return true }
    switch c.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
         .initialPunctuation, .finalPunctuation, .otherPunctuation: return inUnicode8(c)
    default: return false
    }
}

/// Accents `StripAccents` removes after NFD: nonspacing marks (Unicode 8.0).
@inline(__always)
func isNonspacingMark(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0..<0x300: return false
    // Categories that changed since Unicode 8.0: nonspacing then, spacing now; and the reverse.
    case 0x1734, 0x1171E: return true
    case 0x1885, 0x1886, 0xA9BD, 0x111C9: return false
    default: return c.properties.generalCategory == .nonspacingMark && inUnicode8(c)
    }
}

/// The CJK Unified Ideograph blocks BERT isolates (not Hangul, Hiragana or Katakana).
func isChineseChar(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
         0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
    default: return false
    }
}

/// Pre-tokenizers: how normalized text is cut into words before the model sees them.
enum PreTokenizer {
    /// `BertPreTokenizer`: split on whitespace (dropped) and around each punctuation character.
    case bert
    /// `ByteLevel`: GPT-2's split pattern, then every UTF-8 byte mapped to a printable character.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Whitespace`-like splits are not needed by the supported models.

    static func parse(_ any: Any?, source: String) throws -> PreTokenizer? {
        guard let p = any as? [String: Any] else { return nil }
        let type = p["type"] as? String ?? ""
        switch type {
        case "BertPreTokenizer": return .bert
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: (p["add_prefix_space"] as? Bool) ?? true, useRegex: (p["use_regex"] as? Bool) ?? true)
        case "Sequence":
            let list = try (p["pretokenizers"] as? [Any] ?? []).compactMap { try parse($0, source: source) }
            if list.count == 1 { return list[0] }
            throw AffectError.badInput("\(source): a Sequence of \(list.count) pre-tokenizers is not supported.")
        default:
            throw AffectError.badInput("\(source): pre-tokenizer `\(type)` is not supported.")
        }
    }

    func split(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        switch self {
        case .bert:
            var words: [[Unicode.Scalar]] = [], cur: [Unicode.Scalar] = []
            for c in s {
                if isWhitespace(c) {
                    if !cur.isEmpty { words.append(cur); cur = [] }
                } else if isBertPunctuation(c) {
                    if !cur.isEmpty { words.append(cur); cur = [] }
                    words.append([c])
                } else { cur.append(c) }
            }
            if !cur.isEmpty { words.append(cur) }
            return words
        case let .byteLevel(prefix, regex):
            var s = s
            if prefix && s.first != " " { s.insert(" ", at: 0) }
            let words = regex ? gpt2Split(s) : [s]
            return words.map(byteLevelMap)
        }
    }
}

/// GPT-2's pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, matched
/// by hand: at each position the first alternative that matches wins, each greedy.
func gpt2Split(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
    enum Kind { case letter, number, space, other }
    let kinds: [Kind] = s.map { c in
        if isRegexSpace(c) { return .space }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }
    var out: [[Unicode.Scalar]] = []
    let n = s.count
    var i = 0
    func run(from j: Int, _ k: Kind) -> Int { var e = j; while e < n && kinds[e] == k { e += 1 }; return e }
    while i < n {
        // Contractions.
        if s[i] == "'" && i + 1 < n {
            let a = s[i + 1]
            if a == "s" || a == "t" || a == "m" || a == "d" { out.append(Array(s[i..<i + 2])); i += 2; continue }
            if i + 2 < n {
                let b = s[i + 2]
                if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") {
                    out.append(Array(s[i..<i + 3])); i += 3; continue
                }
            }
        }
        let body = s[i] == " " && i + 1 < n ? i + 1 : i
        var end = i
        if body < n && kinds[body] != .space {
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` (an optional space, then a run of one class).
            end = run(from: body, kinds[body])
        } else if kinds[i] == .space {
            // `\s+(?!\S)`: the whitespace run, leaving its last character to the next word when one follows;
            // otherwise `\s+` takes a lone space before a non-space.
            let e = run(from: i, .space)
            if e == n { end = e } else if e - i > 1 { end = e - 1 } else { end = e }
        } else {
            end = run(from: i, kinds[i])
        }
        out.append(Array(s[i..<end]))
        i = end
    }
    return out
}

/// Oniguruma's `\s` in the GPT-2 pattern: Unicode White_Space.
@inline(__always)
func isRegexSpace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 9...13, 32: return true
    case 0..<128: return false
    default: return c.properties.isWhitespace
    }
}

/// GPT-2's reversible byte → character table: printable Latin-1 bytes map to themselves, the others to
/// U+0100 upwards in byte order.
let byteLevelTable: [Unicode.Scalar] = {
    var table = [Unicode.Scalar](repeating: " ", count: 256)
    var next: UInt32 = 256
    for b in 0..<256 {
        if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
            table[b] = Unicode.Scalar(UInt32(b))!
        } else {
            table[b] = Unicode.Scalar(next)!; next += 1
        }
    }
    return table
}()

func byteLevelMap(_ word: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(word.count)
    for c in word {
        if c.isASCII { out.append(byteLevelTable[Int(c.value)]); continue }
        for b in String(Character(c)).utf8 { out.append(byteLevelTable[Int(b)]) }
    }
    return out
}

/// BERT's character classes as `tokenizers` sees them (public for tests and tools).
public enum BertCharacters {
    /// Removed by `clean_text`.
    public static func isControl(_ c: Unicode.Scalar) -> Bool { AffectModels.isControl(c) }
    /// Turned into a space by `clean_text`, and a word boundary.
    public static func isWhitespace(_ c: Unicode.Scalar) -> Bool { AffectModels.isWhitespace(c) }
    /// Split off as its own word by `BertPreTokenizer`.
    public static func isPunctuation(_ c: Unicode.Scalar) -> Bool { isBertPunctuation(c) }
    /// Removed after NFD by `strip_accents`.
    public static func isAccent(_ c: Unicode.Scalar) -> Bool { isNonspacingMark(c) }
}
