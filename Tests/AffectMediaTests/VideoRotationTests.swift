import Foundation
import Testing
import AffectKernels
import CFFmpeg
@testable import AffectMedia
import AffectTestSupport

private func scratch(_ name: String) -> String {
    let dir = Scratch.directory("rotation")
    return dir.appendingPathComponent(name).path
}

/// Runs ffmpeg (a dependency, scripts/install-deps.sh) and returns its standard output.
@discardableResult
private func ffmpeg(_ args: [String]) throws -> Data {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["ffmpeg", "-v", "error", "-nostdin", "-y"] + args
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    try #require(p.terminationStatus == 0, "ffmpeg \(args.joined(separator: " ")) failed")
    return data
}

/// A 256×320 (portrait) clip of three blue frames with a red 32×16 block in the top-left corner, stored
/// losslessly (PNG in QuickTime) so that its RGB is exact, with `rotate` metadata that the muxer turns into
/// a display matrix, as phones write.
private func clip(rotate: Int) throws -> String {
    // Own files per call: tests run in parallel.
    let id = UUID().uuidString
    let base = scratch("base-\(id).mov")
    try ffmpeg(["-f", "lavfi", "-i", "color=c=blue:s=256x320:r=5,drawbox=x=0:y=0:w=32:h=16:color=red:t=fill",
                "-frames:v", "3", "-c:v", "png", base])
    let path = scratch("rotate-\(rotate)-\(id).mov")
    try ffmpeg(["-i", base, "-c", "copy", "-metadata:s:v", "rotate=\(rotate)", path])
    return path
}

/// The centre of the red pixels, in (x, y).
private func redCentre(_ img: RGBImage) -> (Double, Double) {
    var (sx, sy, n) = (0.0, 0.0, 0.0)
    for y in 0..<img.height { for x in 0..<img.width where img.pixels[(y * img.width + x) * 3] > 200 {
        sx += Double(x); sy += Double(y); n += 1
    } }
    return n > 0 ? (sx / n, sy / n) : (-1, -1)
}

/// Rotated videos come out as `ffmpeg` shows them by default (display matrix applied), with the displayed size.
@Suite struct VideoRotationTests {
    @Test(arguments: [0, 90, 180, 270])
    func framesAreDisplayedAsFFmpegShowsThem(_ rotate: Int) throws {
        let path = try clip(rotate: rotate)
        let video = try VideoDecoder(path: path)
        let raw = [UInt8](try ffmpeg(["-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]))
        // ffmpeg's frames are 320×256 when turned by a quarter.
        let (w, h) = rotate % 180 == 0 ? (256, 320) : (320, 256)
        try #require(raw.count == 3 * w * h * 3, "ffmpeg gave \(raw.count) bytes")
        #expect(video.width == w && video.height == h, "rotate=\(rotate): reported \(video.width)×\(video.height)")
        var frames = 0
        while let f = try video.nextFrame() {
            let ref = RGBImage(width: w, height: h, pixels: Array(raw[(frames * w * h * 3)..<((frames + 1) * w * h * 3)]))
            #expect(f.image.width == w && f.image.height == h)
            // The red block is where ffmpeg puts it (and, unrotated, in the top-left corner).
            let (ours, theirs) = (redCentre(f.image), redCentre(ref))
            #expect(ours == theirs, "rotate=\(rotate) frame \(frames): red block at \(ours), ffmpeg \(theirs)")
            if rotate == 0 { #expect(theirs == (15.5, 7.5)) }
            #expect(f.image == ref, "rotate=\(rotate) frame \(frames): pixels differ from ffmpeg's")
            frames += 1
        }
        #expect(frames == 3)
    }

    /// The orientation of every display matrix `ffmpeg` handles: quarter turns and mirrorings, built as the
    /// muxers build them (av_display_rotation_set, av_display_matrix_flip), applied to a 3×2 picture.
    @Test func displayMatricesOfEveryKind() throws {
        // Pixel values name their coded position: 10·y + x.
        var codedPixels: [UInt8] = []
        for y in 0..<2 { for x in 0..<3 { codedPixels += [UInt8(10 * y + x), 0, 0] } }
        let coded = RGBImage(width: 3, height: 2, pixels: codedPixels)
        func displayed(cw: Double, hflip: Bool = false, vflip: Bool = false) throws -> [[Int]] {
            var m = [Int32](repeating: 0, count: 9)
            m.withUnsafeMutableBufferPointer {
                av_display_rotation_set($0.baseAddress, cw)
                av_display_matrix_flip($0.baseAddress, hflip ? 1 : 0, vflip ? 1 : 0)
            }
            let o = try #require(Orientation(displayMatrix: m))
            let img = o.apply(coded)
            var rows: [[Int]] = []
            for y in 0..<img.height {
                var row: [Int] = []
                for x in 0..<img.width { row.append(Int(img.pixels[(y * img.width + x) * 3])) }
                rows.append(row)
            }
            return rows
        }
        // av_display_rotation_set takes clockwise degrees (av_display_rotation_get answers counter-clockwise).
        #expect(try displayed(cw: 0) == [[0, 1, 2], [10, 11, 12]])
        #expect(try displayed(cw: 90) == [[10, 0], [11, 1], [12, 2]])
        #expect(try displayed(cw: -90) == [[2, 12], [1, 11], [0, 10]])
        #expect(try displayed(cw: 180) == [[12, 11, 10], [2, 1, 0]])
        #expect(try displayed(cw: 0, hflip: true) == [[2, 1, 0], [12, 11, 10]])
        #expect(try displayed(cw: 0, vflip: true) == [[10, 11, 12], [0, 1, 2]])
        #expect(try displayed(cw: 90, hflip: true) == [[0, 10], [1, 11], [2, 12]])   // a transpose
        #expect(try displayed(cw: -90, hflip: true) == [[12, 2], [11, 1], [10, 0]])  // the other diagonal
        // No camera writes other angles; ffmpeg's arbitrary rotation is not reproduced, so they are refused.
        var odd = [Int32](repeating: 0, count: 9)
        odd.withUnsafeMutableBufferPointer { av_display_rotation_set($0.baseAddress, 45) }
        #expect(Orientation(displayMatrix: odd) == nil)
        // A degenerate matrix has no angle: ignored, as by ffmpeg.
        #expect(Orientation(displayMatrix: [Int32](repeating: 0, count: 9)) == Orientation())
    }

    @Test func framesOverThePixelLimitAreRefusedAtOpen() throws {
        let path = try clip(rotate: 90)
        #expect(try VideoDecoder(path: path, maxPixels: 256 * 320).width == 320)
        #expect {
            _ = try VideoDecoder(path: path, maxPixels: 256 * 320 - 1)
        } throws: { e in
            guard let a = e as? AffectError, case .badInput(let m) = a else { return false }
            return m.hasPrefix(path) && m.contains("a video frame is 256×320 = 81920 pixels, over the limit of 81919")
        }
    }
}
