import CFFmpeg
import Foundation
import AffectKernels

/// Encodes 8-bit RGB images as PNG or JPEG with FFmpeg's encoders, and writes them atomically.
public enum ImageEncoder {
    public enum Format: String, Sendable, CaseIterable {
        case png, jpeg

        /// The usual file extension.
        public var fileExtension: String { self == .png ? "png" : "jpg" }

        /// The format a file name asks for (`.png`, `.jpg`, `.jpeg`), if any.
        public init?(path: String) {
            switch URL(fileURLWithPath: path).pathExtension.lowercased() {
            case "png": self = .png
            case "jpg", "jpeg": self = .jpeg
            default: return nil
            }
        }
    }

    /// The encoded file. PNG is lossless RGB; JPEG is 4:2:0 full-range YCbCr (BT.601, as FFmpeg's command line
    /// writes it) at quantiser `jpegQuality` (2 best … 31 worst).
    public static func encode(_ image: RGBImage, format: Format, jpegQuality: Int = 2) throws -> [UInt8] {
        func fail(_ m: String) -> AffectError { .badInput("cannot encode a \(image.width)×\(image.height) image as \(format.rawValue.uppercased()): \(m).") }
        guard image.width > 0, image.height > 0 else { throw fail("the image is empty") }
        let isPNG = format == .png
        guard let codec = avcodec_find_encoder(isPNG ? AV_CODEC_ID_PNG : AV_CODEC_ID_MJPEG) else {
            throw fail("the installed FFmpeg has no such encoder")
        }
        var ctx = avcodec_alloc_context3(codec)
        defer { avcodec_free_context(&ctx) }
        guard let c = ctx else { throw fail("out of memory") }
        let pixFmt = isPNG ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUVJ420P
        c.pointee.width = Int32(image.width)
        c.pointee.height = Int32(image.height)
        c.pointee.pix_fmt = pixFmt
        c.pointee.time_base = AVRational(num: 1, den: 25)
        if !isPNG {
            // Fixed quantiser: the frame's quality field sets it.
            c.pointee.flags |= Int32(AV_CODEC_FLAG_QSCALE)
            c.pointee.color_range = AVCOL_RANGE_JPEG
        }
        guard avcodec_open2(c, codec, nil) == 0 else { throw fail("the encoder does not open") }

        var frame = av_frame_alloc()
        defer { av_frame_free(&frame) }
        guard let f = frame else { throw fail("out of memory") }
        f.pointee.format = pixFmt.rawValue
        f.pointee.width = Int32(image.width)
        f.pointee.height = Int32(image.height)
        guard av_frame_get_buffer(f, 0) >= 0 else { throw fail("out of memory") }
        if !isPNG {
            f.pointee.quality = Int32(FF_QP2LAMBDA) * Int32(min(max(jpegQuality, 2), 31))
            f.pointee.color_range = AVCOL_RANGE_JPEG
        }
        try fill(f, from: image, pixelFormat: pixFmt, fail: fail)

        var packet = av_packet_alloc()
        defer { av_packet_free(&packet) }
        guard let pkt = packet else { throw fail("out of memory") }
        guard avcodec_send_frame(c, f) >= 0 else { throw fail("the encoder rejected the picture") }
        _ = avcodec_send_frame(c, nil)
        guard avcodec_receive_packet(c, pkt) == 0, let data = pkt.pointee.data else { throw fail("the encoder produced nothing") }
        defer { av_packet_unref(pkt) }
        return Array(UnsafeBufferPointer(start: data, count: Int(pkt.pointee.size)))
    }

    /// Copies (PNG) or converts with swscale (JPEG) the RGB pixels into the frame's planes.
    static func fill(_ f: UnsafeMutablePointer<AVFrame>, from image: RGBImage, pixelFormat: AVPixelFormat,
                     fail: (String) -> AffectError) throws {
        let (w, h) = (image.width, image.height)
        if pixelFormat == AV_PIX_FMT_RGB24 {
            let stride = Int(f.pointee.linesize.0)
            guard let dst = f.pointee.data.0 else { throw fail("no frame buffer") }
            image.pixels.withUnsafeBufferPointer { src in
                for y in 0..<h { (dst + y * stride).update(from: src.baseAddress! + y * w * 3, count: w * 3) }
            }
            return
        }
        guard let sws = sws_getContext(Int32(w), Int32(h), AV_PIX_FMT_RGB24, Int32(w), Int32(h), pixelFormat,
                                       SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nil, nil, nil) else {
            throw fail("no colour conversion to its pixel format")
        }
        defer { sws_freeContext(sws) }
        image.pixels.withUnsafeBufferPointer { src in
            var srcPlanes: [UnsafePointer<UInt8>?] = [src.baseAddress, nil, nil, nil]
            var srcStrides: [Int32] = [Int32(w * 3), 0, 0, 0]
            var dstPlanes: [UnsafeMutablePointer<UInt8>?] = [f.pointee.data.0, f.pointee.data.1, f.pointee.data.2, nil]
            var dstStrides: [Int32] = [f.pointee.linesize.0, f.pointee.linesize.1, f.pointee.linesize.2, 0]
            _ = sws_scale(sws, &srcPlanes, &srcStrides, 0, Int32(h), &dstPlanes, &dstStrides)
        }
    }

    /// Encodes `image` (format from the file extension unless given) and writes it to `path` atomically: to a
    /// temporary file in the same directory, then renamed, so a reader never sees half a picture.
    public static func write(_ image: RGBImage, to path: String, format: Format? = nil, jpegQuality: Int = 2) throws {
        guard let fmt = format ?? Format(path: path) else {
            throw AffectError.badUsage("\(path): the file name should end in .png, .jpg or .jpeg.")
        }
        let bytes = try encode(image, format: fmt, jpegQuality: jpegQuality)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw AffectError.badInput("\(path): cannot write the file (\(reason(for: path))).")
        }
    }

    /// Why a file in this directory cannot be written, in words.
    static func reason(for path: String) -> String {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) { return "its directory does not exist" }
        if !isDir.boolValue { return "\(dir) is not a directory" }
        if access(dir, W_OK) != 0 { return "the directory is not writable" }
        return "the write failed"
    }
}
