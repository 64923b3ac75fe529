import Foundation
import Testing
import AffectKernels

/// Runs ffmpeg to make test media; records an issue (and throws) when it fails.
func ffmpeg(_ args: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["ffmpeg", "-v", "error", "-y"] + args
    p.standardOutput = FileHandle.nullDevice
    try p.run(); p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        Issue.record("ffmpeg \(args.joined(separator: " ")) failed (scripts/install-deps.sh installs ffmpeg)")
        throw CocoaError(.featureUnsupported)
    }
}

/// A one-second 128×96 test pattern at 5 fps (no faces), in the container the extension names.
func makeTestVideo(_ path: String) throws {
    try ffmpeg(["-f", "lavfi", "-i", "testsrc=duration=1:size=128x96:rate=5", "-pix_fmt", "yuv420p", path])
}

/// A one-second 440 Hz tone.
func makeTone(_ path: String) throws { try ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", path]) }

/// A folder that cannot hold files on any account, root included: a path under a regular file.
func unwritableFolder(_ name: String) throws -> String {
    let file = tempPath("\(name)-plain-file.txt")
    try Data("not a folder".utf8).write(to: URL(fileURLWithPath: file))
    return "\(file)/sub"
}

/// The exit-2, one-sentence contract for a rejected option: the message names the option; nothing crashed.
func expectRejectedOption(_ args: [String], naming option: String) throws {
    let r = try runAffect(args)
    #expect(r.status == 2, "\(args): exit \(r.status), \(r.stderr)")
    #expect(r.stderr.hasPrefix("error:") && r.stderr.contains(option), "\(args): \(r.stderr)")
    #expect(!r.stderr.contains("Fatal error"), "\(args): crashed: \(r.stderr)")
}

@Suite(.serialized) struct HostileOptionsTests {
    let weights = "\(fixtures)/models/efficientnet_tiny.safetensors"
    let reference = "\(fixtures)/models/efficientnet_tiny.b1.ref.safetensors"
    let speech = "\(fixtures)/audio/wav2vec2_tiny.safetensors"
    let roberta = "\(fixtures)/text/tiny_roberta_go.safetensors"
    let vocab = "\(fixtures)/text/bert_vocab.txt"

    /// Every numeric option outside its range: exit 2 naming the option, before any work.
    @Test func numericOptionsOutOfRange() throws {
        let dir = try freshFolder("hostile-options")
        let video = "\(dir)/clip.mp4", wav = "\(dir)/tone.wav", out = "\(dir)/out.safetensors"
        try makeTestVideo(video)
        try makeTone(wav)
        let cases: [([String], String)] = [
            (["bench", weights, "--threads", "0"], "--threads"),
            (["bench", weights, "--threads=-1"], "--threads"),
            (["bench", weights, "--threads", "100000"], "--threads"),
            (["bench", weights, "--seconds", "0", "--min-runs", "0"], "--min-runs"),
            (["bench", weights, "--seconds", "0", "--profile", "--profile-shapes=-1"], "--profile-shapes"),
            (["bench", weights, "--seconds", "nan"], "--seconds"),
            (["bench", weights, "--batch", "0"], "--batch"),
            (["bench", weights, "--batch", "1000000"], "--batch"),
            (["bench", weights, "--audio-seconds", "1e300"], "--audio-seconds"),
            (["bench", weights, "--tokens", "0"], "--tokens"),
            (["verify", weights, reference, "--tolerance", "nan"], "--tolerance"),
            (["verify", weights, reference, "--tolerance=-1"], "--tolerance"),
            (["run", weights, reference, "-o", out, "--threads", "257"], "--threads"),
            (["transcribe", wav, "--model", speech, "--window", "nan"], "--window"),
            (["transcribe", wav, "--model", speech, "--window", "1e300"], "--window"),
            (["transcribe", wav, "--model", speech, "--window", "2", "--overlap", "5"], "--overlap"),
            (["transcribe", wav, "--model", speech, "--overlap=-1"], "--overlap"),
            (["embed-audio", wav, "--model", speech, "--layer=-1", "-o", out], "--layer"),
            (["embed-audio", wav, "--model", speech, "--layer", "99", "-o", out], "--layer"),
            (["decode-audio", wav, "-o", "\(dir)/d.wav", "--sample-rate", "0"], "--sample-rate"),
            (["analyze", video, "--delta", "9223372036854775807"], "--delta"),
            (["analyze", video, "--delta=-1"], "--delta"),
            (["analyze", video, "--sigma", "1e300"], "--sigma"),
            (["analyze", video, "--sigma", "1e-300"], "--sigma"),
            (["analyze", video, "--sigma", "nan"], "--sigma"),
            (["analyze", video, "--every", "0"], "--every"),
            (["analyze", video, "--every", "9223372036854775807"], "--every"),
            (["analyze", video, "--fps", "nan"], "--fps"),
            (["analyze", video, "--fps", "1e300"], "--fps"),
            (["analyze", video, "--min-face", "nan"], "--min-face"),
            (["analyze", video, "--min-face", "inf"], "--min-face"),
            (["analyze", video, "--min-track", "0"], "--min-track"),
            (["analyze", video, "--t", "1.5"], "--t"),
            (["analyze", video, "--w", "0.5,2"], "--w"),
            (["analyze", video, "--au-thresholds", "0.5"], "--au-thresholds"),
            (["analyze", video, "--audio-layer=-1"], "--audio-layer"),
            (["faces", video, "--every", "0"], "--every"),
            (["faces", video, "--fps", "0"], "--fps"),
            (["faces", video, "--min-face", "1e30"], "--min-face"),
            (["faces", video, "--time-repeats", "100000000"], "--time-repeats"),
            (["faces", video, "--save-crops", "\(dir)/crops", "--crop-size", "0"], "--crop-size"),
            (["faces", video, "--save-crops", "\(dir)/crops", "--margin", "nan"], "--margin"),
            (["extract", dir, "-o", "\(dir)/x", "--shard", "5/3"], "--shard"),
            (["extract", dir, "-o", "\(dir)/x", "--every", "0"], "--every"),
            (["extract", dir, "-o", "\(dir)/x", "--fps", "inf"], "--fps"),
            (["extract", dir, "-o", "\(dir)/x", "--min-face", "5"], "--min-face"),
            (["tokenize", vocab, "--max-length", "1"], "--max-length"),
            (["tokenize", vocab, "--max-length", "9999999999"], "--max-length"),
            (["embed-text", "--model", roberta, "--long", "windows", "--overlap", "100000", "hello", "--format", "json"], "--overlap"),
            (["embed-text", "--model", roberta, "--long", "windows", "--overlap=-5", "hello", "--format", "json"], "--overlap"),
        ]
        for (args, option) in cases { try expectRejectedOption(args, naming: option) }
        // Options are checked before any output is created.
        #expect(files(in: dir) == ["clip.mp4", "tone.wav"], "\(files(in: dir))")
        // The window overlap of embed-text: the largest one that still steps is accepted.
        let ok = try runAffect(["embed-text", "--model", roberta, "--long", "windows", "--overlap", "0", "hello", "--format", "json"])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    /// The default thread count follows the CPU affinity; --help states the bound.
    @Test func threadsFollowAffinityAndAreBounded() throws {
        let help = try runAffect(["bench", "--help"])
        #expect(help.stdout.contains("1 to \(Threading.maxThreads)"), "\(help.stdout)")
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["taskset", "-c", "0", affectBinary(), "bench", weights, "--seconds", "0", "--min-runs", "1"]
        p.standardOutput = out; p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(text.contains("threads:    1 "), "one CPU in the affinity mask: \(text)")
        #expect(Threading.availableCores >= 1 && Threading.availableCores <= ProcessInfo.processInfo.processorCount)
    }

    /// An output that is an input (same path, a symbolic link to it, or a hard link) is refused; the input
    /// is intact.
    @Test func outputsEqualToInputsAreRefused() throws {
        let dir = try freshFolder("hostile-same-file")
        let ref = "\(dir)/ref.safetensors", wav = "\(dir)/s.wav"
        try FileManager.default.copyItem(atPath: reference, toPath: ref)
        try makeTone(wav)
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/link.wav", withDestinationPath: wav)
        try FileManager.default.linkItem(atPath: ref, toPath: "\(dir)/hard.safetensors")
        let before = (ref: try Data(contentsOf: URL(fileURLWithPath: ref)), wav: try Data(contentsOf: URL(fileURLWithPath: wav)))
        for args in [["run", weights, ref, "-o", ref], ["run", weights, ref, "-o", "\(dir)/hard.safetensors"],
                     ["run", ref, ref, "-o", "\(dir)/../\(URL(fileURLWithPath: dir).lastPathComponent)/ref.safetensors"],
                     ["decode-audio", wav, "-o", wav], ["decode-audio", wav, "-o", "\(dir)/link.wav"],
                     ["embed-audio", wav, "--model", speech, "-o", wav],
                     ["embed-text", "--model", roberta, "--file", ref, "-o", ref]] {
            let r = try runAffect(args)
            #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains("input"), "\(args): \(r.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: ref)) == before.ref)
        #expect(try Data(contentsOf: URL(fileURLWithPath: wav)) == before.wav)
        #expect(files(in: dir) == ["hard.safetensors", "link.wav", "ref.safetensors", "s.wav"], "\(files(in: dir))")
        // The same output twice is refused too.
        let twice = try runAffect(["analyze", "\(dir)/v.mp4", "-o", "\(dir)/a.csv", "-o", "\(dir)/./a.csv"])
        #expect(twice.status == 2 && twice.stderr.contains("a.csv"), "\(twice.stderr)")
    }

    /// Several outputs: all or none. One unwritable output means no output at all, before any work.
    @Test func multipleOutputsAllOrNone() throws {
        let dir = try freshFolder("hostile-all-or-none")
        let video = "\(dir)/clip.mp4"
        try makeTestVideo(video)
        let bad = "\(try unwritableFolder("all-or-none"))/x.csv"
        for outs in [["-o", "\(dir)/ok.csv", "-o", bad], ["-o", "\(dir)/ok.csv", "--plot", "\(bad).svg"],
                     ["-o", bad, "-o", "\(dir)/ok.json"]] {
            let r = try runAffect(["analyze", video] + outs)
            #expect(r.status == 2, "\(outs): \(r.stderr)")
            #expect(r.stderr.contains("x.csv") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(files(in: dir) == ["clip.mp4"], "\(outs): \(files(in: dir))")
        }
        let r = try runAffect(["analyze", video, "-o", "\(dir)/ok.csv", "-o", "\(dir)/ok.json", "--plot", "\(dir)/ok.svg"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(files(in: dir) == ["clip.mp4", "ok.csv", "ok.json", "ok.svg"], "no temporary files: \(files(in: dir))")
    }

    /// Temporary files of a killed run (their process is gone) are removed by the next write into their
    /// folder; those of a live process, and other hidden files, are left alone.
    @Test func staleTemporaryFilesAreCleaned() throws {
        let dir = try freshFolder("hostile-stale")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run(); p.waitUntilExit()
        let dead = p.processIdentifier
        let stale = ".out.safetensors.\(dead)-1\(AtomicFile.temporarySuffix)"
        let live = ".other.csv.\(getpid())-3\(AtomicFile.temporarySuffix)"
        for name in [stale, live, ".keep.me"] { try Data("partial".utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name)")) }
        #expect(AtomicFile.ownerPid(ofTemporary: stale) == dead)
        #expect(AtomicFile.ownerPid(ofTemporary: ".keep.me") == nil)
        let r = try runAffect(["run", weights, reference, "-o", "\(dir)/out.safetensors"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(files(in: dir) == [".keep.me", live, "out.safetensors"], "\(files(in: dir))")
    }

    /// An output killed while being written leaves no file under its final name and, once the next run has
    /// passed, no temporary file either; an interrupted (SIGTERM) run removes its temporary file itself.
    @Test func interruptedDecodeLeavesNothing() throws {
        let dir = try freshFolder("hostile-interrupted")
        let long = "\(dir)/long.flac"
        try ffmpeg(["-f", "lavfi", "-i", "sine=frequency=300:duration=600:sample_rate=48000", long])
        for sig in [SIGTERM, SIGKILL] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: affectBinary())
            p.arguments = ["decode-audio", long, "-o", "\(dir)/out.wav", "--sample-rate", "48000"]
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            // Wait until the temporary file appears (the decode is done, the write under way), then stop it.
            let deadline = Date().addingTimeInterval(120)
            while !files(in: dir).contains(where: { $0.hasSuffix(AtomicFile.temporarySuffix) }) && p.isRunning && Date() < deadline {
                usleep(2000)
            }
            kill(p.processIdentifier, sig)
            p.waitUntilExit()
            #expect(!files(in: dir).contains("out.wav"), "signal \(sig): a partial output under the final name")
            if sig == SIGTERM {
                #expect(files(in: dir) == ["long.flac"], "SIGTERM left \(files(in: dir))")
            }
        }
        // The next write into the folder removes what SIGKILL left.
        let r = try runAffect(["decode-audio", "\(dir)/long.flac", "-o", "\(dir)/short.flac", "--sample-rate", "1000"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(files(in: dir) == ["long.flac", "short.flac"], "\(files(in: dir))")
    }

    /// `extract`: videos of one name in two containers both get their output; a bad option or an unusable
    /// output folder is one sentence and creates nothing.
    @Test func extractKeepsExtensionsAndChecksFirst() throws {
        let input = try freshFolder("hostile-extract-in"), out = tempPath("hostile-extract-out")
        try? FileManager.default.removeItem(atPath: out)
        try makeTestVideo("\(input)/clip.mp4")
        try makeTestVideo("\(input)/clip.mkv")
        var r = try runAffect(["extract", input, "-o", out, "--every", "0"])
        #expect(r.status == 2 && r.stderr.contains("--every"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "the output folder is created only after the options are checked")
        r = try runAffect(["extract", input, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("extracted 2, already done 0, failed 0"), "\(r.stdout)")
        #expect(files(in: out) == ["clip.mkv.safetensors", "clip.mp4.safetensors"], "\(files(in: out))")
        r = try runAffect(["extract", input, "-o", out])
        #expect(r.stdout.contains("extracted 0, already done 2, failed 0"), "\(r.stdout)")
        let bad = try unwritableFolder("extract")
        r = try runAffect(["extract", input, "-o", bad])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(bad), "\(r.stderr)")
        #expect(!r.stderr.contains("Error Domain") && !r.stderr.contains("NSCocoaError"), "\(r.stderr)")
    }
}
