import ArgumentParser
import Foundation
import AffectKernels
import AffectModels
import AffectServer

/// `affect serve`: flags only; the server is the AffectServer library.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the models over HTTP and WebSocket: faces, analysis jobs, live streams (see README: Server).",
        discussion: """
        Models load once and are shared by every request: an MTCNN detector and face models (default: the \
        committed Weights/mtcnn.safetensors and mini_xception), plus any heads, audio and text models given with \
        --models (a registry name, a source or a weight file; the model's name for clients is the registry name \
        or the file's stem). Listens on 127.0.0.1 unless --host says otherwise; with --token every route but \
        /healthz needs `Authorization: Bearer TOKEN`. SIGTERM or SIGINT: stops accepting, lets requests in \
        flight finish, cancels running analyses (no partial result is written) and exits 0.
        """)

    @Option(help: "Address to listen on (default loopback only).") var host: String = "127.0.0.1"
    @Option(help: "TCP port, 0 to 65535 (0: any free port, printed at start).") var port: Int = 8080
    @Option(parsing: .upToNextOption, help: "Models to load (registry names, sources or weight files): detector, face models, heads, audio and text models.")
    var models: [String] = []
    @Option(help: "Bearer token every route but /healthz requires (also AFFECT_TOKEN).") var token: String?
    @Option(help: "Inference requests run at once, 1 to 256 (kernel threads are split so they never outnumber the cores).") var workers: Int = 1
    @Option(help: "Requests waiting beyond those running before 429, 0 to 100000.") var queue: Int = 32
    @Option(help: "Seconds a request may wait for a worker before 503.") var queueTimeout: Double = 30
    @Option(help: "Largest image body in bytes (/v1/faces, one stream frame).") var maxImageBytes: Int = 20 * 1024 * 1024
    @Option(help: "Largest upload in bytes (/v1/analyze, audio routes); streamed to disk.") var maxUploadBytes: Int = 2 * 1024 * 1024 * 1024
    @Option(help: "Most floats (frames × hidden size) /v1/embed-audio?pool=none answers, 1 to 2^30; longer audio is answered 413.") var maxEmbeddingFloats: Int = 1 << 24
    @Option(help: "Analyses run at once, 1 to 64.") var jobWorkers: Int = 1
    @Option(help: "Analyses waiting before 429, 0 to 10000.") var jobQueue: Int = 8
    @Option(help: "Seconds an analysis may run before it is cancelled.") var jobTimeout: Double = 3600
    @Option(help: "Jobs kept (with their results) before the oldest finished one is forgotten.") var maxJobs: Int = 64
    @Option(help: "Folder for uploads and job results (default: a new temporary folder, removed at exit).") var jobsDir: String?
    @Option(help: "WebSocket streams open at once.") var maxStreams: Int = 16
    @Option(help: "Seconds a new connection has to send a complete request head before it is closed, 0.01 to 3600.") var headTimeout: Double = 30
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var precisionOption: PrecisionOption

    func run() throws {
        try compute.apply()
        var config = ServerConfiguration()
        config.host = host; config.port = port
        config.token = token ?? ProcessInfo.processInfo.environment["AFFECT_TOKEN"]
        config.workers = workers; config.queueDepth = queue; config.queueTimeout = queueTimeout
        config.maxImageBytes = maxImageBytes; config.maxUploadBytes = maxUploadBytes
        config.maxEmbeddingFloats = maxEmbeddingFloats
        config.jobWorkers = jobWorkers; config.jobQueueDepth = jobQueue; config.jobTimeout = jobTimeout
        config.maxJobs = maxJobs; config.jobsDirectory = jobsDir; config.maxStreamConnections = maxStreams
        config.requestHeadTimeout = headTimeout
        try config.validate()
        // Every worker running at once shares the cores: the kernels' threads are what is left.
        Threading.setThreads(min(Threading.threads, config.kernelThreads(cores: Threading.availableCores)))

        var list: [(name: String, path: String)] = []
        for m in models {
            let path = try resolveWeights(m)
            let isFile = FileManager.default.fileExists(atPath: m)
            let name = isFile ? URL(fileURLWithPath: m).deletingPathExtension().lastPathComponent : m
            list.append((name, path))
        }
        // The committed detector and face model unless the list has its own.
        let archs = try list.map { try WeightFile(path: $0.path).arch }
        if !archs.contains("mtcnn") { list.insert(("mtcnn", try resolveWeights(defaultWeights("mtcnn.safetensors"))), at: 0) }
        if !archs.contains(where: { Architectures.names(.face).contains($0) }) {
            list.append(("mini_xception", try resolveWeights(defaultWeights("mini_xception.safetensors"))))
        }
        let set = try ModelSet(list, precision: precisionOption.precision)
        let server = try AffectServer(configuration: config, models: set)
        let settings = config
        let semaphore = DispatchSemaphore(value: 0)
        let outcome = ResultBox()
        Task {
            do {
                try await server.run { port in
                    printErr("affect serve: listening on http://\(settings.host):\(port) with \(set.entries.map(\.name).joined(separator: ", ")) (\(settings.workers) worker\(settings.workers == 1 ? "" : "s"), \(Threading.threads) kernel thread\(Threading.threads == 1 ? "" : "s") each)")
                }
            } catch {
                outcome.error = error
            }
            semaphore.signal()
        }
        semaphore.wait()
        if let e = outcome.error {
            // Binding failures and the like: one sentence, exit 2.
            throw AffectError.badInput("affect serve on \(config.host):\(config.port): \(e)")
        }
        printErr("affect serve: stopped")
    }
}

final class ResultBox: @unchecked Sendable { var error: Error? }

