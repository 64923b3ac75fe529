import Foundation
import AffectKernels

/// What `affect serve` listens on and the limits it enforces (see README "Server").
public struct ServerConfiguration: Sendable {
    /// Address to bind: loopback by default, so nothing is exposed unless asked for.
    public var host = "127.0.0.1"
    /// TCP port; 0 picks a free one (tests).
    public var port = 8080
    /// When set, every route but `/healthz` needs `Authorization: Bearer <token>`.
    public var token: String?
    /// Inference requests (faces, stream frames, transcribe, embed) run at once; each has its own worker thread.
    public var workers = 1
    /// Requests waiting for a worker beyond those running; one more is answered 429 with Retry-After.
    public var queueDepth = 32
    /// Longest a request may wait in the queue before it is answered 503 instead of being run, in seconds.
    public var queueTimeout: Double = 30
    /// Largest image body (`/v1/faces`, one stream frame), in bytes.
    public var maxImageBytes = 20 * 1024 * 1024
    /// Largest upload to `/v1/analyze` and the audio routes, in bytes (streamed to disk, never held in memory).
    public var maxUploadBytes = 2 * 1024 * 1024 * 1024
    /// Largest JSON or text body (`/v1/embed-text`), in bytes.
    public var maxTextBytes = 1024 * 1024
    /// Most floats `/v1/embed-audio?pool=none` answers (frames × hidden size): 2^24 by default, about 7 minutes of
    /// wav2vec2-base frames and a few hundred MB of JSON. A longer recording is answered 413 (a few MB of
    /// compressed silence decode to hours); pooled answers keep running sums and have no limit.
    public var maxEmbeddingFloats = 1 << 24
    /// Analysis jobs run at once (each on its own thread, beside the request workers).
    public var jobWorkers = 1
    /// Jobs waiting to start; one more is answered 429.
    public var jobQueueDepth = 8
    /// Jobs kept (queued, running or finished) before the oldest finished one is forgotten with its files.
    public var maxJobs = 64
    /// A job running longer than this is cancelled, in seconds.
    public var jobTimeout: Double = 3600
    /// Where job folders are created; nil: a new folder under the system's temporary directory, removed
    /// when the server stops.
    public var jobsDirectory: String?
    /// WebSocket streams open at once; one more is refused 429 before the upgrade.
    public var maxStreamConnections = 16
    /// Seconds a new connection has to send its first complete request head; a connection still without one
    /// is closed (idle connections between requests are closed after 120 s).
    public var requestHeadTimeout: Double = 30

    public init() {}

    /// Every limit against its range; a bad one is a usage error naming it.
    public func validate() throws {
        func check(_ v: Int, _ r: ClosedRange<Int>, _ name: String) throws {
            guard r.contains(v) else { throw AffectError.badUsage("\(name) must be between \(r.lowerBound) and \(r.upperBound), got \(v).") }
        }
        func seconds(_ v: Double, _ r: ClosedRange<Double>, _ name: String) throws {
            guard r.contains(v) else { throw AffectError.badUsage("\(name) must be between \(r.lowerBound) and \(r.upperBound) seconds, got \(v).") }
        }
        try check(port, 0...65535, "the port")
        try check(workers, 1...256, "the number of workers")
        try check(jobWorkers, 1...64, "the number of job workers")
        try check(queueDepth, 0...100_000, "the queue depth")
        try check(jobQueueDepth, 0...10_000, "the job queue depth")
        try check(maxJobs, 1...100_000, "the number of jobs kept")
        try check(maxStreamConnections, 1...10_000, "the number of stream connections")
        try seconds(queueTimeout, 0.001...86_400, "the queue timeout")
        try seconds(jobTimeout, 1...604_800, "the job timeout")
        try seconds(requestHeadTimeout, 0.01...3600, "the request head timeout")
        try check(maxImageBytes, 1...(1 << 31), "the image size limit")
        try check(maxTextBytes, 1...(1 << 31), "the text size limit")
        try check(maxEmbeddingFloats, 1...(1 << 30), "the per-frame embedding limit")
        guard maxUploadBytes >= 1 else { throw AffectError.badUsage("the upload size limit must be positive, got \(maxUploadBytes).") }
        if let t = token {
            guard !t.isEmpty, t.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                throw AffectError.badUsage("the token must be printable ASCII without spaces.")
            }
        }
        guard !host.isEmpty else { throw AffectError.badUsage("the host must not be empty.") }
    }

    /// Kernel threads per inference so that every worker running at once never needs more threads than
    /// `cores`: the kernels' pool serves one caller at a time and any other caller computes on its own
    /// thread (Threading.swift), so with `n` concurrent callers the one holding the pool may use
    /// `cores − (n − 1)` threads.
    public func kernelThreads(cores: Int) -> Int {
        max(1, cores - (workers + jobWorkers - 1))
    }
}
