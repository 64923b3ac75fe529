import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectTestSupport

struct VideoFixture: Decodable {
    struct Face: Decodable { var box: [Float]; var prob: Float }
    struct Detection: Decodable { var frame: Int; var faces: [Face] }
    var video: String
    var frames: Int
    var times: [Double]
    var sample_stride: Int
    var samples: [String: [Int]]
    var detections: [Detection]
}


/// The FFmpeg decoder and MTCNN on Tests/Fixtures/media/crowd.mp4 (four faces moving) against ffprobe, `ffmpeg -pix_fmt rgb24` and
/// facenet-pytorch on every 5th frame (Tools/make_reference.py video Tests/Fixtures/faces).
@Suite struct VideoTests {
    let fixture: VideoFixture = {
        let url = repoRoot.appendingPathComponent("Tests/Fixtures/faces/video_crowd.json")
        return try! JSONDecoder().decode(VideoFixture.self, from: Data(contentsOf: url))
    }()

    @Test func framesTimesAndPixelsMatchFFmpeg() throws {
        let video = try VideoDecoder(path: "\(testMedia)/\(fixture.video)")
        #expect(video.width == 768 && video.height == 432 && video.rotation == 0)
        var count = 0
        while let f = try video.nextFrame() {
            #expect(f.index == count)
            if count < fixture.times.count { #expect(abs(f.time - fixture.times[count]) < 1e-6, "frame \(count): t=\(f.time)") }
            if let expected = fixture.samples[String(count)] {
                let worst = expected.enumerated().map { i, v in abs(Int(f.image.pixels[(i * fixture.sample_stride) % f.image.pixels.count]) - v) }.max()!
                #expect(worst <= 1, "frame \(count): pixels differ from ffmpeg rgb24 by \(worst) levels")
            }
            count += 1
        }
        #expect(count == fixture.frames)
    }

    @Test func mtcnnMatchesFacenetOnEveryFifthFrame() throws {
        let mtcnn = try MTCNN(weights: WeightFile(path: repoRoot.appendingPathComponent("Weights/mtcnn.safetensors").path))
        let video = try VideoDecoder(path: "\(testMedia)/\(fixture.video)")
        video.every = 5
        var checked = 0, worst: Float = 0
        var differing: [String] = []
        while let f = try video.nextFrame() {
            guard let ref = fixture.detections.first(where: { $0.frame == f.index }) else { continue }
            let faces = mtcnn.detect(f.image)
            checked += 1
            guard faces.count == ref.faces.count else {
                differing.append("frame \(f.index): \(faces.count) faces vs \(ref.faces.count)")
                continue
            }
            for (o, r) in zip(faces, ref.faces) {
                let d = zip([o.x1, o.y1, o.x2, o.y2], r.box).map { abs($0 - $1) }.max()!
                worst = max(worst, d)
                if d > 2 || abs(o.probability - r.prob) > 1e-3 { differing.append("frame \(f.index): box off by \(d) px") }
            }
        }
        print("MTCNN on \(checked) video frames: max box difference \(worst) px; differing: \(differing)")
        #expect(checked == fixture.detections.count)
        #expect(differing.isEmpty, "\(differing)")
    }

    @Test func targetFPSKeepsTheFirstFrameAtEachInstant() throws {
        // 25 fps: 5 fps is every 5th frame; 10 fps alternates steps of 3 and 2 frames (0, 0.12, 0.2, 0.32 s ...).
        for (fps, expected) in [(5.0, Array(stride(from: 0, to: fixture.frames, by: 5))),
                                (10.0, (0..<fixture.frames).filter { $0 % 5 == 0 || $0 % 5 == 3 }),
                                (100.0, Array(0..<fixture.frames))] {
            let video = try VideoDecoder(path: "\(testMedia)/\(fixture.video)")
            video.targetFPS = fps
            var kept: [Int] = []
            while let f = try video.nextFrame() {
                kept.append(f.index)
                #expect(abs(f.time - fixture.times[f.index]) < 1e-6)
            }
            #expect(kept == expected, "\(fps) fps: kept \(kept)")
        }
    }

    @Test func badVideosAreClearErrors() throws {
        let dir = Scratch.directory("video")
        let empty = dir.appendingPathComponent("empty.mp4").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        let garbage = dir.appendingPathComponent("garbage.mp4").path
        FileManager.default.createFile(atPath: garbage, contents: Data((0..<65536).map { UInt8(($0 * 131) % 251) }))
        let paths = [empty, garbage, "\(testMedia)/speech.wav"]
        for path in paths {
            #expect {
                let v = try VideoDecoder(path: path)
                while try v.nextFrame() != nil {}
                if v.width > 0 { throw AffectError.badInput("\(path): decoded") }
            } throws: { e in
                guard let a = e as? AffectError, case .badInput(let m) = a else { return false }
                return m.hasPrefix(path)
            }
        }
    }

    @Test func truncatedVideoDecodesWhatIsThere() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(testMedia)/\(fixture.video)"))
        let path = Scratch.path("truncated.mp4")
        try data.prefix(data.count / 3).write(to: URL(fileURLWithPath: path))
        // A cut-off MP4 loses its index (moov at the end) or its tail: either a clear error or fewer frames.
        do {
            let v = try VideoDecoder(path: path)
            var n = 0
            while try v.nextFrame() != nil { n += 1 }
            #expect(n < fixture.frames)
        } catch let e as AffectError {
            guard case .badInput(let m) = e else { Issue.record("unexpected \(e)"); return }
            #expect(m.hasPrefix(path))
        }
    }
}
