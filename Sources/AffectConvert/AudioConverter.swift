import Foundation
import AffectKernels

/// Hugging Face wav2vec 2.0 / HuBERT folders (arch `wav2vec2` / `hubert`), as Tools/converters/hf_audio.py.
enum AudioConverter {
    static let modelTypes = ["wav2vec2", "hubert"]

    static let configKeys = [
        "model_type", "architectures", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "hidden_act", "layer_norm_eps", "feat_extract_norm", "feat_extract_activation", "conv_dim", "conv_kernel",
        "conv_stride", "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "do_stable_layer_norm",
        "feat_proj_layer_norm", "conv_pos_batch_norm", "add_adapter", "vocab_size", "pad_token_id",
    ]

    /// Largest token id a CTC vocabulary may use (a real one has a few dozen to a few thousand).
    static let maxVocabulary = 1 << 20

    static func detect(_ source: String) -> String? {
        guard isDirectory(source), let t = HFFolder.modelType(source) else { return nil }
        return modelTypes.contains(t) ? t : nil
    }

    static func checkWeightNorm(_ sd: StateDict, _ folder: String) throws(AffectError) {
        guard let prefix = ["wav2vec2.", "hubert.", ""].first(where: { sd.contains("\($0)feature_projection.projection.weight") }) else {
            throw .badInput("\(folder): no `feature_projection.projection.weight`: not a wav2vec2/HuBERT checkpoint.")
        }
        let base = "\(prefix)encoder.pos_conv_embed.conv."
        let spellings = [["weight_g", "weight_v"], ["parametrizations.weight.original0", "parametrizations.weight.original1"], ["weight"]]
        guard spellings.contains(where: { $0.allSatisfy { sd.contains(base + $0) } }) else {
            throw .badInput("\(folder): the positional convolution has neither weight_g/weight_v nor parametrizations.weight.original0/1 nor a plain weight.")
        }
    }

    /// The CTC vocabulary as labels by id (`vocab.json`, per-language vocabularies, `added_tokens.json`).
    static func vocabulary(_ folder: String) throws(AffectError) -> [String]? {
        guard var vocab = try HFFolder.object(folder, "vocab.json") else { return nil }
        let vocabPath = HFFolder.path(folder, "vocab.json")
        if let members = vocab.objectValue, !members.isEmpty, members.allSatisfy({ $0.1.objectValue != nil }) {
            let tok = try HFFolder.object(folder, "tokenizer_config.json") ?? .object([])
            let lang: String
            if let l = tok["target_lang"]?.stringValue, !l.isEmpty { lang = l } else { lang = members.map(\.0).min()! }
            guard let v = vocab[lang], v.objectValue != nil else {
                throw .badInput("\(vocabPath): no vocabulary for language `\(lang)`.")
            }
            vocab = v
        }
        func ids(_ obj: JSON, _ path: String) throws(AffectError) -> [(String, Int)] {
            var out: [(String, Int)] = []
            for (t, v) in obj.objectValue ?? [] {
                guard let i = v.intValue, i >= 0, i < maxVocabulary else {
                    throw .badInput("\(path): token `\(t)` has id \(v.serialized()), not an integer in 0..<\(maxVocabulary).")
                }
                out.append((t, i))
            }
            return out
        }
        let entries = try ids(vocab, vocabPath)
        guard let top = entries.map(\.1).max() else { throw .badInput("\(vocabPath): the vocabulary is empty.") }
        var tokens = [String?](repeating: nil, count: top + 1)
        for (t, i) in entries { tokens[i] = t }
        if let added = try HFFolder.object(folder, "added_tokens.json") {
            for (t, i) in try ids(added, HFFolder.path(folder, "added_tokens.json")) {
                if i >= tokens.count { tokens += [String?](repeating: nil, count: i + 1 - tokens.count) }
                tokens[i] = t
            }
        }
        return tokens.map { $0 ?? "" }
    }

    static func convert(_ source: String, arch: String?) throws(AffectError) -> ConvertedModel {
        guard let cfg = try HFFolder.object(source, "config.json") else { throw .badInput("\(source): config.json is missing.") }
        guard let arch = arch ?? cfg["model_type"]?.stringValue.flatMap({ modelTypes.contains($0) ? $0 : nil }) else {
            throw .badInput("\(source): config.json's model_type is not wav2vec2 or hubert; name the architecture explicitly.")
        }
        let (sd, files) = try readHFWeights(source, sharded: true)
        try checkWeightNorm(sd, source)
        var config = pick(cfg, configKeys)

        let pre = try HFFolder.object(source, "preprocessor_config.json") ?? .object([])
        let preprocess = JSON.object([
            ("sampling_rate", pre["sampling_rate"] ?? .int(16000)),
            ("do_normalize", pre["do_normalize"] ?? .bool(true)),
            ("return_attention_mask", pre["return_attention_mask"] ?? .bool(false)),
            ("padding_value", pre["padding_value"] ?? .double(0)),
            ("channels", .int(1)),
        ])

        var labels: [String]?
        if let head = sd["lm_head.weight"] {
            guard var l = try vocabulary(source) else { throw .badInput("\(source): the checkpoint has an lm_head but no vocab.json.") }
            guard let n = head.shape.first else { throw .badInput("\(source): `lm_head.weight` has no rows.") }
            if l.count < n { l += [String](repeating: "", count: n - l.count) }
            l = Array(l.prefix(n))
            labels = l
            let tok = try HFFolder.object(source, "tokenizer_config.json") ?? .object([])
            let special = try HFFolder.object(source, "special_tokens_map.json") ?? .object([])
            func token(_ name: String, _ fallback: String) -> JSON {
                let v = tok[name] ?? special[name] ?? .string(fallback)
                if v.objectValue != nil { return v["content"] ?? .string(fallback) }
                return v
            }
            let pad = token("pad_token", "<pad>")
            if let p = pad.stringValue, let i = l.firstIndex(of: p) { config.set("pad_token_id", .int(i)) }
            else { config.set("pad_token_id", cfg["pad_token_id"] ?? .int(0)) }
            config.set("word_delimiter_token", token("word_delimiter_token", "|"))
            config.set("do_lower_case", .bool(truthy(tok["do_lower_case"])))
            config.set("clean_up_tokenization_spaces", .bool(truthy(tok["clean_up_tokenization_spaces"])))
        }
        var digests: [String] = []
        for f in files { digests.append("\(basename(f)) sha256=\(try SHA256.file(f))") }
        return ConvertedModel(arch: arch, tensors: sd, config: config, labels: labels, preprocess: preprocess,
                              source: "\(basename(source)): \(digests.joined(separator: ", "))", tokenizer: nil)
    }
}

/// Python's `bool(v)` for a JSON value (absent is False).
func truthy(_ v: JSON?) -> Bool {
    switch v {
    case nil, .null?: return false
    case .bool(let b)?: return b
    case .number(let s)?: return (Double(s) ?? 0) != 0
    case .string(let s)?: return !s.isEmpty
    case .array(let a)?: return !a.isEmpty
    case .object(let o)?: return !o.isEmpty
    }
}

func isDirectory(_ path: String) -> Bool {
    var d: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
}
