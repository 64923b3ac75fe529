import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

@Suite struct FrameStreamTests {
    func analyzer(every: Int = 1) throws -> Analyzer {
        var options = AnalyzerOptions()
        options.every = every
        return try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)),
                        faceModel: try MiniXception(weights: WeightFile(path: miniXceptionPath)), options: options)
    }

    /// The streaming pass and the whole-file scan see the same frames, faces, tracks and probabilities; the
    /// scan's per-frame callback gives exactly what it accumulates.
    @Test func streamMatchesScanOnTheCrowdClip() throws {
        let a = try analyzer(every: 3)
        let path = "\(testMedia)/crowd.mp4"
        var fromScan: [FrameObservation] = []
        let scan = try a.scan(path: path, onFrame: { fromScan.append($0) })
        var fromStream: [FrameObservation] = []
        let summary = try a.stream(.file(path)) { frame, dropped in
            #expect(dropped == 0)
            fromStream.append(frame)
        }
        #expect(summary.analyzed == fromScan.count && summary.dropped == 0 && !summary.stopped)
        #expect(fromScan.count == scan.analyzed.filter { $0 }.count)
        #expect(fromStream.map(\.position) == fromScan.map(\.position))
        #expect(fromScan.contains { $0.faces.count >= 3 }, "the crowd clip has several faces per frame")
        for (s, t) in zip(fromScan, fromStream) {
            #expect(abs(s.time - t.time) < 1e-6)
            #expect(s.faces.map(\.box) == t.faces.map(\.box))
            #expect(s.faces.map(\.track) == t.faces.map(\.track))
            #expect(s.faces.map(\.probabilities) == t.faces.map(\.probabilities))
        }
        // What the scan accumulated for each track is what its callback reported.
        for track in scan.tracks {
            let boxes = fromScan.flatMap { f in f.faces.filter { $0.track == track.id }.map(\.box) }
            #expect(boxes == track.boxes)
        }
    }

    /// A stop requested before the source opens ends the stream at once, with nothing analysed.
    @Test func stopEndsALiveReadThatWaits() throws {
        let stop = StopFlag()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { stop.stop() }
        let start = Date()
        #expect(throws: AffectError.self) {
            _ = try self.analyzer().stream(.url("udp://127.0.0.1:\(Int.random(in: 30000...40000))"), stop: stop, timeout: 60) { _, _ in }
        }
        #expect(Date().timeIntervalSince(start) < 10, "the interrupt callback ends FFmpeg's blocking read")
    }

    @Test func recordsCarryLabelsAndRoundedTimes() throws {
        let box = FaceDetection(x1: 1, y1: 2, x2: 30, y2: 40, probability: 0.9, landmarks: [])
        let o = FrameObservation(position: 3, time: 0.12000000001,
                                 faces: [FaceObservation(track: 7, box: box, probabilities: [0.2, 0.8], valence: nil, arousal: nil)])
        let r = FrameRecord(o, labels: ["sad", "happy"], dropped: 2)
        #expect(r.time == 0.12 && r.frame == 3 && r.dropped == 2)
        #expect(r.faces[0].expression == "happy" && r.faces[0].probabilities == ["sad": 0.2, "happy": 0.8])
        let line = try r.jsonLine()
        #expect(!line.contains("\n"))
        #expect(try JSONDecoder().decode(FrameRecord.self, from: Data(line.utf8)) == r)
    }

    @Test func sourcesFromArguments() {
        #expect(MediaSource("-") == .standardInput)
        #expect(MediaSource("udp://127.0.0.1:1234") == .url("udp://127.0.0.1:1234"))
        #expect(MediaSource("RTSP://cam/stream").cannotPause)
        #expect(!MediaSource("http://host/clip.mp4").cannotPause)
        #expect(MediaSource("/dev/video0") == .camera("/dev/video0"))
        #expect(MediaSource("clip.mp4") == .file("clip.mp4") && !MediaSource("clip.mp4").isLive)
        #expect(MediaSource("file://x.mp4") == .file("file://x.mp4"), "only network schemes are live")
        #expect(MediaSource("rtsp://user:secret@cam/s").name == "rtsp://…@cam/s", "no password in messages")
    }
}
