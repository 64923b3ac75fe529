import Foundation
import Testing
import AffectMedia
import AffectModels
import AffectServer

/// The committed detector and face model plus the tiny wav2vec2 CTC checkpoint (Tests/Fixtures/audio).
let audioModels: ModelSet = try! ModelSet([("mtcnn", mtcnnPath), ("mini_xception", miniXceptionPath),
                                           ("wav2vec2_tiny", repoRoot.appendingPathComponent("Tests/Fixtures/audio/wav2vec2_tiny.safetensors").path)])

/// A PCM chunk message: the four-byte header, then the samples little-endian.
func pcm16(_ samples: ArraySlice<Int16>) -> [UInt8] {
    Array("S16L".utf8) + samples.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
}
func pcm32(_ samples: ArraySlice<Float>) -> [UInt8] {
    Array("F32L".utf8) + samples.flatMap { v -> [UInt8] in let b = v.bitPattern; return (0..<4).map { UInt8(truncatingIfNeeded: b >> (8 * $0)) } }
}

/// A 16 kHz mono 16-bit WAV file of `samples`.
func wav(_ samples: ArraySlice<Int16>) -> Data {
    func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    func le16(_ v: Int) -> [UInt8] { (0..<2).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    let data = samples.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    var out = Array("RIFF".utf8) + le32(36 + data.count) + Array("WAVEfmt ".utf8)
    out += le32(16) + le16(1) + le16(1) + le32(16000) + le32(32000) + le16(2) + le16(16)
    out += Array("data".utf8) + le32(data.count) + data
    return Data(out)
}

/// Sends each message and collects the JSON answers, in order.
func exchange(_ ws: TestWebSocket, _ messages: [[UInt8]]) throws -> [[String: Any]] {
    try messages.map { m in
        try ws.send(binary: m)
        guard let text = try ws.receiveText() else { throw ClientError(description: "the stream closed") }
        return (try JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }
}

@Suite(.serialized) struct AudioStreamTests {
    /// speech.wav's samples as 16-bit integers (the file is 16 kHz mono 16-bit PCM: the decoder's floats are s / 32768).
    static let speech: [Int16] = {
        let d = try! AudioDecoder(path: "\(media)/speech.wav", sampleRate: 16000)
        var out: [Int16] = []
        while true {
            let c = try! d.read()
            if c.isEmpty { break }
            out += c.map { Int16(($0 * 32768).rounded()) }
        }
        return out
    }()

    /// Per-frame embeddings past the server's limit are answered 413 (the frames are not gathered first); the
    /// pooled answers of the same upload keep running sums and equal the per-frame rows' mean.
    @Test func perFrameEmbeddingsAreCappedAndPooledOnesAreNot() async throws {
        let clip = wav(Self.speech[0..<48_000])       // 3 s: 149 frames of the tiny model's 32 floats
        try await withServer({ $0.maxEmbeddingFloats = 32 * 100 }, models: audioModels) { _, port in
            let long = try await offThread { try request(port, "POST", "/v1/embed-audio", body: clip) }
            #expect(long.status == 413 && long.text.contains("at most 100 frames"), "\(long.status) \(long.text)")
            let short = try await offThread { try request(port, "POST", "/v1/embed-audio", body: wav(Self.speech[0..<16_000])) }
            #expect(short.status == 200, "\(short.text)")
            let frames = try #require(short.json["embeddings"] as? [Double])
            let mean = try await offThread { try request(port, "POST", "/v1/embed-audio?pool=mean", body: wav(Self.speech[0..<16_000])) }
            let pooled = try #require(mean.json["embeddings"] as? [Double])
            let rows = frames.count / 32
            #expect(rows > 0 && pooled.count == 32)
            for j in 0..<32 {
                let m = (0..<rows).map { frames[$0 * 32 + j] }.reduce(0, +) / Double(rows)
                #expect(abs(m - pooled[j]) <= 1e-5 * max(1, abs(m)), "column \(j)")
            }
            let stat = try await offThread { try request(port, "POST", "/v1/embed-audio?pool=stat", body: clip) }
            #expect(stat.status == 200 && (stat.json["embeddings"] as? [Double])?.count == 4 * 32, "\(stat.text)")
        }
    }

    @Test func firstChunkEqualsTheAudioRoutesAndFramesAreAnsweredOnce() async throws {
        let samples = Self.speech
        #expect(samples.count > 80_000)
        let first = samples[0..<24_000]
        try await withServer(models: audioModels) { _, port in
            // The same 1.5 s as a file through /v1/embed-audio and /v1/transcribe.
            let body = wav(first)
            let embed = try await offThread { try request(port, "POST", "/v1/embed-audio?pool=mean", body: body) }
            let transcribe = try await offThread { try request(port, "POST", "/v1/transcribe", body: body) }
            #expect(embed.status == 200 && transcribe.status == 200, "\(embed.text) \(transcribe.text)")
            let expected = try #require(embed.json["embeddings"] as? [Double])

            let (replies, again) = try await offThread { () -> ([[String: Any]], [[String: Any]]) in
                let ws = try TestWebSocket(port: port, path: "/v1/stream")
                guard ws.status == 101 else { throw ClientError(description: "upgrade answered \(ws.status)") }
                // 1.5 s as Int16, then the rest in 0.5 s chunks as Float32, with bad chunks and a picture between.
                var messages = [pcm16(first)]
                var start = 24_000
                while start < samples.count {
                    let end = min(samples.count, start + 8000)
                    messages.append(pcm32(ArraySlice(samples[start..<end].map { Float($0) / 32768 })))
                    if start == 24_000 {
                        messages += [Array("S16L".utf8) + [1, 2, 3],                      // half a sample
                                     Array("S16L".utf8),                                   // no samples
                                     pcm32([0.1, .nan, 0.2]),                              // not a number
                                     Array("F32L".utf8) + [UInt8](repeating: 0x7F, count: 64),   // random bytes: 3e38
                                     pcm16(ArraySlice([Int16](repeating: 1, count: 30 * 16000 + 1))),   // over 30 s
                                     Array(try Data(contentsOf: URL(fileURLWithPath: "\(media)/portrait.png")))]
                    }
                    start = end
                }
                let replies = try exchange(ws, messages)
                ws.close()
                #expect(try ws.receiveText() == nil, "the close is answered")
                // The same first chunk as Float32 on a new stream: the same answer.
                let ws2 = try TestWebSocket(port: port, path: "/v1/stream?audio_model=wav2vec2_tiny")
                let again = try exchange(ws2, [pcm32(ArraySlice(first.map { Float($0) / 32768 }))])
                ws2.close()
                return (replies, again)
            }
            let answer = replies[0]
            #expect(answer["error"] == nil, "\(answer)")
            #expect(answer["chunk"] as? Int == 0 && answer["model"] as? String == "wav2vec2_tiny" && answer["sample_rate"] as? Int == 16000)
            let model = try #require(audioModels.speech["wav2vec2_tiny"]).model
            #expect(answer["first_frame"] as? Int == 0 && answer["frames"] as? Int == model.frameCount(samples: 24_000))
            let got = answer["embedding"] as? [Double] ?? []
            #expect(got.count == expected.count && zip(got, expected).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) },
                    "the first chunk's embedding is /v1/embed-audio's")
            let text = try #require(answer["text"] as? String)
            #expect(text.trimmingCharacters(in: .whitespaces) == transcribe.json["text"] as? String)
            #expect(NSDictionary(dictionary: again[0]).isEqual(to: answer), "Float32 and Int16 chunks of the same samples")

            // Bad chunks (sent after chunks 0 and 1) are answered with an error and leave the audio clock where it was; the picture between
            // is answered as a frame; every 20 ms frame of the stream is answered exactly once, in order.
            let errors = replies.filter { $0["error"] != nil }
            #expect(errors.count == 5 && errors.allSatisfy { $0["status"] as? Int == 400 && $0["chunk"] as? Int == 2 }, "\(errors)")
            for e in errors { #expect(!(e["error"] as? String ?? "").isEmpty) }
            let pictures = replies.filter { $0["frame"] != nil }
            #expect(pictures.count == 1 && (pictures.first?["faces"] as? [Any])?.count == 1)
            let audio = replies.filter { $0["chunk"] != nil && $0["error"] == nil }
            var nextFrame = 0, nextChunk = 0
            for a in audio {
                #expect(a["chunk"] as? Int == nextChunk && a["first_frame"] as? Int == nextFrame, "\(a)")
                nextChunk += 1
                nextFrame += a["frames"] as? Int ?? 0
                if (a["frames"] as? Int ?? 0) > 0 { #expect((a["embedding"] as? [Double])?.count == model.config.hiddenSize) }
            }
            #expect(nextFrame == model.frameCount(samples: samples.count))
            #expect(abs((audio.last?["end"] as? Double ?? 0) - Double(samples.count) / 16000) < 1e-9)
        }
    }

    @Test func pcmWithoutAnAudioModelIsAnErrorAndTheStreamGoesOn() async throws {
        try await withServer { _, port in
            let replies = try await offThread { () -> [[String: Any]] in
                let ws = try TestWebSocket(port: port, path: "/v1/stream")
                let r = try exchange(ws, [pcm16(ArraySlice(Self.speech.prefix(4000))),
                                          Array(try Data(contentsOf: URL(fileURLWithPath: "\(media)/portrait.png")))])
                ws.close()
                return r
            }
            #expect((replies[0]["error"] as? String ?? "").contains("no audio model is loaded"), "\(replies[0])")
            #expect((replies[1]["faces"] as? [Any])?.count == 1)
            let unknown = try await offThread { try request(port, "GET", "/v1/stream?audio_model=nope") }
            #expect(unknown.status == 400 && (unknown.json["error"] as? String ?? "").contains("nope"))
        }
    }

    @Test func browsersSendTheTokenAsASubprotocol() async throws {
        try await withServer({ $0.token = "s3cret/=" }) { _, port in
            let hex = "s3cret/=".utf8.map { String(format: "%02x", $0) }.joined()
            let (ok, wrong, foreign, plain) = try await offThread { () -> (TestWebSocket, TestWebSocket, TestWebSocket, TestWebSocket) in
                (try TestWebSocket(port: port, path: "/v1/stream", headers: ["Sec-WebSocket-Protocol": "affect, affect.token.\(hex)"]),
                 try TestWebSocket(port: port, path: "/v1/stream", headers: ["Sec-WebSocket-Protocol": "affect, affect.token.\(hex)00"]),
                 try TestWebSocket(port: port, path: "/v1/stream", headers: ["Sec-WebSocket-Protocol": "chat, affect.token.\(hex)"]),
                 try TestWebSocket(port: port, path: "/v1/stream", headers: ["Authorization": "Bearer s3cret/="]))
            }
            #expect(ok.status == 101 && ok.headers["sec-websocket-protocol"] == "affect")
            #expect(wrong.status == 400)
            #expect(foreign.status == 400, "a client must get back a subprotocol it offered")
            #expect(plain.status == 101 && plain.headers["sec-websocket-protocol"] == nil)
            let frame = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(media)/portrait.png")))
            let r = try await offThread { try exchange(ok, [frame]) }
            #expect((r[0]["faces"] as? [Any])?.count == 1)
            ok.close(); plain.close()
        }
    }
}
