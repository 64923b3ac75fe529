import Foundation
import Testing
import AffectKernels
import AffectModels

private let audio = "\(fixtures)/audio"

/// A mono 32-bit float WAV (what the processor-normalised reference inputs are, sample for sample).
private func writeFloatWav(_ x: [Float], to path: String, sampleRate: Int = 16000) throws {
    var d = Data()
    func u32(_ v: UInt32) { var le = v.littleEndian; d.append(Data(bytes: &le, count: 4)) }
    func u16(_ v: UInt16) { var le = v.littleEndian; d.append(Data(bytes: &le, count: 2)) }
    d.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(36 + x.count * 4)); d.append(contentsOf: Array("WAVE".utf8))
    d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(3); u16(1); u32(UInt32(sampleRate)); u32(UInt32(sampleRate * 4)); u16(4); u16(32)
    d.append(contentsOf: Array("data".utf8)); u32(UInt32(x.count * 4))
    x.withUnsafeBufferPointer { d.append(Data(buffer: $0)) }
    try d.write(to: URL(fileURLWithPath: path), options: .atomic)
}

/// `affect transcribe`, `embed-audio` and `decode-audio` end to end on the tiny CTC models: the first item of
/// the reference batch (transformers' processor output, already zero-mean unit-variance, so the tool's own
/// normalisation leaves it unchanged) written as a WAV file goes through FFmpeg, the windows and the model.
@Suite struct AudioCLITests {
    struct HFTranscript: Decodable {
        struct Word: Decodable { var word: String; var start: Double; var end: Double }
        var text: String
        var words: [Word]
    }

    func firstItem(_ name: String) throws -> (wav: String, ref: ReferenceFile) {
        let ref = try ReferenceFile(path: "\(audio)/\(name).b2.ref.safetensors")
        let x = ref.inputs.floats["input_values"]!
        // Tests run in parallel and several take the same item: each writes its own file.
        let wav = tempPath("\(name)-item0-\(UUID().uuidString).wav")
        try writeFloatWav(Array(UnsafeBufferPointer(start: x.data, count: x.shape[1])), to: wav)
        return (wav, ref)
    }

    @Test(arguments: ["wav2vec2_tiny", "hubert_tiny"])
    func transcribeMatchesTransformers(_ name: String) throws {
        let (wav, _) = try firstItem(name)
        let hf = try JSONDecoder().decode([HFTranscript].self, from: Data(contentsOf: URL(fileURLWithPath: "\(audio)/\(name).b2.transcript.json")))[0]
        let text = try runAffect(["transcribe", wav, "--model", "\(audio)/\(name).safetensors"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout == hf.text + "\n")
        let json = try runAffect(["transcribe", wav, "--model", "\(audio)/\(name).safetensors", "--format", "json"])
        #expect(json.status == 0)
        let obj = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect(obj["text"] as? String == hf.text)
        let words = obj["words"] as! [[String: Any]]
        #expect(words.map { $0["word"] as! String } == hf.words.map(\.word))
        for (w, h) in zip(words, hf.words) {
            #expect(abs((w["start"] as! Double) - h.start) < 1e-6 && abs((w["end"] as! Double) - h.end) < 1e-6)
        }
    }

    @Test func embedAudioFramesAndPooling() throws {
        let name = "wav2vec2_tiny"
        let (wav, ref) = try firstItem(name)
        let model = "\(audio)/\(name).safetensors"
        let frames = tempPath("frames.safetensors"), mean = tempPath("mean.safetensors"), stat = tempPath("stat.safetensors")
        #expect(try runAffect(["embed-audio", wav, "--model", model, "-o", frames]).status == 0)
        #expect(try runAffect(["embed-audio", wav, "--model", model, "--pool", "mean", "-o", mean]).status == 0)
        #expect(try runAffect(["embed-audio", wav, "--model", model, "--pool", "stat", "--layer", "1", "-o", stat]).status == 0)
        let f = try SafeTensorsFile(path: frames)
        let e = try f.tensor("embeddings")
        // Item 0 of the padded batch is the full-length one: its frames are transformers' last_hidden_state.
        let hs = ref.outputs["last_hidden_state"]!
        let (n, h) = (hs.shape[1], hs.shape[2])
        #expect(e.shape == [n, h])
        let c = OutputComparison(name: "embeddings", ours: e, reference: hs.item(0))
        #expect(c.relativeError < 1e-4, "relative error \(c.relativeError)")
        #expect(try f.tensor("frame_times").shape == [n])
        #expect(f.metadata["affect.embedding"]?.contains("last_hidden_state") == true)
        let m = try SafeTensorsFile(path: mean).tensor("embeddings")
        #expect(m.shape == [1, h])
        for j in 0..<h {
            var s: Float = 0
            for i in 0..<n { s += e.data[i * h + j] }
            #expect(abs(s / Float(n) - m.data[j]) < 1e-4)
        }
        #expect(try SafeTensorsFile(path: stat).tensor("embeddings").shape == [1, 4 * h])
    }

    @Test func badUsageAndBadFiles() throws {
        let (wav, _) = try firstItem("hubert_tiny")
        let model = "\(audio)/hubert_tiny.safetensors"
        let out = tempPath("x.safetensors")
        #expect(try runAffect(["embed-audio", wav, "--model", model, "--layer", "3", "-o", out]).status == 2)
        #expect(try runAffect(["embed-audio", wav, "--model", model, "--pool", "max", "-o", out]).status == 2)
        #expect(try runAffect(["transcribe", wav, "--model", model, "--window", "1", "--overlap", "2"]).status == 2)
        #expect(try runAffect(["transcribe", wav, "--model", model, "--format", "xml"]).status == 2)
        let vision = "\(fixtures)/models/efficientnet_tiny.safetensors"
        expectBadInput(try runAffect(["transcribe", wav, "--model", vision]), naming: vision, "a vision model")
        let junk = tempPath("junk.mp3")
        FileManager.default.createFile(atPath: junk, contents: Data((0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }))
        expectBadInput(try runAffect(["transcribe", junk, "--model", model]), naming: junk, "random bytes")
        let ppm = tempPath("gray.ppm")
        FileManager.default.createFile(atPath: ppm, contents: Data("P6\n4 4\n255\n".utf8) + Data(repeating: 9, count: 48))
        let r = try runAffect(["embed-audio", ppm, "--model", model, "-o", out])
        expectBadInput(r, naming: ppm, "no audio stream")
        #expect(r.stderr.contains("no audio stream"))
        let missing = tempPath("missing.wav")
        expectBadInput(try runAffect(["decode-audio", missing, "-o", tempPath("d.wav")]), naming: missing, "missing file")
    }

    /// Zero-length audio: an empty transcript and zero embedding rows, exit 0.
    @Test func zeroLengthAudio() throws {
        let wav = tempPath("zero.wav")
        try writeFloatWav([], to: wav)
        let model = "\(audio)/wav2vec2_tiny.safetensors"
        let t = try runAffect(["transcribe", wav, "--model", model, "--format", "json"])
        #expect(t.status == 0, "\(t.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(t.stdout.utf8)) as! [String: Any]
        #expect(obj["text"] as? String == "" && (obj["words"] as? [Any])?.isEmpty == true && obj["frames"] as? Int == 0)
        let out = tempPath("zero.safetensors")
        #expect(try runAffect(["embed-audio", wav, "--model", model, "--pool", "stat", "-o", out]).status == 0)
        #expect(try SafeTensorsFile(path: out).tensor("embeddings").shape == [0, 128])
    }

    @Test func decodeAudioWritesWavAndFlac() throws {
        let (wav, ref) = try firstItem("wav2vec2_tiny")
        for ext in ["wav", "flac"] {
            let out = tempPath("decoded.\(ext)")
            let r = try runAffect(["decode-audio", wav, "-o", out])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("\(ref.inputs.floats["input_values"]!.shape[1]) samples"))
        }
        #expect(try runAffect(["decode-audio", wav, "-o", tempPath("x.mp3")]).status == 2)
    }
}
