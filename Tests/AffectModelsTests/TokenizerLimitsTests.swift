import Foundation
import Testing
import AffectKernels
import AffectModels

/// Hostile tokenizer files and texts: ids out of range are errors naming the file, and long words and long
/// non-ASCII lines take time linear in their length, with results equal to the straightforward algorithms.
@Suite struct TokenizerLimitsTests {
    /// A WordPiece `tokenizer.json` with the given vocabulary and extra top-level or model fields.
    func wordPieceJSON(_ vocab: [String: Any], model extra: [String: Any] = [:], root: [String: Any] = [:],
                       normalizer: [String: Any]? = nil, preTokenizer: Bool = true) throws -> Data {
        var model: [String: Any] = ["type": "WordPiece", "vocab": vocab, "unk_token": "[UNK]", "continuing_subword_prefix": "##"]
        model.merge(extra) { $1 }
        var json: [String: Any] = ["model": model]
        if preTokenizer { json["pre_tokenizer"] = ["type": "BertPreTokenizer"] }
        if let normalizer { json["normalizer"] = normalizer }
        json.merge(root) { $1 }
        return try JSONSerialization.data(withJSONObject: json)
    }

    func expectRejected(_ data: Data, _ comment: String, mentioning: String? = nil) {
        do {
            _ = try Tokenizer(json: data, source: "hostile.json")
            Issue.record("\(comment): accepted")
        } catch let e as AffectError {
            #expect(e.description.hasPrefix("hostile.json:"), "\(comment): \(e)")
            if let m = mentioning { #expect(e.description.contains(m), "\(comment): \(e)") }
        } catch {
            Issue.record("\(comment): \(error)")
        }
    }

    @Test func idsOutsideTheRangeAreRejected() throws {
        let base: [String: Any] = ["[UNK]": 0, "a": 1]
        for bad: Any in [-1, 1 << 31, 1 << 40, 1.5, 1e300] {
            expectRejected(try wordPieceJSON(base.merging(["b": bad]) { $1 }), "vocab id \(bad)", mentioning: "`b`")
            expectRejected(try wordPieceJSON(base, root: ["added_tokens": [["content": "[X]", "id": bad]]]), "added token id \(bad)", mentioning: "[X]")
            expectRejected(try wordPieceJSON(base, root: ["padding": ["pad_id": bad]]), "pad id \(bad)", mentioning: "padding")
            expectRejected(try wordPieceJSON(base, root: ["post_processor": ["type": "BertProcessing", "cls": ["[CLS]", bad], "sep": ["[SEP]", 1]]]),
                           "cls id \(bad)", mentioning: "cls")
            expectRejected(try wordPieceJSON(base, root: ["post_processor": ["type": "TemplateProcessing",
                                                                             "single": [["SpecialToken": ["id": "[CLS]"]], ["Sequence": ["id": "A"]]],
                                                                             "special_tokens": ["[CLS]": ["ids": [bad]]]]]),
                           "template id \(bad)", mentioning: "[CLS]")
        }
        // A BPE vocabulary too: merges index ids as 32-bit integers.
        let bpe: [String: Any] = ["model": ["type": "BPE", "vocab": ["a": 0, "b": 1, "ab": 1 << 32], "merges": ["a b"]]]
        expectRejected(try JSONSerialization.data(withJSONObject: bpe), "BPE id 2^32", mentioning: "`ab`")
        expectRejected(try wordPieceJSON(base, model: ["max_input_chars_per_word": -5]), "negative max_input_chars_per_word")
    }

    /// The largest id allowed works without an array of 2^31 names.
    @Test func largestIdIsStoredSparsely() throws {
        let t = try Tokenizer(json: try wordPieceJSON(["[UNK]": 0, "a": Tokenizer.maxTokenId]), source: "sparse.json")
        #expect(t.vocabularySize == Tokenizer.maxTokenId + 1)
        #expect(t.encode("a a").ids == [Tokenizer.maxTokenId, Tokenizer.maxTokenId])
        #expect(t.encode("a").tokens == ["a"])
    }

    /// Greedy longest-match-first as the `tokenizers` library describes it, with string lookups: the slow path.
    func referenceWordPiece(_ word: [Unicode.Scalar], vocab: [String: Int], unk: Int) -> [Int] {
        var pieces: [Int] = [], start = 0
        while start < word.count {
            var end = word.count, found: Int?
            while start < end {
                var v = String.UnicodeScalarView(); v.append(contentsOf: word[start..<end])
                if let id = vocab[(start > 0 ? "##" : "") + String(v)] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unk] }
            pieces.append(id); start = end
        }
        return pieces
    }

    @Test func wordPieceEqualsTheGreedyReference() throws {
        var rng = SystemRandomNumberGenerator()
        let letters = Array("abcdé".unicodeScalars)
        var vocab: [String: Int] = ["[UNK]": 0]
        for _ in 0..<300 {
            let n = Int.random(in: 1...5, using: &rng)
            let piece = String(String.UnicodeScalarView((0..<n).map { _ in letters.randomElement(using: &rng)! }))
            let key = Bool.random(using: &rng) ? "##" + piece : piece
            if vocab[key] == nil { vocab[key] = vocab.count }
        }
        let t = try Tokenizer(json: try wordPieceJSON(vocab, model: ["max_input_chars_per_word": 100_000]), source: "random.json")
        for _ in 0..<300 {
            let word = (0..<Int.random(in: 1...200, using: &rng)).map { _ in letters.randomElement(using: &rng)! }
            let text = String(String.UnicodeScalarView(word))
            #expect(t.tokenize(text) == referenceWordPiece(word, vocab: vocab, unk: 0), "\(text)")
        }
    }

    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    /// A 200,000-character word with `max_input_chars_per_word` raised: linear, not quadratic (over 60 s before).
    @Test func hugeWordIsLinear() throws {
        let vocab: [String: Any] = ["[UNK]": 0, "ab": 1, "##ab": 2, "##a": 3, "a": 4]
        let t = try Tokenizer(json: try wordPieceJSON(vocab, model: ["max_input_chars_per_word": 1 << 40]), source: "huge.json")
        var ids: [Int] = []
        let small = try seconds { ids = t.tokenize(String(repeating: "ab", count: 50_000)) }
        #expect(ids == [1] + [Int](repeating: 2, count: 49_999))
        let large = try seconds { ids = t.tokenize(String(repeating: "ab", count: 100_000)) }
        #expect(ids.count == 100_000 && ids.first == 1 && ids.last == 2)
        #expect(large < 10, "200k characters took \(large) s")
        #expect(large < 3 * small + 0.5, "doubling the word: \(small) s → \(large) s")
        // An unmatchable tail still makes the whole word [UNK].
        #expect(t.tokenize(String(repeating: "ab", count: 100_000) + "b") == [0])
    }

    /// The BERT normaliser on a long non-ASCII line (strip accents: NFD): linear in the length.
    @Test func longNonASCIILineIsLinear() throws {
        let t = try Tokenizer(path: "\(textFixtures)/bert_vocab.txt")
        let unit = "Ünïcödé Ελληνικά русский Zürich crème brûlée "
        let small = String(repeating: unit, count: 12_000)     // 0.5 M scalars
        let large = String(repeating: small, count: 4)
        var a: [Int] = [], b: [Int] = []
        // The best of three alternating runs each: a machine busy with other work slows single runs unevenly.
        // Four times the line is 4× the time if linear, 16× if quadratic; the bound sits between, far from both.
        var ts = Double.infinity, tl = Double.infinity
        for _ in 0..<3 {
            ts = min(ts, try seconds { a = t.tokenize(small) })
            tl = min(tl, try seconds { b = t.tokenize(large) })
        }
        #expect(b.count == 4 * a.count && Array(b.prefix(a.count)) == a)
        #expect(a.prefix(40) == t.tokenize(String(repeating: unit, count: 4)).prefix(40))
        #expect(tl < 9 * ts + 0.5, "four times the line: \(ts) s → \(tl) s")
        // No whitespace or ASCII at all: one 2 MB word of accented Cyrillic still completes.
        let word = String(repeating: "ёй", count: 500_000)
        let tw = try seconds { #expect(t.tokenize(word) == [100]) }     // longer than 100 characters: [UNK]
        #expect(tw < 60, "2 MB non-ASCII word took \(tw) s")
    }

    /// Piecewise normalization equals normalizing the whole text at once, for every form, on texts of many
    /// combining marks (reordered across starters), Hangul, Tibetan vowel signs and sparse ASCII.
    @Test(arguments: ["NFD", "NFC", "NFKD", "NFKC"])
    func piecewiseNormalizationEqualsWholeText(_ form: String) throws {
        var rng = SystemRandomNumberGenerator()
        let pool: [UInt32] = [0x61, 0x65, 0x41, 0x20, 0xE9, 0x1E09, 0x301, 0x327, 0x323, 0x308, 0x31B, 0x345,
                              0xAC00, 0x1100, 0x1161, 0x11A8, 0x0F71, 0x0F72, 0x0F73, 0x0F75, 0x0F81, 0x0F80,
                              0xFB01, 0x2460, 0xFF9E, 0x3099, 0x304B, 0x0B47, 0x0B3E, 0x0915, 0x093C, 0x0344]
        let scalars = (0..<30_000).map { _ in Unicode.Scalar(pool.randomElement(using: &rng)!)! }
        let text = String(String.UnicodeScalarView(scalars))
        let whole: String
        switch form {
        case "NFD": whole = text.decomposedStringWithCanonicalMapping
        case "NFC": whole = text.precomposedStringWithCanonicalMapping
        case "NFKD": whole = text.decomposedStringWithCompatibilityMapping
        default: whole = text.precomposedStringWithCompatibilityMapping
        }
        // One id per scalar and no pre-tokenizer: the ids spell the normalized text scalar for scalar.
        var vocab: [String: Int] = ["[UNK]": 0]
        for c in Set(Array(whole.unicodeScalars) + scalars).sorted(by: { $0.value < $1.value }) {
            vocab[String(String.UnicodeScalarView([c]))] = vocab.count
        }
        var byId: [Int: Unicode.Scalar] = [:]
        for (k, v) in vocab where k != "[UNK]" { byId[v] = k.unicodeScalars.first! }
        let json = try wordPieceJSON(vocab, model: ["continuing_subword_prefix": "", "max_input_chars_per_word": 1 << 30],
                                     normalizer: ["type": form], preTokenizer: false)
        let t = try Tokenizer(json: json, source: "\(form).json")
        let ids = t.tokenize(text)
        #expect(!ids.contains(0))
        #expect(ids.compactMap { byId[$0] } == Array(whole.unicodeScalars), "\(form) differs from the whole-text normalization")
    }

    /// What piecewise NFD relies on: every scalar of combining class 0 decomposes to a scalar of class 0
    /// first, except U+0F73, U+0F75 and U+0F81.
    @Test func startersDecomposeToStartersFirst() {
        var exceptions: [UInt32] = []
        for v in UInt32(0x80)...0x10FFFF {
            guard let c = Unicode.Scalar(v), c.properties.canonicalCombiningClass == .notReordered,
                  c.properties.generalCategory != .unassigned else { continue }
            let first = String(Character(c)).decomposedStringWithCanonicalMapping.unicodeScalars.first!
            if first.properties.canonicalCombiningClass != .notReordered { exceptions.append(v) }
        }
        #expect(exceptions == [0x0F73, 0x0F75, 0x0F81])
    }
}
