import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline
import AffectTestSupport

@Suite struct AnnotatedVideoTests {
    /// The crowd clip rendered with every track: as many frames at the same times, the audio copied, and each
    /// track's box drawn in its colour where the detector put it.
    @Test func crowdBoxesDrawnAudioCopied() throws {
        var options = AnalyzerOptions()
        options.tracks = .all
        options.every = 2
        let analyzer = try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)),
                                    faceModel: try MiniXception(weights: WeightFile(path: miniXceptionPath)), options: options)
        let analysis = try analyzer.analyze(path: "\(testMedia)/crowd.mp4")
        let out = Scratch.path("render.mp4")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let encoder = try AnnotatedVideo.render(analysis, to: out, container: out)
        #expect(["libx264", "mpeg4"].contains(encoder))

        let decoder = try VideoDecoder(path: out)
        #expect(decoder.width == analysis.scan.width && decoder.height == analysis.scan.height)
        var frames: [VideoFrame] = []
        while let f = try decoder.nextFrame() { frames.append(f) }
        #expect(frames.count == analysis.scan.frameCount)
        for (f, t) in zip(frames, analysis.scan.times) { #expect(abs(f.time - t) < 0.002) }
        #expect(analysis.tracks.count == 4)
        for t in analysis.tracks {
            // An analysed frame with this face: the middle of the box's left edge carries the track's colour.
            let row = try #require(t.boxes.indices.first { t.boxes[$0] != nil && analysis.scan.analyzed[t.rows[0] + $0] })
            let box = t.boxes[row]!
            let image = frames[t.rows[0] + row].image
            let (x, y) = (Int(box.x1.rounded()) + 1, Int(((box.y1 + box.y2) / 2).rounded()))
            let i = (y * image.width + x) * 3
            let colour = RGBColor.palette[t.id % RGBColor.palette.count]
            let got = [image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]].map(Int.init)
            let want = [colour.r, colour.g, colour.b].map(Int.init)
            #expect(zip(got, want).allSatisfy { abs($0 - $1) < 60 }, "track \(t.id): \(got) vs \(want)")
        }
        let samples = try AudioDecoder.decodeAll(path: out, sampleRate: 16000).count
        #expect(abs(Double(samples) / 16000 - 4.0) < 0.1, "the crowd clip's 4 s of sound are copied: \(samples) samples")
    }

    @Test func textIsClippedToThePicture() {
        var image = RGBImage(width: 20, height: 10, pixels: [UInt8](repeating: 0, count: 600))
        image.label("far outside", x: 15, y: 7, .white, background: .black, scale: 3)
        image.draw("x", x: -100, y: -100, .white)
        image.stroke(x0: 0, y0: 0, x1: 100, y1: 100, RGBColor(255, 0, 0))
        #expect(image.pixels.count == 600)
        #expect(image.pixels[0] == 255 && image.pixels[1] == 0, "the stroke's top-left corner, clipped")
    }
}
