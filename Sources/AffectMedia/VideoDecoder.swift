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

    private let media: MediaStream
    private let timeBase: Double
    private let startTime: Int64
    private var decoded = 0
    /// With `targetFPS`: the stream time of the first frame, and the index of the next sampling instant.
    private var firstTime: Double?
    private var nextSample = 0

    public init(path: String) throws {
        self.path = path
        media = try MediaStream(path: path, kind: .video, decoderThreads: Threading.threads)
        let s = media.stream, par = media.parameters
        width = Int(par.pointee.width); height = Int(par.pointee.height)
        guard width > 0, height > 0 else { throw AffectError.badInput("\(path): the video stream has no picture size.") }
        timeBase = av_q2d(s.pointee.time_base)
        startTime = s.pointee.start_time == Int64.min ? 0 : s.pointee.start_time
        let r = s.pointee.avg_frame_rate
        frameRate = r.den > 0 && r.num > 0 ? av_q2d(r) : nil
        declaredDuration = media.declaredDuration
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

    /// The next kept frame, or nil at the end of the stream. Throws on corrupt data that stops decoding.
    public func nextFrame() throws -> VideoFrame? {
        while let f = try media.nextFrame(corrupt: "the video data is corrupt") {
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
