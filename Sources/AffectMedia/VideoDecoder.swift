import CFFmpeg
import Foundation
import AffectKernels

/// One decoded video frame: RGB pixels and its presentation time.
public struct VideoFrame: Sendable {
    /// Index among all decoded frames (before sampling).
    public var index: Int
    /// Presentation time in seconds from the stream's start.
    public var time: Double
    public var image: RGBImage
}

/// Streams the frames of a video file as RGB, one at a time (memory stays bounded however long the video).
///
/// ```swift
/// let video = try VideoDecoder(path: "clip.mp4")
/// while let frame = try video.nextFrame() { ... }
/// ```
/// Any container and codec the installed FFmpeg decodes. Pixels are converted with swscale (bicubic,
/// accurate rounding, full chroma interpolation), which equals `ffmpeg -pix_fmt rgb24` with the same
/// `-sws_flags`. Sampling: `every` keeps one frame in N; `targetFPS` (which takes precedence) keeps the first
/// frame at or after each instant t₀ + k / fps, so a 25 fps video sampled at 5 fps yields every 5th frame and
/// a variable-rate one stays even in time. Skipped frames are decoded but not converted. Rotation metadata is
/// applied (90° steps).
public final class VideoDecoder {
    public let path: String
    public let width: Int
    public let height: Int
    /// Average frame rate, if the container states one.
    public let frameRate: Double?
    /// Clockwise rotation from the display matrix, in degrees (0, 90, 180, 270).
    public let rotation: Int
    /// Duration the container declares (stream duration, else the file's), in seconds, if any.
    public let declaredDuration: Double?
    /// Frame count the container declares (`nb_frames`), else duration × frame rate rounded, if known.
    public let declaredFrameCount: Int?
    public var every: Int = 1
    /// Frames per second to sample (nil: use `every`).
    public var targetFPS: Double?

    private var format: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private let stream: Int32
    private let timeBase: Double
    private let startTime: Int64
    private var decoded = 0
    /// With `targetFPS`: the stream time of the first frame, and the index of the next sampling instant.
    private var firstTime: Double?
    private var nextSample = 0
    private var flushing = false
    private var finished = false

    public init(path: String) throws {
        self.path = path
        func bad(_ m: String) -> AffectError { .badInput("\(path): \(m)") }
        var st = stat()
        guard stat(path, &st) == 0 else { throw bad("no such file.") }
        guard st.st_size > 0 else { throw bad("the file is empty.") }
        av_log_set_level(AV_LOG_QUIET)
        guard avformat_open_input(&format, path, nil, nil) == 0, let ctx = format else {
            throw bad("not a video FFmpeg can read.")
        }
        guard avformat_find_stream_info(ctx, nil) >= 0 else { throw bad("cannot read the stream information.") }
        let index = av_find_best_stream(ctx, AVMEDIA_TYPE_VIDEO, -1, -1, nil, 0)
        guard index >= 0, let s = ctx.pointee.streams[Int(index)], let par = s.pointee.codecpar else {
            throw bad("the file has no video stream.")
        }
        stream = index
        guard let dec = avcodec_find_decoder(par.pointee.codec_id) else { throw bad("no decoder for its video codec.") }
        codec = avcodec_alloc_context3(dec)
        guard let c = codec, avcodec_parameters_to_context(c, par) >= 0 else { throw bad("cannot set up its video decoder.") }
        c.pointee.thread_count = Int32(Threading.threads)
        guard avcodec_open2(c, dec, nil) == 0 else { throw bad("cannot open its video decoder.") }
        packet = av_packet_alloc(); frame = av_frame_alloc()
        width = Int(par.pointee.width); height = Int(par.pointee.height)
        guard width > 0, height > 0 else { throw bad("the video stream has no picture size.") }
        timeBase = av_q2d(s.pointee.time_base)
        startTime = s.pointee.start_time == Int64.min ? 0 : s.pointee.start_time
        let r = s.pointee.avg_frame_rate
        frameRate = r.den > 0 && r.num > 0 ? av_q2d(r) : nil
        if s.pointee.duration > 0 && s.pointee.duration != Int64.min {
            declaredDuration = Double(s.pointee.duration) * timeBase
        } else if ctx.pointee.duration > 0 && ctx.pointee.duration != Int64.min {
            declaredDuration = Double(ctx.pointee.duration) / 1e6  // AV_TIME_BASE units
        } else {
            declaredDuration = nil
        }
        if s.pointee.nb_frames > 0 {
            declaredFrameCount = Int(s.pointee.nb_frames)
        } else if let d = declaredDuration, let fr = frameRate {
            declaredFrameCount = Int((d * fr).rounded())
        } else {
            declaredFrameCount = nil
        }
        var rot = 0
        var size: Int = 0
        if let sd = av_stream_get_side_data(s, AV_PKT_DATA_DISPLAYMATRIX, &size), size >= 36 {
            let theta = -av_display_rotation_get(UnsafeRawPointer(sd).assumingMemoryBound(to: Int32.self))
            if theta.isFinite { rot = ((Int(theta.rounded()) % 360) + 360) % 360 / 90 * 90 }
        }
        rotation = rot
    }

    deinit {
        av_packet_free(&packet); av_frame_free(&frame)
        avcodec_free_context(&codec); avformat_close_input(&format)
    }

    /// The next kept frame, or nil at the end of the stream. Throws on corrupt data that stops decoding.
    public func nextFrame() throws -> VideoFrame? {
        while let f = try decodeOne() {
            defer { decoded += 1 }
            let pts = f.pointee.best_effort_timestamp == Int64.min ? f.pointee.pts : f.pointee.best_effort_timestamp
            let time = pts == Int64.min ? Double(decoded) / (frameRate ?? 25) : Double(pts - startTime) * timeBase
            if let fps = targetFPS, fps > 0 {
                let t0 = firstTime ?? time
                firstTime = t0
                // A small tolerance: timestamps in the stream's time base round k / fps.
                if time - t0 < Double(nextSample) / fps - 1e-6 { continue }
                nextSample = Int(((time - t0) * fps + 1e-6).rounded(.down)) + 1
            } else if decoded % max(every, 1) != 0 {
                continue
            }
            var image = try ImageDecoder.convertToRGB(f, path: path)
            if rotation != 0 { image = rotate(image, by: rotation) }
            return VideoFrame(index: decoded, time: time, image: image)
        }
        return nil
    }

    private func decodeOne() throws -> UnsafeMutablePointer<AVFrame>? {
        guard let ctx = format, let c = codec, let pkt = packet, let f = frame else { return nil }
        while !finished {
            let r = avcodec_receive_frame(c, f)
            if r == 0 { return f }
            if r == affect_averror_eof() { finished = true; return nil }
            if r != affect_averror_eagain() { throw AffectError.badInput("\(path): the video data is corrupt (decoder error \(r)).") }
            if flushing { finished = true; return nil }
            let rr = av_read_frame(ctx, pkt)
            if rr < 0 {
                // End of file (or a truncated file): drain what the decoder holds.
                flushing = true
                avcodec_send_packet(c, nil)
                continue
            }
            defer { av_packet_unref(pkt) }
            if pkt.pointee.stream_index != stream { continue }
            let s = avcodec_send_packet(c, pkt)
            if s < 0 && s != affect_averror_eagain() {
                // Damaged packets are skipped as ffmpeg does; the stream goes on.
                continue
            }
        }
        return nil
    }

    private func rotate(_ img: RGBImage, by degrees: Int) -> RGBImage {
        let (w, h) = (img.width, img.height)
        let (ow, oh) = degrees == 180 ? (w, h) : (h, w)
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            let (nx, ny): (Int, Int)
            switch degrees {
            case 90: (nx, ny) = (h - 1 - y, x)
            case 180: (nx, ny) = (w - 1 - x, h - 1 - y)
            default: (nx, ny) = (y, w - 1 - x)
            }
            for c in 0..<3 { out[(ny * ow + nx) * 3 + c] = img.pixels[(y * w + x) * 3 + c] }
        } }
        return RGBImage(width: ow, height: oh, pixels: out)
    }
}
