import Foundation

/// A bounded queue of blocking inference work, run by a fixed set of worker threads.
///
/// Inference blocks its thread for milliseconds to minutes, so it never runs on Swift concurrency's
/// cooperative threads (which serve the network): each worker is a thread of its own. At most `workers` run
/// at once and at most `depth` wait; a submission beyond that is refused at once with 429 and a Retry-After
/// estimated from recent run times, so memory never grows with the offered load. Work that waited longer
/// than `maxWait` is answered 503 instead of being run (its client has likely given up).
public final class ComputeQueue: @unchecked Sendable {
    private struct Item {
        let enqueued: UInt64
        let run: () -> Void
        let expire: (ServerError) -> Void
    }

    public let workers: Int
    public let depth: Int
    public let maxWait: Double
    private let name: String
    private let condition = NSCondition()
    private var pending: [Item] = []
    private var head = 0
    private var running = 0
    private var stopped = false
    /// Exponential average of run times in seconds, for Retry-After.
    private var averageRun = 0.05
    /// Totals since start, for `/healthz`.
    private(set) var completed = 0
    private(set) var refused = 0

    public init(name: String, workers: Int, depth: Int, maxWait: Double) {
        self.name = name; self.workers = max(1, workers); self.depth = max(0, depth); self.maxWait = maxWait
        for i in 0..<self.workers {
            let t = Thread { [weak self] in self?.loop() }
            t.name = "affect-\(name)-\(i)"
            // Models recurse little but decode with FFmpeg and libjpeg: the default 512 KiB of secondary threads is tight.
            t.stackSize = 8 << 20
            t.start()
        }
    }

    /// Number waiting and running now.
    public var load: (waiting: Int, running: Int) {
        condition.lock(); defer { condition.unlock() }
        return (pending.count - head, running)
    }

    /// Runs `body` on a worker thread and returns its result; throws 429 when the queue is full, 503 when
    /// it waited too long or the queue is stopped, or what `body` throws.
    public func run<T>(_ body: @escaping () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            do {
                try submit(run: {
                    // The result is handed to the awaiting task and never touched here again (T need not be
                    // Sendable: the routes return JSON objects).
                    nonisolated(unsafe) let result = Result { try body() }
                    c.resume(with: result)
                }, expire: { c.resume(throwing: $0) })
            } catch {
                c.resume(throwing: error)
            }
        }
    }

    /// Queues `run` without waiting for it; throws the refusal (429, 503) when it cannot be queued. `expire`
    /// is called instead of `run` when the item waited too long or the queue stopped first.
    public func submit(run: @escaping () -> Void, expire: @escaping (ServerError) -> Void) throws {
        condition.lock(); defer { condition.unlock() }
        if stopped { throw ServerError(.serviceUnavailable, "the server is stopping.") }
        let waiting = pending.count - head
        // Free workers take the item at once; otherwise it waits, if there is room.
        if running + waiting >= workers + depth {
            refused += 1
            throw ServerError(.tooManyRequests, "the server is busy (\(running) running, \(waiting) waiting); retry later.",
                              retryAfter: retryAfterLocked(waiting: waiting))
        }
        pending.append(Item(enqueued: DispatchTime.now().uptimeNanoseconds, run: run, expire: expire))
        condition.signal()
    }

    /// Seconds until a slot is likely free: the queue ahead of it drained at the recent rate.
    private func retryAfterLocked(waiting: Int) -> Int {
        let seconds = averageRun * Double(waiting + running) / Double(workers)
        return max(1, min(3600, Int(seconds.rounded(.up))))
    }

    /// Stops taking work: items still waiting are answered 503 (running ones finish).
    public func stop() {
        condition.lock()
        stopped = true
        let left = pending[head...]
        pending = []; head = 0
        condition.broadcast()
        condition.unlock()
        for item in left { item.expire(ServerError(.serviceUnavailable, "the server is stopping.")) }
    }

    /// Blocks until nothing runs or waits (after ``stop()``: until the running work has finished).
    public func waitUntilIdle() {
        condition.lock()
        while running > 0 || pending.count > head { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.count == head && !stopped { condition.wait() }
            if pending.count == head { condition.unlock(); return }
            let item = pending[head]
            head += 1
            // Compact now and then so the array does not keep every item ever queued.
            if head > 64 && head * 2 > pending.count { pending.removeFirst(head); head = 0 }
            let waited = Double(DispatchTime.now().uptimeNanoseconds - item.enqueued) / 1e9
            if waited > maxWait {
                condition.broadcast()
                condition.unlock()
                item.expire(ServerError(.serviceUnavailable, String(format: "the request waited %.1f s for a worker, longer than the %g s limit; retry later.", waited, maxWait), retryAfter: 1))
                continue
            }
            running += 1
            condition.unlock()
            let t0 = DispatchTime.now().uptimeNanoseconds
            item.run()
            let took = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            condition.lock()
            running -= 1
            completed += 1
            averageRun = 0.8 * averageRun + 0.2 * took
            condition.broadcast()
            condition.unlock()
        }
    }
}
