import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

/// `affect serve`: the library's detector, face models and pipeline over HTTP and WebSocket.
///
/// Models are loaded once (``ModelSet``) and shared. Inference runs on the request workers of a bounded
/// ``ComputeQueue`` (429 with Retry-After when full), analyses on the job workers; uploads stream to files
/// with generated names in one ``Workspace``. See README "Server" for the routes and limits.
public final class AffectServer: @unchecked Sendable {
    public let configuration: ServerConfiguration
    public let models: ModelSet
    /// Request inference (faces, stream frames, audio, text).
    public let queue: ComputeQueue
    let workspace: Workspace
    let jobs: JobStore
    let logger: Logger
    private let streamLock = NSLock()
    private var openStreams = 0

    public init(configuration: ServerConfiguration, models: ModelSet, logger: Logger = Logger(label: "affect.serve")) throws {
        try configuration.validate()
        self.configuration = configuration
        self.models = models
        self.logger = logger
        workspace = try Workspace(directory: configuration.jobsDirectory)
        queue = ComputeQueue(name: "request", workers: configuration.workers, depth: configuration.queueDepth,
                             maxWait: configuration.queueTimeout)
        jobs = JobStore(configuration: configuration, workspace: workspace, models: models)
    }

    /// The JSON result of a job that analysed `report`: `affect analyze -o out.json`'s document, with the
    /// video's `file` given as `upload`.
    public static func resultJSON(_ report: AnalysisReport) throws -> Data { try JobStore.json(report) }

    /// The folder holding uploads and job results.
    public var workspaceRoot: String { workspace.root }

    // MARK: Running

    /// The application: routes, WebSocket upgrade, bind address. `onRunning` receives the bound port.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = makeRouter()
        let ws = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: .seconds(120)),
            ws: .init(maxFrameSize: configuration.maxImageBytes, closeTimeout: .seconds(5)))
        let shouldUpgrade: @Sendable (HTTPRequest, any Channel, Logger) throws
            -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> = { [self] head, _, _ in
                // Upgrade only a request the HTTP route would accept; every other goes to the
                // router, whose GET /v1/stream answers why (401, 400, 429 or 426) as JSON.
                let uri = URI(head.path ?? "/")
                // Browsers cannot set headers on a WebSocket: they offer the token as a subprotocol.
                let offered = subprotocols(head.headerFields[.secWebSocketProtocol])
                guard uri.path == "/v1/stream",
                      configuration.token.map({ tokenMatches(head.headerFields[.authorization], $0) || subprotocolTokenMatches(offered, $0) }) ?? true,
                      let params = try? StreamRequest(query: query(uri), models: models),
                      streamLock.withLock({ openStreams }) < configuration.maxStreamConnections else { return .dontUpgrade }
                // A client that offered subprotocols must get one of them back, or it fails the connection.
                var headers = HTTPFields()
                if offered.contains(streamSubprotocol) { headers[.secWebSocketProtocol] = streamSubprotocol }
                else if !offered.isEmpty { return .dontUpgrade }
                return .upgrade(headers) { inbound, outbound, _ in try await self.stream(inbound, outbound, params: params) }
            }
        let headTimeout = TimeAmount.milliseconds(Int64(configuration.requestHeadTimeout * 1000))
        var app = Application(router: router,
                              server: HTTPServerBuilder { responder in
                                  GuardedChildChannel(inner: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: ws,
                                                                                          shouldUpgrade: shouldUpgrade),
                                                      headTimeout: headTimeout)
                              },
                              configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "affect"),
                              onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
                              logger: logger)
        app.addServices(Shutdown(server: self))
        return app
    }

    /// Serves until SIGTERM or SIGINT: then stops accepting connections, lets requests in flight finish,
    /// cancels analysis jobs (no partial result is ever written) and returns.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await application(onRunning: onRunning).runService()
        stop()
    }

    /// Stops the queues and removes the workspace if the server created it; called after the HTTP server ended.
    public func stop() {
        jobs.shutdown()
        queue.stop()
        queue.waitUntilIdle()
        workspace.removeIfOwned()
    }

    /// At graceful shutdown: analysis jobs stop (they may run for minutes); HTTP requests finish on their own.
    struct Shutdown: Service {
        let server: AffectServer
        func run() async throws {
            try? await gracefulShutdown()
            let jobs = server.jobs
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                Thread { jobs.shutdown(); c.resume() }.start()
            }
        }
    }

    // MARK: Routes

    typealias Context = BasicWebSocketRequestContext

    public func makeRouter() -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: Context.self)
        router.add(middleware: ErrorMiddleware(logger: logger))
        if let token = configuration.token { router.add(middleware: BearerMiddleware(token: token)) }

        router.get("/") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: WebPage.html)))
        }
        router.get("/healthz") { [self] _, _ -> Response in
            let load = queue.load
            return JSON.response(["status": "ok", "queue": ["running": load.running, "waiting": load.waiting,
                                                            "workers": queue.workers, "depth": queue.depth],
                                  "jobs": jobs.counts, "streams": streamLock.withLock { openStreams }])
        }
        router.get("/openapi.json") { [self] _, _ -> Response in
            JSON.response(OpenAPI.document(version: "1", tokenRequired: configuration.token != nil))
        }
        router.get("/v1/models") { [self] _, _ -> Response in JSON.response(models.json) }
        router.post("/v1/faces") { [self] request, _ -> Response in try await faces(request) }
        router.post("/v1/analyze") { [self] request, _ -> Response in try await analyze(request) }
        router.get("/v1/jobs/:id") { [self] _, context -> Response in
            JSON.response(try job(context).json)
        }
        router.delete("/v1/jobs/:id") { [self] _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard let job = jobs.delete(id) else { throw ServerError(.notFound, "no job `\(id)`.") }
            return JSON.response(job.json)
        }
        router.get("/v1/jobs/:id/result") { [self] request, context -> Response in try result(request, try job(context)) }
        router.get("/v1/stream") { [self] request, _ -> Response in
            _ = try StreamRequest(query: query(request.uri), models: models)
            if streamLock.withLock({ openStreams }) >= configuration.maxStreamConnections {
                throw ServerError(.tooManyRequests, "too many streams are open (\(configuration.maxStreamConnections)); retry later.", retryAfter: 5)
            }
            throw ServerError(HTTPResponse.Status(code: 426, reasonPhrase: "Upgrade Required"),
                              "/v1/stream is a WebSocket: connect with `Upgrade: websocket`.")
        }
        addAudioAndTextRoutes(router)
        return router
    }

    func job(_ context: Context) throws -> Job {
        let id = context.parameters.get("id") ?? ""
        guard let job = jobs[id] else { throw ServerError(.notFound, "no job `\(id)` (finished jobs are kept until \(configuration.maxJobs) newer ones exist).") }
        return job
    }

    /// Refuses before reading a body when the queue has no room (the body would only be thrown away).
    func requireRoom(_ q: ComputeQueue) throws {
        let load = q.load
        if load.running + load.waiting >= q.workers + q.depth {
            throw ServerError(.tooManyRequests, "the server is busy (\(load.running) running, \(load.waiting) waiting); retry later.", retryAfter: 1)
        }
    }

    func faces(_ request: Request) async throws -> Response {
        let params = try FaceRequest(query: query(request))
        _ = try models.faceModel(params.model)
        try requireRoom(queue)
        let folder = try workspace.makeFolder()
        defer { workspace.remove(folder) }
        let upload = folder + "/upload"
        _ = try await receive(request, to: upload, limit: configuration.maxImageBytes, what: "image")
        let path = folder + "/" + uploadName(sniffing: upload, fallback: "image")
        guard rename(upload, path) == 0 else { throw ServerError(.internalServerError, "cannot name the upload (\(String(cString: strerror(errno)))).") }
        let models = self.models
        let result = try await queue.run { try FaceResult.run(path: path, name: "the uploaded image", request: params, models: models) }
        return JSON.response(result.json)
    }

    func analyze(_ request: Request) async throws -> Response {
        let params = try AnalyzeParameters(query: query(request))
        let analyzer = try params.analyzer(models)
        try requireRoom(jobs.queue)
        let job = try jobs.makeJob()
        do {
            _ = try await receive(request, to: job.inputPath, limit: configuration.maxUploadBytes, what: "upload")
            try jobs.submit(job, analyzer: analyzer)
        } catch {
            workspace.remove(job.folder)
            throw error
        }
        return JSON.response(job.json, status: .accepted, headers: [.contentType: "application/json", .location: "/v1/jobs/\(job.id)"])
    }

    func result(_ request: Request, _ job: Job) throws -> Response {
        let format = try single(query(request), "format") ?? "csv"
        guard format == "csv" || format == "json" else { throw ServerError(.badRequest, "format must be csv or json, got `\(format)`.") }
        guard job.state == .done else {
            throw ServerError(.conflict, "job \(job.id) is \(job.state.rawValue); its result exists once it is done.")
        }
        let path = format == "csv" ? job.csvPath : job.jsonPath
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServerError(.notFound, "job \(job.id)'s result is gone (the job was deleted).")
        }
        return Response(status: .ok, headers: [.contentType: format == "csv" ? "text/csv; charset=utf-8" : "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: WebSocket

    /// One stream. Every binary message is a picture (JPEG or PNG) or a PCM chunk (``AudioStream``: it starts
    /// with `S16L` or `F32L`); each is answered, in order, with a text message: a picture with its faces and
    /// their track ids (a ``FaceTracker`` that lives as long as the connection), a chunk with the audio model's
    /// result for the frames it completes. A bad message is answered with its error and the stream goes on.
    func stream(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, params: StreamRequest) async throws {
        let admitted = streamLock.withLock { () -> Bool in
            guard openStreams < configuration.maxStreamConnections else { return false }
            openStreams += 1
            return true
        }
        guard admitted else {
            try await outbound.write(.text(String(decoding: JSON.data(["error": "too many streams are open (\(configuration.maxStreamConnections)); retry later."]), as: UTF8.self)))
            try await outbound.close(.unknown(1013), reason: "too many streams")
            return
        }
        defer { streamLock.withLock { openStreams -= 1 } }
        let folder = try workspace.makeFolder()
        defer { workspace.remove(folder) }
        var tracker = FaceTracker(maxGap: 25)
        var index = 0
        let models = self.models
        let audio = params.audio.map { AudioStream(name: $0.0, speech: $0.1) }
        for try await message in inbound.messages(maxSize: configuration.maxImageBytes) {
            if case .binary(let buffer) = message, buffer.withUnsafeReadableBytes({ AudioStream.isPCM($0) }) {
                let reply = await pcm(buffer, audio)
                try await outbound.write(.text(String(decoding: JSON.data(reply), as: UTF8.self)))
                continue
            }
            var reply: [String: Any] = ["frame": index]
            do {
                guard case .binary(let buffer) = message else {
                    throw ServerError(.badRequest, "send each frame as a binary message holding a JPEG or PNG picture (or a PCM chunk starting with S16L or F32L).")
                }
                let path = folder + "/frame"
                try buffer.withUnsafeReadableBytes { raw in
                    guard FileManager.default.createFile(atPath: path, contents: Data(raw)) else {
                        throw ServerError(.internalServerError, "cannot store the frame.")
                    }
                }
                let name = "frame \(index)"
                let face = params.face
                let result = try await queue.run { try FaceResult.run(path: path, name: name, request: face, models: models) }
                let ids = tracker.update(frame: index, detections: result.faces)
                reply["width"] = result.width
                reply["height"] = result.height
                reply["model"] = result.model
                reply["faces"] = result.faces.indices.map { result.face($0, track: ids[$0]) }
            } catch {
                Self.addError(error, to: &reply)
            }
            index += 1
            try await outbound.write(.text(String(decoding: JSON.data(reply), as: UTF8.self)))
        }
    }

    /// One PCM chunk's answer: the audio model's result, or the error (the stream's audio clock does not move).
    func pcm(_ buffer: ByteBuffer, _ audio: AudioStream?) async -> [String: Any] {
        guard let audio else {
            return ["chunk": 0, "error": models.speech.isEmpty
                        ? "no audio model is loaded, so PCM chunks cannot be analysed (start the server with --models and a wav2vec2 or hubert model)."
                        : "this stream has no audio model.", "status": 400]
        }
        var reply: [String: Any] = ["chunk": audio.chunks]
        do {
            let samples = try buffer.withUnsafeReadableBytes { try AudioStream.samples($0, sampleRate: audio.sampleRate) }
            return try await queue.run { try audio.append(samples) }
        } catch {
            Self.addError(error, to: &reply)
            return reply
        }
    }

    static func addError(_ error: Error, to reply: inout [String: Any]) {
        let e = ServerError.from(error)
        reply["error"] = e.message
        reply["status"] = Int(e.status.code)
        if let r = e.retryAfter { reply["retry_after"] = r }
    }
}

/// What a `/v1/stream` URL asks for: `/v1/faces`'s `min_face`, `model` and `features` for pictures, and
/// `audio_model` (a loaded wav2vec2 / HuBERT model; default the first loaded that transcribes, else the
/// first) for PCM chunks.
struct StreamRequest: Sendable {
    var face: FaceRequest
    /// The audio model's name and model; nil when none is loaded.
    var audio: (String, SpeechModel)?

    init(query: [String: [String]], models: ModelSet) throws {
        var q = query
        let audioName = try single(q, "audio_model")
        q["audio_model"] = nil
        face = try FaceRequest(query: q)
        _ = try models.faceModel(face.model)
        if let audioName {
            guard let m = models.speech[audioName] else {
                throw ServerError(.badRequest, "no audio model named `\(audioName)` is loaded (loaded: \(models.speech.keys.sorted().joined(separator: ", "))).")
            }
            audio = (audioName, m)
        } else {
            let names = models.speech.keys.sorted()
            if let n = names.first(where: { models.speech[$0]?.model.ctc != nil }) ?? names.first { audio = (n, models.speech[n]!) }
        }
    }
}

/// The subprotocol `/v1/stream` answers with; a browser offers it with `affect.token.<hex of the token>`.
let streamSubprotocol = "affect"

/// The protocols a `Sec-WebSocket-Protocol` header offers.
func subprotocols(_ header: String?) -> [String] {
    (header ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

/// Whether one offered subprotocol is `affect.token.<hex>` of the token (compared in constant time).
func subprotocolTokenMatches(_ offered: [String], _ token: String) -> Bool {
    let expected = "affect.token." + token.utf8.map { String(format: "%02x", $0) }.joined()
    var found = false
    for p in offered where p.hasPrefix("affect.token.") {
        found = tokenMatches("Bearer " + p.lowercased(), expected) || found
    }
    return found
}

/// The query as name → values (a name may repeat).
func query(_ request: Request) -> [String: [String]] { query(request.uri) }

func query(_ uri: URI) -> [String: [String]] {
    var out: [String: [String]] = [:]
    for (k, v) in uri.queryParameters { out[String(k), default: []].append(String(v)) }
    return out
}

/// Whether an Authorization header carries `Bearer token`, compared in constant time.
func tokenMatches(_ header: String?, _ token: String) -> Bool {
    let given = Array((header ?? "").utf8)
    let expected = Array("Bearer \(token)".utf8)
    var diff = given.count ^ expected.count
    for i in 0..<expected.count { diff |= Int(expected[i] ^ (i < given.count ? given[i] : 0)) }
    return diff == 0
}

/// Every error as `{"error": "..."}` with its status; unexpected ones are logged.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let e = ServerError.from(error)
            if e.status.code >= 500 { logger.error("\(request.method) \(request.uri.path): \(e.message)") }
            var response = e.response
            if e.status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
            return response
        }
    }
}

/// `Authorization: Bearer <token>` on every route but `/healthz` and the page at `/`, compared in constant time.
struct BearerMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Health, and the page itself (it holds no data; it asks for the token and sends it with each call).
        if request.uri.path == "/healthz" || request.uri.path == "/" { return try await next(request, context) }
        guard tokenMatches(request.headers[.authorization], token) else { throw ServerError(.unauthorized, "this server needs `Authorization: Bearer <token>` (the token given to affect serve --token).") }
        return try await next(request, context)
    }
}
