import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectTestSupport

private let audioFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/audio").path

/// Tiny wav2vec 2.0 (group-norm feature encoder, post-norm encoder, weight norm as weight_g/weight_v in a
/// pytorch_model.bin) and HuBERT (layer-norm encoder with conv bias, stable layer norm, weight norm as
/// parametrizations in model.safetensors), both *ForCTC, against transformers on a padded batch of two with an
/// attention mask (`Tools/make_reference.py wav2vec2_tiny|hubert_tiny DIR --batch 2`). Full-size models are
/// verified with `affect verify` against references outside the repository (README: proving a port).
@Suite struct Wav2Vec2Tests {
    static let models = ["wav2vec2_tiny", "hubert_tiny"]

    func load(_ name: String) throws -> Wav2Vec2 {
        try Wav2Vec2(weights: WeightFile(path: "\(audioFixtures)/\(name).safetensors"))
    }

    @Test(arguments: models)
    func matchesTransformers(_ name: String) throws {
        let model = try ModelLoader.load("\(audioFixtures)/\(name).safetensors")
        let ref = try ReferenceFile(path: "\(audioFixtures)/\(name).b2.ref.safetensors")
        #expect(ref.inputs.ints["attention_mask"] != nil)
        let (compared, missing) = try Verification.verify(model, ref)
        #expect(missing.isEmpty, "\(name): missing \(missing)")
        #expect(Set(compared.map(\.name)).isSuperset(of: ["last_hidden_state", "logits", "hidden_states.0", "hidden_states.2"]))
        for c in compared {
            #expect(c.passes(tolerance: 1e-4), "\(name) \(c.name): relative error \(c.relativeError), shape \(c.shape) vs \(c.referenceShape)")
        }
    }

    struct HFTranscript: Decodable {
        struct Word: Decodable { var word: String; var start: Double; var end: Double }
        var text: String
        var frame_ids: [Int]
        var words: [Word]
    }

    func transcripts(_ name: String) throws -> [HFTranscript] {
        try JSONDecoder().decode([HFTranscript].self, from: Data(contentsOf: URL(fileURLWithPath: "\(audioFixtures)/\(name).b2.transcript.json")))
    }

    /// The decoder alone, on transformers' own arg-max ids: same text, words and times as
    /// `Wav2Vec2CTCTokenizer.decode(..., output_word_offsets=True)`.
    @Test(arguments: models)
    func ctcDecodingMatchesTokenizer(_ name: String) throws {
        let ctc = try #require(try load(name).ctc)
        for t in try transcripts(name) {
            let ours = ctc.decode(ids: t.frame_ids)
            #expect(ours.text == t.text)
            #expect(ours.words.map(\.word) == t.words.map(\.word))
            for (a, b) in zip(ours.words, t.words) {
                #expect(abs(a.start - b.start) < 1e-9 && abs(a.end - b.end) < 1e-9, "\(a) vs \(b)")
            }
        }
    }

    /// The whole path: our logits of each item's valid frames → arg-max → text equal to transformers'.
    @Test(arguments: models)
    func transcriptFromOurLogits(_ name: String) throws {
        let model = try load(name)
        let ref = try ReferenceFile(path: "\(audioFixtures)/\(name).b2.ref.safetensors")
        let mask = try #require(ref.inputs.ints["attention_mask"])
        let x = try #require(ref.inputs.floats["input_values"])
        let t = x.shape[1]
        let lengths = (0..<x.shape[0]).map { i in mask.values[(i * t)..<((i + 1) * t)].reduce(0) { $0 + Int($1) } }
        let out = model.forward(x, lengths: lengths)
        let logits = try #require(out.logits)
        let (frames, vocab) = (logits.shape[1], logits.shape[2])
        for (i, hf) in try transcripts(name).enumerated() {
            #expect(out.frames[i] == hf.frame_ids.count)
            let tr = model.ctc!.decode(logits: logits.data + i * frames * vocab, frames: out.frames[i])
            #expect(tr.frameIds == hf.frame_ids)
            #expect(tr.text == hf.text)
        }
    }

    @Test func configurationFromTheWeightFile() throws {
        let w = try load("wav2vec2_tiny"), h = try load("hubert_tiny")
        #expect(w.arch == "wav2vec2" && h.arch == "hubert")
        #expect(w.config.featureNorm == "group" && !w.config.stableLayerNorm)
        #expect(h.config.featureNorm == "layer" && h.config.stableLayerNorm)
        #expect(w.config.hop == 320 && w.config.receptiveField == 400)
        #expect(w.frameCount(samples: 399) == 0 && w.frameCount(samples: 400) == 1 && w.frameCount(samples: 160_000) == 499)
        #expect(w.vocabulary.count == 32 && w.vocabulary[4] == "|")
    }

    /// Misshapen weight files fail by name, never trap.
    @Test func badWeightFiles() throws {
        let src = try SafeTensorsFile(path: "\(audioFixtures)/wav2vec2_tiny.safetensors")
        func rewrite(dropping drop: String? = nil, config: ((inout [String: Any]) -> Void)? = nil) throws -> String {
            var meta = src.metadata
            if let config {
                var c = try JSONSerialization.jsonObject(with: Data(meta["affect.config"]!.utf8)) as! [String: Any]
                config(&c)
                meta["affect.config"] = String(decoding: try JSONSerialization.data(withJSONObject: c), as: UTF8.self)
            }
            var writer = SafeTensorsWriter(metadata: meta)
            for t in src.tensors where t.name != drop { writer.add(t.name, try src.tensor(t)) }
            let path = Scratch.path("w2v-\(drop ?? "cfg").safetensors")
            try writer.write(to: path)
            return path
        }
        let missing = "wav2vec2.encoder.layers.1.final_layer_norm.weight"
        let p1 = try rewrite(dropping: missing)
        #expect(throws: AffectError.self) { try Wav2Vec2(weights: WeightFile(path: p1)) }
        do { _ = try Wav2Vec2(weights: WeightFile(path: p1)) } catch { #expect("\(error)".contains(missing)) }
        let p2 = try rewrite(dropping: "wav2vec2.encoder.pos_conv_embed.conv.weight_g")
        #expect(throws: AffectError.self) { try Wav2Vec2(weights: WeightFile(path: p2)) }
        let p3 = try rewrite(config: { $0["num_attention_heads"] = 5 })
        #expect(throws: AffectError.self) { try Wav2Vec2(weights: WeightFile(path: p3)) }
        let p4 = try rewrite(config: { $0["feat_extract_norm"] = "batch" })
        #expect(throws: AffectError.self) { try Wav2Vec2(weights: WeightFile(path: p4)) }
        let p5 = try rewrite(config: { $0["num_hidden_layers"] = 1 })
        #expect(throws: AffectError.self) { try Wav2Vec2(weights: WeightFile(path: p5)) }
        for p in [p1, p2, p3, p4, p5] { try? FileManager.default.removeItem(atPath: p) }
        // Another architecture's file.
        #expect(throws: AffectError.self) { try Wav2Vec2(weights: WeightFile(path: "\(audioFixtures)/../models/efficientnet_tiny.safetensors")) }
    }

    /// Inputs the model cannot run: too short for one frame, a mask of the wrong shape, a wrong rank.
    @Test func badInputs() throws {
        let model = try load("hubert_tiny")
        let short = ModelInputs(floats: ["input_values": Tensor.zeros([1, 399])])
        #expect(throws: AffectError.self) { try model.run(short, source: "t") }
        let x = Tensor.zeros([2, 800])
        let badMask = ModelInputs(floats: ["input_values": x], ints: ["attention_mask": IntTensor(shape: [2, 799], values: Array(repeating: 1, count: 1598))])
        #expect(throws: AffectError.self) { try model.run(badMask, source: "t") }
        #expect(throws: AffectError.self) { try model.run(ModelInputs(floats: ["input_values": Tensor.zeros([800])]), source: "t") }
        // Silence runs and stays finite (the processor's normalisation of zeros is zeros).
        let out = try model.run(ModelInputs(floats: ["input_values": x]), source: "t")
        #expect(out["last_hidden_state"]!.array.allSatisfy { $0.isFinite })
    }
}

/// Greedy CTC decoding on hand-made frame ids (vocabulary of wav2vec2-base-960h).
@Suite struct CTCDecoderTests {
    let vocab = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L", "U", "M",
                 "W", "C", "F", "G", "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z"]

    @Test func collapsesRepeatsDropsBlanksAndTimesWords() throws {
        let ctc = try CTCDecoder(vocabulary: vocab, blank: 0)
        // "HH E L <pad> L O | | W O" → "HELLO WO"
        let ids = [0, 11, 11, 5, 15, 0, 15, 8, 4, 4, 0, 18, 8, 8, 0]
        let t = ctc.decode(ids: ids)
        #expect(t.text == "HELLO WO")
        #expect(t.words.map(\.word) == ["HELLO", "WO"])
        let times = t.words.flatMap { [$0.start, $0.end] }
        for (a, b) in zip(times, [0.02, 0.16, 0.22, 0.28]) { #expect(abs(a - b) < 1e-12) }
        // Offsets shift times (windows of a long file).
        #expect(abs(ctc.decode(ids: ids, frameOffset: 100).words[0].start - 2.02) < 1e-12)
    }

    @Test func edgeCases() throws {
        let ctc = try CTCDecoder(vocabulary: vocab, blank: 0)
        #expect(ctc.decode(ids: []).text == "")
        #expect(ctc.decode(ids: [0, 0, 0]).words.isEmpty)
        #expect(ctc.decode(ids: [4, 4, 0, 4]).text == "")                      // only delimiters: stripped
        #expect(ctc.decode(ids: [7, 0, 7]).text == "AA")                       // a blank separates repeats
        #expect(ctc.decode(ids: [7, 4, 0, 4, 6]).text == "A  T")               // two delimiters: two spaces, as transformers
        let lower = try CTCDecoder(vocabulary: vocab, blank: 0, lowercase: true)
        #expect(lower.decode(ids: [11, 10]).text == "hi")
        #expect(throws: AffectError.self) { try CTCDecoder(vocabulary: vocab, blank: 40) }
    }
}

/// Windows of a long input against one pass over the whole of it.
@Suite struct LongAudioTests {
    /// A deterministic speech-like signal (two gliding tones, an envelope, noise).
    func signal(_ n: Int) -> [Float] {
        var seed: UInt64 = 42
        return (0..<n).map { i in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let t = Double(i) / 16000
            let noise = Double(Int64(bitPattern: seed >> 11) % 1000) / 1e5
            return Float(0.3 * sin(2 * .pi * (180 + 40 * t) * t) * (1 + sin(3 * t)) + 0.1 * sin(2 * .pi * 1100 * t) + noise + 0.05)
        }
    }

    func chunks(_ x: [Float], size: Int = 3001) -> () throws -> [Float] {
        var pos = 0
        return {
            defer { pos = min(x.count, pos + size) }
            return Array(x[pos..<min(x.count, pos + size)])
        }
    }

    /// The whole signal in one pass, normalised as the processor does: the last hidden state, or
    /// `hidden_states.<layer>`.
    func singlePass(_ m: Wav2Vec2, _ x: [Float], layer: Int? = nil) -> Tensor {
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(x.count)
        let v = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(x.count)
        let norm = x.map { Float((Double($0) - mean) / (v + 1e-7).squareRoot()) }
        let out = m.forward(Tensor(shape: [1, x.count], values: norm), hiddenStates: layer.map { .only([$0]) } ?? .none)
        return layer.map { out.hiddenStates[$0]! } ?? out.lastHiddenState
    }

    func windowed(_ m: Wav2Vec2, _ x: [Float], _ w: AudioWindowing) throws -> (Tensor, [Int]) {
        let long = LongAudio(model: m, windowing: w)
        let st = try long.statistics(chunks(x))
        #expect(st.count == x.count)
        var rows: [Float] = [], starts: [Int] = []
        var expected = 0
        try long.run(chunks(x), statistics: st) { seg in
            #expect(seg.firstFrame == expected)
            expected += seg.hidden.shape[0]
            starts.append(seg.firstFrame)
            rows += seg.hidden.array
        }
        return (Tensor(shape: [expected, m.config.hiddenSize], values: rows), starts)
    }

    /// One window covering the file: the streamed statistics (normalisation, GroupNorm) equal the single pass.
    @Test(arguments: ["wav2vec2_tiny", "hubert_tiny"])
    func oneWindowEqualsSinglePass(_ name: String) throws {
        let m = try Wav2Vec2(weights: WeightFile(path: "\(audioFixtures)/\(name).safetensors"))
        let x = signal(16000 * 3 + 123)
        let ref = singlePass(m, x)
        let (ours, starts) = try windowed(m, x, AudioWindowing(window: 20, overlap: 2))
        #expect(starts == [0])
        let c = OutputComparison(name: name, ours: ours, reference: ref.reshaped([ref.shape[1], ref.shape[2]]))
        #expect(c.relativeError < 1e-5, "\(name): \(c.relativeError)")
    }

    /// Several windows: frame grid, count and order as the single pass; values close away from window edges
    /// (the tiny models' two layers attend across the whole input, so only the kept centres are compared).
    @Test(arguments: ["wav2vec2_tiny", "hubert_tiny"])
    func windowsStitchOnTheFrameGrid(_ name: String) throws {
        let m = try Wav2Vec2(weights: WeightFile(path: "\(audioFixtures)/\(name).safetensors"))
        let x = signal(16000 * 5 + 77)
        let ref = singlePass(m, x)
        let (ours, starts) = try windowed(m, x, AudioWindowing(window: 2, overlap: 1))
        #expect(ours.shape == [ref.shape[1], ref.shape[2]])
        #expect(starts == [0, 75, 125, 175])   // the window from frame 150 reaches the end (250 frames)
        let c = OutputComparison(name: name, ours: ours, reference: ref.reshaped([ref.shape[1], ref.shape[2]]))
        #expect(c.cosine > 0.99, "\(name): cosine \(c.cosine)")
    }

    /// Everything before the first attention layer is local (feature encoder, positional convolution, LayerNorm):
    /// with an overlap that covers the positional kernel (16 frames = 0.32 s here), `hidden_states.0` of the
    /// stitched windows equals the single pass in every frame; with a shorter one, frames near the cuts differ.
    @Test(arguments: ["wav2vec2_tiny", "hubert_tiny"])
    func localLayersStitchExactly(_ name: String) throws {
        let m = try Wav2Vec2(weights: WeightFile(path: "\(audioFixtures)/\(name).safetensors"))
        let x = signal(16000 * 5 + 77)
        let single = singlePass(m, x, layer: 0)
        let ref = single.reshaped([single.shape[1], single.shape[2]])
        func stitched(_ w: AudioWindowing) throws -> Tensor {
            let long = LongAudio(model: m, windowing: w)
            let st = try long.statistics(chunks(x))
            var rows: [Float] = []
            try long.run(chunks(x), statistics: st, layer: 0) { rows += $0.hidden.array }
            return Tensor(shape: ref.shape, values: rows)
        }
        let covered = OutputComparison(name: name, ours: try stitched(AudioWindowing(window: 2, overlap: 1)), reference: ref)
        #expect(covered.relativeError < 1e-5, "\(name): overlap 1 s, hidden_states.0 error \(covered.relativeError)")
        let short = OutputComparison(name: name, ours: try stitched(AudioWindowing(window: 2, overlap: 0.2)), reference: ref)
        #expect(short.relativeError > 1e-3, "\(name): overlap 0.2 s should leave the positional convolution short of context")
    }

    @Test func windowOptionsAreChecked() throws {
        #expect(throws: AffectError.self) { try AudioWindowing(window: 1, overlap: 1).frames(framesPerSecond: 50) }
        #expect(throws: AffectError.self) { try AudioWindowing(window: 0, overlap: 0).frames(framesPerSecond: 50) }
        #expect(throws: AffectError.self) { try AudioWindowing(window: 2, overlap: -1).frames(framesPerSecond: 50) }
        #expect(try AudioWindowing().frames(framesPerSecond: 50) == (1000, 150))
    }

    /// Zero-length and shorter-than-one-frame audio: no segments, no error.
    @Test func emptyAudioGivesNoFrames() throws {
        let m = try Wav2Vec2(weights: WeightFile(path: "\(audioFixtures)/wav2vec2_tiny.safetensors"))
        let long = LongAudio(model: m)
        for n in [0, 399] {
            let x = [Float](repeating: 0, count: n)
            let st = try long.statistics(chunks(x))
            var segments = 0
            try long.run(chunks(x), statistics: st) { _ in segments += 1 }
            #expect(segments == 0)
        }
    }
}
