import Foundation
import AffectKernels

/// Whisper checkpoints (arch `whisper`): Hugging Face `WhisperForConditionalGeneration` folders and
/// openai-whisper `.pt` files (`{"dims": …, "model_state_dict": …}`), both written with Hugging Face tensor names
/// without the `model.` prefix, `affect.config` in `WhisperConfig` names, and the tokenizer in `affect.tokenizer`
/// (a tokenizer.json; a `.tiktoken` asset is rewritten as one).
enum WhisperConverter {
    static let configKeys = ["vocab_size", "num_mel_bins", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                             "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "max_source_positions",
                             "max_target_positions", "activation_function", "scale_embedding", "decoder_start_token_id"]

    /// openai-whisper names → Hugging Face names (applied in order, as transformers' convert_openai_to_hf does).
    static let renames: [(String, String)] = [
        ("encoder.positional_embedding", "encoder.embed_positions.weight"),
        ("decoder.positional_embedding", "decoder.embed_positions.weight"),
        ("decoder.token_embedding", "decoder.embed_tokens"),
        ("encoder.ln_post", "encoder.layer_norm"), ("decoder.ln.", "decoder.layer_norm."),
        ("blocks", "layers"), (".cross_attn_ln", ".encoder_attn_layer_norm"), (".attn_ln", ".self_attn_layer_norm"),
        (".mlp_ln", ".final_layer_norm"), (".mlp.0", ".fc1"), (".mlp.2", ".fc2"),
        (".cross_attn.query", ".encoder_attn.q_proj"), (".cross_attn.key", ".encoder_attn.k_proj"),
        (".cross_attn.value", ".encoder_attn.v_proj"), (".cross_attn.out", ".encoder_attn.out_proj"),
        (".attn.query", ".self_attn.q_proj"), (".attn.key", ".self_attn.k_proj"), (".attn.value", ".self_attn.v_proj"),
        (".attn.out", ".self_attn.out_proj"),
    ]

    static func hfName(_ openai: String) -> String {
        renames.reduce(openai) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
    }

    static func detect(_ source: String) -> String? {
        if isDirectory(source) { return HFFolder.modelType(source) == "whisper" ? "whisper" : nil }
        guard source.hasSuffix(".pt"), let sd = try? TorchCheckpoint.stateDict(source) else { return nil }
        return sd.contains("decoder.token_embedding.weight") && sd.contains("encoder.conv1.weight") ? "whisper" : nil
    }

    static func convert(_ source: String, tokenizerFile: String?) throws(AffectError) -> ConvertedModel {
        isDirectory(source) ? try convertFolder(source, tokenizerFile: tokenizerFile) : try convertOpenAI(source, tokenizerFile: tokenizerFile)
    }

    static func convertFolder(_ source: String, tokenizerFile: String?) throws(AffectError) -> ConvertedModel {
        guard let cfg = try HFFolder.object(source, "config.json") else { throw .badInput("\(source): config.json is missing.") }
        let (raw, files) = try readHFWeights(source, sharded: true)
        var sd = StateDict()
        for n in raw.names { sd[n.hasPrefix("model.") ? String(n.dropFirst(6)) : n] = raw[n] }
        guard sd.contains("decoder.embed_tokens.weight") else {
            throw .badInput("\(source): no `model.decoder.embed_tokens.weight`: not a WhisperForConditionalGeneration checkpoint.")
        }
        // proj_out is tied to the token embedding in every released checkpoint: the file keeps one copy.
        sd["proj_out.weight"] = nil
        let tokenizer: String
        if let t = tokenizerFile {
            tokenizer = try tokenizerJSON(t)
        } else if HFFolder.exists(HFFolder.path(source, "tokenizer.json")) {
            tokenizer = try tokenizerJSON(HFFolder.path(source, "tokenizer.json"))
        } else if HFFolder.exists(HFFolder.path(source, "vocab.json")) {
            tokenizer = try tokenizerJSON(HFFolder.path(source, "vocab.json"), added: try HFFolder.object(source, "added_tokens.json"))
        } else {
            throw .badInput("\(source): no tokenizer.json or vocab.json; give a tokenizer file explicitly.")
        }
        var digests: [String] = []
        for f in files { digests.append("\(basename(f)) sha256=\(try SHA256.file(f))") }
        return ConvertedModel(arch: "whisper", tensors: sd, config: pick(cfg, configKeys), labels: nil, preprocess: nil,
                              source: "\(basename(source)): \(digests.joined(separator: ", "))", tokenizer: tokenizer)
    }

    static func convertOpenAI(_ source: String, tokenizerFile: String?) throws(AffectError) -> ConvertedModel {
        guard let tokenizerFile else {
            throw .badUsage("\(source): openai-whisper checkpoints carry no tokenizer; give one explicitly: openai-whisper's assets/multilingual.tiktoken (or gpt2.tiktoken for .en models) or a tokenizer.json.")
        }
        guard case .dict(let root) = try TorchCheckpoint.load(source), case .dict(let dims)? = root.get("dims") else {
            throw .badInput("\(source): not an openai-whisper checkpoint (no `dims`).")
        }
        func dim(_ key: String) throws(AffectError) -> Int {
            guard case .int(let v)? = dims.get(key), v > 0, v <= 1 << 20 else { throw .badInput("\(source): `dims.\(key)` is missing or not a positive integer.") }
            return Int(v)
        }
        let state = try dim("n_audio_state")
        guard try dim("n_text_state") == state else { throw .badInput("\(source): `dims.n_text_state` differs from `n_audio_state`; Whisper uses one width.") }
        let config = JSON.object([
            ("vocab_size", .int(try dim("n_vocab"))), ("num_mel_bins", .int(try dim("n_mels"))), ("d_model", .int(state)),
            ("encoder_layers", .int(try dim("n_audio_layer"))), ("decoder_layers", .int(try dim("n_text_layer"))),
            ("encoder_attention_heads", .int(try dim("n_audio_head"))), ("decoder_attention_heads", .int(try dim("n_text_head"))),
            ("encoder_ffn_dim", .int(4 * state)), ("decoder_ffn_dim", .int(4 * state)),
            ("max_source_positions", .int(try dim("n_audio_ctx"))), ("max_target_positions", .int(try dim("n_text_ctx"))),
            ("activation_function", .string("gelu")), ("scale_embedding", .bool(false)),
        ])
        let raw = try TorchCheckpoint.stateDict(source)
        var sd = StateDict()
        for n in raw.names { sd[hfName(n)] = raw[n] }
        return ConvertedModel(arch: "whisper", tensors: sd, config: config, labels: nil, preprocess: nil,
                              source: "\(basename(source)) sha256=\(try SHA256.file(source))", tokenizer: try tokenizerJSON(tokenizerFile))
    }

    /// A tokenizer.json (as it is), a vocab.json (+ added tokens) or a `.tiktoken` asset, as tokenizer.json text.
    static func tokenizerJSON(_ path: String, added: JSON? = nil) throws(AffectError) -> String {
        let data = try readFile(path, limit: 32 << 20)
        if path.hasSuffix(".tiktoken") {
            // Ranks become ids; token bytes are spelled with GPT-2's byte-to-character table.
            var table = [String](repeating: "", count: 256)
            var next = 256
            for b in 0..<256 {
                if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) { table[b] = String(UnicodeScalar(UInt8(b))) }
                else { table[b] = String(Character(Unicode.Scalar(UInt32(next))!)); next += 1 }
            }
            var vocab: [(String, JSON)] = []
            for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let rank = Int(parts[1]), rank == n,
                      let bytes = parts[0] == "=" ? Data() : Data(base64Encoded: String(parts[0])) else {
                    throw .badInput("\(path): line \(n + 1) is not `base64 rank` with ranks counting up from 0.")
                }
                vocab.append((bytes.map { table[Int($0)] }.joined(), .int(rank)))
            }
            return JSON.object([("model", .object([("type", .string("BPE")), ("vocab", .object(vocab))]))]).serialized(asciiOnly: false)
        }
        let json = try JSON.parse(data, origin: path)
        if json["model"] != nil { return String(decoding: data, as: UTF8.self) }
        guard json.objectValue != nil else { throw .badInput("\(path): not a tokenizer.json, vocab.json or .tiktoken file.") }
        let addedTokens = (added?.objectValue ?? []).map { JSON.object([("content", .string($0.0)), ("id", $0.1)]) }
        return JSON.object([("model", .object([("type", .string("BPE")), ("vocab", json)])), ("added_tokens", .array(addedTokens))])
            .serialized(asciiOnly: false)
    }
}
