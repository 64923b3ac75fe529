import CFFmpeg
import CJPEG
import Foundation
import AffectKernels

/// Decodes still images into 8-bit RGB: JPEG with libjpeg-turbo, anything else (PNG, BMP, WebP, TIFF, …)
/// with the installed FFmpeg.
///
/// JPEG goes through libjpeg-turbo as PIL (and OpenCV) decode it, so photos reach the models with the pixels
/// the Python tools see: ISLOW integer IDCT and libjpeg's "fancy" (triangular) chroma upsampling, where
/// FFmpeg's upsampling of 4:2:0 JPEG differs by a few levels at every colour edge (enough to move MTCNN boxes
/// by pixels). The colour handling is PIL's `Image.open(f).convert("RGB")`: greyscale is replicated into the
/// three channels, 4-component JPEGs (CMYK, or YCCK which libjpeg turns into CMYK) are taken as Adobe's
/// inverted CMYK, as PIL always assumes, and converted with PIL's formula. EXIF orientation is not applied,
/// as `Image.open` does not either: the pixels are the stored ones.
///
/// Pictures over `maxPixels` (default ``MediaLimits/maxPixels``) are refused from their header, before any
/// pixel memory is allocated.
public enum ImageDecoder {
    /// The first frame of `path` as RGB. Throws a one-sentence ``AffectError/badInput(_:)`` naming the file
    /// when it is missing, empty, not an image that libjpeg or FFmpeg can decode, damaged, or larger than
    /// `maxPixels` pixels; ``AffectError/badUsage(_:)`` when `maxPixels` is not positive.
    public static func decode(path: String, maxPixels: Int = MediaLimits.maxPixels) throws -> RGBImage {
        guard maxPixels > 0 else { throw AffectError.badUsage("The pixel limit must be positive, not \(maxPixels).") }
        try MediaStream.checkRegularFile(path)
        if let jpeg = try decodeJPEG(path: path, maxPixels: maxPixels) { return jpeg }
        let media = try MediaStream(path: path, kind: .picture, maxPixels: maxPixels)
        guard let frm = try media.nextFrame(corrupt: "the picture data is corrupt"),
              frm.pointee.width > 0, frm.pointee.height > 0 else {
            throw AffectError.badInput("\(path): no picture could be decoded (truncated or corrupt).")
        }
        let (w, h) = (Int(frm.pointee.width), Int(frm.pointee.height))
        guard w * h <= maxPixels else { throw media.pixelLimitError(width: w, height: h) }
        return try convertToRGB(frm, path: path)
    }

    /// The picture through libjpeg when the file starts with a JPEG SOI marker (FF D8 FF), else nil.
    static func decodeJPEG(path: String, maxPixels: Int) throws -> RGBImage? {
        guard let file = fopen(path, "rb") else {
            throw AffectError.badInput("\(path): cannot be opened (\(String(cString: strerror(errno)))).")
        }
        defer { fclose(file) }
        var magic: [UInt8] = [0, 0, 0]
        guard fread(&magic, 1, 3, file) == 3, magic == [0xFF, 0xD8, 0xFF] else { return nil }
        rewind(file)

        var message = [CChar](repeating: 0, count: Int(JMSG_LENGTH_MAX))
        func failure() -> AffectError {
            let m = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            return .badInput("\(path): the JPEG data is corrupt or unsupported (libjpeg: \(m)).")
        }
        var header = affect_jpeg_header()
        guard affect_jpeg_info(file, &header, &message, message.count) == 0 else { throw failure() }
        let (w, h, channels) = (Int(header.width), Int(header.height), Int(header.components))
        guard w * h <= maxPixels else {
            throw AffectError.badInput(pixelLimitMessage(path: path, width: w, height: h, limit: maxPixels))
        }
        rewind(file)
        // Room for the decoder's output (1, 3 or 4 bytes a pixel) and for the RGB it becomes, converted in place.
        var pixels = [UInt8](repeating: 0, count: w * h * max(channels, 3))
        let status = pixels.withUnsafeMutableBufferPointer { buf in
            affect_jpeg_decode(file, header, buf.baseAddress, &message, message.count)
        }
        guard status == 0 else { throw failure() }
        let n = w * h
        pixels.withUnsafeMutableBufferPointer { p in
            switch channels {
            case 1:
                // Backwards, so no grey value is overwritten before it is spread.
                for i in stride(from: n - 1, through: 0, by: -1) {
                    let v = p[i]
                    p[3 * i] = v; p[3 * i + 1] = v; p[3 * i + 2] = v
                }
            case 4:
                // PIL: unpack as "CMYK;I" (inverted, Adobe's convention), then convert("RGB") computes
                // (255 − k) − c·(255 − k)/255 with its rounding. Forwards: output i is at or before input i.
                for i in 0..<n {
                    let nk = Int(p[4 * i + 3])  // 255 − (255 − stored k)
                    for c in 0..<3 {
                        let t = (255 - Int(p[4 * i + c])) * nk + 128
                        p[3 * i + c] = UInt8(clamping: nk - (((t >> 8) + t) >> 8))
                    }
                }
            default:
                break
            }
        }
        if channels == 4 { pixels.removeLast(n) }
        return RGBImage(width: w, height: h, pixels: pixels)
    }

    /// Converts a decoded picture to packed RGB24 with swscale (exact for RGB sources; YUV with BT.601, as
    /// FFmpeg's command line does by default), with bicubic, accurately rounded, fully interpolated chroma.
    static func convertToRGB(_ frame: UnsafeMutablePointer<AVFrame>, path: String) throws -> RGBImage {
        try RGBConverter(flags: SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT).convert(frame, path: path)
    }
}

/// Packed RGB24 from decoded frames through one swscale context, kept while the frame format stays the same
/// (a video's frames reuse it; building one costs about as much as converting a 1080p frame on the fast path).
final class RGBConverter: @unchecked Sendable {
    private let flags: Int32
    private var context: OpaquePointer?
    /// Pixel buffers of frames the caller has finished with (``recycle(_:)``, from any thread): a 1080p frame
    /// is 6 MB, and a fresh one costs about 1500 page faults as swscale first writes it.
    private var spare: [[UInt8]] = []
    private let spareLock = NSLock()
    private static let maxSpare = 16
    /// Frames converted into a recycled buffer (for tests).
    private(set) var reusedCount = 0

    init(flags: Int32) { self.flags = flags }

    deinit { sws_freeContext(context) }

    /// Offers `pixels` for reuse by a later frame of the same size. Safe from any thread; arrays still
    /// shared elsewhere are copied on write, never written under their other owners.
    func recycle(_ pixels: [UInt8]) {
        guard !pixels.isEmpty else { return }
        spareLock.lock(); defer { spareLock.unlock() }
        if spare.count < Self.maxSpare { spare.append(pixels) }
    }

    private func takeSpare(count: Int) -> [UInt8]? {
        spareLock.lock(); defer { spareLock.unlock() }
        guard let i = spare.lastIndex(where: { $0.count == count }) else {
            spare.removeAll()   // the frame size changed: the old buffers will not fit again
            return nil
        }
        return spare.remove(at: i)
    }

    func convert(_ frame: UnsafeMutablePointer<AVFrame>, path: String) throws -> RGBImage {
        let (w, h) = (Int(frame.pointee.width), Int(frame.pointee.height))
        // On new parameters the old context is freed, on failure too: hold only what comes back.
        context = sws_getCachedContext(context, Int32(w), Int32(h), AVPixelFormat(frame.pointee.format), Int32(w), Int32(h),
                                       AV_PIX_FMT_RGB24, flags, nil, nil, nil)
        guard let sws = context else { throw AffectError.badInput("\(path): cannot convert its pixel format to RGB.") }
        var converted: Int32 = 0
        let src = withUnsafePointer(to: &frame.pointee.data) {
            $0.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { Array(UnsafeBufferPointer(start: $0, count: 8)) }
        }
        let lines = withUnsafePointer(to: &frame.pointee.linesize) {
            $0.withMemoryRebound(to: Int32.self, capacity: 8) { Array(UnsafeBufferPointer(start: $0, count: 8)) }
        }
        func scale(into buf: UnsafeMutableBufferPointer<UInt8>) {
            var dst: [UnsafeMutablePointer<UInt8>?] = [buf.baseAddress, nil, nil, nil]
            var stride: [Int32] = [Int32(w * 3), 0, 0, 0]
            converted = sws_scale(sws, src, lines, 0, Int32(h), &dst, &stride)
        }
        let pixels: [UInt8]
        if var reused = takeSpare(count: w * h * 3) {
            reusedCount += 1
            reused.withUnsafeMutableBufferPointer { scale(into: $0) }
            pixels = reused
        } else {
            // Every byte is written when swscale converts all `h` rows (checked below), so no zero fill first.
            pixels = [UInt8](unsafeUninitializedCapacity: w * h * 3) { buf, count in
                scale(into: buf)
                if converted != Int32(h) { buf.initialize(repeating: 0) }
                count = w * h * 3
            }
        }
        guard converted == Int32(h) else { throw AffectError.badInput("\(path): a frame could not be converted to RGB.") }
        return RGBImage(width: w, height: h, pixels: pixels)
    }
}
