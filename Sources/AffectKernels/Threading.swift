import CBLAS
import Dispatch

/// Thread settings shared by our kernels and OpenBLAS.
public enum Threading {
    nonisolated(unsafe) private static var _threads: Int = {
        openblas_set_num_threads(1)
        return 2
    }()

    /// Number of threads the kernels split work across (default: 2, the machine's cores).
    public static var threads: Int { _threads }

    /// Sets how many threads our kernels use. OpenBLAS itself always runs single-threaded: ``sgemm(m:n:k:a:lda:b:ldb:bTransposed:c:ldc:alpha:accumulate:)``
    /// splits matrix products across our threads, so only one pool of workers competes for the cores.
    public static func setThreads(_ n: Int) {
        _threads = max(1, n)
        openblas_set_num_threads(1)
    }
}

/// Runs `body(start, end)` on disjoint chunks of `0..<count` across ``Threading/threads`` threads.
///
/// Small jobs (under `minChunk` items per thread) run on the calling thread: waking a second core costs
/// more than it saves there.
@inlinable
public func parallelFor(_ count: Int, minChunk: Int = 1, _ body: (Int, Int) -> Void) {
    guard count > 0 else { return }
    let threads = min(Threading.threads, max(1, count / max(1, minChunk)))
    if threads <= 1 { body(0, count); return }
    // More chunks than threads balances uneven rows without a scheduler.
    let chunks = min(count, threads * 4)
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let start = count * c / chunks, end = count * (c + 1) / chunks
            if start < end { body(start, end) }
        }
    }
}
