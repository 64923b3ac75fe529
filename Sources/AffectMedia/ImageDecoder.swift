import CFFmpeg
import Foundation
import AffectKernels

/// Decodes still images (JPEG, PNG, BMP, … whatever the installed FFmpeg reads) into 8-bit RGB.
public enum ImageDecoder {
    /// The first frame of `path` as RGB. Throws a one-sentence ``AffectError/badInput(_:)`` naming the file
    /// when it is missing, empty, not an image FFmpeg can decode, or holds no picture.
    public static func decode(path: String) throws -> RGBImage {
        func bad(_ m: String) -> AffectError { .badInput("\(path): \(m)") }
        var attrs = stat()
        guard stat(path, &attrs) == 0 else { throw bad("no such file.") }
        guard attrs.st_size > 0 else { throw bad("the file is empty.") }

        // Our own one-sentence errors replace FFmpeg's log lines.
        av_log_set_level(AV_LOG_QUIET)
        var fmt: UnsafeMutablePointer<AVFormatContext>? = nil
        guard avformat_open_input(&fmt, path, nil, nil) == 0, let ctx = fmt else {
            throw bad("not an image or video FFmpeg can read.")
        }
        defer { avformat_close_input(&fmt) }
        guard avformat_find_stream_info(ctx, nil) >= 0 else { throw bad("cannot read the stream information.") }
        let index = av_find_best_stream(ctx, AVMEDIA_TYPE_VIDEO, -1, -1, nil, 0)
        guard index >= 0, let stream = ctx.pointee.streams[Int(index)], let par = stream.pointee.codecpar else {
            throw bad("the file holds no picture.")
        }
        guard let codec = avcodec_find_decoder(par.pointee.codec_id) else { throw bad("no decoder for its picture format.") }
        var dec = avcodec_alloc_context3(codec)
        defer { avcodec_free_context(&dec) }
        guard let d = dec, avcodec_parameters_to_context(d, par) >= 0, avcodec_open2(d, codec, nil) == 0 else {
            throw bad("cannot open a decoder for its picture format.")
        }
        var packet = av_packet_alloc()
        var frame = av_frame_alloc()
        defer { av_packet_free(&packet); av_frame_free(&frame) }
        guard let pkt = packet, let frm = frame else { throw bad("out of memory.") }

        var got = false
        while !got {
            let r = av_read_frame(ctx, pkt)
            if r < 0 {
                avcodec_send_packet(d, nil)  // flush
                got = avcodec_receive_frame(d, frm) == 0
                break
            }
            defer { av_packet_unref(pkt) }
            if pkt.pointee.stream_index != index { continue }
            if avcodec_send_packet(d, pkt) < 0 { throw bad("the picture data is corrupt.") }
            got = avcodec_receive_frame(d, frm) == 0
        }
        guard got, frm.pointee.width > 0, frm.pointee.height > 0 else { throw bad("no picture could be decoded (truncated or corrupt).") }
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
