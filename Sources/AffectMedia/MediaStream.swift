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
    let format: UnsafeMutablePointer<AVFormatContext>
    let stream: UnsafeMutablePointer<AVStream>
    let parameters: UnsafeMutablePointer<AVCodecParameters>
    let codec: UnsafeMutablePointer<AVCodecContext>
    let index: Int32
    /// The decoder's short name (e.g. `aac`, `h264`).
    let decoderName: String

    private var formatStorage: UnsafeMutablePointer<AVFormatContext>?
    private var codecStorage: UnsafeMutablePointer<AVCodecContext>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var flushing = false
    private(set) var finished = false

    /// Opens `path` and the best stream of `kind`. Every other stream is dropped at the demuxer, so a video's
    /// packets are never read while decoding its sound, and the reverse.
    init(path: String, kind: Kind, decoderThreads: Int? = nil) throws {
        self.path = path
        func bad(_ m: String) -> AffectError { .badInput("\(path): \(m)") }
        var st = stat()
        guard stat(path, &st) == 0 else { throw bad("no such file.") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw bad("not a regular file.") }
        guard st.st_size > 0 else { throw bad("the file is empty.") }
        // Our own one-sentence errors replace FFmpeg's log lines.
        av_log_set_level(AV_LOG_QUIET)
        guard avformat_open_input(&formatStorage, path, nil, nil) == 0, let ctx = formatStorage else {
            throw bad(kind.unreadable)
        }
        format = ctx
        guard avformat_find_stream_info(ctx, nil) >= 0 else { throw bad("cannot read the stream information.") }
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
        guard avcodec_open2(c, dec, nil) == 0 else { throw bad("cannot open its \(kind.codecNoun) decoder (\(decoderName)).") }
        packet = av_packet_alloc(); frame = av_frame_alloc()
        guard packet != nil, frame != nil else { throw bad("out of memory.") }
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
            if r != affect_averror_eagain(), let corrupt {
                throw AffectError.badInput("\(path): \(corrupt) (decoder error \(r)).")
            }
            if flushing { finished = true; return nil }
            if av_read_frame(format, pkt) < 0 {
                flushing = true
                avcodec_send_packet(codec, nil)
                continue
            }
            defer { av_packet_unref(pkt) }
            if pkt.pointee.stream_index != index { continue }
            _ = avcodec_send_packet(codec, pkt)
        }
        return nil
    }
}
