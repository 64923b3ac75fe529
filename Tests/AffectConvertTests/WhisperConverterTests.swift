import Foundation
import Testing
import AffectKernels
@testable import AffectConvert

private let whisperFixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/whisper/whisper_fixture.safetensors").path

/// A Hugging Face `WhisperForConditionalGeneration` folder (model.safetensors with `model.` names and a tied
/// `proj_out.weight`, config.json, vocab.json + added_tokens.json) made from the Whisper test fixture, converted
/// by Swift: the same tensors under the weight file's names, the config, and the vocabulary as a tokenizer.
/// (The .pt path is checked end to end with `affect verify` on the script's whisper_SIZE.pt; README.)
@Suite struct WhisperConverterTests {
    /// A Hugging Face Whisper folder made from the fixture, in `folder`.
    func makeFolder(_ folder: ScratchFolder) throws -> SafeTensorsFile {
        let scratch = folder
        let fixture = try SafeTensorsFile(path: whisperFixture)
        var writer = SafeTensorsWriter()
        for info in fixture.tensors { writer.add("model." + info.name, try fixture.tensor(info)) }
        if let e = fixture.info("decoder.embed_tokens.weight") { writer.add("proj_out.weight", try fixture.tensor(e)) }
        try writer.serialized().write(to: URL(fileURLWithPath: scratch.file("model.safetensors")))
        let config = try #require(fixture.metadata["affect.config"])
        try Data(#"{"model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"], "#.utf8 + Data(config.dropFirst().utf8))
            .write(to: URL(fileURLWithPath: scratch.file("config.json")))
        try Data(#"{"!": 0, "\"": 1, "<|endoftext|>": 2}"#.utf8).write(to: URL(fileURLWithPath: scratch.file("vocab.json")))
        try Data(#"{"<|startoftranscript|>": 3}"#.utf8).write(to: URL(fileURLWithPath: scratch.file("added_tokens.json")))
        return fixture
    }

    @Test func convertsAHuggingFaceFolder() throws {
        let scratch = ScratchFolder()
        let fixture = try makeFolder(scratch)
        #expect(Converter.detect(scratch.path) == "whisper")
        let m = try Converter.convert(scratch.path)
        #expect(m.arch == "whisper")
        #expect(Set(m.tensors.names) == Set(fixture.tensors.map(\.name)))
        #expect(!m.tensors.contains("proj_out.weight"))
        #expect(m.config["d_model"]?.intValue == 16 && m.config["vocab_size"]?.intValue == 51865)
        let tok = try JSON.parse(Data(try #require(m.tokenizer).utf8), origin: "tokenizer")
        #expect(tok["model"]?["vocab"]?["<|endoftext|>"]?.intValue == 2)
        #expect(tok["added_tokens"]?.arrayValue?.first?["content"]?.stringValue == "<|startoftranscript|>")
    }

    @Test func openAICheckpointsNeedATokenizer() {
        #expect(throws: AffectError.self) { try WhisperConverter.convertOpenAI("/nonexistent.pt", tokenizerFile: nil) }
        #expect(WhisperConverter.hfName("decoder.blocks.3.cross_attn.query.weight") == "decoder.layers.3.encoder_attn.q_proj.weight")
        #expect(WhisperConverter.hfName("encoder.blocks.0.mlp.2.bias") == "encoder.layers.0.fc2.bias")
    }

    /// The registry names every released size as a Hugging Face `openai/whisper-*` folder converted whole; none
    /// can be pinned offline, and each says so.
    @Test func registryNamesTheWhisperSizes() throws {
        let r = ModelRegistry.builtin
        for size in ["tiny", "base", "small", "medium"] {
            for name in ["whisper-\(size)", "whisper-\(size).en"] {
                let m = try #require(r[name], "\(name) missing")
                #expect(m.arch == "whisper" && m.convert == "." && m.licence == "MIT")
                #expect(!m.isPinned && m.note?.contains("sha256") == true)
                let required = m.files.filter { !$0.optional }.map(\.path)
                #expect(required == ["config.json", "tokenizer.json", "model.safetensors"], "\(name): \(required)")
                for f in m.files { #expect(f.url == "https://huggingface.co/openai/\(name)/resolve/\(m.revision)/\(f.path)") }
            }
        }
    }

    /// `affect pull whisper-tiny.en` end to end against a loopback mirror serving a Whisper folder (made from the
    /// fixture: only the files' layout is the real one's): downloaded through the mirror and converted to a Whisper weight file.
    @Test func pullsAWhisperFolderThroughTheRegistry() throws {
        let folder = ScratchFolder()
        _ = try makeFolder(folder)
        // The registry's tokenizer.json: the vocab.json of the folder as a tokenizer.json, as the converter writes it.
        let tokenizer = try WhisperConverter.tokenizerJSON(folder.file("vocab.json"), added: try HFFolder.object(folder.path, "added_tokens.json"))
        let server = try LoopbackServer(); defer { server.stop() }
        let prefix = "/mirror/huggingface.co/openai/whisper-tiny.en/resolve/main/"
        server.put(prefix + "config.json", try Data(contentsOf: URL(fileURLWithPath: folder.file("config.json"))))
        server.put(prefix + "tokenizer.json", Data(tokenizer.utf8))
        server.put(prefix + "model.safetensors", try Data(contentsOf: URL(fileURLWithPath: folder.file("model.safetensors"))))
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), mirror: server.base + "/mirror")
        let path = try store.pull("whisper-tiny.en", to: scratch.file("out"))
        #expect(path == scratch.file("out/whisper-tiny.en.safetensors"))
        let fixture = try SafeTensorsFile(path: whisperFixture), pulled = try SafeTensorsFile(path: path)
        #expect(pulled.metadata["affect.arch"] == "whisper")
        #expect(Set(pulled.tensors.map(\.name)) == Set(fixture.tensors.map(\.name)))
        let asked = Set(server.requests.map(\.path))
        #expect(asked.contains(prefix + "generation_config.json"), "optional files are asked for: \(asked)")
    }
}
