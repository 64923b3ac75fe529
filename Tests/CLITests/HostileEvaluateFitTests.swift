import Foundation
import Testing
import AffectKernels

/// Hostile inputs to `evaluate`, `fit` and `decode-audio` (issue #16): each is one sentence naming the file
/// or option, exit 2, and never a trap, a NaN score or a score of nothing.
@Suite(.serialized) struct HostileEvaluateFitTests {
    /// Writes `text` to a fresh file of `dir` and returns its path.
    func file(_ dir: String, _ name: String, _ text: String) throws -> String {
        let path = "\(dir)/\(name)"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func expectRejected(_ args: [String], naming: String, _ comment: String) throws {
        let r = try runAffect(args)
        #expect(r.status == 2, "\(comment): exit \(r.status), stdout \(r.stdout), stderr \(r.stderr)")
        #expect(r.stderr.contains(naming), "\(comment): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(comment): not one sentence: \(r.stderr)")
        #expect(!r.stdout.contains("score="), "\(comment): printed a score: \(r.stdout)")
    }

    @Test func evaluateRefusesHostileFiles() throws {
        let d = try freshFolder("hostile-evaluate")
        let gt = try file(d, "gt.csv", "frame,expr\n0,1\n1,2\n2,3\n")
        let vaGT = try file(d, "va_gt.csv", "valence,arousal\n0.1,0.2\n0.5,-0.5\n-0.3,0.4\n")
        let au = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
        let auP = try file(d, "au_p.csv", au + "\n1,0,1,0,1,0,1,0,1,0,1,0\n0,1,0,1,0,1,0,1,0,1,0,1\n")
        let emi = "video,Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy"
        let emiGT = try file(d, "emi_gt.csv", emi + "\na,0.1,0.2,0.3,0.4,0.5,0.6\nb,0.6,0.5,0.4,0.3,0.2,0.1\nc,0.3,0.3,0.1,0.9,0.2,0.5\n")
        let ahP = try file(d, "ah_p.csv", "frame,ah\n0,0.9\n1,0.1\n2,0.8\n")
        let cases: [(name: String, text: String, truth: String?, task: String, naming: String)] = [
            // Int(Double) of a class past Int's range trapped (exit 132).
            ("huge.csv", "frame,expr\n0,99999999999999999999\n1,2\n2,3\n", nil, "expr", "huge.csv: line 2"),
            ("negative.csv", "frame,expr\n0,-3\n1,2\n2,3\n", nil, "expr", "negative.csv: line 2"),
            ("minus1.csv", "frame,expr\n0,-1\n1,2\n2,3\n", nil, "expr", "minus1.csv: line 2"),
            // A header and no rows scored nothing and printed score=0.
            ("header.csv", "frame,expr\n", "header.csv", "expr", "header.csv: the file has a header but no rows"),
            ("unlabelled.csv", "frame,expr\n0,-1\n1,-1\n", "unlabelled_gt.csv", "expr", "no row to score"),
            ("dupframe.csv", "frame,expr\n0,1\n0,2\n2,3\n", "dupframe.csv", "expr", "dupframe.csv: line 3: frame `0` appears twice"),
            ("dupcol.csv", "frame,expr,EXPR\n0,1,5\n1,2,5\n2,3,5\n", nil, "expr", "dupcol.csv: column `EXPR` appears twice"),
            ("unclosed.csv", "frame,expr\n\"0,1\n1,2\n2,3\n", nil, "expr", "unclosed.csv: line 2: a quoted field is never closed"),
            ("nan.csv", "frame,expr\n0,1\n1,nan\n2,3\n", nil, "expr", "nan.csv: line 3"),
            // Both constant gave `score=-nan`; a constant column's Pearson r is undefined, not a number.
            ("va_const.csv", "valence,arousal\n0.5,0.5\n0.5,0.5\n0.5,0.5\n", "va_const.csv", "va", "undefined"),
            ("va_gt_range.csv", "valence,arousal\n0.1,0.2\n3,-0.5\n-0.3,0.4\n", "va_gt_range.csv", "va", "va_gt_range.csv: line 3"),
            ("va_huge.csv", "valence,arousal\n1e300,1e300\n-1e300,-1e300\n1e300,1e300\n", "va_gt_range2.csv", "va", "va_gt_range2.csv"),
            ("va_minus5.csv", "valence,arousal\n-5,0.2\n-5,-0.5\n-5,0.4\n", "va_minus5.csv", "va", "unlabelled (−5)"),
            ("au_gt.csv", au + "\n0.7,0,1,0,1,0,1,0,1,0,1,0\n0,1,0,1,0,1,0,1,0,1,0,1\n", "au_gt.csv", "au", "au_gt.csv: line 2, `AU1` is 0.7"),
            ("emi_const.csv", emi + "\na,0.1,0.2,0.3,0.4,0.5,0.6\nb,0.1,0.5,0.4,0.3,0.2,0.1\nc,0.1,0.3,0.1,0.9,0.2,0.5\n", nil, "emi", "`Admiration` is 0.1 on every scored row"),
            ("emi_one.csv", emi + "\na,0.1,0.2,0.3,0.4,0.5,0.6\n", "emi_one.csv", "emi", "at least 2 videos"),
            ("ah_gt.csv", "frame,ah\n0,1\n1,0\n2,0.3\n", "ah_gt.csv", "ah", "ah_gt.csv: line 4"),
            ("ah_none.csv", "frame,ah\n0,-1\n1,-1\n2,-1\n", "ah_none.csv", "ah", "no row to score"),
        ]
        for c in cases {
            let path = try file(d, c.name, c.text)
            let truthPath: String
            switch c.truth {
            case c.name?: truthPath = path
            case let t?: truthPath = try file(d, t, c.text)
            case nil: truthPath = c.task == "va" ? vaGT : c.task == "emi" ? emiGT : c.task == "au" ? auP : c.task == "ah" ? ahP : gt
            }
            let predictions = c.truth == nil || c.truth == c.name ? path
                : c.task == "va" ? vaGT : c.task == "au" ? auP : c.task == "ah" ? ahP : c.task == "emi" ? emiGT : gt
            try expectRejected(["evaluate", predictions, truthPath, "--task", c.task], naming: c.naming, c.name)
        }
        // A file over the size limit is refused without being read whole; a folder is not a CSV file.
        let huge = "\(d)/huge_file.csv"
        FileManager.default.createFile(atPath: huge, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: huge))
        try h.truncate(atOffset: 257 << 20)     // sparse: no disk space taken
        try h.close()
        try expectRejected(["evaluate", huge, gt, "--task", "expr"], naming: "over 256 MiB", "huge file")
        try expectRejected(["evaluate", d, gt, "--task", "expr"], naming: "is a folder", "folder")
    }

    @Test func evaluateReadsQuotingBOMAndCRLF() throws {
        let d = try freshFolder("hostile-evaluate-ok")
        let gt = try file(d, "gt.csv", "frame,expr\n0,1\n1,2\n2,3\n")
        let plain = try runAffect(["evaluate", try file(d, "p.csv", "frame,expr\n0,1\n1,2\n2,0\n"), gt, "--task", "expr"])
        #expect(plain.status == 0, "\(plain.stderr)")
        // The same predictions with a byte-order mark, CRLF, quoted fields and rows in another order.
        let odd = try file(d, "odd.csv", "\u{FEFF}\"frame\",\"expr\"\r\n\"2\", 0\r\n\r\n1,\"2\"\r\n0 ,1\r\n")
        let r = try runAffect(["evaluate", odd, gt, "--task", "expr"])
        #expect(r.status == 0 && r.stdout.split(separator: "\n").last == plain.stdout.split(separator: "\n").last, "\(r.stdout) \(r.stderr)")
        // A quoted header name with a comma and a doubled quote; the AH −1 ground truth frame is skipped.
        let ah = try runAffect(["evaluate", try file(d, "ah.csv", "frame,\"a,\"\"b\",ah\n0,x,0.9\n1,x,0.1\n2,x,0.1\n"),
                                try file(d, "ah_gt.csv", "frame,ah\n0,1\n1,0\n2,-1\n"), "--task", "ah"])
        #expect(ah.status == 0 && ah.stdout.contains("(2 rows scored, 1 skipped") && ah.stdout.hasSuffix("score=1.000000\n"), "\(ah.stdout) \(ah.stderr)")
    }

    /// A features file that would need more memory than any machine has: refused before allocating.
    @Test func fitRefusesHeadsTooLargeToTrain() throws {
        let d = try freshFolder("hostile-fit")
        var w = SafeTensorsWriter()
        let width = 1 << 20
        w.add("features", shape: [2, width], floats: (0..<(2 * width)).map { Float($0 % 7) })
        try w.write(to: "\(d)/wide.safetensors")
        let labels = try file(d, "l.txt", "0\n1\n")
        let out = "\(d)/h.safetensors"
        try expectRejected(["fit", "--task", "expr", "--features", "\(d)/wide.safetensors", "--labels", labels, "--hidden", "65536", "-o", out],
                           naming: "--hidden", "2^20 × 65536 head")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func fitRefusesDamagedExtractFilesAndLists() throws {
        let d = try freshFolder("hostile-fit-extract")
        let ex = "\(d)/ex", ann = "\(d)/ann"
        for f in [ex, ann] { try FileManager.default.createDirectory(atPath: f, withIntermediateDirectories: true) }
        for (v, face) in [("v1", [Float](repeating: 1, count: 4)), ("v2", [1, .nan, 1, 1])] {
            var w = SafeTensorsWriter()
            w.add("features", shape: [4, 3], floats: (0..<12).map { Float($0) / 12 })
            w.add("face", shape: [4], floats: face)
            try w.write(to: "\(ex)/\(v).mp4.safetensors")
            _ = try file(ann, "\(v).txt", "Neutral\n0\n1\n2\n3\n")
        }
        let out = "\(d)/h.safetensors"
        let base = ["fit", "--task", "expr", "--extract-dir", ex, "--annotations", ann, "-o", out, "--epochs", "1"]
        // A `face` flag that is neither 0 nor 1 was read as "no face": its frames silently left out.
        try expectRejected(base + ["--train-list", try file(d, "both.txt", "v1\nv2\n")], naming: "v2.mp4.safetensors: `face` is nan", "NaN face")
        // `.` and `..` named the current or parent folder's name as a video.
        for line in [".", "..", "a/..", "v1/"] {
            try expectRejected(base + ["--train-list", try file(d, "dots.txt", "\(line)\n")], naming: "is not a video name", line)
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        let ok = try runAffect(base + ["--train-list", try file(d, "one.txt", "v1\n")])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    /// decode-audio streams to its output: a long file never has to fit in memory (checked here for the
    /// result: the streamed file holds every sample).
    @Test func decodeAudioStreamsEverySample() throws {
        let d = try freshFolder("hostile-decode")
        let src = "\(d)/tone.wav"
        try ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=7", "-ar", "16000", src])
        for ext in ["wav", "flac"] {
            let r = try runAffect(["decode-audio", src, "-o", "\(d)/out.\(ext)"])
            #expect(r.status == 0 && r.stdout.contains(": 112000 samples"), "\(ext): \(r.stdout) \(r.stderr)")
            let back = try runAffect(["decode-audio", "\(d)/out.\(ext)", "-o", "\(d)/again.\(ext == "wav" ? "flac" : "wav")"])
            #expect(back.status == 0 && back.stdout.contains(": 112000 samples"), "\(ext): \(back.stdout) \(back.stderr)")
        }
        // A 3 KB WAV whose header says 1 Hz decoded to 1600 s (25.6 M samples at 16 kHz; transcribe ran for minutes).
        var wav = Data("RIFF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { wav.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { wav.append(contentsOf: $0) } }
        u32(36 + 3200); wav.append(contentsOf: Array("WAVEfmt ".utf8)); u32(16); u16(1); u16(1); u32(1); u32(2); u16(2); u16(16)
        wav.append(contentsOf: Array("data".utf8)); u32(3200); wav.append(Data(count: 3200))
        try wav.write(to: URL(fileURLWithPath: "\(d)/one_hz.wav"))
        for args in [["decode-audio", "\(d)/one_hz.wav", "-o", "\(d)/x.wav"],
                     ["embed-audio", "\(d)/one_hz.wav", "--model", "\(fixtures)/audio/wav2vec2_tiny.safetensors", "-o", "\(d)/x.safetensors"]] {
            let r = try runAffect(args)
            #expect(r.status == 2 && r.stderr.contains("one_hz.wav: the audio stream's sample rate is 1 Hz"), "\(args[0]): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(d)/x.wav") && !FileManager.default.fileExists(atPath: "\(d)/x.safetensors"))
    }
}
