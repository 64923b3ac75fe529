import CBLAS
import Dispatch
import Foundation
import Synchronization

/// Thread settings shared by our kernels and OpenBLAS.
public enum Threading {
    nonisolated(unsafe) private static var _threads: Int = {
        upgradeBLASKernels()
        openblas_set_num_threads(1)
        return min(availableCores, maxThreads)
    }()

    /// The most threads ``setThreads(_:)`` accepts. Our workers spin between jobs, so threads beyond the cores
    /// only take time from each other; the bound keeps a typo from starting thousands of them.
    public static let maxThreads = 256

    /// Cores this process may use: the CPUs of its affinity mask (`taskset`, cpusets), further limited by a
    /// cgroup CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, as containers set
    /// them), rounded up. At least 1.
    public static let availableCores: Int = {
        var cores = affinityCores() ?? ProcessInfo.processInfo.activeProcessorCount
        if let quota = cgroupQuota() { cores = min(cores, Int(quota.rounded(.up))) }
        return max(1, cores)
    }()

    /// CPUs in this process's affinity mask, from `/proc/self/status` (`sched_getaffinity` is a GNU
    /// extension the Glibc module does not export). Nil where that file is missing.
    private static func affinityCores() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return nil }
        let n = line.dropFirst("Cpus_allowed:".count).reduce(0) { $0 + (Int(String($1), radix: 16)?.nonzeroBitCount ?? 0) }
        return n > 0 ? n : nil
    }

    /// The tightest CPU quota (in cores) on this process's cgroup and its ancestors, nil when unlimited.
    private static func cgroupQuota() -> Double? {
        func read(_ path: String) -> String? {
            (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        /// `path` and its ancestors up to `/`, deepest first.
        func lineage(_ path: String) -> [String] {
            var out: [String] = [], p = path.isEmpty ? "/" : path
            while true {
                out.append(p)
                if p == "/" { break }
                p = URL(fileURLWithPath: p).deletingLastPathComponent().path
                if p.isEmpty { p = "/" }
            }
            return out
        }
        var best: Double?
        func take(_ quota: Double?) { if let q = quota, q > 0 { best = min(best ?? q, q) } }
        for line in (read("/proc/self/cgroup") ?? "").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            if parts[0] == "0" {
                // v2: "max 100000" (unlimited) or "QUOTA PERIOD".
                for dir in lineage(path) {
                    let f = read("/sys/fs/cgroup" + (dir == "/" ? "" : dir) + "/cpu.max")?.split(separator: " ")
                    if let f, f.count == 2, let q = Double(f[0]), let p = Double(f[1]), p > 0 { take(q / p) }
                }
            } else if parts[1].split(separator: ",").contains("cpu") {
                for dir in lineage(path) {
                    for root in ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"] {
                        let base = root + (dir == "/" ? "" : dir)
                        if let q = read(base + "/cpu.cfs_quota_us").flatMap(Double.init), q > 0,
                           let p = read(base + "/cpu.cfs_period_us").flatMap(Double.init), p > 0 { take(q / p); break }
                    }
                }
            }
        }
        return best
    }

    /// Bytes of one core's L2 cache, which ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``
    /// sizes its row blocks to: what the C library reports (`sysconf(_SC_LEVEL2_CACHE_SIZE)`), or 512 KB (Zen 3's,
    /// the smallest L2 of the x86 servers this project is measured on) where it reports nothing.
    /// `AFFECT_L2_CACHE_BYTES` overrides it, to measure a smaller cache's blocking on a machine with a larger one.
    public static let l2CacheBytes: Int = {
        if let text = getenv("AFFECT_L2_CACHE_BYTES").map({ String(cString: $0) }), let v = Int(text) {
            return min(max(v, 64 << 10), 64 << 20)
        }
        let reported = sysconf(Int32(_SC_LEVEL2_CACHE_SIZE))
        return reported >= 64 << 10 && reported <= 64 << 20 ? reported : 512 << 10
    }()

    /// The OpenBLAS kernel set in use (e.g. `SkylakeX`, `Haswell`), after `upgradeBLASKernels()`.
    public static var blasCore: String {
        _ = threads
        return openblas_get_corename().map { String(cString: $0) } ?? "unknown"
    }

    /// OpenBLAS picks its kernels from the CPU model at load time; a build older than the CPU (0.3.21, as
    /// Debian 12 / Ubuntu 24.04 ship, on Xeon family 6 model 207) does not know the model and falls back to
    /// a generic core (Prescott, SSE3), which made every `sgemm` about 4× slower than the machine allows.
    /// When that happened and `OPENBLAS_CORETYPE` was not set by the user, this selects the kernels the CPU's
    /// features allow (SkylakeX with AVX-512, Haswell with AVX2 + FMA) through OpenBLAS's own dynamic-arch
    /// entry points, as `OPENBLAS_CORETYPE` would have at startup. Only before any BLAS call.
    private static func upgradeBLASKernels() {
        guard getenv("OPENBLAS_CORETYPE") == nil,
              let name = openblas_get_corename().map({ String(cString: $0) }),
              ["prescott", "core2", "nehalem", "katmai", "coppermine", "northwood", "banias", "atom"].contains(name.lowercased()),
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return }
        let flags = Set(flagLine.split(separator: " ").map(String.init))
        let core: String
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains) {
            core = "SkylakeX"
        } else if ["avx2", "fma"].allSatisfy(flags.contains) {
            core = "Haswell"
        } else {
            return
        }
        // Exported by DYNAMIC_ARCH builds only; looked up so other builds simply keep their kernels.
        let process = dlopen(nil, RTLD_NOW)
        guard let quit = dlsym(process, "gotoblas_dynamic_quit"), let initialise = dlsym(process, "gotoblas_dynamic_init")
        else { return }
        typealias Hook = @convention(c) () -> Void
        setenv("OPENBLAS_CORETYPE", core, 1)
        unsafeBitCast(quit, to: Hook.self)()
        unsafeBitCast(initialise, to: Hook.self)()
        unsetenv("OPENBLAS_CORETYPE")
    }

    /// Number of threads the kernels split work across (default: ``availableCores``, at most ``maxThreads``).
    public static var threads: Int { _threads }

    /// Sets how many threads our kernels use, clamped to `1...maxThreads` (commands reject other values before
    /// calling this). OpenBLAS itself always runs single-threaded: ``sgemm(m:n:k:a:lda:b:ldb:bTransposed:c:ldc:alpha:accumulate:)``
    /// splits matrix products across our threads, so only one pool of workers competes for the cores.
    public static func setThreads(_ n: Int) {
        _threads = min(max(1, n), maxThreads)
        openblas_set_num_threads(1)
    }
}

/// A fork-join pool whose workers spin briefly between jobs before sleeping.
///
/// A forward pass issues hundreds of small parallel loops; waking a parked thread for each (as
/// `DispatchQueue.concurrentPerform` does) costs tens of microseconds a time and showed as ~10 % scheduler
/// time in profiles. Workers here poll a generation counter for up to 500 µs after each job, so back-to-back loops
/// start at once. The calling thread always takes part. A call made while the pool is busy (a nested loop,
/// or a second caller thread) simply runs on its caller.
final class SpinPool: @unchecked Sendable {
    static let shared = SpinPool()

    private let generation = Atomic<Int>(0)
    private let next = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let sleeping = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let active = Atomic<Int>(0)
    private let wake = DispatchSemaphore(value: 0)
    nonisolated(unsafe) private var job: ((Int) -> Void)?
    private var workers = 0
    private let startLock = NSLock()

    /// How long an idle worker polls before it sleeps. A forward pass has serial stretches between its
    /// parallel loops (a squeeze-and-excitation, a reduction) of up to ~100 µs; sleeping through them cost
    /// a futex wake-up per loop (6–8 % of EfficientNet-B0 at batch 1 with a ~20 µs budget).
    static let spinNanoseconds: UInt64 = 500_000

    private func ensureWorkers(_ n: Int) {
        startLock.lock(); defer { startLock.unlock() }
        while workers < n {
            workers += 1
            let index = workers
            // The generation before the job that needs this worker is published: read in the new thread, it
            // could already be that job's, which the worker would then take as done and sleep through (the
            // whole job ran on the caller alone when the thread started late, as under SCHED_FIFO).
            let seen = generation.load(ordering: .sequentiallyConsistent)
            let t = Thread { [unowned self] in self.workerLoop(fromBack: index == 1, seen: seen) }
            t.stackSize = 1 << 20
            t.start()
        }
    }

    private func workerLoop(fromBack: Bool, seen initial: Int) {
        var seen = initial
        while true {
            var spins = 0
            let idleSince = DispatchTime.now().uptimeNanoseconds
            while generation.load(ordering: .sequentiallyConsistent) == seen {
                spins += 1
                // Checked every 1024 polls (a clock read is ~20 ns; a poll ~1 ns).
                if spins & 1023 == 0 && DispatchTime.now().uptimeNanoseconds - idleSince > Self.spinNanoseconds {
                    sleeping.add(1, ordering: .sequentiallyConsistent)
                    if generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                    sleeping.subtract(1, ordering: .sequentiallyConsistent)
                    break
                }
            }
            if generation.load(ordering: .sequentiallyConsistent) == seen { continue }
            seen = generation.load(ordering: .sequentiallyConsistent)
            drain(Self.tag(seen), fromBack: fromBack)
        }
    }

    /// `next` holds the job's generation tag in its high 32 bits and the unclaimed chunks `front..<back` in
    /// the low 32 (16 bits each), so a worker still holding an older generation can never claim (and count
    /// down) a chunk of the current job. With a separate index, a late worker could claim chunk 0 right after
    /// the reset and count it down before `remaining` was set: the count then never reached zero (a hang).
    ///
    /// The caller claims from the front and the first worker from the back, so each thread gets one end of
    /// every loop, the same end every time. Consecutive layers that split the same axis (an expansion's output
    /// channels, then the depthwise over those channels) then find their inputs in their own core's L2; handed
    /// out in turn, about half of every layer's input came from the other core (EfficientNet-B0 at batch 1:
    /// 6.2 → 5.6 ms).
    private static func tag(_ generation: Int) -> Int { generation & 0x7FFF_FFFF }

    private func claim(_ tag: Int, fromBack: Bool) -> Int? {
        var v = next.load(ordering: .sequentiallyConsistent)
        while v >> 32 == tag {
            let front = (v >> 16) & 0xFFFF, back = v & 0xFFFF
            guard front < back else { return nil }
            let desired = fromBack ? v - 1 : v + (1 << 16)
            let (done, original) = next.compareExchange(expected: v, desired: desired, ordering: .sequentiallyConsistent)
            if done { return fromBack ? back - 1 : front }
            v = original
        }
        return nil
    }

    private func drain(_ tag: Int, fromBack: Bool = false) {
        while true {
            active.add(1, ordering: .sequentiallyConsistent)
            guard let c = claim(tag, fromBack: fromBack) else { active.subtract(1, ordering: .sequentiallyConsistent); return }
            invoke(c)
            remaining.subtract(1, ordering: .sequentiallyConsistent)
            active.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    @inline(never)
    private func invoke(_ c: Int) { job?(c) }

    /// Runs `body(0..<count)` across the pool; returns when every chunk is done.
    func run(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        precondition(count <= 0xFFFF, "SpinPool runs at most 65535 chunks")
        guard busy.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else {
            for c in 0..<count { body(c) }
            return
        }
        defer { busy.store(false, ordering: .sequentiallyConsistent) }
        ensureWorkers(threads - 1)
        // Workers hold `body` only while `active` is non-zero, and every retain they make of it is released
        // inside `invoke` (never inlined) before they leave, so the closure is unique again when we return.
        withoutActuallyEscaping(body) { body in
            job = body
            remaining.store(count, ordering: .sequentiallyConsistent)
            // Only the caller holding `busy` advances the generation.
            let gen = generation.load(ordering: .sequentiallyConsistent) &+ 1
            next.store(Self.tag(gen) << 32 | count, ordering: .sequentiallyConsistent)
            generation.store(gen, ordering: .sequentiallyConsistent)
            let asleep = sleeping.load(ordering: .sequentiallyConsistent)
            for _ in 0..<asleep { wake.signal() }
            drain(Self.tag(gen))
            // On an oversubscribed machine the worker may be descheduled: stop burning its core after a while.
            var spins = 0
            while remaining.load(ordering: .sequentiallyConsistent) > 0 || active.load(ordering: .sequentiallyConsistent) > 0 {
                spins += 1
                if spins > 2_000 { sched_yield() }
            }
            // Exhausted under this tag, so a worker that still holds it reads no index from the next job.
            next.store(Self.tag(gen) << 32, ordering: .sequentiallyConsistent)
            job = nil
        }
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
    runParallel(chunks, threads: threads) { c in
        let start = count * c / chunks, end = count * (c + 1) / chunks
        if start < end { body(start, end) }
    }
}

@usableFromInline
func runParallel(_ chunks: Int, threads: Int, _ body: (Int) -> Void) {
    SpinPool.shared.run(chunks, threads: threads, body)
}
