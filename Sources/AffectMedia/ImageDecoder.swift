import CFFmpeg
import Foundation
import AffectKernels

/// Decodes still images (JPEG, PNG, BMP, … whatever the installed FFmpeg reads) into 8-bit RGB.
public enum ImageDecoder {
    /// The first frame of `path` as RGB. Throws a one-sentence ``AffectError/badInput(_:)`` naming the file
    /// when it is missing, empty, not an image FFmpeg can decode, or holds no picture.
    public static func decode(path: String) throws -> RGBImage {
        let media = try MediaStream(path: path, kind: .picture)
        guard let frm = try media.nextFrame(corrupt: "the picture data is corrupt"),
              frm.pointee.width > 0, frm.pointee.height > 0 else {
            throw AffectError.badInput("\(path): no picture could be decoded (truncated or corrupt).")
        }
        return try convertToRGB(frm, path: path)
    }

    /// Converts a decoded frame to packed RGB24 with swscale (exact for RGB sources; YUV with BT.601, as
    /// FFmpeg's command line does by default).
    static func convertToRGB(_ frame: UnsafeMutablePointer<AVFrame>, path: String) throws -> RGBImage {
        let (w, h) = (Int(frame.pointee.width), Int(frame.pointee.height))
        guard let sws = sws_getContext(Int32(w), Int32(h), AVPixelFormat(frame.pointee.format), Int32(w), Int32(h),
                                       AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nil, nil, nil) else {
            throw AffectError.badInput("\(path): cannot convert its pixel format to RGB.")
        }
        defer { sws_freeContext(sws) }
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        pixels.withUnsafeMutableBufferPointer { buf in
            var dst: [UnsafeMutablePointer<UInt8>?] = [buf.baseAddress, nil, nil, nil]
            var stride: [Int32] = [Int32(w * 3), 0, 0, 0]
            let src = withUnsafePointer(to: &frame.pointee.data) {
                $0.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { Array(UnsafeBufferPointer(start: $0, count: 8)) }
            }
            let lines = withUnsafePointer(to: &frame.pointee.linesize) {
                $0.withMemoryRebound(to: Int32.self, capacity: 8) { Array(UnsafeBufferPointer(start: $0, count: 8)) }
            }
            _ = sws_scale(sws, src, lines, 0, Int32(h), &dst, &stride)
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }
}
