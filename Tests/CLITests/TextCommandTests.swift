import Foundation
import Testing
import AffectKernels

/// `affect tokenize` and `affect embed-text`, including bad input (exit 2, one sentence naming the file).
@Suite struct TextCommandTests {
    let model = "\(fixtures)/text/tiny_roberta_go.safetensors"

    @Test func tokenizeLinesEqualTheTokenizersLibrary() throws {
        let input = tempPath("tok.txt")
        // Lines 0–2 of the corpus that hold no newline, an empty line, and a line with a mask token.
        try Data("Hello world!\n\nA <mask> here\n".utf8).write(to: URL(fileURLWithPath: input))
        let r = try runAffect(["tokenize", model, "--file", input])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(lines.count == 3)
        #expect(lines[1] == "0 2")
        #expect(lines.allSatisfy { $0.hasPrefix("0 ") && $0.hasSuffix(" 2") })
        #expect(lines[2].split(separator: " ").contains("4"), "the <mask> token (id 4) is recognised: \(lines[2])")
        let vocab = try runAffect(["tokenize", "\(fixtures)/text/bert_vocab.txt", "--file", input, "--max-length", "4"])
        #expect(vocab.stdout == "101 7592 2088 102\n101 102\n101 1037 1026 102\n", "\(vocab.stdout)")
    }

    @Test func invalidUTF8IsAnErrorNamingTheLine() throws {
        let input = tempPath("bad-utf8.txt")
        try Data([0x6F, 0x6B, 0x0A, 0x61, 0xFF, 0xFE, 0x62, 0x0A]).write(to: URL(fileURLWithPath: input))
        let r = try runAffect(["tokenize", model, "--file", input])
        expectBadInput(r, naming: input, "invalid UTF-8")
        #expect(r.stderr.contains("line 2"))
        let e = try runAffect(["embed-text", "--model", model, "--file", input, "--format", "json"])
        expectBadInput(e, naming: input, "invalid UTF-8 in embed-text")
    }

    @Test func embedTextWritesEmbeddingsAndScores() throws {
        let out = tempPath("emb.safetensors")
        let r = try runAffect(["embed-text", "--model", model, "--pool", "mean", "I am so happy today", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        let f = try SafeTensorsFile(path: out)
        #expect(f.info("embeddings")?.shape == [1, 8])
        #expect(f.info("scores")?.shape == [1, 28])
        #expect(r.stdout.contains("0: "), "labels with scores are printed: \(r.stdout)")
        let j = try runAffect(["embed-text", "--model", model, "--pool", "token", "", "--format", "json"])
        #expect(j.status == 0, "\(j.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any]
        let texts = obj["texts"] as! [[String: Any]]
        #expect(texts.count == 1 && texts[0]["tokens"] as? Int == 2)
        #expect((texts[0]["scores"] as? [String: Double])?.count == 28)
    }

    @Test func badTextModelInputs() throws {
        let mtcnn = URL(fileURLWithPath: fixtures).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Weights/mtcnn.safetensors").path
        expectBadInput(try runAffect(["embed-text", "--model", mtcnn, "hello", "--format", "json"]), naming: mtcnn, "wrong arch")
        expectBadInput(try runAffect(["tokenize", mtcnn, "--file", mtcnn]), naming: mtcnn, "no tokenizer")
        let missing = tempPath("nope.txt")
        expectBadInput(try runAffect(["tokenize", model, "--file", missing]), naming: missing, "missing file")
        let usage = try runAffect(["embed-text", "--model", model, "hello"])
        #expect(usage.status == 2 && usage.stderr.contains("-o"))
    }

    @Test func benchTakesTokens() throws {
        let r = try runAffect(["bench", model, "--tokens", "64", "--seconds", "0", "--min-runs", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("input_ids 1×64"))
        #expect(r.stdout.split(separator: "\n").last?.hasPrefix("median_ms=") == true)
    }
}
