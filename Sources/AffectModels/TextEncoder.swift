import Foundation
import AffectKernels

/// Text in, vectors or labelled scores out: a ``Tokenizer`` and a ``TextTransformer`` from one weight file.
///
/// ```swift
/// let encoder = try TextEncoder(weights: WeightFile(path: "Weights/all-MiniLM-L6-v2.safetensors"))
/// let e = try encoder.embed(["I am glad.", "This is awful."], pooling: .sentence)   // [2, 384]
/// ```
///
/// **Long text.** A text with more tokens than the model takes (``TextTransformer/maxTokens``, special tokens
/// included) is by default **truncated** to its first tokens, as sentence-transformers and the transformers
/// pipelines do, so results equal theirs. With ``LongText/windows(overlap:)`` it is instead cut into windows
/// of `maxTokens` that overlap by `overlap` tokens; every window runs through the model and the token states
/// are stitched (each token taken from the window in which it is farthest from an edge; `[CLS]` from the
/// first, `[SEP]` from the last), then pooled as one sequence. Classifier scores over windows are averaged.
///
/// **Empty text** gives the special tokens alone (`[CLS] [SEP]`), as the Hugging Face tokenizer does.
public struct TextEncoder: Sendable {
    public let tokenizer: Tokenizer
    public let model: TextTransformer

    /// What to do with texts longer than the model's maximum.
    public enum LongText: Sendable, Equatable {
        case truncate
        case windows(overlap: Int)
    }

    public init(weights w: WeightFile) throws {
        model = try TextTransformer(weights: w)
        tokenizer = try Tokenizer(weights: w)
        guard tokenizer.vocabularySize <= model.vocabularySize else {
            throw AffectError.badInput("\(w.path): the tokenizer has \(tokenizer.vocabularySize) tokens but the model only \(model.vocabularySize) embeddings.")
        }
    }

    public var labels: [String] { model.labels }

    /// Token states `[1, T, H]` of one text (T = its token count, after truncation or stitching).
    public func tokenStates(_ text: String, longText: LongText = .truncate) throws -> Tensor {
        let maxLen = model.maxTokens
        let specials = tokenizer.prefixIds.count + tokenizer.suffixIds.count
        let body = tokenizer.tokenize(text)
        guard case .windows(let overlap) = longText, body.count + specials > maxLen else {
            let ids = tokenizer.encode(text, maxLength: maxLen).ids
            return try model.hiddenStates(ids: ids, mask: [Int](repeating: 1, count: ids.count), batch: 1, length: ids.count,
                                          source: "text")
        }
        let width = maxLen - specials
        guard width > 0 else { throw AffectError.badUsage("the model takes only \(maxLen) tokens, too few for windows.") }
        let step = max(1, width - max(0, min(overlap, width - 1)))
        var starts: [Int] = []
        var s = 0
        while true { starts.append(s); if s + width >= body.count { break }; s += step }
        let windows = starts.map { tokenizer.prefixIds + body[$0..<min($0 + width, body.count)] + tokenizer.suffixIds }
        let h = model.hidden
        let total = body.count + specials
        let out = Tensor(uninitialized: [1, total, h])
        let pre = tokenizer.prefixIds.count, post = tokenizer.suffixIds.count
        // Output row → (window, position in it): each token from the window where it is farthest from an edge,
        // the leading specials from the first window and the trailing ones from the last.
        var source = [(window: Int, position: Int)](repeating: (0, 0), count: total)
        for p in 0..<pre { source[p] = (0, p) }
        for t in 0..<body.count {
            var best = 0, bestMargin = -1
            // Windows holding t start in (t − width, t]: window w starts at w·step.
            let first = max(0, (t - width) / step), lastCandidate = min(starts.count - 1, t / step)
            for w in first...lastCandidate where t >= starts[w] && t < starts[w] + width {
                let start = starts[w]
                let margin = min(t - start, min(start + width, body.count) - 1 - t)
                if margin > bestMargin { best = w; bestMargin = margin }
            }
            source[pre + t] = (best, pre + t - starts[best])
        }
        let last = windows.count - 1
        for k in 0..<post { source[pre + body.count + k] = (last, windows[last].count - post + k) }
        // Windows run in groups of 8, so an enormous text never needs all its windows' activations at once.
        for g in stride(from: 0, to: windows.count, by: 8) {
            let group = g..<min(g + 8, windows.count)
            let batch = tokenizer.pad(Array(windows[group]))
            let states = try model.hiddenStates(ids: batch.ids, mask: batch.mask, batch: batch.count, length: batch.length,
                                                source: "text")
            for (row, src) in source.enumerated() where group.contains(src.window) {
                (out.data + row * h).update(from: states.data + ((src.window - g) * batch.length + src.position) * h, count: h)
            }
        }
        return out
    }

    /// One vector per text, `[N, H]` (`.token` is not a vector per text: use ``tokenStates(_:longText:)``).
    /// Texts of a batch run together, padded, when none needs windows.
    public func embed(_ texts: [String], pooling: TextTransformer.Pooling, longText: LongText = .truncate) throws -> Tensor {
        guard pooling != .token else { throw AffectError.badUsage("token pooling gives one matrix per text; use tokenStates.") }
        let h = model.hidden
        let out = Tensor(uninitialized: [texts.count, h])
        let maxLen = model.maxTokens
        let needsWindows: Bool
        if case .windows = longText { needsWindows = true } else { needsWindows = false }
        if !needsWindows {
            // Batches of up to 16 texts of similar length.
            let encoded = texts.map { tokenizer.encode($0, maxLength: maxLen).ids }
            let order = encoded.indices.sorted { encoded[$0].count < encoded[$1].count }
            for chunk in stride(from: 0, to: order.count, by: 16) {
                let idx = Array(order[chunk..<min(chunk + 16, order.count)])
                let batch = tokenizer.pad(idx.map { encoded[$0] })
                let states = try model.hiddenStates(ids: batch.ids, mask: batch.mask, batch: batch.count, length: batch.length,
                                                    source: "text")
                let pooled = model.pool(states, mask: batch.mask, pooling)
                for (k, i) in idx.enumerated() { (out.data + i * h).update(from: pooled.data + k * h, count: h) }
            }
            return out
        }
        for (i, t) in texts.enumerated() {
            let states = try tokenStates(t, longText: longText)
            let pooled = model.pool(states, mask: [Int](repeating: 1, count: states.shape[1]), pooling)
            (out.data + i * h).update(from: pooled.data, count: h)
        }
        return out
    }

    /// Labelled scores per text (sigmoid for multi-label heads such as go_emotions, softmax otherwise).
    /// With windows, a long text's scores are the mean over its windows.
    public func classify(_ texts: [String], longText: LongText = .truncate) throws -> [[(label: String, score: Float)]] {
        guard model.hasClassifier else { throw AffectError.badUsage("this text model has no classification head.") }
        let maxLen = model.maxTokens
        let specials = tokenizer.prefixIds.count + tokenizer.suffixIds.count
        return try texts.map { text in
            var sequences: [[Int]]
            let body = tokenizer.tokenize(text)
            if case .windows(let overlap) = longText, body.count + specials > maxLen {
                let width = maxLen - specials, step = max(1, width - max(0, min(overlap, width - 1)))
                sequences = []
                var s = 0
                while true {
                    sequences.append(tokenizer.prefixIds + body[s..<min(s + width, body.count)] + tokenizer.suffixIds)
                    if s + width >= body.count { break }
                    s += step
                }
            } else {
                sequences = [tokenizer.encode(text, maxLength: maxLen).ids]
            }
            var sums: [Float] = []
            for g in stride(from: 0, to: sequences.count, by: 8) {
                let batch = tokenizer.pad(Array(sequences[g..<min(g + 8, sequences.count)]))
                let states = try model.hiddenStates(ids: batch.ids, mask: batch.mask, batch: batch.count, length: batch.length,
                                                    source: "text")
                let scores = model.scores(model.logits(states)!)
                let c = scores.shape[1]
                if sums.isEmpty { sums = [Float](repeating: 0, count: c) }
                for w in 0..<batch.count { for k in 0..<c { sums[k] += scores.data[w * c + k] } }
            }
            return sums.enumerated().map { k, sum in
                let label = k < model.labels.count ? model.labels[k] : "LABEL_\(k)"
                return (label, sum / Float(sequences.count))
            }
        }
    }
}
