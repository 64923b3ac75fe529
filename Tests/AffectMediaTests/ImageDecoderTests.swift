import Foundation
import Testing
import AffectKernels
@testable import AffectMedia
import AffectTestSupport

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/faces")

private func scratch(_ name: String) -> String {
    let dir = Scratch.directory("image")
    return dir.appendingPathComponent(name).path
}

/// FNV-1a, 64 bits: what Tools/make_jpeg_reference.py hashes PIL's pixels with.
private func fnv1a64(_ bytes: [UInt8]) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return String(format: "%016llx", h)
}

/// A one-sentence bad-input error naming `path` and containing `words`.
private func isBadInput(_ e: any Error, naming path: String, _ words: String) -> Bool {
    guard let a = e as? AffectError, case .badInput(let m) = a else { return false }
    return m.hasPrefix(path) && m.contains(words)
}

/// A valid 8×8 greyscale progressive JPEG of flat grey (all coefficients zero) with 1 + 13 DC scans and 14
/// scans (a first pass at Al = 13, then 13 refinements) for each of `coefficients` AC positions. One Huffman
/// code `0` means "DC difference 0" or "end of band"; each scan's data is that bit (or a zero correction bit),
/// padded with ones.
private func manyScanJPEG(coefficients: Int) -> [UInt8] {
    func segment(_ marker: UInt8, _ body: [UInt8]) -> [UInt8] {
        [0xFF, marker, UInt8((body.count + 2) >> 8), UInt8((body.count + 2) & 0xFF)] + body
    }
    var out: [UInt8] = [0xFF, 0xD8]
    out += segment(0xDB, [0x00] + [UInt8](repeating: 1, count: 64))               // quantisation table 0: all 1
    out += segment(0xC2, [8, 0, 8, 0, 8, 1, 1, 0x11, 0])                         // SOF2: 8-bit, 8×8, one component
    let oneCode: [UInt8] = [1] + [UInt8](repeating: 0, count: 15) + [0x00]       // one code of length 1: symbol 0
    out += segment(0xC4, [0x00] + oneCode)                                       // DC table 0
    out += segment(0xC4, [0x10] + oneCode)                                       // AC table 0
    func scan(_ ss: UInt8, _ se: UInt8, _ ah: UInt8, _ al: UInt8) {
        out += segment(0xDA, [1, 1, 0x00, ss, se, ah << 4 | al]) + [0x7F]
    }
    scan(0, 0, 0, 13)
    for ah in stride(from: UInt8(13), through: 1, by: -1) { scan(0, 0, ah, ah - 1) }
    for k in 1...UInt8(coefficients) {
        scan(k, k, 0, 13)
        for ah in stride(from: UInt8(13), through: 1, by: -1) { scan(k, k, ah, ah - 1) }
    }
    return out + [0xFF, 0xD9]
}

/// JPEG stills against PIL's `Image.open(f).convert("RGB")` (Tools/make_jpeg_reference.py), and what the
/// decoders refuse: damaged files, progressive bombs, pictures over the pixel limit.
@Suite struct ImageDecoderTests {
    struct Reference: Decodable {
        var mode: String, width: Int, height: Int, fnv1a64: String, stride: Int, samples: [Int]
    }
    let references: [String: Reference] = {
        struct File: Decodable { var images: [String: Reference] }
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("jpeg_reference.json"))
        return try! JSONDecoder().decode(File.self, from: data).images
    }()

    /// Equal pixels, byte for byte, though PIL bundles libjpeg-turbo 3.2 and we link the system's 2.1: both
    /// run the same ISLOW IDCT, fancy upsampling and colour conversion, which give identical results.
    @Test(arguments: ["astronaut-420.jpg", "astronaut-422-progressive.jpg", "astronaut-gray.jpg", "astronaut-cmyk.jpg"])
    func equalsPIL(_ name: String) throws {
        let ref = try #require(references[name])
        let image = try ImageDecoder.decode(path: fixtures.appendingPathComponent(name).path)
        #expect(image.width == ref.width && image.height == ref.height)
        try #require(image.pixels.count == ref.width * ref.height * 3)
        var worst = 0
        for (i, v) in ref.samples.enumerated() { worst = max(worst, abs(Int(image.pixels[i * ref.stride]) - v)) }
        #expect(worst == 0, "\(name) (\(ref.mode)): sampled pixels differ from PIL's by up to \(worst) levels")
        #expect(fnv1a64(image.pixels) == ref.fnv1a64, "\(name) (\(ref.mode)): pixels differ from PIL's")
    }

    /// The 4:2:0 photo through FFmpeg's decoder (the path JPEG took before) is not what PIL sees; this keeps the
    /// fixture meaningful: a decoder mix-up would show here.
    @Test func ffmpegDecodesThe420PhotoDifferently() throws {
        let path = fixtures.appendingPathComponent("astronaut-420.jpg").path
        let media = try MediaStream(path: path, kind: .picture, maxPixels: 1 << 20)
        let frame = try #require(try media.nextFrame(corrupt: "corrupt"))
        let viaFFmpeg = try ImageDecoder.convertToRGB(frame, path: path)
        let viaLibjpeg = try ImageDecoder.decode(path: path)
        let differing = zip(viaFFmpeg.pixels, viaLibjpeg.pixels).filter { $0 != $1 }.count
        #expect(viaFFmpeg.width == viaLibjpeg.width && differing > 0)
    }

    @Test func damagedJPEGsAreOneSentenceErrors() throws {
        let good = try [UInt8](Data(contentsOf: fixtures.appendingPathComponent("astronaut-420.jpg")))
        let cases: [(String, [UInt8])] = [
            ("truncated.jpg", Array(good[..<(good.count / 2)])),
            ("header-only.jpg", Array(good[..<600])),
            ("soi-then-garbage.jpg", [0xFF, 0xD8, 0xFF] + (0..<2000).map { UInt8(($0 * 37 + 11) % 251) }),
            // The SOF0 precision byte set to 12 bits: PIL refuses these too.
            ("twelve-bit.jpg", { var b = good; let sof = (0..<b.count - 1).first { b[$0] == 0xFF && b[$0 + 1] == 0xC0 }!; b[sof + 4] = 12; return b }()),
            ("zero-width.jpg", { var b = good; let sof = (0..<b.count - 1).first { b[$0] == 0xFF && b[$0 + 1] == 0xC0 }!; b[sof + 7] = 0; b[sof + 8] = 0; return b }()),
        ]
        for (name, bytes) in cases {
            let path = scratch(name)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(throws: (any Error).self, "\(name)") { _ = try ImageDecoder.decode(path: path) }
            do { _ = try ImageDecoder.decode(path: path) } catch {
                #expect(isBadInput(error, naming: path, "libjpeg"), "\(name): \(error)")
            }
        }
    }

    /// A progressive file of many tiny scans would make every scan walk the whole coefficient buffer; more
    /// than 500 scans are refused. The same construction with fewer scans is a valid flat-grey picture.
    @Test func progressiveScanBombIsRefused() throws {
        let fine = scratch("43-scans.jpg"), bomb = scratch("896-scans.jpg")
        try Data(manyScanJPEG(coefficients: 2)).write(to: URL(fileURLWithPath: fine))
        try Data(manyScanJPEG(coefficients: 63)).write(to: URL(fileURLWithPath: bomb))
        let image = try ImageDecoder.decode(path: fine)
        #expect(image == RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 128, count: 192)))
        #expect { _ = try ImageDecoder.decode(path: bomb) } throws: { isBadInput($0, naming: bomb, "more than 500 scans") }
    }

    @Test func jpegOverThePixelLimitIsRefusedFromItsHeader() throws {
        let path = fixtures.appendingPathComponent("astronaut-420.jpg").path
        #expect(try ImageDecoder.decode(path: path, maxPixels: 384 * 384).width == 384)
        #expect { _ = try ImageDecoder.decode(path: path, maxPixels: 384 * 384 - 1) } throws: {
            isBadInput($0, naming: path, "384×384 = 147456 pixels, over the limit of 147455")
        }
        #expect(throws: AffectError.self) { _ = try ImageDecoder.decode(path: path, maxPixels: 0) }
    }

    /// A PNG declaring 16000 × 16000 pixels (768 MB of RGB) in a few dozen bytes: refused when the decoder
    /// asks for the frame's memory, before it is allocated (its pixel data is never reached).
    @Test func pngBombIsRefusedBeforeAllocating() throws {
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            var crc: UInt32 = 0xFFFF_FFFF
            for b in typed {
                crc ^= UInt32(b)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            crc = ~crc
            func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
            return be(UInt32(body.count)) + typed + be(crc)
        }
        let side: [UInt8] = [0, 0, 0x3E, 0x80]  // 16000
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", side + side + [8, 2, 0, 0, 0])
        png += chunk("IDAT", [0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01])
        png += chunk("IEND", [])
        let path = scratch("bomb.png")
        try Data(png).write(to: URL(fileURLWithPath: path))
        #expect { _ = try ImageDecoder.decode(path: path) } throws: {
            isBadInput($0, naming: path, "16000×16000 = 256000000 pixels, over the limit of \(MediaLimits.maxPixels)")
        }
    }

    /// PNG stays on FFmpeg, under the same limit.
    @Test func pngUnderAndOverTheLimit() throws {
        let path = scratch("small.ppm")
        var ppm = Data("P6\n7 5\n255\n".utf8)
        ppm.append(contentsOf: (0..<105).map { UInt8($0 * 2) })
        try ppm.write(to: URL(fileURLWithPath: path))
        let image = try ImageDecoder.decode(path: path, maxPixels: 35)
        #expect(image.width == 7 && image.height == 5 && image.pixels[104] == 208)
        #expect { _ = try ImageDecoder.decode(path: path, maxPixels: 34) } throws: {
            isBadInput($0, naming: path, "7×5 = 35 pixels, over the limit of 34")
        }
    }
}
