import CFFmpeg
import Foundation
import AffectKernels

/// Encodes RGB frames into a video file with libavcodec (H.264 through libx264 where FFmpeg has it, else
/// MPEG-4 part 2), copying the audio stream of a source file unchanged beside it.
///
/// ```swift
/// let writer = try VideoWriter(path: tmp, container: "annotated.mp4", width: 1280, height: 720,
///                              frameRate: 25, audioFrom: "clip.mp4")
/// try writer.append(frame, time: 0.04)
/// try writer.finish()
/// ```
public final class VideoWriter {
    public let path: String
    /// The encoder's name (`libx264`, `mpeg4`).
    public let encoderName: String
    /// Whether the source's audio is copied (false when it has none, or the container cannot hold its codec).
    public let copiesAudio: Bool

    private var output: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private let stream: UnsafeMutablePointer<AVStream>
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var scaler: OpaquePointer?
    private let (width, height): (Int, Int)
    /// The audio source, its stream index, its start, and the output stream the packets go to.
    private var audioInput: UnsafeMutablePointer<AVFormatContext>?
    private var audioIndex: Int32 = -1
    private var audioStream: UnsafeMutablePointer<AVStream>?
    private var audioStart: Int64 = 0
    private var audioDone = true
    private var lastPTS: Int64 = -1
    /// One frame at the nominal rate, in the encoder's millisecond time base.
    private let frameDuration: Int64
    private var headerWritten = false

    /// Opens `path` for writing in the container `container`'s extension names (`.mp4`, `.mkv`, `.mov`).
    /// Odd sizes are cropped to even ones (4:2:0 needs them).
    public init(path: String, container: String, width: Int, height: Int, frameRate: Double, audioFrom source: String? = nil) throws {
        func bad(_ m: String) -> AffectError { .badInput("\(container): \(m)") }
        guard width >= 2, height >= 2, width <= 16384, height <= 16384 else { throw bad("cannot encode a \(width)×\(height) video.") }
        guard frameRate.isFinite, frameRate > 0 else { throw bad("the frame rate \(frameRate) is not usable.") }
        self.path = path
        (self.width, self.height) = (width & ~1, height & ~1)
        frameDuration = max(1, Int64((1000 / frameRate).rounded()))
        av_log_set_level(AV_LOG_QUIET)
        guard let format = av_guess_format(nil, container, nil) else {
            throw AffectError.badUsage("\(container): the extension names no video container FFmpeg writes (use .mp4, .mkv or .mov).")
        }
        guard avformat_alloc_output_context2(&output, format, nil, path) >= 0, let oc = output else { throw bad("cannot set up the container.") }
        guard let enc = avcodec_find_encoder_by_name("libx264") ?? avcodec_find_encoder(AV_CODEC_ID_MPEG4) else {
            throw bad("this FFmpeg has no H.264 or MPEG-4 encoder.")
        }
        encoderName = String(cString: enc.pointee.name)
        guard let s = avformat_new_stream(oc, nil), let c = avcodec_alloc_context3(enc) else { throw bad("out of memory.") }
        stream = s; codec = c
        c.pointee.width = Int32(self.width); c.pointee.height = Int32(self.height)
        c.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        // Millisecond timestamps keep the source's frame times, whatever its rate.
        c.pointee.time_base = AVRational(num: 1, den: 1000)
        c.pointee.framerate = av_d2q(frameRate, 100_000)
        c.pointee.thread_count = Int32(Threading.threads)
        if encoderName == "libx264" {
            av_opt_set(c.pointee.priv_data, "preset", "veryfast", 0)
            av_opt_set(c.pointee.priv_data, "crf", "20", 0)
        } else {
            c.pointee.bit_rate = Int64(min(Double(self.width * self.height) * frameRate * 0.2, 50e6))
        }
        if oc.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 { c.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER }
        guard avcodec_open2(c, enc, nil) >= 0 else { throw bad("cannot open the \(encoderName) encoder.") }
        guard avcodec_parameters_from_context(s.pointee.codecpar, c) >= 0 else { throw bad("cannot set up the video stream.") }
        s.pointee.time_base = c.pointee.time_base

        // The source's audio, copied packet by packet when the container can hold its codec.
        var copies = false
        if let source, avformat_open_input(&audioInput, source, nil, nil) == 0, let ic = audioInput,
           avformat_find_stream_info(ic, nil) >= 0 {
            let i = av_find_best_stream(ic, AVMEDIA_TYPE_AUDIO, -1, -1, nil, 0)
            if i >= 0, let ins = ic.pointee.streams[Int(i)], let par = ins.pointee.codecpar,
               avformat_query_codec(oc.pointee.oformat, par.pointee.codec_id, FF_COMPLIANCE_NORMAL) == 1,
               let outs = avformat_new_stream(oc, nil), avcodec_parameters_copy(outs.pointee.codecpar, par) >= 0 {
                outs.pointee.codecpar.pointee.codec_tag = 0
                outs.pointee.time_base = ins.pointee.time_base
                audioIndex = i; audioStream = outs
                // Audio times are shifted as the video decoder shifts frame times: by the file's start.
                audioStart = ic.pointee.start_time == Int64.min ? 0 : av_rescale_q(ic.pointee.start_time, AVRational(num: 1, den: AV_TIME_BASE), ins.pointee.time_base)
                for k in 0..<Int(ic.pointee.nb_streams) where k != Int(i) { ic.pointee.streams[k]?.pointee.discard = AVDISCARD_ALL }
                copies = true
            }
        }
        copiesAudio = copies
        audioDone = !copies
        if oc.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 {
            guard avio_open(&oc.pointee.pb, path, AVIO_FLAG_WRITE) >= 0 else { throw bad("cannot open \(path) for writing.") }
        }
        guard avformat_write_header(oc, nil) >= 0 else { throw bad("cannot write the container header.") }
        headerWritten = true
        frame = av_frame_alloc(); packet = av_packet_alloc()
        guard let f = frame, packet != nil else { throw bad("out of memory.") }
        f.pointee.format = AV_PIX_FMT_YUV420P.rawValue
        f.pointee.width = Int32(self.width); f.pointee.height = Int32(self.height)
        guard av_frame_get_buffer(f, 0) >= 0 else { throw bad("out of memory.") }
        scaler = sws_getContext(Int32(self.width), Int32(self.height), AV_PIX_FMT_RGB24, Int32(self.width), Int32(self.height),
                                AV_PIX_FMT_YUV420P, SWS_BILINEAR, nil, nil, nil)
        guard scaler != nil else { throw bad("cannot set up the colour conversion.") }
    }

    deinit {
        if let oc = output, oc.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 { avio_closep(&oc.pointee.pb) }
        avformat_free_context(output)
        avcodec_free_context(&codec)
        av_frame_free(&frame); av_packet_free(&packet)
        sws_freeContext(scaler)
        avformat_close_input(&audioInput)
    }

    /// Encodes one frame shown at `time` seconds (times must increase; a repeated time is nudged by 1 ms).
    /// A frame of another size is an error.
    public func append(_ image: RGBImage, time: Double) throws {
        guard image.width & ~1 == width, image.height & ~1 == height else {
            throw AffectError.badInput("\(path): a \(image.width)×\(image.height) frame in a \(width)×\(height) video.")
        }
        guard let f = frame, let c = codec else { return }
        guard av_frame_make_writable(f) >= 0 else { throw AffectError.badInput("\(path): out of memory.") }
        image.pixels.withUnsafeBufferPointer { p in
            var src: [UnsafePointer<UInt8>?] = [p.baseAddress, nil, nil, nil]
            var stride: [Int32] = [Int32(image.width * 3), 0, 0, 0]
            withUnsafeMutablePointer(to: &f.pointee.data) { data in
                withUnsafeMutablePointer(to: &f.pointee.linesize) { lines in
                    data.withMemoryRebound(to: UnsafeMutablePointer<UInt8>?.self, capacity: 8) { d in
                        lines.withMemoryRebound(to: Int32.self, capacity: 8) { l in
                            _ = sws_scale(scaler, &src, &stride, 0, Int32(height), d, l)
                        }
                    }
                }
            }
        }
        let pts = max(Int64((time * 1000).rounded()), lastPTS + 1)
        lastPTS = pts
        f.pointee.pts = pts
        try copyAudio(until: Double(pts) / 1000)
        guard avcodec_send_frame(c, f) >= 0 else { throw AffectError.badInput("\(path): the encoder refused a frame.") }
        try drain()
    }

    /// Flushes the encoder, copies the rest of the audio and writes the container's index.
    public func finish() throws {
        guard let c = codec, let oc = output else { return }
        avcodec_send_frame(c, nil)
        try drain()
        try copyAudio(until: .infinity)
        guard av_write_trailer(oc) >= 0 else { throw AffectError.badInput("\(path): cannot finish the container.") }
    }

    /// Writes every packet the encoder has ready.
    private func drain() throws {
        guard let c = codec, let pkt = packet, let oc = output else { return }
        while avcodec_receive_packet(c, pkt) == 0 {
            // Without a duration the container gives the last frame none, and players (and FFmpeg's demuxer,
            // through the edit list) drop it.
            if pkt.pointee.duration <= 0 { pkt.pointee.duration = frameDuration }
            av_packet_rescale_ts(pkt, c.pointee.time_base, stream.pointee.time_base)
            pkt.pointee.stream_index = stream.pointee.index
            guard av_interleaved_write_frame(oc, pkt) >= 0 else { throw AffectError.badInput("\(path): cannot write a video packet.") }
        }
    }

    /// Copies the source's audio packets up to `seconds` (so the muxer interleaves with little buffering).
    private func copyAudio(until seconds: Double) throws {
        guard !audioDone, let ic = audioInput, let outs = audioStream, let pkt = packet, let oc = output else { return }
        let tb = ic.pointee.streams[Int(audioIndex)]!.pointee.time_base
        while true {
            guard av_read_frame(ic, pkt) >= 0 else { audioDone = true; return }
            defer { av_packet_unref(pkt) }
            guard pkt.pointee.stream_index == audioIndex else { continue }
            if pkt.pointee.pts != Int64.min { pkt.pointee.pts -= audioStart }
            if pkt.pointee.dts != Int64.min { pkt.pointee.dts -= audioStart }
            let t = pkt.pointee.pts == Int64.min ? 0 : Double(pkt.pointee.pts) * av_q2d(tb)
            // Audio from before the first frame has no place in the output.
            if pkt.pointee.dts != Int64.min && pkt.pointee.dts < 0 { continue }
            av_packet_rescale_ts(pkt, tb, outs.pointee.time_base)
            pkt.pointee.stream_index = outs.pointee.index
            pkt.pointee.pos = -1
            guard av_interleaved_write_frame(oc, pkt) >= 0 else { throw AffectError.badInput("\(path): cannot write an audio packet.") }
            if t > seconds { return }
        }
    }
}
