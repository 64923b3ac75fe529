import Foundation
import Testing
import AffectPipeline

/// `affect analyze` on live sources: lines appear while the input is still playing, and signals end it cleanly.
@Suite(.serialized) struct LiveAnalyzeTests {
    /// Reads a process's standard output line by line, noting when each line arrived.
    final class LineClock: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [(Date, String)] = []
        private let done = DispatchSemaphore(value: 0)

        init(_ handle: FileHandle) {
            Thread.detachNewThread {
                var buffer = Data()
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    buffer.append(chunk)
                    while let nl = buffer.firstIndex(of: 10) {
                        let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                        buffer.removeSubrange(buffer.startIndex...nl)
                        self.lock.lock(); self.lines.append((Date(), line)); self.lock.unlock()
                    }
                }
                self.done.signal()
            }
        }
        func wait() -> [(Date, String)] { done.wait(); lock.lock(); defer { lock.unlock() }; return lines }
    }

    func process(_ exe: String, _ args: [String]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        return p
    }

    /// `ffmpeg -re` plays the 4 s clip twice in real time into a pipe; `affect analyze -` writes its first
    /// lines before the player is done, and every line is a frame record with the face.
    @Test func standardInputStreamsLinesWhileThePlayerRuns() throws {
        let player = process("/usr/bin/ffmpeg", ["-v", "error", "-re", "-stream_loop", "1", "-i", talkingClip, "-f", "mpegts", "-"])
        let affect = process(affectBinary(), ["analyze", "-"])
        let pipe = Pipe(), out = Pipe(), err = Pipe()
        player.standardOutput = pipe
        affect.standardInput = pipe
        affect.standardOutput = out; affect.standardError = err
        try affect.run(); try player.run()
        let clock = LineClock(out.fileHandleForReading)
        player.waitUntilExit()
        let playerEnded = Date()
        let lines = clock.wait()
        affect.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(affect.terminationStatus == 0, "\(stderr)")
        #expect(lines.count >= 150, "two plays of 100 frames, few or none dropped: \(lines.count)")
        let first = try #require(lines.first)
        #expect(first.0 < playerEnded.addingTimeInterval(-2), "the first line came \(playerEnded.timeIntervalSince(first.0)) s before the end")
        let records = try lines.map { try JSONDecoder().decode(FrameRecord.self, from: Data($0.1.utf8)) }
        #expect(records.filter { !$0.faces.isEmpty }.count >= records.count * 9 / 10)
        #expect(zip(records, records.dropFirst()).allSatisfy { $0.time < $1.time })
        #expect(stderr.contains("frames analysed") && stderr.contains("the stream ended"))
    }

    /// A UDP listener with nothing arriving yet: SIGTERM ends it at once with status 0; a sender then
    /// streams and the output file holds complete lines only.
    @Test func udpStreamAndSignals() throws {
        let port = Int.random(in: 41000...49000)
        let waiting = process(affectBinary(), ["analyze", "udp://127.0.0.1:\(port)", "--timeout", "60"])
        let err0 = Pipe(); waiting.standardError = err0; waiting.standardOutput = Pipe()
        try waiting.run()
        // Once the UDP socket is open the process is waiting for the stream (its handlers are in place); a fixed
        // sleep was too short on a loaded machine.
        #expect(waitForUDPListener(port: port, while: waiting), "the listener never opened udp://127.0.0.1:\(port)")
        waiting.terminate()
        waiting.waitUntilExit()
        #expect(waiting.terminationStatus == 0, "\(String(decoding: err0.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")

        let dir = try freshFolder("live-udp")
        let affect = process(affectBinary(), ["analyze", "udp://127.0.0.1:\(port + 1)", "--timeout", "2", "-o", "\(dir)/live.jsonl"])
        let err = Pipe(); affect.standardError = err
        try affect.run()
        #expect(waitForUDPListener(port: port + 1, while: affect), "the listener never opened udp://127.0.0.1:\(port + 1)")
        let player = process("/usr/bin/ffmpeg", ["-v", "error", "-re", "-i", talkingClip, "-an", "-f", "mpegts", "udp://127.0.0.1:\(port + 1)"])
        try player.run()
        // Lines must appear while the sender still plays (it plays 4 s in real time); polled rather than read
        // after a fixed delay, which a slow build (AddressSanitizer) or a loaded machine does not meet.
        var midway = ""
        while player.isRunning && midway.isEmpty {
            usleep(50_000)
            midway = (try? String(contentsOfFile: "\(dir)/live.jsonl", encoding: .utf8)) ?? ""
        }
        player.waitUntilExit()
        affect.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(affect.terminationStatus == 0, "\(stderr)")
        #expect(midway.split(separator: "\n").count > 0, "lines are written while the sender still plays")
        let text = try String(contentsOfFile: "\(dir)/live.jsonl", encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        let records = try text.split(separator: "\n").map { try JSONDecoder().decode(FrameRecord.self, from: Data($0.utf8)) }
        // How many frames are analysed depends on the machine's speed (frames are dropped when the analysis falls
        // behind a UDP sender); what must hold is that the stream was decoded and every frame is accounted for.
        let last = try #require(records.last, "no records; \(stderr)")
        #expect(last.frame + 1 >= 50, "\(last.frame + 1) of the clip's 100 frames decoded; \(stderr)")
        #expect(last.frame + 1 == records.count + (last.dropped ?? 0), "\(records.count) analysed + \(last.dropped ?? 0) dropped ≠ \(last.frame + 1) decoded")
        #expect(stderr.contains("live: \(records.count) frames analysed"), "\(stderr)")
    }

    /// Waits (up to 120 s, while `process` runs) until a UDP socket is bound to `port` on any local address
    /// (`/proc/net/udp` lists local addresses as hex `ADDRESS:PORT`).
    func waitForUDPListener(port: Int, while process: Process) -> Bool {
        let needle = String(format: ":%04X", port)
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && process.isRunning {
            if let table = try? String(contentsOfFile: "/proc/net/udp", encoding: .utf8),
               table.split(separator: "\n").contains(where: { $0.split(separator: " ").dropFirst().first?.hasSuffix(needle) == true }) {
                return true
            }
            usleep(20_000)
        }
        return false
    }

    @Test func wholeVideoOptionsAreRefused() throws {
        let r = try runAffect(["analyze", "-", "--va-head", "\(fixtures)/fusion/head_keras.safetensors"])
        #expect(r.status == 2 && r.stderr.contains("--va-head needs the whole video"), "\(r.stderr)")
        let csv = try runAffect(["analyze", talkingClip, "--live", "-o", tempPath("live.csv")])
        #expect(csv.status == 2 && csv.stderr.contains(".jsonl"), "\(csv.stderr)")
        let t = try runAffect(["analyze", "udp://127.0.0.1:1", "--timeout", "0"])
        #expect(t.status == 2 && t.stderr.contains("--timeout"), "\(t.stderr)")
    }
}
