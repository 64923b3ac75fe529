import Foundation
import AffectKernels
import AffectMedia
import AffectPipeline

extension Analyze {
    /// `--live`: JSON Lines, one per analysed frame, written as each frame is done (stdout or one `.jsonl`).
    func runLive(_ source: MediaSource) throws {
        try checkRange(timeout, 0.1...3600, "--timeout", " s")
        let options = try checkOptions()
        let whole: [(String, Bool)] = [
            ("--expr-head", !exprHead.isEmpty), ("--va-head", !vaHead.isEmpty), ("--au-head", !auHead.isEmpty),
            ("--ah-head", !ahHead.isEmpty), ("--emi-head", !emiHead.isEmpty), ("--ah-gate", ahGate != nil),
            ("--transcript", transcript != nil), ("--asr", asr != nil), ("--text-model", textModel != nil),
            ("--audio-model", audioModel != nil), ("--plot", plot != nil), ("--render", render != nil), ("--delta", delta != nil),
            ("--sigma", sigma != nil), ("--t", threshold != nil), ("--w", weights != nil),
            ("--tracks all", tracks != "largest"),
        ]
        if let (option, _) = whole.first(where: { $0.1 }) {
            throw AffectError.badUsage("\(option) needs the whole video; live analysis (\(source.isLive ? source.name : "--live")) gives per-frame faces only. Analyse a file without --live for it.")
        }
        guard output.count <= 1 else { throw AffectError.badUsage("live analysis writes one JSON Lines file (-o NAME.jsonl) or standard output.") }
        if let o = output.first {
            guard o.lowercased().hasSuffix(".jsonl") else { throw AffectError.badUsage("-o \(o): live analysis writes JSON Lines; the output must end in .jsonl.") }
            try checkOutputs([("-o", o)], inputs: [source.isLive ? nil : video, faceModel, expressionModel, detector])
        }
        let analyzer = try makeAnalyzer(options)
        let labels = analyzer.faceModel.expressionLabels

        // SIGINT / SIGTERM end the stream cleanly: the frame in hand is finished and its line written.
        let stop = StopFlag()
        stop.stopOnSignals([SIGINT, SIGTERM])
        // A closed reader (`| head`) is an error to report, not a silent death.
        signal(SIGPIPE, SIG_IGN)
        let sink = try LineSink(path: output.first)
        defer { sink.close() }
        var closed = false
        var summary = StreamSummary()
        do {
            summary = try analyzer.stream(source, stop: stop, timeout: timeout) { frame, dropped in
                summary.analyzed += 1
                try sink.write(FrameRecord(frame, labels: labels, dropped: dropped).jsonLine())
            }
        } catch is ReaderClosed {
            closed = true
        } catch where stop.isStopped {
            // A signal while the stream was still opening: nothing was analysed, nothing is wrong.
            summary.stopped = true
        }
        var note = "live: \(summary.analyzed) frames analysed"
        if summary.dropped > 0 { note += ", \(summary.dropped) dropped (the analysis fell behind the source)" }
        note += closed ? "; the reader closed standard output." : summary.stopped ? "; stopped by a signal." : "; the stream ended."
        printErr(note)
        if let o = output.first { printErr("wrote \(o)") }
    }
}

/// Standard output's reader went away (`| head`): the stream ends as if stopped.
struct ReaderClosed: Error {}

/// Where JSON lines go: standard output or a file, each line in one `write` so a reader never sees half of one.
final class LineSink {
    let fd: Int32
    let name: String
    let owned: Bool

    init(path: String?) throws {
        if let path {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw AffectError.badInput("\(path): cannot write it (\(String(cString: strerror(errno))))") }
            name = path; owned = true
        } else {
            fd = STDOUT_FILENO; name = "standard output"; owned = false
        }
    }

    func write(_ line: String) throws {
        let bytes = Array((line + "\n").utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EPIPE && !owned { throw ReaderClosed() }
            guard n > 0 else { throw AffectError.badInput("\(name): cannot write (\(String(cString: strerror(errno)))).") }
            done += n
        }
    }

    func close() { if owned { _ = Foundation.close(fd) } }
}
