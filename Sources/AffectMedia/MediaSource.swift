import CFFmpeg
import Foundation
import AffectKernels

/// Where a video comes from: a file, or a live input that FFmpeg opens as it arrives.
///
/// A live source is read once, front to back, with no seeking and no second open: a network stream
/// (`rtsp://`, `rtp://`, `udp://`, `srt://`, `tcp://`, `rtmp://`, `http(s)://`), a V4L2 camera (`/dev/videoN`)
/// or a container stream on standard input (`-`, e.g. MPEG-TS from `ffmpeg ... -f mpegts -`).
public enum MediaSource: Sendable, Equatable {
    case file(String)
    case url(String)
    case camera(String)
    case standardInput

    /// URL schemes read as live network sources.
    public static let liveSchemes = ["rtsp", "rtsps", "rtp", "udp", "srt", "tcp", "rtmp", "http", "https"]
    /// Schemes whose sender cannot be paused (datagrams, cameras): when analysis falls behind, frames are
    /// dropped rather than left to pile up in the kernel's socket buffer, where they would be lost unseen.
    static let unpausableSchemes: Set<String> = ["rtsp", "rtsps", "rtp", "udp", "srt"]

    /// A command-line argument as a source: `-`, a URL with a live scheme, `/dev/video…`, else a file.
    public init(_ argument: String) {
        if argument == "-" { self = .standardInput; return }
        if let scheme = Self.scheme(of: argument), Self.liveSchemes.contains(scheme) { self = .url(argument); return }
        if argument.hasPrefix("/dev/video") { self = .camera(argument); return }
        self = .file(argument)
    }

    static func scheme(of s: String) -> String? {
        guard let r = s.range(of: "://") else { return nil }
        let scheme = s[..<r.lowerBound].lowercased()
        return scheme.allSatisfy({ $0.isLetter || $0 == "+" }) && !scheme.isEmpty ? scheme : nil
    }

    /// True for every source but a file.
    public var isLive: Bool { if case .file = self { return false } else { return true } }

    /// Whether frames must be dropped, not waited for, when the consumer falls behind (see `unpausableSchemes`).
    public var cannotPause: Bool {
        switch self {
        case .camera: return true
        case .url(let u): return Self.scheme(of: u).map(Self.unpausableSchemes.contains) ?? false
        case .file, .standardInput: return false
        }
    }

    /// The name used in messages (a URL without its user and password).
    public var name: String {
        switch self {
        case .file(let p), .camera(let p): return p
        case .standardInput: return "standard input"
        case .url(let u):
            guard let at = u.firstIndex(of: "@"), let r = u.range(of: "://"), r.upperBound <= at else { return u }
            return String(u[..<r.upperBound]) + "…" + String(u[at...])
        }
    }

    /// What FFmpeg opens, and the input format to force (V4L2 for cameras).
    var ffmpegURL: String {
        switch self {
        case .file(let p), .camera(let p), .url(let p): return p
        case .standardInput: return "pipe:0"
        }
    }
}

/// A flag that stops a live read from another thread (a signal handler's dispatch source, a server's
/// cancel): FFmpeg's blocking network reads poll it through the demuxer's interrupt callback.
public final class StopFlag: @unchecked Sendable {
    let flag: UnsafeMutablePointer<Int32>
    public init() { flag = .allocate(capacity: 1); flag.initialize(to: 0) }
    deinit { flag.deallocate() }
    /// Asks every reader holding this flag to stop as soon as it can.
    public func stop() { affect_flag_store(flag, 1) }
    public var isStopped: Bool { affect_flag_load(flag) != 0 }

    /// Sets this flag (for the rest of the process) when one of `signals` arrives, from a plain signal handler:
    /// installed before this returns, so no signal is lost (a dispatch signal source registers asynchronously,
    /// and a signal arriving before it did was ignored). The flag is kept alive from then on.
    public func stopOnSignals(_ signals: [Int32]) {
        signalStopOwner = self
        signalStopPointer = flag
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in
                if let p = signalStopPointer { affect_flag_store(p, 1) }
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
    }
}

/// The flag ``StopFlag/stopOnSignals(_:)`` sets, and its owner (kept alive).
nonisolated(unsafe) private var signalStopOwner: StopFlag?
nonisolated(unsafe) private var signalStopPointer: UnsafeMutablePointer<Int32>?

/// The demuxer's interrupt callback: non-zero once the flag its `opaque` points to is set.
let stopRequested: @convention(c) (UnsafeMutableRawPointer?) -> Int32 = { opaque in
    guard let p = opaque?.assumingMemoryBound(to: Int32.self) else { return 0 }
    return affect_flag_load(p)
}
