import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline
import AffectServer
import AffectTestSupport

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let media = repoRoot.appendingPathComponent("Tests/Fixtures/media").path
let mtcnnPath = repoRoot.appendingPathComponent("Weights/mtcnn.safetensors").path
let miniXceptionPath = repoRoot.appendingPathComponent("Weights/mini_xception.safetensors").path

/// The committed detector and face model, loaded once for every test.
let sharedModels: ModelSet = try! ModelSet([("mtcnn", mtcnnPath), ("mini_xception", miniXceptionPath)])

final class PortBox: @unchecked Sendable {
    let semaphore = DispatchSemaphore(value: 0)
    var port = 0
}

/// Starts a server in-process on an ephemeral loopback port, runs `body` with it, then stops it.
func withServer(_ configure: (inout ServerConfiguration) -> Void = { _ in }, models: ModelSet = sharedModels,
                _ body: (AffectServer, Int) async throws -> Void) async throws {
    var config = ServerConfiguration()
    config.port = 0
    configure(&config)
    let server = try AffectServer(configuration: config, models: models)
    let box = PortBox()
    let app = server.application { port in box.port = port; box.semaphore.signal() }
    let task = Task { try await app.run() }
    // Generous: in the full suite, other suites' synchronous work can hold Swift concurrency's few
    // cooperative threads (the server's) for a long time; the server itself runs inference on its own threads.
    try await offThread { guard box.semaphore.wait(timeout: .now() + 600) == .success else { throw ClientError(description: "the server did not start") } }
    do {
        try await body(server, box.port)
    } catch {
        task.cancel(); _ = try? await task.value; server.stop()
        throw error
    }
    task.cancel()
    _ = try? await task.value
    server.stop()
}

func close(_ a: Double, _ b: Float, _ tol: Double = 1e-5) -> Bool { abs(a - Double(b)) <= tol * max(1, abs(Double(b))) }

/// The library's own answer for a picture file: decoded as `affect faces` decodes it, MTCNN at min_face 40,
/// the face model's softmax.
func direct(_ path: String) throws -> (faces: [FaceDetection], probs: [[Float]]) {
    let image = try ImageDecoder.decode(path: path)
    let faces = sharedModels.detector.detect(image)
    guard !faces.isEmpty else { return ([], []) }
    let model = sharedModels.faceModels["mini_xception"]!
    let l = try model.predict(image, faces: faces).logits
    let k = model.expressionLabels.count
    let probs = (0..<faces.count).map { i -> [Float] in
        var row = Array(UnsafeBufferPointer(start: l.data + i * l.shape[1], count: k))
        row.withUnsafeMutableBufferPointer { softmaxRow($0.baseAddress!, k) }
        return row
    }
    return (faces, probs)
}

func checkSame(_ json: [String: Any], _ expected: (faces: [FaceDetection], probs: [[Float]]), labels: [String]) {
    let faces = json["faces"] as? [[String: Any]] ?? []
    #expect(faces.count == expected.faces.count)
    for (f, (e, p)) in zip(faces, zip(expected.faces, expected.probs)) {
        let box = f["box"] as? [Double] ?? []
        #expect(box.count == 4 && zip(box, [e.x1, e.y1, e.x2, e.y2]).allSatisfy { close($0, $1) }, "box \(box) vs \(e)")
        #expect(close(f["probability"] as? Double ?? -1, e.probability))
        let marks = f["landmarks"] as? [[Double]] ?? []
        #expect(marks.count == 5 && zip(marks, e.landmarks).allSatisfy { close($0[0], $1.x) && close($0[1], $1.y) })
        let ex = f["expressions"] as? [String: Double] ?? [:]
        #expect(labels.enumerated().allSatisfy { close(ex[$1] ?? -1, p[$0]) }, "\(ex) vs \(p)")
        #expect(f["expression"] as? String == labels[p.indices.max { p[$0] < p[$1] }!])
    }
}

@Suite(.serialized) struct ServerTests {
    @Test func facesEqualTheLibrary() async throws {
        // A JPEG too: libjpeg-turbo's path, as `affect faces` takes it for a .jpg.
        let dir = Scratch.directory("server")
        let jpeg = dir.appendingPathComponent("portrait.jpg").path
        try Data(ImageEncoder.encode(try ImageDecoder.decode(path: "\(media)/portrait.png"), format: .jpeg)).write(to: URL(fileURLWithPath: jpeg))
        let labels = sharedModels.faceModels["mini_xception"]!.expressionLabels
        try await withServer { _, port in
            for path in ["\(media)/group.png", "\(media)/portrait.png", jpeg] {
                let body = try Data(contentsOf: URL(fileURLWithPath: path))
                let r = try await offThread { try request(port, "POST", "/v1/faces", body: body, headers: ["Content-Type": "application/octet-stream"]) }
                #expect(r.status == 200, "\(path): \(r.text)")
                let expected = try direct(path)
                #expect(!expected.faces.isEmpty)
                checkSame(r.json, expected, labels: labels)
                let image = try ImageDecoder.decode(path: path)
                #expect(r.json["width"] as? Int == image.width && r.json["height"] as? Int == image.height)
            }
            // Features on request, chunked upload, min_face honoured.
            let body = try Data(contentsOf: URL(fileURLWithPath: "\(media)/group.png"))
            let r = try await offThread { try request(port, "POST", "/v1/faces?features=true&min_face=60", body: body, chunked: true) }
            #expect(r.status == 200, "\(r.text)")
            var detector = sharedModels.detector
            detector.minFaceSize = 60
            let faces = detector.detect(try ImageDecoder.decode(path: "\(media)/group.png"))
            let got = r.json["faces"] as? [[String: Any]] ?? []
            #expect(got.count == faces.count)
            #expect(got.allSatisfy { ($0["features"] as? [Double])?.count == labels.count })
        }
    }

    @Test func badRequestsAreAnsweredAndTheServerKeepsServing() async throws {
        try await withServer({ $0.maxImageBytes = 400_000 }) { _, port in
            let garbage = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            let cases: [(String, String, Data?, Int)] = [
                ("POST", "/v1/faces", garbage, 400),
                ("POST", "/v1/faces", Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 16]), 400),   // a truncated JPEG
                ("POST", "/v1/faces", Data(), 400),
                ("POST", "/v1/faces", Data(count: 500_000), 413),
                ("POST", "/v1/faces?min_face=5", garbage, 400),
                ("POST", "/v1/faces?min_face=nan", garbage, 400),
                ("POST", "/v1/faces?model=nope", garbage, 400),
                ("POST", "/v1/faces?colour=1", garbage, 400),
                ("POST", "/v1/analyze?every=0", garbage, 400),
                ("POST", "/v1/analyze?expr_head=missing", garbage, 400),
                ("POST", "/v1/analyze?fps=2&every=3", garbage, 400),
                ("POST", "/v1/transcribe", garbage, 400),
                ("POST", "/v1/embed-text", Data(#"{"texts": ["hi"]}"#.utf8), 400),
                ("GET", "/v1/jobs/../../etc/passwd", nil, 404),
                ("GET", "/v1/jobs/nothing", nil, 404),
                ("GET", "/nowhere", nil, 404),
            ]
            for (method, path, body, status) in cases {
                let r = try await offThread { try request(port, method, path, body: body) }
                #expect(r.status == status, "\(method) \(path): \(r.status) \(r.text)")
                #expect(!(r.json["error"] as? String ?? "").isEmpty, "\(path): \(r.text)")
            }
            // A garbage analysis upload: the job fails with a sentence, the server stays up.
            let r = try await offThread { try request(port, "POST", "/v1/analyze", body: garbage) }
            #expect(r.status == 202, "\(r.text)")
            let id = r.json["id"] as? String ?? ""
            let job = try await waitForJob(port, id)
            #expect(job["state"] as? String == "failed")
            #expect((job["error"] as? String ?? "").contains("the upload"), "\(job)")
            let ok = try await offThread { try request(port, "POST", "/v1/faces", body: try Data(contentsOf: URL(fileURLWithPath: "\(media)/portrait.png"))) }
            #expect(ok.status == 200)
        }
    }

    /// Connections that never make a request: a malformed first head is answered 400 and closed, a head that
    /// never completes is closed at the head timeout; neither holds its socket (both did, for good). A
    /// connection that made a request, or became a WebSocket, is not bound by that timeout.
    @Test func malformedOrUnfinishedRequestHeadsDoNotHoldConnections() async throws {
        try await withServer({ $0.requestHeadTimeout = 1 }) { _, port in
            let heads = ["POST /v1/faces HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nabc",
                         "POST /v1/faces HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                         "POST /v1/faces HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"]
            for head in heads {
                let (status, rest) = try await offThread { () -> (Int, [UInt8]) in
                    let s = try TestSocket(port: port, timeout: 60)
                    try? s.send(Array(head.utf8))
                    let (status, _) = try s.readHead()
                    return (status, try s.readToEnd())
                }
                #expect(status == 400 && rest.isEmpty, "\(head.prefix(60)): \(status), then \(rest.count) bytes")
            }
            // A body whose chunk framing breaks mid-request: the client's fault (400), not an internal error.
            let chunk = try await offThread { () -> TestResponse in
                let s = try TestSocket(port: port, timeout: 60)
                try s.send(Array("POST /v1/faces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZZ\r\nabc".utf8))
                let (status, headers) = try s.readHead()
                let body = try s.read(count: Int(headers["content-length"] ?? "") ?? 0)
                return TestResponse(status: status, headers: headers, body: Data(body))
            }
            #expect(chunk.status == 400 && chunk.text.contains("malformed HTTP"), "\(chunk.status) \(chunk.text)")
            // Silent, and a head that stops half-way: closed once the second has passed.
            for partial in ["", "GET /heal"] {
                let (closed, seconds) = try await offThread { () -> (Bool, Double) in
                    let s = try TestSocket(port: port, timeout: 60)
                    let t0 = Date()
                    if !partial.isEmpty { try s.send(Array(partial.utf8)) }
                    return (try s.readToEnd().isEmpty, Date().timeIntervalSince(t0))
                }
                #expect(closed && seconds >= 0.9 && seconds < 30, "`\(partial)`: closed \(closed) after \(seconds) s")
            }
            // A kept-alive connection idles past the head timeout between requests; a WebSocket waits past it.
            let second = try await offThread { () -> Int in
                let s = try TestSocket(port: port, timeout: 60)
                for i in 0..<2 {
                    if i == 1 { Thread.sleep(forTimeInterval: 2) }
                    try s.send(Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                    let (status, headers) = try s.readHead()
                    _ = try s.read(count: Int(headers["content-length"] ?? "") ?? 0)
                    if i == 1 { return status }
                }
                return 0
            }
            #expect(second == 200)
            let reply = try await offThread { () -> String? in
                let ws = try TestWebSocket(port: port, path: "/v1/stream")
                guard ws.status == 101 else { throw ClientError(description: "upgrade answered \(ws.status)") }
                Thread.sleep(forTimeInterval: 2)
                try ws.send(binary: [1, 2, 3, 4])
                defer { ws.close() }
                return try ws.receiveText()
            }
            #expect(reply?.contains("error") == true, "\(reply ?? "closed")")
        }
    }

    @Test func tokenGuardsEveryRouteButHealth() async throws {
        try await withServer({ $0.token = "s3cret" }) { _, port in
            let r1 = try await offThread { try request(port, "GET", "/healthz") }
            #expect(r1.status == 200)
            for path in ["/v1/models", "/openapi.json", "/v1/jobs/x"] {
                let r = try await offThread { try request(port, "GET", path) }
                #expect(r.status == 401, "\(path)")
                #expect(r.headers["www-authenticate"] == "Bearer")
                let r2 = try await offThread { try request(port, "GET", path, headers: ["Authorization": "Bearer wrong"]) }
                #expect(r2.status == 401)
            }
            let r3 = try await offThread { try request(port, "POST", "/v1/faces", body: Data([1, 2, 3])) }
            #expect(r3.status == 401)
            let ok = try await offThread { try request(port, "GET", "/v1/models", headers: ["Authorization": "Bearer s3cret"]) }
            #expect(ok.status == 200)
            #expect((ok.json["models"] as? [[String: Any]])?.count == 2)
            // Hummingbird answers every refused upgrade with a bare 400; the same request without the
            // upgrade gets the JSON reason (below).
            let ws = try await offThread { try TestWebSocket(port: port, path: "/v1/stream") }
            #expect(ws.status == 400)
            let noToken = try await offThread { try request(port, "GET", "/v1/stream") }
            #expect(noToken.status == 401)
            let bad = try await offThread { try TestWebSocket(port: port, path: "/v1/stream?min_face=1", headers: ["Authorization": "Bearer s3cret"]) }
            #expect(bad.status == 400)
            let plain = try await offThread { try request(port, "GET", "/v1/stream", headers: ["Authorization": "Bearer s3cret"]) }
            #expect(plain.status == 426)
            let authed = try await offThread { try TestWebSocket(port: port, path: "/v1/stream", headers: ["Authorization": "Bearer s3cret"]) }
            #expect(authed.status == 101)
            authed.close()
        }
    }

    @Test func pageIsServedWithoutExternalResources() async throws {
        try await withServer({ $0.token = "t" }) { _, port in
            let r = try await offThread { try request(port, "GET", "/") }
            #expect(r.status == 200)
            #expect(r.headers["content-type"]?.hasPrefix("text/html") == true)
            for needle in ["/v1/analyze", "/v1/stream", "<canvas", "getUserMedia"] { #expect(r.text.contains(needle), "\(needle)") }
            #expect(!r.text.contains("http://") && !r.text.contains("https://") && !r.text.contains("src=\""), "no CDN, works offline")
        }
    }

    @Test func fullQueueAnswers429WithRetryAfter() async throws {
        try await withServer({ $0.workers = 1; $0.queueDepth = 1 }) { server, port in
            // Occupy the one worker and the one queue slot.
            let release = DispatchSemaphore(value: 0)
            for _ in 0..<2 { try server.queue.submit(run: { release.wait() }, expire: { _ in }) }
            let body = try Data(contentsOf: URL(fileURLWithPath: "\(media)/portrait.png"))
            let r = try await offThread { try request(port, "POST", "/v1/faces", body: body) }
            #expect(r.status == 429, "\(r.text)")
            #expect(Int(r.headers["retry-after"] ?? "") ?? 0 >= 1)
            let r4 = try await offThread { try request(port, "GET", "/healthz") }
            #expect(r4.status == 200, "health is not queued")
            release.signal(); release.signal()
            try await offThread { server.queue.waitUntilIdle() }
            let r5 = try await offThread { try request(port, "POST", "/v1/faces", body: body) }
            #expect(r5.status == 200)
        }
    }

    @Test func openAPIDocumentsEveryRoute() async throws {
        try await withServer { server, port in
            let r = try await offThread { try request(port, "GET", "/openapi.json") }
            #expect(r.status == 200)
            #expect((r.json["openapi"] as? String)?.hasPrefix("3.") == true)
            let paths = r.json["paths"] as? [String: [String: Any]] ?? [:]
            var documented = Set<String>()
            for (path, ops) in paths { for m in ops.keys { documented.insert("\(m.uppercased()) \(path)") } }
            let routes = Set(server.makeRouter().routes.map { r in
                let path = r.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                    .reduce("") { $0 + "/" + $1 }
                return "\(r.method.rawValue) " + (path.isEmpty ? "/" : path)
            })
            #expect(!routes.isEmpty)
            #expect(documented == routes, "documented but missing: \(documented.subtracting(routes)); undocumented: \(routes.subtracting(documented))")
        }
    }

    @Test func analyzeJobEqualsTheLibrary() async throws {
        // The server names every upload `upload` (in the JSON and its summary line); so does this copy.
        let dir = Scratch.directory("server-job")
        let video = dir.appendingPathComponent("upload").path
        try? FileManager.default.removeItem(atPath: video)
        try FileManager.default.copyItem(atPath: "\(media)/talking.mp4", toPath: video)
        // What `affect analyze talking.mp4 --every 4 --delta 2 -o out.csv -o out.json` computes.
        var options = AnalyzerOptions()
        options.every = 4
        options.smoother = .mean(delta: 2)
        let analyzer = try Analyzer(detector: sharedModels.detector, faceModel: sharedModels.faceModels["mini_xception"]!, options: options)
        let report = AnalysisReport(try analyzer.analyze(path: video))
        try await withServer { _, port in
            let body = try Data(contentsOf: URL(fileURLWithPath: video))
            let r = try await offThread { try request(port, "POST", "/v1/analyze?every=4&delta=2", body: body) }
            #expect(r.status == 202, "\(r.text)")
            let id = try #require(r.json["id"] as? String)
            #expect(r.headers["location"] == "/v1/jobs/\(id)")
            let job = try await waitForJob(port, id)
            #expect(job["state"] as? String == "done", "\(job)")
            #expect(job["frames_done"] as? Int == 100)
            let csv = try await offThread { try request(port, "GET", "/v1/jobs/\(id)/result?format=csv") }
            #expect(csv.status == 200)
            #expect(csv.text == report.csv())
            let json = try await offThread { try request(port, "GET", "/v1/jobs/\(id)/result?format=json") }
            #expect(json.body == (try AffectServer.resultJSON(report)))
            // Apart from the video's file name, the document is `affect analyze`'s.
            var mine = try #require(try JSONSerialization.jsonObject(with: json.body) as? [String: Any])
            let cli = try #require(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
            var video = try #require(mine["video"] as? [String: Any])
            #expect(video["file"] as? String == "upload")
            video["file"] = (cli["video"] as? [String: Any])?["file"]
            mine["video"] = video
            #expect(NSDictionary(dictionary: mine).isEqual(to: cli))
            let r6 = try await offThread { try request(port, "GET", "/v1/jobs/\(id)/result?format=xml") }
            #expect(r6.status == 400)
            let r7 = try await offThread { try request(port, "DELETE", "/v1/jobs/\(id)") }
            #expect(r7.status == 200)
            let r8 = try await offThread { try request(port, "GET", "/v1/jobs/\(id)") }
            #expect(r8.status == 404)
        }
    }

    @Test func queuedJobIsCancelledByDelete() async throws {
        try await withServer({ $0.jobWorkers = 1 }) { server, port in
            let body = try Data(contentsOf: URL(fileURLWithPath: "\(media)/talking.mp4"))
            let first = try await offThread { try request(port, "POST", "/v1/analyze", body: body) }
            let second = try await offThread { try request(port, "POST", "/v1/analyze", body: body) }
            let (a, b) = (try #require(first.json["id"] as? String), try #require(second.json["id"] as? String))
            let deleted = try await offThread { try request(port, "DELETE", "/v1/jobs/\(b)") }
            #expect(deleted.status == 200)
            // Queued behind the first, or already running: either way it never finishes as done.
            #expect(["cancelled", "running"].contains(deleted.json["state"] as? String), "\(deleted.json)")
            let done = try await waitForJob(port, a)
            #expect(done["state"] as? String == "done")
            try await offThread { server.stop() }
            #expect(!FileManager.default.fileExists(atPath: server.workspaceRoot), "the server's own folder goes at stop")
        }
    }

    @Test func streamKeepsTracksAcrossFrames() async throws {
        try await withServer { _, port in
            let frame = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(media)/portrait.png")))
            let replies = try await offThread { () -> [[String: Any]] in
                let ws = try TestWebSocket(port: port, path: "/v1/stream")
                guard ws.status == 101 else { throw ClientError(description: "upgrade answered \(ws.status)") }
                var out: [[String: Any]] = []
                for payload in [frame, [1, 2, 3, 4], frame] {
                    try ws.send(binary: payload)
                    guard let text = try ws.receiveText() else { break }
                    out.append((try JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:])
                }
                ws.close()
                return out
            }
            #expect(replies.count == 3)
            let expected = try direct("\(media)/portrait.png")
            let labels = sharedModels.faceModels["mini_xception"]!.expressionLabels
            checkSame(replies[0], expected, labels: labels)
            #expect(replies[1]["error"] != nil && replies[1]["frame"] as? Int == 1)
            checkSame(replies[2], expected, labels: labels)
            let ids0 = (replies[0]["faces"] as? [[String: Any]] ?? []).map { $0["track"] as? Int }
            let ids2 = (replies[2]["faces"] as? [[String: Any]] ?? []).map { $0["track"] as? Int }
            #expect(!ids0.isEmpty && ids0 == ids2, "the same face keeps its track: \(ids0) then \(ids2)")
        }
    }
}

/// Polls a job until it is no longer queued or running (at most five minutes of polls).
func waitForJob(_ port: Int, _ id: String) async throws -> [String: Any] {
    for _ in 0..<3000 {
        let r = try await offThread { try request(port, "GET", "/v1/jobs/\(id)") }
        let state = r.json["state"] as? String
        if state != "queued" && state != "running" { return r.json }
        try await Task.sleep(nanoseconds: 100_000_000)
    }
    throw ClientError(description: "job \(id) did not finish")
}
