import Foundation
import Hummingbird
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

extension AffectServer {
    /// `/v1/transcribe`, `/v1/embed-audio` (an uploaded audio or video file, streamed to disk) and
    /// `/v1/embed-text` (a JSON list of texts), on the audio and text models loaded at start.
    func addAudioAndTextRoutes(_ router: Router<Context>) {
        router.post("/v1/transcribe") { [self] request, _ -> Response in
            let q = query(request)
            try known(q, ["model"])
            let (name, speech) = try speechModel(try single(q, "model"), transcribing: true)
            guard let ctc = speech.model.ctc else { throw ServerError(.badRequest, "the audio model \(name) has no CTC head, so it cannot transcribe.") }
            return try await withUpload(request) { path in
                var ids: [Int] = []
                let samples = try Self.runLongAudio(speech.long, path: path, logits: true) { seg in
                    if let l = seg.logits { ids += ctc.argmax(l.data, frames: l.shape[0]) }
                }
                let t = ctc.decode(ids: ids)
                return ["model": name, "duration": Double(samples) / Double(speech.model.config.sampleRate), "frames": ids.count,
                        "text": t.text,
                        "words": t.words.map { ["word": $0.word, "start": ($0.start * 1000).rounded() / 1000, "end": ($0.end * 1000).rounded() / 1000] as [String: Any] }]
            }
        }
        router.post("/v1/embed-audio") { [self] request, _ -> Response in
            let q = query(request)
            try known(q, ["model", "layer", "pool"])
            let (name, speech) = try speechModel(try single(q, "model"), transcribing: false)
            let pool = try single(q, "pool") ?? "none"
            guard ["none", "mean", "stat"].contains(pool) else { throw ServerError(.badRequest, "pool must be none, mean or stat, got `\(pool)`.") }
            var layer: Int?
            if let v = try single(q, "layer") {
                guard let k = Int(v), (0...speech.model.config.layers).contains(k) else {
                    throw ServerError(.badRequest, "layer must be a whole number from 0 to \(speech.model.config.layers) for \(name), got `\(v)`.")
                }
                layer = k
            }
            return try await withUpload(request) { path in
                let h = speech.model.config.hiddenSize
                // Per-frame answers are capped (a few MB of compressed silence decode to hours); pooled answers
                // keep running sums, so neither grows with the recording.
                let maxFrames = max(1, self.configuration.maxEmbeddingFloats / h)
                let frameRate = Double(speech.model.config.sampleRate) / Double(speech.model.config.hop)
                var frames: [Float] = [], count = 0
                var running = RunningPooling(columns: h)
                _ = try Self.runLongAudio(speech.long, path: path, layer: layer) { seg in
                    let rows = seg.hidden.shape[0]
                    if pool == "none" {
                        guard count + rows <= maxFrames else {
                            throw ServerError(.contentTooLarge, "per-frame embeddings are answered for at most \(maxFrames) frames (\(String(format: "%.0f", Double(maxFrames) / frameRate)) s of audio); ask pool=mean or pool=stat, or run `affect embed-audio`, which writes any length to a file.")
                        }
                        frames.append(contentsOf: UnsafeBufferPointer(start: seg.hidden.data, count: seg.hidden.count))
                    } else {
                        running.add(seg.hidden.data, rows: rows)
                    }
                    count += rows
                }
                var out: [String: Any] = ["model": name, "pool": pool, "frames": count,
                                          "layer": layer.map { "hidden_states.\($0)" } ?? "last_hidden_state",
                                          "frame_rate": Double(speech.model.config.sampleRate) / Double(speech.model.config.hop)]
                if pool == "none" || count == 0 {
                    out["shape"] = [count, pool == "stat" ? 4 * h : h]
                    out["embeddings"] = pool == "none" ? frames.map { JSON.finite($0) } : []
                } else {
                    let v = pool == "stat" ? try running.stat() : try running.means()
                    out["shape"] = [1, v.count]
                    out["embeddings"] = v.map { JSON.finite($0) }
                }
                return out
            }
        }
        router.post("/v1/embed-text") { [self] request, _ -> Response in
            let q = query(request)
            try known(q, ["model", "pool"])
            let name = try single(q, "model") ?? models.text.keys.sorted().first
            guard let name, let encoder = models.text[name] else {
                throw ServerError(.badRequest, models.text.isEmpty ? "no text model is loaded (start the server with --models and a bert or roberta model)."
                                  : "no text model named `\(name ?? "")` is loaded (loaded: \(models.text.keys.sorted().joined(separator: ", "))).")
            }
            var pooling = encoder.model.defaultPooling
            if let p = try single(q, "pool") {
                guard let v = TextTransformer.Pooling(rawValue: p), v != .token else { throw ServerError(.badRequest, "pool must be sentence, mean or cls, got `\(p)`.") }
                pooling = v
            }
            let body = try await collect(request, limit: configuration.maxTextBytes, what: "text body")
            guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                  let texts = object["texts"] as? [String], !texts.isEmpty, texts.count <= 1024 else {
                throw ServerError(.badRequest, "send a JSON object {\"texts\": [\"...\", ...]} with 1 to 1024 texts.")
            }
            try requireRoom(queue)
            let out = try await queue.run { () -> [String: Any] in
                let e = try encoder.embed(texts, pooling: pooling)
                return ["model": name, "pooling": pooling.rawValue, "shape": e.shape,
                        "embeddings": UnsafeBufferPointer(start: e.data, count: e.count).map { JSON.finite($0) }]
            }
            return JSON.response(out)
        }
    }

    /// The audio model a request names, or the first loaded (that transcribes, when it must).
    func speechModel(_ name: String?, transcribing: Bool) throws -> (String, SpeechModel) {
        let candidates = models.speech.keys.sorted().filter { !transcribing || models.speech[$0]?.model.ctc != nil }
        guard let n = name ?? candidates.first else {
            throw ServerError(.badRequest, transcribing ? "no audio model with a CTC head is loaded (start the server with --models and a wav2vec2 / hubert CTC model)."
                              : "no audio model is loaded (start the server with --models and a wav2vec2 or hubert model).")
        }
        guard let m = models.speech[n] else {
            throw ServerError(.badRequest, "no audio model named `\(n)` is loaded (loaded: \(models.speech.keys.sorted().joined(separator: ", "))).")
        }
        return (n, m)
    }

    /// Streams the body to a file with a generated name, runs `body` on a request worker, answers its JSON.
    func withUpload(_ request: Request, _ body: @escaping (String) throws -> [String: Any]) async throws -> Response {
        try requireRoom(queue)
        let folder = try workspace.makeFolder()
        defer { workspace.remove(folder) }
        let path = folder + "/upload"
        _ = try await receive(request, to: path, limit: configuration.maxUploadBytes, what: "upload")
        let out = try await queue.run { () -> [String: Any] in
            do { return try body(path) } catch let e as AffectError {
                throw ServerError(.badRequest, e.description.replacingOccurrences(of: path, with: "the upload"))
            }
        }
        return JSON.response(out)
    }

    /// The two streaming passes of ``LongAudio`` (statistics, then the windows), decoding the file afresh for
    /// each, as `affect transcribe` / `embed-audio` run them. Returns the sample count.
    static func runLongAudio(_ long: LongAudio, path: String, layer: Int? = nil, logits: Bool = false,
                             emit: (LongAudio.Segment) throws -> Void) throws -> Int {
        let rate = long.model.config.sampleRate
        let first = try AudioDecoder(path: path, sampleRate: rate)
        let stats = try long.statistics { try first.read() }
        let second = try AudioDecoder(path: path, sampleRate: rate)
        try long.run({ try second.read() }, statistics: stats, layer: layer, logits: logits, emit: emit)
        return stats.count
    }
}

/// Refuses query parameters a route does not know (a typo would otherwise be silently ignored).
func known(_ query: [String: [String]], _ names: Set<String>) throws {
    if let k = query.keys.sorted().first(where: { !names.contains($0) }) {
        throw ServerError(.badRequest, "unknown query parameter `\(k)` (known: \(names.sorted().joined(separator: ", "))).")
    }
}
