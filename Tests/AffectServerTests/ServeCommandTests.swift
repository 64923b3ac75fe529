import Foundation
import Testing

/// The `affect` binary built beside this test bundle.
func affectBinary() -> String {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<3 {
        let cand = dir.appendingPathComponent("affect").path
        if FileManager.default.isExecutableFile(atPath: cand) { return cand }
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("affect").path
}

/// `affect serve` as a user runs it: a process that prints its port, serves, and ends with exit 0 on SIGTERM.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var stderrText = ""
    let started = DispatchSemaphore(value: 0)
    private(set) var port = 0

    init(_ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: affectBinary())
        process.arguments = ["serve", "--port", "0"] + args
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        let handle = err.fileHandleForReading
        handle.readabilityHandler = { [self] h in
            let data = h.availableData
            if data.isEmpty { handle.readabilityHandler = nil; started.signal(); return }
            lock.withLock {
                stderrText += String(decoding: data, as: UTF8.self)
                if port == 0, let r = stderrText.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    port = Int(stderrText[r].split(separator: ":").last ?? "") ?? 0
                    if port > 0 { started.signal() }
                }
            }
        }
        try process.run()
    }

    var stderr: String { lock.withLock { stderrText } }
}

@Suite(.serialized) struct ServeCommandTests {
    @Test func sigtermEndsTheServerWithExitZero() async throws {
        let server = try ServeProcess([])
        try await offThread { _ = server.started.wait(timeout: .now() + 600) }
        #expect(server.port > 0, "\(server.stderr)")
        let port = server.port
        let body = try Data(contentsOf: URL(fileURLWithPath: "\(media)/portrait.png"))
        let r = try await offThread { try request(port, "POST", "/v1/faces", body: body) }
        #expect(r.status == 200)
        let job = try await offThread { try request(port, "POST", "/v1/analyze", body: try Data(contentsOf: URL(fileURLWithPath: "\(media)/talking.mp4"))) }
        #expect(job.status == 202)
        kill(server.process.processIdentifier, SIGTERM)
        try await offThread { server.process.waitUntilExit() }
        #expect(server.process.terminationReason == .exit)
        #expect(server.process.terminationStatus == 0, "\(server.stderr)")
        #expect(server.stderr.contains("stopped"))
    }

    @Test func badSettingsExitTwoWithOneSentence() async throws {
        for args in [["--workers", "0"], ["--token", "has space"], ["--queue-timeout", "0"], ["--models", "/nonexistent/model.safetensors"]] {
            let server = try ServeProcess(args)
            try await offThread { server.process.waitUntilExit() }
            #expect(server.process.terminationStatus == 2, "\(args): \(server.stderr)")
            #expect(server.stderr.contains("error: "), "\(args): \(server.stderr)")
        }
    }
}
