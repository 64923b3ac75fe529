import Foundation
import AffectKernels
import AffectPipeline

/// One `/v1/analyze` job: its folder (the upload, then the results), state and progress.
final class Job: @unchecked Sendable {
    enum State: String { case queued, running, done, failed, cancelled }

    let id: String
    let folder: String
    let created = Date()
    private let lock = NSLock()
    private var _state = State.queued
    private var _done = 0
    private var _total: Int?
    private var _error: String?
    private var _cancel = false
    private var _started: Date?
    private var _finished: Date?

    init(id: String, folder: String) { self.id = id; self.folder = folder }

    var state: State { lock.withLock { _state } }
    var isFinished: Bool { lock.withLock { [.done, .failed, .cancelled].contains(_state) } }
    var cancelRequested: Bool { lock.withLock { _cancel } }
    var csvPath: String { folder + "/result.csv" }
    var jsonPath: String { folder + "/result.json" }
    var inputPath: String { folder + "/upload" }

    func start() -> Bool {
        lock.withLock {
            guard _state == .queued, !_cancel else { return false }
            _state = .running; _started = Date(); return true
        }
    }
    func progress(_ done: Int, _ total: Int?) { lock.withLock { _done = done; _total = total } }
    func finish(_ state: State, error: String? = nil) {
        lock.withLock { _state = state; _error = error; _finished = Date() }
    }
    /// Asks a queued or running job to stop; returns whether it was still active.
    func cancel() -> Bool {
        lock.withLock {
            _cancel = true
            if _state == .queued { _state = .cancelled; _finished = Date(); return true }
            return _state == .running
        }
    }

    var json: [String: Any] {
        lock.withLock {
            var d: [String: Any] = ["id": id, "state": _state.rawValue, "frames_done": _done,
                                    "created": ISO8601DateFormatter().string(from: created)]
            if let t = _total { d["frames_total"] = t; d["progress"] = t > 0 ? min(1, Double(_done) / Double(t)) : NSNull() }
            if _state == .done { d["progress"] = 1.0 }
            if let e = _error { d["error"] = e }
            if let s = _started { d["started"] = ISO8601DateFormatter().string(from: s) }
            if let f = _finished { d["finished"] = ISO8601DateFormatter().string(from: f) }
            if _state == .done { d["result"] = ["csv": "/v1/jobs/\(id)/result?format=csv", "json": "/v1/jobs/\(id)/result?format=json"] }
            return d
        }
    }
}

/// The server's analysis jobs: a bounded queue run by the job workers, results written all-or-none into
/// each job's folder, at most `maxJobs` kept (the oldest finished ones are forgotten with their files).
final class JobStore: @unchecked Sendable {
    let queue: ComputeQueue
    let workspace: Workspace
    let models: ModelSet
    let maxJobs: Int
    let timeout: Double
    private let lock = NSLock()
    private var jobs: [String: Job] = [:]
    private var order: [String] = []

    init(configuration: ServerConfiguration, workspace: Workspace, models: ModelSet) {
        queue = ComputeQueue(name: "job", workers: configuration.jobWorkers, depth: configuration.jobQueueDepth,
                             maxWait: .greatestFiniteMagnitude)
        self.workspace = workspace; self.models = models
        maxJobs = configuration.maxJobs; timeout = configuration.jobTimeout
    }

    subscript(id: String) -> Job? { lock.withLock { jobs[id] } }

    /// A new job folder, registered once its upload is complete (``submit(_:parameters:)``).
    func makeJob() throws -> Job {
        // Refuse before the client uploads gigabytes when nothing can be kept.
        try lock.withLock {
            if jobs.count >= maxJobs, !jobs.values.contains(where: { $0.isFinished }) {
                throw ServerError(.tooManyRequests, "the server holds \(maxJobs) unfinished jobs; retry later.", retryAfter: 30)
            }
        }
        let folder = try workspace.makeFolder()
        return Job(id: URL(fileURLWithPath: folder).lastPathComponent, folder: folder)
    }

    /// Queues `job` (its input is in place); throws 429 when the job queue is full.
    func submit(_ job: Job, analyzer: Analyzer) throws {
        let evicted: [Job] = lock.withLock {
            var out: [Job] = []
            while jobs.count >= maxJobs, let i = order.firstIndex(where: { jobs[$0]?.isFinished == true }) {
                if let j = jobs.removeValue(forKey: order[i]) { out.append(j) }
                order.remove(at: i)
            }
            jobs[job.id] = job
            order.append(job.id)
            return out
        }
        for j in evicted { workspace.remove(j.folder) }
        do {
            try queue.submit(run: { [self] in run(job, analyzer) }, expire: { e in job.finish(.cancelled, error: e.message) })
        } catch {
            lock.withLock { _ = jobs.removeValue(forKey: job.id); order.removeAll { $0 == job.id } }
            throw error
        }
    }

    private func run(_ job: Job, _ analyzer: Analyzer) {
        guard job.start() else { workspace.remove(job.folder); return }
        let deadline = Date().addingTimeInterval(timeout)
        do {
            // `affect analyze`'s analyze(path:), with the scan's per-frame hook as the cancellation point:
            // an error it throws ends the scan.
            let scan = try analyzer.scan(path: job.inputPath, progress: { done, total in job.progress(done, total) }) { _ in
                if job.cancelRequested { throw CancellationError() }
                if Date() > deadline { throw ServerError(.requestTimeout, "the analysis ran longer than the server's \(Int(self.timeout)) s limit.") }
            }
            let analysis = try analyzer.analyze(scan: scan)
            let report = AnalysisReport(analysis)
            let files = [(path: job.csvPath, data: Data(report.csv().utf8)), (path: job.jsonPath, data: try Self.json(report))]
            try AtomicFile.writeAll(files)
            job.finish(.done)
        } catch is CancellationError {
            job.finish(.cancelled)
        } catch {
            job.finish(.failed, error: ServerError.from(error).message.replacingOccurrences(of: job.inputPath, with: "the upload"))
        }
        // The upload is not needed once the results are written (or the job ended without them).
        try? FileManager.default.removeItem(atPath: job.inputPath)
        if job.cancelRequested { forget(job.id) }
    }

    /// `affect analyze`'s JSON document, except that the video's `file` is `upload` instead of the server's
    /// own path to it (which clients need not see).
    static func json(_ report: AnalysisReport) throws -> Data {
        var doc = report.document()
        doc.video.file = "upload"
        return try doc.encoded()
    }

    /// Cancels an active job or forgets a finished one with its files.
    func delete(_ id: String) -> Job? {
        guard let job = self[id] else { return nil }
        // A running job is removed by its worker once it has stopped; the rest go now.
        if !job.cancel() || job.state == .cancelled { forget(id) }
        return job
    }

    private func forget(_ id: String) {
        let job: Job? = lock.withLock {
            order.removeAll { $0 == id }
            return jobs.removeValue(forKey: id)
        }
        if let job, job.state != .running { workspace.remove(job.folder) }
    }

    /// At shutdown: queued jobs are cancelled, running ones asked to stop; returns when none runs.
    func shutdown() {
        let all = lock.withLock { Array(jobs.values) }
        for j in all where !j.isFinished { _ = j.cancel() }
        queue.stop()
        queue.waitUntilIdle()
    }

    var counts: [String: Int] {
        lock.withLock {
            var c: [String: Int] = [:]
            for j in jobs.values { c[j.state.rawValue, default: 0] += 1 }
            return c
        }
    }
}
