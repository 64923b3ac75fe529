import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectTestSupport

/// PNG and JPEG encoding through FFmpeg, read back with the decoder.
@Suite struct ImageEncoderTests {
    let dir = Scratch.directory("encoder").path

    /// A smooth picture (JPEG keeps it within a few levels) with an odd size (chroma subsampling edges).
    func picture(width w: Int = 37, height h: Int = 23) -> RGBImage {
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            let i = (y * w + x) * 3
            px[i] = UInt8(40 + x * 150 / w); px[i + 1] = UInt8(30 + y * 180 / h); px[i + 2] = UInt8(90 + (x + y) * 60 / (w + h))
        } }
        return RGBImage(width: w, height: h, pixels: px)
    }

    @Test func pngRoundTripsExactly() throws {
        let img = picture()
        let path = "\(dir)/round.png"
        try ImageEncoder.write(img, to: path)
        #expect(try ImageDecoder.decode(path: path) == img)
        let bytes = try ImageEncoder.encode(img, format: .png)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    }

    @Test func jpegIsCloseAndAJPEG() throws {
        let img = picture()
        let path = "\(dir)/round.jpg"
        try ImageEncoder.write(img, to: path)
        let back = try ImageDecoder.decode(path: path)
        #expect(back.width == img.width && back.height == img.height)
        let diffs = zip(back.pixels, img.pixels).map { abs(Int($0) - Int($1)) }
        let mean = Double(diffs.reduce(0, +)) / Double(diffs.count)
        #expect(mean < 3 && diffs.max()! <= 16, "JPEG mean error \(mean), max \(diffs.max()!)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.prefix(2) == Data([0xFF, 0xD8]))
    }

    @Test func writesAtomicallyAndReplaces() throws {
        let path = "\(dir)/replace.png"
        try ImageEncoder.write(picture(width: 8, height: 8), to: path)
        try ImageEncoder.write(picture(width: 5, height: 4), to: path)
        #expect(try ImageDecoder.decode(path: path).width == 5)
        // No temporary file is left beside it.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("replace") }
        #expect(names == ["replace.png"])
    }

    @Test func unwritablePlacesAndBadNamesAreClearErrors() throws {
        let file = "\(dir)/plain-file"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        for path in ["\(file)/crop.png", "\(dir)/missing-dir/crop.png"] {
            #expect {
                try ImageEncoder.write(picture(), to: path)
            } throws: { e in
                guard let a = e as? AffectError, case .badInput(let m) = a else { return false }
                return m.hasPrefix(path) && m.contains("cannot write")
            }
        }
        #expect(throws: AffectError.self) { try ImageEncoder.write(picture(), to: "\(dir)/crop.gif") }
        #expect(throws: AffectError.self) { try ImageEncoder.encode(RGBImage(width: 0, height: 0, pixels: []), format: .png) }
    }
}
