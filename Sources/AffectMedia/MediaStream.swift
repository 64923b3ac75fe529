import CFFmpeg
import Foundation
import AffectKernels

/// One stream of a media file opened for decoding: the demuxer, the stream's decoder, and the packet and
/// frame they share. ``VideoDecoder``, ``AudioDecoder`` and ``ImageDecoder`` read through it, so every reader
/// checks the file the same way and gives the same one-sentence errors.
final class MediaStream {
    /// What the caller wants from the file; it picks the stream and words the errors.
    enum Kind {
        case video, audio, picture

        var mediaType: AVMediaType { self == .audio ? AVMEDIA_TYPE_AUDIO : AVMEDIA_TYPE_VIDEO }
        var unreadable: String {
            switch self {
            case .video: "not a video FFmpeg can read."
            case .audio: "not an audio or video file FFmpeg can read."
            case .picture: "not an image or video FFmpeg can read."
            }
        }
        var missing: String {
            switch self {
            case .video: "the file has no video stream."
            case .audio: "the file has no audio stream."
            case .picture: "the file holds no picture."
            }
        }
        var codecNoun: String {
            switch self {
            case .video: "video codec"
            case .audio: "audio codec"
            case .picture: "picture format"
            }
        }
    }

    let path: String
    let kind: Kind
    let format: UnsafeMutablePointer<AVFormatContext>
    let stream: UnsafeMutablePointer<AVStream>
    let parameters: UnsafeMutablePointer<AVCodecParameters>
    let codec: UnsafeMutablePointer<AVCodecContext>
    let index: Int32
    /// The decoder's short name (e.g. `aac`, `h264`).
    let decoderName: String
    /// Largest frame, in pixels, the decoder may allocate (pictures and video only).
    let maxPixels: Int?

    private var formatStorage: UnsafeMutablePointer<AVFormatContext>?
    private var codecStorage: UnsafeMutablePointer<AVCodecContext>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var flushing = false
    private(set) var finished = false

    /// Opens `path` and the best stream of `kind`. Every other stream is dropped at the demuxer, so a video's
    /// packets are never read while decoding its sound, and the reverse.
    ///
    /// For pictures and video, `maxPixels` bounds every frame before its buffer is allocated: FFmpeg's own
    /// probing decoders get it as their `max_pixels` option, and ours a `get_buffer2` that refuses larger
    /// frames, so a small file declaring a huge picture (a decompression bomb) fails with
    /// ``pixelLimitError(width:height:)`` instead of taking gigabytes.
    ///
    /// A live `source` (a URL, a camera, standard input) is opened once, with no regular-file check and no
    /// second open; `stop` interrupts its blocking reads, and a read that waits longer than `timeout` seconds
    /// ends the stream.
    init(path: String, kind: Kind, decoderThreads: Int? = nil, maxPixels: Int? = nil,
         source: MediaSource? = nil, stop: StopFlag? = nil, timeout: Double = 10) throws {
        let live = source?.isLive ?? false
        self.path = live ? source!.name : path
        self.kind = kind
        self.maxPixels = kind == .audio ? nil : maxPixels
        let path = self.path
        func bad(_ m: String) -> AffectError { .badInput("\(path): \(m)") }
        // Our own one-sentence errors replace FFmpeg's log lines.
        av_log_set_level(AV_LOG_QUIET)
        if let source, live {
            try Self.openLive(source, into: &formatStorage, stop: stop, timeout: timeout)
        } else {
            try Self.checkRegularFile(path)
            guard avformat_open_input(&formatStorage, path, nil, nil) == 0 else { throw bad(kind.unreadable) }
        }
        guard var ctx = formatStorage else { throw bad(kind.unreadable) }
        // Sizes the container declares: a probe that refuses a frame over the limit resets them to 0.
        let declared = (0..<Int(ctx.pointee.nb_streams)).map { i -> (Int, Int) in
            guard let p = ctx.pointee.streams[i]?.pointee.codecpar else { return (0, 0) }
            return (Int(p.pointee.width), Int(p.pointee.height))
        }
        // Probing decodes a frame of each stream: bounded too (a PNG's size is only known by decoding it).
        var probeOptions = [OpaquePointer?](repeating: nil, count: Int(ctx.pointee.nb_streams))
        defer { for i in probeOptions.indices { av_dict_free(&probeOptions[i]) } }
        if let limit = self.maxPixels {
            for i in probeOptions.indices { av_dict_set(&probeOptions[i], "max_pixels", "\(min(limit, Int(Int32.max)))", 0) }
        }
        let probed = probeOptions.withUnsafeMutableBufferPointer { avformat_find_stream_info(ctx, $0.baseAddress) }
        guard probed >= 0 else { throw bad("cannot read the stream information.") }
        let unsized = (0..<Int(ctx.pointee.nb_streams)).contains {
            guard let p = ctx.pointee.streams[$0]?.pointee.codecpar else { return false }
            return p.pointee.codec_type == AVMEDIA_TYPE_VIDEO && (p.pointee.width <= 0 || p.pointee.height <= 0)
        }
        if kind == .picture && unsized {
            // A probe that could not decode the picture (over the limit, or damaged) may have swallowed the
            // one packet it read (ppm_pipe does): open again without probing; our decoder finds the size.
            avformat_close_input(&formatStorage)
            guard avformat_open_input(&formatStorage, path, nil, nil) == 0, let again = formatStorage else {
                throw bad(kind.unreadable)
            }
            ctx = again
        }
        format = ctx
        index = av_find_best_stream(ctx, kind.mediaType, -1, -1, nil, 0)
        guard index >= 0, let s = ctx.pointee.streams[Int(index)], let par = s.pointee.codecpar else {
            throw bad(kind.missing)
        }
        stream = s; parameters = par
        for i in 0..<Int(ctx.pointee.nb_streams) where i != Int(index) { ctx.pointee.streams[i]?.pointee.discard = AVDISCARD_ALL }
        guard let dec = avcodec_find_decoder(par.pointee.codec_id) else { throw bad("no decoder for its \(kind.codecNoun).") }
        decoderName = String(cString: dec.pointee.name)
        codecStorage = avcodec_alloc_context3(dec)
        guard let c = codecStorage, avcodec_parameters_to_context(c, par) >= 0 else {
            throw bad("cannot set up a decoder for its \(kind.codecNoun).")
        }
        codec = c
        if let t = decoderThreads { c.pointee.thread_count = Int32(t) }
        if let limit = self.maxPixels {
            // A size that the container declares is checked now; any other (PNG, a stream that changes size)
            // when the decoder asks for the frame's memory.
            let (dw, dh) = Int(index) < declared.count ? declared[Int(index)] : (0, 0)
            let (w, h) = (Int(par.pointee.width), Int(par.pointee.height))
            if dw * dh > limit { throw pixelLimitError(width: dw, height: dh) }
            if w * h > limit { throw pixelLimitError(width: w, height: h) }
            c.pointee.opaque = UnsafeMutableRawPointer(bitPattern: max(limit, 1))
            c.pointee.get_buffer2 = limitedGetBuffer
        }
        guard avcodec_open2(c, dec, nil) == 0 else { throw bad("cannot open its \(kind.codecNoun) decoder (\(decoderName)).") }
        packet = av_packet_alloc(); frame = av_frame_alloc()
        guard packet != nil, frame != nil else { throw bad("out of memory.") }
    }

    /// Opens a live source: FFmpeg's protocols for URLs (network reads time out after `timeout` seconds),
    /// V4L2 for cameras, `pipe:0` for standard input; the demuxer polls `stop` while it waits for data.
    static func openLive(_ source: MediaSource, into storage: inout UnsafeMutablePointer<AVFormatContext>?,
                         stop: StopFlag?, timeout: Double) throws {
        func bad(_ m: String) -> AffectError { .badInput("\(source.name): \(m)") }
        guard timeout > 0, timeout <= 3600 else { throw AffectError.badUsage("The live read timeout must be in (0, 3600] seconds, got \(timeout).") }
        guard let ctx = avformat_alloc_context() else { throw bad("out of memory.") }
        if let stop {
            ctx.pointee.interrupt_callback.callback = stopRequested
            ctx.pointee.interrupt_callback.opaque = UnsafeMutableRawPointer(stop.flag)
        }
        var options: OpaquePointer?
        defer { av_dict_free(&options) }
        let micros = "\(Int64(timeout * 1_000_000))"
        var format: UnsafePointer<AVInputFormat>?
        switch source {
        case .camera:
            guard affect_register_capture_devices() == 1 else {
                avformat_free_context(ctx); throw bad("FFmpeg's capture devices (libavdevice) cannot be loaded.")
            }
            format = av_find_input_format("video4linux2")
            guard format != nil else { avformat_free_context(ctx); throw bad("this FFmpeg has no V4L2 camera input.") }
        case .url, .standardInput:
            // Socket reads (udp, tcp, http, rtsp, srt) give up after `timeout`: a sender that stops ends the stream.
            av_dict_set(&options, "timeout", micros, 0)
            av_dict_set(&options, "rw_timeout", micros, 0)
        case .file: break
        }
        var opened: UnsafeMutablePointer<AVFormatContext>? = ctx
        // On failure avformat_open_input frees the context itself.
        guard avformat_open_input(&opened, source.ffmpegURL, format, &options) == 0, opened != nil else {
            if stop?.isStopped == true { throw bad("stopped before the stream opened.") }
            throw bad("cannot open the live stream (nothing readable arrived, or the address or device is wrong).")
        }
        storage = opened
    }

    /// Refuses what `stat` says is not a non-empty regular file: a directory, a FIFO (opening one blocks), a
    /// device.
    static func checkRegularFile(_ path: String) throws {
        func bad(_ m: String) -> AffectError { .badInput("\(path): \(m)") }
        var st = stat()
        guard stat(path, &st) == 0 else { throw bad("no such file.") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw bad("not a regular file.") }
        guard st.st_size > 0 else { throw bad("the file is empty.") }
    }

    /// The error for a picture or frame of `width` × `height` over the stream's pixel limit.
    func pixelLimitError(width: Int, height: Int) -> AffectError {
        .badInput(pixelLimitMessage(path: path, width: width, height: height, limit: maxPixels ?? 0,
                                    what: kind == .video ? "a video frame is" : "the picture is"))
    }

    /// The limit error, if the decoder's current size is over the limit: a failed decode is then our refusal.
    private func oversized() -> AffectError? {
        guard let limit = maxPixels else { return nil }
        let (w, h) = (Int(codec.pointee.width), Int(codec.pointee.height))
        return w * h > limit ? pixelLimitError(width: w, height: h) : nil
    }

    deinit {
        av_packet_free(&packet); av_frame_free(&frame)
        avcodec_free_context(&codecStorage); avformat_close_input(&formatStorage)
    }

    /// Duration the container declares for the stream (else for the file), in seconds, if any.
    var declaredDuration: Double? {
        let d = stream.pointee.duration
        if d > 0 && d != Int64.min { return Double(d) * av_q2d(stream.pointee.time_base) }
        let f = format.pointee.duration
        if f > 0 && f != Int64.min { return Double(f) / Double(AV_TIME_BASE) }
        return nil
    }

    /// The next decoded frame (valid until the next call), or nil once the decoder is drained.
    ///
    /// Packets the decoder rejects are skipped, as `ffmpeg` does. A decoding error on a frame throws
    /// `corrupt` (a sentence naming what is damaged) when one is given: pictures must not come out
    /// half-made; with nil such frames are skipped too. A file cut short ends like a whole one: what the
    /// decoder holds is drained.
    func nextFrame(corrupt: String?) throws -> UnsafeMutablePointer<AVFrame>? {
        guard let pkt = packet, let f = frame else { return nil }
        while !finished {
            let r = avcodec_receive_frame(codec, f)
            if r == 0 { return f }
            if r == affect_averror_eof() { finished = true; return nil }
            if r != affect_averror_eagain() {
                if let e = oversized() { throw e }
                if let corrupt { throw AffectError.badInput("\(path): \(corrupt) (decoder error \(r)).") }
            }
            if flushing { finished = true; return nil }
            if av_read_frame(format, pkt) < 0 {
                flushing = true
                avcodec_send_packet(codec, nil)
                continue
            }
            defer { av_packet_unref(pkt) }
            if pkt.pointee.stream_index != index { continue }
            if avcodec_send_packet(codec, pkt) < 0, let e = oversized() { throw e }
        }
        return nil
    }
}

/// `get_buffer2` for decoders whose `opaque` holds the pixel limit: frames over it get no memory, so the
/// decode fails before anything large is allocated. Pure (reads only its arguments), as frame-threaded
/// decoders that call it from their worker threads require.
private let limitedGetBuffer: @convention(c) (UnsafeMutablePointer<AVCodecContext>?, UnsafeMutablePointer<AVFrame>?, Int32) -> Int32 = { ctx, frame, flags in
    guard let ctx, let frame else { return affect_averror(EINVAL) }
    let limit = Int(bitPattern: ctx.pointee.opaque)
    guard Int(frame.pointee.width) * Int(frame.pointee.height) <= limit else { return affect_averror(ENOMEM) }
    return avcodec_default_get_buffer2(ctx, frame, flags)
}

/// "<path>: the picture is W×H = N pixels, over the limit of M." (with ``MediaLimits/advice`` appended).
func pixelLimitMessage(path: String, width: Int, height: Int, limit: Int, what: String = "the picture is") -> String {
    "\(path): \(what) \(width)×\(height) = \(width * height) pixels, over the limit of \(limit)\(MediaLimits.advice)."
}
