import ArgumentParser
import Foundation
import AffectKernels
import AffectModels

extension TextTransformer.Pooling: ExpressibleByArgument {}

struct EmbedText: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed-text",
        abstract: "Embed texts with a RoBERTa / BERT model; classifiers also print their labels with scores.",
        discussion: """
        Texts: TEXT, or each line of --file (an empty line is an empty text: [CLS] [SEP] alone; an empty file \
        gives zero rows). Pooling defaults to the model's \
        own (sentence for sentence-transformers models: masked mean + L2 normalisation; cls otherwise). \
        Texts longer than the model's maximum are truncated (as sentence-transformers does) unless \
        --long windows, which runs overlapping windows (--overlap tokens) and stitches their token states. \
        Output (-o): safetensors with `embeddings` [N, H] (token pooling: `last_hidden_state` [N, L, H] padded, \
        with `attention_mask` [N, L]) and `scores` [N, labels] for classifiers. --format json prints a readable \
        summary instead (for a few sentences).
        """)

    enum Long: String, ExpressibleByArgument { case truncate, windows }
    enum Format: String, ExpressibleByArgument { case safetensors, json }

    @Option(help: "A roberta / bert weight file.") var model: String
    @Option(help: "token, mean, cls or sentence.") var pool: TextTransformer.Pooling?
    @Option(help: "Read one text per line from this file.") var file: String?
    @Flag(help: "Each line of --file is a JSON string (texts may then hold newlines).") var jsonl = false
    @Argument(help: "The text (when --file is not given).") var text: String?
    @Option(name: .shortAndLong, help: "Output safetensors file.") var output: String?
    @Option(help: "Texts longer than the model's maximum: truncate (default) or windows.") var long: Long = .truncate
    @Option(help: "Overlap of consecutive windows, in tokens: at least 0 and less than the window (the model's maximum less its special tokens).") var overlap: Int = 64
    @Option(help: "safetensors (needs -o) or json (to standard output).") var format: Format = .safetensors
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        guard (file == nil) != (text == nil) else { throw AffectError.badUsage("give either TEXT or --file F.") }
        if format == .safetensors && output == nil { throw AffectError.badUsage("give -o OUT.safetensors or --format json.") }
        try checkRange(overlap, 0...1_000_000, "--overlap", " tokens")
        if let output { try checkOutputs([("-o", output)], inputs: [model, file]) }
        let encoder = try TextEncoder(weights: WeightFile(path: resolveWeights(model)))
        // A window holds the model's maximum less the special tokens; an overlap of a whole window or more
        // would leave no step (the library would step one token at a time).
        let window = encoder.model.maxTokens - encoder.tokenizer.prefixIds.count - encoder.tokenizer.suffixIds.count
        if long == .windows && overlap >= window {
            throw AffectError.badUsage("--overlap must be less than the window of \(model), \(max(window, 0)) tokens, got \(overlap).")
        }
        var texts = try readTextLines(file: file, text: text)
        if jsonl {
            texts = try texts.enumerated().map { i, line in
                guard let s = try? JSONSerialization.jsonObject(with: Data(line.utf8), options: .fragmentsAllowed) as? String else {
                    throw AffectError.badInput("\(file ?? "text"): line \(i + 1) is not a JSON string.")
                }
                return s
            }
        }
        let pooling = pool ?? encoder.model.defaultPooling
        let longText: TextEncoder.LongText = long == .windows ? .windows(overlap: overlap) : .truncate
        let scores = encoder.model.hasClassifier ? try encoder.classify(texts, longText: longText) : nil

        var writer = SafeTensorsWriter(metadata: ["affect.pooling": pooling.rawValue])
        var json: [[String: Any]] = []
        if pooling == .token {
            let states = try texts.map { try encoder.tokenStates($0, longText: longText) }
            let l = states.map { $0.shape[1] }.max() ?? 0, h = encoder.model.hidden
            let all = Tensor.zeros([texts.count, l, h])
            var mask = [Int64](repeating: 0, count: texts.count * l)
            for (i, s) in states.enumerated() {
                (all.data + i * l * h).update(from: s.data, count: s.count)
                for j in 0..<s.shape[1] { mask[i * l + j] = 1 }
                json.append(["text": texts[i], "tokens": s.shape[1],
                             "first_token_head": Array(s.array.prefix(8)).map(Double.init)])
            }
            writer.add("last_hidden_state", all)
            writer.add("attention_mask", IntTensor(shape: [texts.count, l], values: mask))
        } else {
            let e = try encoder.embed(texts, pooling: pooling, longText: longText)
            writer.add("embeddings", e)
            let h = e.shape[1]
            for (i, t) in texts.enumerated() {
                let v = Array(UnsafeBufferPointer(start: e.data + i * h, count: h))
                json.append(["text": t, "embedding": format == .json && texts.count <= 8 ? v.map(Double.init) : Array(v.prefix(8)).map(Double.init)])
            }
        }
        if let scores {
            let c = scores.first?.count ?? 0
            writer.add("scores", shape: [texts.count, c], floats: scores.flatMap { $0.map(\.score) })
            for (i, s) in scores.enumerated() {
                json[i]["scores"] = Dictionary(uniqueKeysWithValues: s.map { ($0.label, Double($0.score)) })
            }
        }
        if format == .json {
            let d = try JSONSerialization.data(withJSONObject: ["model": model, "pooling": pooling.rawValue, "texts": json],
                                               options: [.prettyPrinted, .sortedKeys])
            FileHandle.standardOutput.write(d + Data("\n".utf8))
        } else if let output {
            if let ls = encoder.model.labels.isEmpty ? nil : encoder.model.labels {
                writer.metadata["affect.labels"] = String(data: try JSONSerialization.data(withJSONObject: ls), encoding: .utf8)
            }
            try writer.write(to: output)
            print("wrote \(output): \(texts.count) texts, pooling \(pooling.rawValue)")
            if let scores {
                for (i, s) in scores.enumerated() {
                    let top = s.sorted { $0.score > $1.score }.prefix(5).map { "\($0.label) \(String(format: "%.3f", $0.score))" }
                    print("\(i): " + top.joined(separator: ", "))
                }
            }
        }
    }
}
