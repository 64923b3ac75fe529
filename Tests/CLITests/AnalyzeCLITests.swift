import Foundation
import Testing
import AffectKernels

/// The repository's own test media (Tools/make_test_media.sh).
let testMedia = URL(fileURLWithPath: fixtures).appendingPathComponent("media").path
/// A 4 s talking-head clip (the demo's portrait zooming in, espeak-ng speech as AAC).
let talkingClip = "\(testMedia)/talking.mp4"

/// A fresh, empty folder for one test's outputs.
func freshFolder(_ name: String) throws -> String {
    let dir = tempPath(name)
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func files(in dir: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

@Suite(.serialized) struct AnalyzeCommandTests {
    /// `--render`: an annotated video beside the other outputs; a wrong extension is refused before analysing.
    @Test func renderWritesAnnotatedVideo() throws {
        let dir = try freshFolder("analyze-render")
        let r = try runAffect(["analyze", talkingClip, "--every", "4", "--render", "\(dir)/a.mp4", "-o", "\(dir)/a.csv"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("wrote \(dir)/a.mp4"))
        #expect(files(in: dir) == ["a.csv", "a.mp4"])
        let bad = try runAffect(["analyze", talkingClip, "--render", "\(dir)/a.avi"])
        #expect(bad.status == 2 && bad.stderr.contains(".mp4, .mkv or .mov"), "\(bad.stderr)")
    }

    @Test func talkingHeadCSVJSONAndPlot() throws {
        let dir = try freshFolder("analyze-ok")
        let r = try runAffect(["analyze", talkingClip, "-o", "\(dir)/a.csv", "-o", "\(dir)/a.json", "--plot", "\(dir)/a.svg", "--every", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("talking.mp4") && r.stdout.contains("expression: happy"), "\(r.stdout)")
        #expect(!r.stderr.contains("frames"), "no progress bar when standard error is not a terminal")
        let lines = try String(contentsOfFile: "\(dir)/a.csv", encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: ",").map(String.init)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.json"))) as! [String: Any]
        let frames = (json["video"] as! [String: Any])["frames"] as! Int
        #expect(lines.count == frames + 1, "one row per decoded frame")
        let face = header.firstIndex(of: "face")!, expr = header.firstIndex(of: "expression")!
        for (i, l) in lines.dropFirst().enumerated() {
            let cells = l.split(separator: ",", omittingEmptySubsequences: false)
            #expect(cells[0] == Substring(String(i)))
            // --every 2: odd frames are interpolated, not analysed.
            #expect(cells[face] == (i % 2 == 0 ? "1" : ""), "frame \(i)")
            #expect(cells[expr] == "happy")
        }
        #expect((json["tracks"] as! [[String: Any]]).count == 1)
        #expect(json["summary"] is String)
        #expect(try String(contentsOfFile: "\(dir)/a.svg", encoding: .utf8).hasPrefix("<svg"))
        #expect(files(in: dir) == ["a.csv", "a.json", "a.svg"], "no temporary files left")
    }

    /// Outputs appear only when complete: an analysis killed midway leaves nothing. (SIGKILL: a child of the
    /// test runner inherits its blocked SIGINT/SIGTERM, and no handler could run on SIGKILL anyway.)
    @Test func interruptedRunLeavesNoOutput() throws {
        let dir = try freshFolder("analyze-interrupted")
        // The clip looped 30 times (2 minutes, stream copy): long enough that the kill lands mid-analysis on
        // any machine.
        let long = tempPath("talking-looped.mp4")
        let ff = Process()
        ff.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        ff.arguments = ["ffmpeg", "-v", "error", "-y", "-stream_loop", "29", "-i", talkingClip, "-c", "copy", long]
        try ff.run(); ff.waitUntilExit()
        #expect(ff.terminationStatus == 0)
        for sig in [SIGKILL] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: affectBinary())
            p.arguments = ["analyze", long, "-o", "\(dir)/out.csv", "-o", "\(dir)/out.json", "--plot", "\(dir)/out.svg"]
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            Thread.sleep(forTimeInterval: 2)
            #expect(p.isRunning, "the analysis ended before the signal: the test would prove nothing")
            kill(p.processIdentifier, sig)
            p.waitUntilExit()
            #expect(p.terminationStatus != 0)
            #expect(files(in: dir).isEmpty, "signal \(sig) left \(files(in: dir))")
        }
    }

    @Test func truncatedVideoIsAnErrorAndWritesNothing() throws {
        let dir = try freshFolder("analyze-truncated")
        let data = try Data(contentsOf: URL(fileURLWithPath: talkingClip))
        // Cut short: the index (at the end of this file) is lost.
        let cut = "\(dir)/cut.mp4"
        try data.prefix(data.count * 4 / 10).write(to: URL(fileURLWithPath: cut))
        var r = try runAffect(["analyze", cut, "-o", "\(dir)/out.csv"])
        expectBadInput(r, naming: cut, "truncated video")
        // With the index first (faststart), the file opens and the missing frames are noticed.
        let fast = "\(dir)/fast.mp4"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["ffmpeg", "-v", "error", "-y", "-i", talkingClip, "-c", "copy", "-movflags", "faststart", fast]
        try p.run(); p.waitUntilExit()
        if p.terminationStatus == 0 {
            let whole = try Data(contentsOf: URL(fileURLWithPath: fast))
            let cutFast = "\(dir)/cut-fast.mp4"
            try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: cutFast))
            r = try runAffect(["analyze", cutFast, "-o", "\(dir)/out.csv"])
            expectBadInput(r, naming: cutFast, "truncated faststart video")
            #expect(r.stderr.contains("truncated"), "\(r.stderr)")
        } else {
            Issue.record("ffmpeg is not installed (scripts/install-deps.sh installs it)")
        }
        #expect(!files(in: dir).contains { $0.contains("out") }, "no output after a failed run: \(files(in: dir))")
    }

    @Test func transcriptLongerThanTheVideo() throws {
        let dir = try freshFolder("analyze-transcript")
        let srt = "\(dir)/long.srt"
        try "1\n00:00:01,000 --> 00:00:04,000\nhello\n\n2\n00:00:20,000 --> 00:00:31,500\nthis belongs to another video\n"
            .write(toFile: srt, atomically: true, encoding: .utf8)
        let r = try runAffect(["analyze", talkingClip, "--transcript", srt, "-o", "\(dir)/out.json"])
        expectBadInput(r, naming: srt, "transcript longer than the video")
        #expect(r.stderr.contains("31.50"), "\(r.stderr)")
        #expect(files(in: dir) == ["long.srt"])
        let bad = "\(dir)/bad.vtt"
        try "WEBVTT\n\n00:01.000 --> 00:0x.000\nhi\n".write(toFile: bad, atomically: true, encoding: .utf8)
        expectBadInput(try runAffect(["analyze", talkingClip, "--transcript", bad]), naming: bad, "bad WebVTT timing")
    }

    @Test func headWidthMismatch() throws {
        let dir = try freshFolder("analyze-head")
        let head = "\(fixtures)/fusion/head_keras.safetensors"
        let r = try runAffect(["analyze", talkingClip, "--expr-head", head, "-o", "\(dir)/out.csv"])
        expectBadInput(r, naming: head, "head of another backbone")
        #expect(r.stderr.contains("expects 32") && r.stderr.contains("7 features"), "\(r.stderr)")
        #expect(files(in: dir).isEmpty)
    }

    @Test func badUsage() throws {
        for args in [["analyze", "x.mp4", "-o", "out.txt"], ["analyze", "x.mp4", "--tracks", "some"],
                     ["analyze", "x.mp4", "--delta", "2", "--sigma", "1"], ["extract", ".", "-o", "/tmp/x", "--shard", "3/3"]] {
            let r = try runAffect(args)
            #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("error:"), "\(args): \(r.stderr)")
        }
        expectBadInput(try runAffect(["analyze", "/nonexistent/clip.mp4"]), naming: "/nonexistent/clip.mp4", "missing video")
        // The library's configuration errors reach the user worded with this tool's options.
        let audio = try runAffect(["analyze", talkingClip, "--va-head", "audio:\(fixtures)/fusion/head_keras.safetensors"])
        #expect(audio.status == 2 && audio.stderr.contains("which need --audio-model"), "\(audio.stderr)")
        // The head notation `MODALITY[+MODALITY...]:FILE` is parsed here, its errors named by the option.
        let twice = try runAffect(["analyze", talkingClip, "--va-head", "face+face:\(fixtures)/fusion/head_keras.safetensors"])
        #expect(twice.status == 2 && twice.stderr.contains("--va-head face+face:") && twice.stderr.contains("listed twice"), "\(twice.stderr)")
    }
}

@Suite struct ExtractCommandTests {
    @Test func extractIsResumableAndSkipsBadVideos() throws {
        let input = try freshFolder("extract-in"), out = try freshFolder("extract-out")
        try FileManager.default.createDirectory(atPath: "\(input)/sub", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(input)/sub/astronaut.mp4", withDestinationPath: talkingClip)
        try Data("not a video".utf8).write(to: URL(fileURLWithPath: "\(input)/broken.mp4"))
        // --fps 2.5 on a 25 fps clip: frames 0, 10, 20, ... are analysed.
        var r = try runAffect(["extract", input, "-o", out, "--fps", "2.5"])
        #expect(r.status == 2, "the broken video is reported: \(r.stderr)")
        #expect(r.stderr.contains("broken.mp4"), "\(r.stderr)")
        let file = "\(out)/sub/astronaut.mp4.safetensors"
        let st = try SafeTensorsFile(path: file)
        let n = try #require(st.info("times")).shape[0]
        #expect(st.info("features")?.shape == [n, 7] && st.info("logits")?.shape == [n, 7] && st.info("boxes")?.shape == [n, 4])
        let face = try st.tensor("face").array, analyzed = try st.tensor("analyzed").array
        #expect(face == analyzed, "a face on every analysed frame")
        #expect(analyzed.enumerated().allSatisfy { $1 == ($0 % 10 == 0 ? 1 : 0) })
        #expect(st.metadata["affect.extract"]?.contains("\"video\":\"sub\\/astronaut.mp4\"") == true || st.metadata["affect.extract"]?.contains("sub/astronaut.mp4") == true)
        // Second run: the finished video is skipped.
        r = try runAffect(["extract", input, "-o", out, "--every", "10"])
        #expect(r.stdout.contains("extracted 0, already done 1, failed 1"), "\(r.stdout)")
        #expect(files(in: out) == ["sub"] && files(in: "\(out)/sub") == ["astronaut.mp4.safetensors"], "no temporary files")
        // Shards partition the videos.
        var owned = 0
        for i in 0..<3 {
            let s = try runAffect(["extract", input, "-o", try freshFolder("extract-shard\(i)"), "--every", "50", "--shard", "\(i)/3"])
            owned += Int(s.stdout.split(separator: " ")[2])!
        }
        #expect(owned == 2)
    }
}
