import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectTestSupport

let textFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/text").path

/// The corpus (one JSON string per line) and the `tokenizers` library's ids for it
/// (`Tools/make_reference.py tokenizer_corpus Tests/Fixtures/text`).
func loadCorpus() throws -> [String] {
    let text = try String(contentsOfFile: "\(textFixtures)/corpus.jsonl", encoding: .utf8)
    return try text.split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8), options: .fragmentsAllowed) as! String
    }
}

func loadIds(_ name: String) throws -> [[Int]] {
    let text = try String(contentsOfFile: "\(textFixtures)/\(name).ids", encoding: .utf8)
    return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0.split(separator: " ").map { Int($0)! } }
}

@Suite struct TokenizerTests {
    func compare(_ tokenizer: Tokenizer, _ expected: [[Int]], _ name: String) throws {
        let corpus = try loadCorpus()
        #expect(corpus.count >= 2000)
        #expect(corpus.count == expected.count)
        var mismatches = 0
        for (text, ids) in zip(corpus, expected) {
            let ours = tokenizer.encode(text).ids
            if ours != ids {
                mismatches += 1
                if mismatches <= 5 {
                    Issue.record("\(name): \(String(reflecting: text).prefix(200)) \(text.unicodeScalars.prefix(8).map { String($0.value, radix: 16) })\n ours \(ours.prefix(40))\n tokenizers \(ids.prefix(40))")
                }
            }
        }
        #expect(mismatches == 0, "\(name): \(mismatches) of \(corpus.count) texts differ")
        // The corpus really is hard: some texts exceed 512 tokens, some are empty.
        #expect(expected.contains { $0.count > 512 })
        #expect(expected.contains { $0.count == 2 })
    }

    @Test func robertaByteLevelBPE() throws {
        let t = try Tokenizer(path: "\(textFixtures)/roberta_tokenizer.json")
        try compare(t, try loadIds("roberta"), "roberta")
        #expect(t.prefixIds == [0] && t.suffixIds == [2] && t.padId == 1)
    }

    /// The classic RoBERTa files (`vocab.json` + `merges.txt`) written from the same tokenizer give the same ids.
    @Test func robertaFromVocabJSONAndMerges() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(textFixtures)/roberta_tokenizer.json"))) as! [String: Any]
        let model = json["model"] as! [String: Any]
        let dir = Scratch.directory("roberta")
        defer { try? FileManager.default.removeItem(at: dir) }
        try JSONSerialization.data(withJSONObject: model["vocab"]!).write(to: dir.appendingPathComponent("vocab.json"))
        let merges = (model["merges"] as! [Any]).map { m in (m as? String) ?? (m as! [String]).joined(separator: " ") }
        try Data(("#version: 0.2\n" + merges.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("merges.txt"))
        let t = try Tokenizer(path: dir.path)
        try compare(t, try loadIds("roberta"), "roberta vocab.json")
    }

    @Test func bertWordPieceFromVocabTxt() throws {
        let t = try Tokenizer(path: "\(textFixtures)/bert_vocab.txt")
        try compare(t, try loadIds("bert"), "bert")
        #expect(t.prefixIds == [101] && t.suffixIds == [102] && t.padId == 0)
    }

    /// Every code point's class against what `tokenizers` does with it alone (`char_classes.json`).
    @Test func bertCharacterClassesForEveryCodePoint() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(textFixtures)/char_classes.json"))
        let classes = try JSONSerialization.jsonObject(with: data) as! [String: [[Int]]]
        func set(_ name: String) -> Set<UInt32> {
            Set(classes[name]!.flatMap { UInt32($0[0])...UInt32($0[1]) })
        }
        let control = set("control"), space = set("whitespace"), punct = set("punctuation"), accent = set("accent")
        var wrong: [String] = []
        for v in UInt32(0)...0x10FFFF {
            guard let c = Unicode.Scalar(v) else { continue }
            let isControl = BertCharacters.isControl(c) || v == 0 || v == 0xFFFD
            if isControl != control.contains(v) { wrong.append(String(format: "control U+%04X", v)) }
            if !isControl, BertCharacters.isWhitespace(c) != space.contains(v) { wrong.append(String(format: "space U+%04X", v)) }
            if !isControl, !BertCharacters.isWhitespace(c), BertCharacters.isPunctuation(c) != punct.contains(v) {
                wrong.append(String(format: "punct U+%04X", v))
            }
            // A lone accent vanishes; a decomposable character keeps its base (checked by the corpus).
            if BertCharacters.isAccent(c) != accent.contains(v) { wrong.append(String(format: "accent U+%04X", v)) }
        }
        #expect(wrong.isEmpty, "\(wrong.count) code points differ: \(wrong.prefix(30))")
    }

    @Test func truncationAndPadding() throws {
        let t = try Tokenizer(path: "\(textFixtures)/bert_vocab.txt")
        let long = String(repeating: "hello world ", count: 400)
        let e = t.encode(long, maxLength: 16)
        #expect(e.ids.count == 16 && e.ids.first == 101 && e.ids.last == 102)
        let batch = t.encodeBatch(["hello", "hello world again", ""])
        #expect(batch.count == 3 && batch.length == 5)
        #expect(batch.ids == [101, 7592, 102, 0, 0, 101, 7592, 2088, 2153, 102, 101, 102, 0, 0, 0])
        #expect(batch.mask == [1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    }

    @Test func badTokenizerFiles() throws {
        let dir = Scratch.directory("tok")
        defer { try? FileManager.default.removeItem(at: dir) }
        let notJSON = dir.appendingPathComponent("tokenizer.json").path
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: notJSON))
        #expect(throws: AffectError.self) { try Tokenizer(path: notJSON) }
        let unigram = dir.appendingPathComponent("unigram.json").path
        try Data(#"{"model": {"type": "Unigram", "vocab": []}}"#.utf8).write(to: URL(fileURLWithPath: unigram))
        do { _ = try Tokenizer(path: unigram); Issue.record("Unigram accepted") } catch let e as AffectError {
            #expect(e.description.contains("Unigram"))
        }
        #expect(throws: AffectError.self) { try Tokenizer(path: dir.appendingPathComponent("missing.json").path) }
    }
}
