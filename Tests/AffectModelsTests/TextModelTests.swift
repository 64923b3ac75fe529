import Foundation
import Testing
import AffectKernels
import AffectModels

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
private let miniLM = "\(repoRoot)/Weights/all-MiniLM-L6-v2.safetensors"

/// RoBERTa / BERT forward passes against transformers and sentence-transformers
/// (`Tools/make_reference.py text_fixtures Tests/Fixtures/text`; full-size references live in /work/refs/text).
@Suite struct TextModelTests {
    @Test(arguments: [1, 3])
    func tinyRobertaWithGoEmotionsHeadMatchesTransformers(_ batch: Int) throws {
        let model = try ModelLoader.load("\(textFixtures)/tiny_roberta_go.safetensors")
        #expect(model is TextTransformer)
        let ref = try ReferenceFile(path: "\(textFixtures)/tiny_roberta_go.b\(batch).ref.safetensors")
        let (compared, missing) = try Verification.verify(model, ref)
        #expect(missing.isEmpty)
        #expect(Set(compared.map(\.name)) == ["last_hidden_state", "logits", "probs"])
        for c in compared {
            #expect(c.shapesMatch, "\(c.name): \(c.shape) vs \(c.referenceShape)")
            #expect(c.relativeError <= 1e-5, "\(c.name): relative error \(c.relativeError)")
        }
    }

    @Test func classifierLabelsAndScores() throws {
        let encoder = try TextEncoder(weights: WeightFile(path: "\(textFixtures)/tiny_roberta_go.safetensors"))
        #expect(encoder.labels.count == 28 && encoder.labels.first == "admiration" && encoder.labels.last == "neutral")
        #expect(encoder.model.multiLabel)
        let texts = ["I love this so much!", "", "This is the worst day ever."]
        let scores = try encoder.classify(texts)
        #expect(scores.count == 3 && scores.allSatisfy { $0.count == 28 })
        // Sigmoid scores: each in (0, 1), independent (not summing to 1), and the same as the logits of a run.
        let e = encoder.tokenizer.encode(texts[0])
        let logits = try encoder.model.logits(encoder.model.hiddenStates(ids: e.ids, mask: e.ids.map { _ in 1 }, batch: 1,
                                                                         length: e.ids.count, source: "test"))!
        for k in 0..<28 {
            let expected = 1 / (1 + exp(-logits.data[k]))
            #expect(abs(scores[0][k].score - expected) < 1e-6)
        }
        // Batched (padded) and single runs agree.
        let single = try encoder.classify([texts[2]])
        for k in 0..<28 { #expect(abs(single[0][k].score - scores[2][k].score) < 1e-5) }
    }

    @Test func longTextTruncatesByDefaultAndWindowsOnRequest() throws {
        let encoder = try TextEncoder(weights: WeightFile(path: "\(textFixtures)/tiny_roberta_go.safetensors"))
        let maxTokens = encoder.model.maxTokens
        #expect(maxTokens == 128)
        let text = (0..<120).map { "word\($0) is here" }.joined(separator: " ")
        let body = encoder.tokenizer.tokenize(text).count
        #expect(body + 2 > 2 * maxTokens)
        let truncated = try encoder.tokenStates(text)
        #expect(truncated.shape == [1, maxTokens, encoder.model.hidden])
        let overlap = 32
        let stitched = try encoder.tokenStates(text, longText: .windows(overlap: overlap))
        #expect(stitched.shape == [1, body + 2, encoder.model.hidden])
        // Tokens well inside the first window come from it, i.e. equal the truncated run up to rounding: the two
        // runs may batch their rows differently, and the GEMM tiles (AVX2 vs AVX-512) sum in another order.
        let h = encoder.model.hidden
        let scale = truncated.array.map(abs).max()!
        var worst: Float = 0
        for t in 0..<(maxTokens - 2 - overlap / 2) {
            for k in 0..<h { worst = max(worst, abs(stitched.data[t * h + k] - truncated.data[t * h + k])) }
        }
        #expect(worst <= 1e-5 * scale, "first window vs truncated run: max difference \(worst) (scale \(scale))")
        // A short text is the same either way.
        let a = try encoder.tokenStates("short text"), b = try encoder.tokenStates("short text", longText: .windows(overlap: 8))
        #expect(a.array == b.array)
        let pooled = try encoder.embed([text, "short"], pooling: .mean, longText: .windows(overlap: overlap))
        #expect(pooled.shape == [2, h])
    }

    @Test func badInputs() throws {
        let w = try WeightFile(path: "\(textFixtures)/tiny_roberta_go.safetensors")
        let model = try TextTransformer(weights: w)
        #expect(throws: AffectError.self) {
            try model.hiddenStates(ids: [0, 99999, 2], mask: [1, 1, 1], batch: 1, length: 3, source: "test")
        }
        let long = [Int](repeating: 5, count: 200)
        #expect(throws: AffectError.self) {
            try model.hiddenStates(ids: long, mask: long.map { _ in 1 }, batch: 1, length: 200, source: "test")
        }
        #expect(throws: AffectError.self) {
            try model.hiddenStates(ids: [0, 5, 2], mask: [1, 1], batch: 1, length: 3, source: "test")
        }
        // Another architecture's weights.
        let mtcnn = "\(repoRoot)/Weights/mtcnn.safetensors"
        do { _ = try TextTransformer(weights: WeightFile(path: mtcnn)); Issue.record("mtcnn accepted") } catch let e as AffectError {
            #expect(e.description.contains(mtcnn))
        }
        // Empty text: the special tokens alone.
        let encoder = try TextEncoder(weights: w)
        #expect(encoder.tokenizer.encode("").ids == [0, 2])
        #expect(try encoder.embed([""], pooling: .cls).shape == [1, model.hidden])
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: miniLM),
                   "Weights/all-MiniLM-L6-v2.safetensors not made (see Weights/README.md)"))
    func miniLMSentenceEmbeddingsMatchSentenceTransformers() throws {
        let encoder = try TextEncoder(weights: WeightFile(path: miniLM))
        #expect(encoder.model.defaultPooling == .sentence && encoder.model.maxTokens == 256)
        // The embedded real tokenizer.json tokenizes the corpus as `tokenizers` does.
        try TokenizerTests().compare(encoder.tokenizer, try loadIds("bert"), "all-MiniLM-L6-v2 tokenizer.json")
        let ref = try ReferenceFile(path: "\(textFixtures)/minilm.b9.ref.safetensors")
        let (compared, missing) = try Verification.verify(encoder.model, ref)
        #expect(missing.isEmpty)
        for c in compared { #expect(c.relativeError <= 1e-4, "\(c.name): \(c.relativeError)") }
        // The same texts through our tokenizer and batching.
        let texts = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(textFixtures)/minilm_texts.json"))) as! [String]
        let ours = try encoder.embed(texts, pooling: .sentence)
        let expected = ref.outputs["pooled"]!
        let h = 384
        for i in 0..<texts.count {
            var dot: Float = 0, na: Float = 0, nb: Float = 0
            for k in 0..<h {
                let a = ours.data[i * h + k], b = expected.data[i * h + k]
                dot += a * b; na += a * a; nb += b * b
            }
            #expect(dot / (na.squareRoot() * nb.squareRoot()) >= 0.99999, "text \(i)")
        }
    }
}
