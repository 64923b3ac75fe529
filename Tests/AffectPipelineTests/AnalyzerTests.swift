import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline
import AffectTestSupport

/// Writes a linear `head` weight file `[out, in]` (+ bias) to a temporary path.
func linearHead(_ name: String, weight: [[Float]], bias: [Float], output: String = "linear") throws -> String {
    let out = weight.count, inW = weight[0].count
    let config = "{\"input_width\": \(inW), \"layers\": [{\"weight\": \"w\", \"bias\": \"b\", \"layout\": \"out_in\", \"activation\": \"linear\"}], \"output\": \"\(output)\"}"
    var w = SafeTensorsWriter(metadata: ["affect.format": "1", "affect.arch": "head", "affect.config": config])
    w.add("w", shape: [out, inW], floats: weight.flatMap { $0 })
    w.add("b", shape: [out], floats: bias)
    let dir = Scratch.directory("analyzer")
    let path = dir.appendingPathComponent(name).path
    try w.write(to: path)
    return path
}

let miniXceptionPath = repoRoot.appendingPathComponent("Weights/mini_xception.safetensors").path
let mtcnnPath = repoRoot.appendingPathComponent("Weights/mtcnn.safetensors").path

func face(_ x: Float) -> FaceDetection {
    FaceDetection(x1: x, y1: 10, x2: x + 50, y2: 60, probability: 0.99, landmarks: [])
}

@Suite struct TranscriptTests {
    @Test func srtCues() throws {
        let srt = "1\n00:00:00,500 --> 00:00:02,000\nHello <i>there</i>\n\n2\r\n00:00:02,500 --> 00:00:04,250\r\nsecond line\r\nwraps\r\n"
        let segs = try TimedTranscript.parseCues(srt, source: "a.srt", vtt: false)
        #expect(segs == [.init(start: 0.5, end: 2, text: "Hello there"), .init(start: 2.5, end: 4.25, text: "second line wraps")])
    }

    @Test func vttCues() throws {
        let vtt = "WEBVTT - title\n\nNOTE a comment\n\nintro\n00:01.000 --> 00:02.000 align:start\n<v Ann>Hi</v>\n\n01:00:03.000 --> 01:00:04.500\nlater\n"
        let segs = try TimedTranscript.parseCues(vtt, source: "a.vtt", vtt: true)
        #expect(segs == [.init(start: 1, end: 2, text: "Hi"), .init(start: 3603, end: 3604.5, text: "later")])
        #expect(throws: AffectError.self) { try TimedTranscript.parseCues("00:01.000 --> 00:02.000\nx\n", source: "b.vtt", vtt: true) }
    }

    @Test func badTimings() throws {
        for bad in ["1\n00:00:01,000 -> 00:00:02,000\nx\n", "1\n00:00:0a,000 --> 00:00:02,000\nx\n",
                    "1\n00:00:03,000 --> 00:00:02,000\nx\n", "1\n00:61:00,000 --> 00:62:00,000\nx\n"] {
            #expect(throws: AffectError.self, "\(bad)") { try TimedTranscript.parseCues(bad, source: "x.srt", vtt: false) }
        }
    }

    @Test func fileErrorsNameTheFile() throws {
        let dir = Scratch.directory("transcript")
        let latin = dir.appendingPathComponent("latin1.txt").path
        FileManager.default.createFile(atPath: latin, contents: Data([0x63, 0x61, 0x66, 0xE9, 0x0A]))
        let empty = dir.appendingPathComponent("empty.srt").path
        FileManager.default.createFile(atPath: empty, contents: Data("\n\n".utf8))
        for p in [latin, empty, dir.appendingPathComponent("missing.vtt").path] {
            do { _ = try TimedTranscript(path: p); Issue.record("\(p) was accepted") } catch let e as AffectError {
                #expect(e.description.contains(p), "\(e)")
            }
        }
    }

    @Test func plainTextSpreadsOverTheVideoByLength() throws {
        let t = try TimedTranscript(source: "t.txt", segments: [.init(start: 0, end: 0, text: "aaaa"), .init(start: 0, end: 0, text: "bb"),
                                                          .init(start: 0, end: 0, text: "cc")], hasTimes: false)
        let timed = try t.timed(duration: 8)
        #expect(timed.segments.map(\.start) == [0, 4, 6])
        #expect(timed.segments.map(\.end) == [4, 6, 8])
    }

    @Test func longerThanTheVideoIsAnError() throws {
        let t = try TimedTranscript(source: "long.srt", segments: [.init(start: 1, end: 14, text: "too long")])
        #expect(throws: Never.self) { try t.validate(duration: 13.6) }
        do { try t.validate(duration: 11.6); Issue.record("accepted") } catch let e as AffectError {
            #expect(e.description.contains("long.srt") && e.description.contains("11.60"), "\(e)")
        }
    }

    /// Segment embeddings at mid-times, interpolated onto frames (interp1d with held edges), segments
    /// sharing a mid-time averaged.
    @Test func alignmentToFrames() throws {
        let t = try TimedTranscript(source: "t.srt", segments: [.init(start: 0, end: 2, text: "a"), .init(start: 2, end: 4, text: "b"),
                                                          .init(start: 2.5, end: 3.5, text: "c")])
        let emb = try FeatureMatrix([[0, 10], [4, 0], [8, 2]])
        let frames = [0.0, 1.0, 2.0, 3.0, 3.5]
        let a = try t.align(emb, to: frames)
        // Points: t=1 → (0, 10); t=3 → mean of b and c = (6, 1).
        let expected: [[Float]] = [[0, 10], [0, 10], [3, 5.5], [6, 1], [6, 1]]
        for (r, e) in expected.enumerated() { #expect(a.row(r) == e, "frame \(r): \(a.row(r)) vs \(e)") }
        #expect(t.segmentIndex(at: frames) == [0, 0, 1, 2, 1])
    }
}

@Suite struct AnalyzerTests {
    /// Heads, fusion, filling, smoothing and the confidence filter on a synthetic scan, against the same
    /// steps composed by hand (each step is tested against NumPy/SciPy in FusionOpsTests).
    @Test func headsFusionSmoothingAndFilterOnASyntheticScan() throws {
        let faceModel = try MiniXception(weights: WeightFile(path: miniXceptionPath))
        let n = 10, k = 7
        let frames = [0, 1, 2, 5, 6, 9]
        var logits: [Float] = []
        for (i, _) in frames.enumerated() { for j in 0..<k { logits.append(Float((i * 3 + j * 5) % 11) * 0.4 - 1) } }
        let track = try TrackObservations(id: 3, frames: frames, boxes: frames.map { face(Float($0)) }, features: logits, logits: logits)
        let times = (0..<n).map { Double($0) / 25 }
        let scan = try VideoScan(path: "synthetic", width: 100, height: 100, frameRate: 25, times: times, tracks: [track],
                                 featureWidth: k, logitWidth: k)
        // EXPR head: mini-Xception class j → its ABAW column (a linear map), plus a strong bias toward "Other",
        // so that the filter has something to override.
        let mapping = try ClassMapping(from: faceModel.expressionLabels)
        var w = [[Float]](repeating: [Float](repeating: 0, count: k), count: 8)
        for (j, t) in mapping.target.enumerated() { w[t!][j] = 0.3 }
        let expr = try linearHead("expr.safetensors", weight: w, bias: [0, 0, 0, 0, 0, 0, 0, 0.8], output: "softmax")
        let va1 = try linearHead("va1.safetensors", weight: [[Float](repeating: 0.1, count: k), [Float](repeating: -0.2, count: k)], bias: [0.3, 0])
        let va2 = try linearHead("va2.safetensors", weight: [[Float](repeating: 0.5, count: k), [Float](repeating: 0.1, count: k)], bias: [0, 1])
        var options = AnalyzerOptions()
        options.smoother = .mean(delta: 1)
        options.threshold = 0.3
        options.weights = [0.25]
        let heads = [HeadSpec(task: .expr, head: try MLPHead(path: expr)), HeadSpec(task: .va, head: try MLPHead(path: va1)),
                     HeadSpec(task: .va, head: try MLPHead(path: va2))]
        let analyzer = try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: faceModel, options: options, heads: heads)
        let result = try analyzer.analyze(scan: scan)
        #expect(result.tracks.count == 1)
        let t = result.tracks[0]
        #expect(t.rows == Array(0..<n) && t.id == 3 && t.faceFrames == frames.count)
        #expect(t.boxes.map { $0 != nil } == (0..<n).map { frames.contains($0) })

        // By hand: softmax on face frames, interp1d over the others, window mean.
        let faceLogits = try FeatureMatrix(rows: frames.count, columns: k, values: logits)
        var probs = faceLogits
        for r in 0..<probs.rows {
            var row = probs.row(r)
            row.withUnsafeMutableBufferPointer { softmaxRow($0.baseAddress!, k) }
            for j in 0..<k { probs[r, j] = row[j] }
        }
        func fill(_ m: FeatureMatrix) throws -> FeatureMatrix {
            var values = [[Float]?](repeating: nil, count: n)
            for (i, f) in frames.enumerated() { values[f] = m.row(i) }
            return try FrameTimeline(times: times, values: values).filled()
        }
        let smoother = TemporalSmoother.mean(delta: 1)
        let p = try smoother.apply(try fill(probs))
        #expect(maxDiff(t.probabilities, p) < 1e-6)
        let e = try smoother.apply(try fill(try FeatureMatrix(heads[0].head.predict(faceLogits.tensor))))
        #expect(maxDiff(t.expression!, e) < 1e-6)
        let v = try smoother.apply(try Fusion.blend(try fill(try FeatureMatrix(heads[1].head.predict(faceLogits.tensor))),
                                                    try fill(try FeatureMatrix(heads[2].head.predict(faceLogits.tensor))), weight: 0.25))
        #expect(maxDiff(t.valenceArousal!, v) < 1e-6)
        let filtered = try ConfidenceFilter(threshold: 0.3, mapping: mapping).apply(task: e, model: p)
        #expect(t.predicted == filtered)
        #expect(t.classLabels == ClassMapping.abawExpression)
        // The filter changed something here, or the check above proves little.
        #expect(filtered != e.argmaxPerRow())
        #expect(Set(filtered).count > 1)

        let report = AnalysisReport(result)
        let csv = report.csv().split(separator: "\n")
        #expect(csv.count == n + 1)
        #expect(csv[0].hasPrefix("frame,time,track,face,x1,y1,x2,y2,p_angry"))
        #expect(csv[0].hasSuffix("expr_Other,valence,arousal"))
        #expect(csv[4].hasPrefix("3,0.1200,3,0,,,,,"))
        let json = try JSONSerialization.jsonObject(with: try report.json()) as! [String: Any]
        #expect((json["tracks"] as! [[String: Any]])[0]["face_frames"] as? Int == frames.count)
        let svg = report.svg()
        #expect(svg.contains("<polyline"))
        // Valence/arousal from the VA head get their own panel and legend.
        #expect(svg.contains("valence, arousal") && svg.contains(">arousal</text>"))
    }

    /// Audio and text modalities through the protocols: alignment onto frames, early fusion of face +
    /// audio + text, a text-only AH head with its video gate, and EMI on STAT-pooled face features.
    @Test func audioTextEarlyFusionGateAndEMI() throws {
        struct FakeAudio: AudioEmbedder {
            let path = "fake-audio", width = 3, frameRate = 50.0
            func embed(audioOf mediaPath: String) throws -> FeatureMatrix {
                try FeatureMatrix((0..<30).map { i in [Float(i) / 10, Float(i * i) / 100, 1] })
            }
        }
        struct FakeText: TextEmbedder {
            let path = "fake-text", width = 2
            func embed(_ texts: [String]) throws -> FeatureMatrix { try FeatureMatrix(texts.map { [Float($0.count), 1] }) }
        }
        let faceModel = try MiniXception(weights: WeightFile(path: miniXceptionPath))
        let n = 10, k = 7
        let frames = [1, 2, 4, 8]
        let logits: [Float] = (0..<(frames.count * k)).map { (i: Int) -> Float in Float((i * 7) % 13) * 0.3 - 1.5 }
        let scan = try VideoScan(path: "synthetic.mp4", width: 64, height: 64, frameRate: 25, times: (0..<n).map { Double($0) / 25 },
                                 tracks: [try TrackObservations(id: 0, frames: frames, boxes: frames.map { face(Float($0)) },
                                                                features: logits, logits: logits)],
                                 featureWidth: k, logitWidth: k)
        let transcript = try TimedTranscript(source: "t.srt", segments: [.init(start: 0, end: 0.2, text: "ab"), .init(start: 0.2, end: 0.4, text: "abcd")])
        let wide: [[Float]] = (0..<2).map { (r: Int) -> [Float] in
            (0..<(k + 5)).map { (c: Int) -> Float in Float((r + 1) * (c % 4)) * 0.05 - 0.1 }
        }
        let va = try linearHead("va_early.safetensors", weight: wide, bias: [0.1, -0.2])
        let ah = try linearHead("ah_text.safetensors", weight: [[0.5, -0.4]], bias: [0.2], output: "sigmoid")
        let gate = try linearHead("gate_closed.safetensors", weight: [[0.1, 0.1]], bias: [-10], output: "sigmoid")
        let emiW: [[Float]] = (0..<6).map { (r: Int) -> [Float] in
            (0..<(4 * k)).map { (c: Int) -> Float in Float((r * 5 + c) % 9) * 0.02 - 0.08 }
        }
        let emi = try linearHead("emi_stat.safetensors", weight: emiW, bias: [Float](repeating: 0.05, count: 6))
        let heads = [HeadSpec(task: .va, modalities: [.face, .audio, .text], head: try MLPHead(path: va)),
                     HeadSpec(task: .ah, modalities: [.text], head: try MLPHead(path: ah)),
                     HeadSpec(task: .emi, head: try MLPHead(path: emi))]
        var configuration = Analyzer.Configuration(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: faceModel, heads: heads,
                                                   gate: try VideoGate(head: MLPHead(path: gate)), audio: FakeAudio(), text: FakeText(),
                                                   transcript: transcript)
        let analysis = try Analyzer(configuration).analyze(scan: scan)
        let t = try #require(analysis.tracks.first)
        // The plot carries the transcript's segments along its time axis.
        let svg = AnalysisReport(analysis).svg()
        #expect(svg.contains("speech</text>") && svg.contains(">abcd</text>"))

        let times = scan.times
        let audio = try Alignment.audio(try FakeAudio().embed(audioOf: ""), rate: 50, to: times)
        let text = try transcript.align(try FeatureMatrix([[2, 1], [4, 1]]), to: times)
        // Text rows are the segment embeddings placed at 0.1 s and 0.3 s.
        #expect(text.row(0) == [2, 1] && text.row(5) == [3, 1] && text.row(9) == [4, 1])
        let faceRows = try FeatureMatrix(rows: frames.count, columns: k, values: logits)
        func rows(_ m: FeatureMatrix, _ ps: [Int]) throws -> FeatureMatrix { try FeatureMatrix(ps.map { m.row($0) }) }
        let x = try Fusion.concatenate([faceRows, try rows(audio, frames), try rows(text, frames)])
        let onFaces = try FeatureMatrix(heads[0].head.predict(x.tensor))
        var values = [[Float]?](repeating: nil, count: n)
        for (i, f) in frames.enumerated() { values[f] = onFaces.row(i) }
        let expectedVA = try FrameTimeline(times: times, values: values).filled()
        #expect(maxDiff(t.valenceArousal!, expectedVA) < 1e-6)
        // The gate (probability ≈ sigmoid(−9.4)) closes: AH is zeroed.
        #expect(t.gateProbability! < 1e-3)
        #expect(t.ambivalence! == [Float](repeating: 0, count: n))
        let pooled = try Pooling.stat(faceRows)
        let expectedEMI = try heads[2].head.predict(Tensor(shape: [1, pooled.count], values: pooled)).array
        #expect(zip(t.mimicry!, expectedEMI).allSatisfy { abs($0 - $1) < 1e-6 })

        // Without the gate, the text-only AH head runs on every frame.
        configuration.gate = nil
        let open = try #require(try Analyzer(configuration).analyze(scan: scan).tracks.first)
        let expectedAH = try heads[1].head.predict(text.tensor).array
        #expect(zip(open.ambivalence!, expectedAH).allSatisfy { abs($0 - $1) < 1e-6 })
        // A transcript running past the 0.4 s video is refused.
        configuration.transcript = try TimedTranscript(source: "long.srt", segments: [.init(start: 0, end: 1.5, text: "too long")])
        #expect(throws: AffectError.self) { try Analyzer(configuration).analyze(scan: scan) }
    }

    /// A video without any face is a documented empty result: one row per frame with empty cells.
    @Test func noFaceGivesEmptyRows() throws {
        let scan = try VideoScan(path: "empty.mp4", width: 32, height: 32, frameRate: 25, times: (0..<5).map { Double($0) / 25 },
                                 tracks: [], featureWidth: 7, logitWidth: 7)
        let analyzer = try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: try MiniXception(weights: WeightFile(path: miniXceptionPath)))
        let result = try analyzer.analyze(scan: scan)
        #expect(result.tracks.isEmpty)
        let report = AnalysisReport(result)
        let rows = report.csv().split(separator: "\n")
        #expect(rows.count == 6)
        #expect(rows[1].split(separator: ",", omittingEmptySubsequences: false).count == rows[0].split(separator: ",").count)
        #expect(rows[2].hasPrefix("1,0.0400,,0,,"))
        #expect(report.summaryText().contains("no face found"))
        #expect(report.svg().contains("no face found"))
    }

    @Test func headWidthMismatchIsAClearError() throws {
        let faceModel = try MiniXception(weights: WeightFile(path: miniXceptionPath))
        let head = repoRoot.appendingPathComponent("Tests/Fixtures/fusion/head_keras.safetensors").path
        do {
            _ = try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: faceModel,
                             heads: [HeadSpec(task: .expr, head: try MLPHead(path: head))])
            Issue.record("accepted")
        } catch let e as AffectError {
            #expect(e.description.contains(head) && e.description.contains("32") && e.description.contains("7"), "\(e)")
        }
        // A head on audio without an audio model.
        let a2 = Analyzer.Configuration(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: faceModel,
                                        heads: [HeadSpec(task: .va, modalities: [.audio], head: try MLPHead(path: head))])
        #expect(throws: AnalyzerConfigurationError.missingModality(head: "the VA head \(head) (audio)", .audio)) { try Analyzer(a2) }
    }

    /// A head listing a modality twice is refused (the command line's `face+face:FILE` is tested in CLITests).
    @Test func repeatedModalityIsRefused() throws {
        let head = repoRoot.appendingPathComponent("Tests/Fixtures/fusion/head_keras.safetensors").path
        let configuration = Analyzer.Configuration(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)),
                                                   faceModel: try MiniXception(weights: WeightFile(path: miniXceptionPath)),
                                                   heads: [HeadSpec(task: .va, modalities: [.face, .face], head: try MLPHead(path: head))])
        #expect(throws: AnalyzerConfigurationError.repeatedModality(head: "the VA head \(head) (face+face)")) { try Analyzer(configuration) }
    }

    /// The default pipeline on the talking-head clip against the Python chain (facenet-pytorch → fer's
    /// preprocessing → mini-Xception in Keras), Tools/references/analyze.py.
    @Test func talkingHeadMatchesThePythonChain() throws {
        struct Expected: Decodable { var frames: Int; var labels: [String]; var boxes: [[Float]?]; var probs: [[Float]?] }
        let url = repoRoot.appendingPathComponent("Tests/Fixtures/analyze/talking.json")
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url))
        let analyzer = try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: try MiniXception(weights: WeightFile(path: miniXceptionPath)))
        let result = try analyzer.analyze(path: "\(testMedia)/talking.mp4")
        #expect(result.scan.frameCount == expected.frames)
        #expect(result.modelLabels == expected.labels)
        let t = try #require(result.tracks.first)
        #expect(t.rows.count == expected.frames)
        #expect(t.faceFrames == expected.frames, "a face in every frame")
        var worst: Float = 0, worstBox: Float = 0
        for r in 0..<expected.frames {
            guard let e = expected.probs[r], let b = t.boxes[r], let eb = expected.boxes[r] else { Issue.record("frame \(r): no face"); continue }
            worst = max(worst, zip(t.probabilities.row(r), e).map { abs($0 - $1) }.max()!)
            worstBox = max(worstBox, zip([b.x1, b.y1, b.x2, b.y2], eb).map { abs($0 - $1) }.max()!)
        }
        print("talking head: max |p − p_keras| = \(worst), max box difference \(worstBox) px over \(expected.frames) frames")
        #expect(worst <= 1e-2)
        #expect(Set(t.predicted).count == 1, "one class in every frame")
        #expect(t.classLabels[t.predicted[0]] == "happy")
    }

    /// Frames analysed in parallel (each thread taking the next frame as it finishes one) give exactly the
    /// one-thread result, with the per-frame callback called once per frame, in order; so does the path for
    /// more threads than frames in flight (one frame at a time, split across threads).
    @Test func threadCountsGiveTheSameScan() throws {
        let analyzer = try everyTrackAnalyzer(every: 3)
        let saved = Threading.threads
        defer { Threading.setThreads(saved) }
        var reports: [String] = []
        for t in [1, 2, 3, 17] {
            Threading.setThreads(t)
            var positions: [Int] = [], progressed: [Int] = []
            let scan = try analyzer.scan(path: "\(testMedia)/crowd.mp4", progress: { done, _ in progressed.append(done) },
                                         onFrame: { positions.append($0.position) })
            #expect(positions == Array(stride(from: 0, to: scan.frameCount, by: 3)), "threads \(t): callbacks out of order")
            #expect(progressed == Array(1...scan.frameCount), "threads \(t)")
            #expect(scan.faceCounts.reduce(0, +) > 0)
            reports.append(AnalysisReport(try analyzer.analyze(scan: scan)).csv())
        }
        for (i, t) in [2, 3, 17].enumerated() { #expect(reports[i + 1] == reports[0], "threads \(t) differ from 1") }
    }

    /// An error thrown by the per-frame callback ends the scan with that error, whatever the thread count.
    @Test func callbackErrorEndsTheScan() throws {
        struct Stop: Error {}
        let analyzer = try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: try MiniXception(weights: WeightFile(path: miniXceptionPath)))
        let saved = Threading.threads
        defer { Threading.setThreads(saved) }
        for t in [1, 2] {
            Threading.setThreads(t)
            var calls = 0
            #expect(throws: Stop.self) {
                _ = try analyzer.scan(path: "\(testMedia)/crowd.mp4", onFrame: { _ in calls += 1; if calls == 5 { throw Stop() } })
            }
            #expect(calls == 5, "threads \(t): no callback after the error")
        }
    }

    /// Every face of the crowd clip is tracked and reported, each on its own frames.
    @Test func crowdReportsEachTrack() throws {
        let analyzer = try everyTrackAnalyzer(every: 5)
        let result = try analyzer.analyze(path: "\(testMedia)/crowd.mp4")
        #expect(result.tracks.count == result.scan.tracks.count)
        #expect(result.tracks.count == 4)
        // t = 1.0 s (frame 25, analysed): the four faces (facenet-pytorch finds them too), each in its own track.
        let at25 = result.tracks.filter { t in t.rows.contains(25) && t.boxes[25 - t.rows[0]] != nil }
        #expect(result.scan.faceCounts[25] == 4)
        #expect(at25.count == 4)
        #expect(Set(at25.map(\.id)).count == 4)
        for t in result.tracks {
            #expect(t.rows.first == t.boxes.indices.first { t.boxes[$0] != nil }.map { $0 + t.rows[0] })
            #expect(t.probabilities.rows == t.rows.count)
        }
        let csv = AnalysisReport(result).csv().split(separator: "\n")
        let keys = csv.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).prefix(3).joined(separator: ",") }
        #expect(Set(keys).count == keys.count, "one row per frame and track")
        #expect(keys.count >= result.tracks.reduce(0) { $0 + $1.rows.count })
        let frames = Set(csv.dropFirst().map { $0.split(separator: ",")[0] })
        #expect(frames.count == result.scan.frameCount)
        // The plot draws every track (small multiples), each with its lines.
        let svg = AnalysisReport(result).svg()
        for t in result.tracks { #expect(svg.contains(">track \(t.id) ("), "panel of track \(t.id)") }
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 4 * 7)
        #expect(!svg.contains("speech</text>"), "no transcript, no speech strip")
    }
}

/// The default models (MTCNN, mini-Xception) reporting every track, on every `every`-th frame.
private func everyTrackAnalyzer(every: Int) throws -> Analyzer {
    var options = AnalyzerOptions()
    options.tracks = .all
    options.every = every
    return try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: try MiniXception(weights: WeightFile(path: miniXceptionPath)),
                        options: options)
}

func maxDiff(_ a: FeatureMatrix, _ b: FeatureMatrix) -> Float {
    guard a.rows == b.rows, a.columns == b.columns else { return .infinity }
    return zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 0
}
