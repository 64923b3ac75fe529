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
    @Test func convertsAHuggingFaceFolder() throws {
        let scratch = Scratch()
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
}
