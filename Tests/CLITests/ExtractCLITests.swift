import Foundation
import Testing
import AffectKernels

/// A head file with one linear layer `weight` `[out, in]` (no bias) and a linear output, as `affect analyze`
/// reads it: with one-hot rows it copies chosen feature columns into its outputs exactly.
func writeLinearHead(_ path: String, weight: [[Float]]) throws {
    let out = weight.count, width = weight[0].count
    let config = #"{"input_width": \#(width), "layers": [{"weight": "0.weight", "layout": "out_in", "activation": "linear"}], "output": "linear"}"#
    var w = SafeTensorsWriter(metadata: ["affect.format": "1", "affect.arch": "head", "affect.config": config])
    w.add("0.weight", shape: [out, width], floats: weight.flatMap { $0 })
    try w.write(to: path)
}

/// `[out, width]` rows picking the columns `columns` of a `width`-wide input.
func oneHot(_ columns: [Int], width: Int) -> [[Float]] {
    columns.map { c in (0..<width).map { $0 == c ? 1 : 0 } }
}

let tinyAudio = "\(fixtures)/audio/wav2vec2_tiny.safetensors"
let tinyText = "\(fixtures)/text/tiny_roberta_go.safetensors"

@Suite(.serialized) struct ExtractModalitiesTests {
    /// `extract` with every modality writes the features `analyze` feeds its heads: heads that copy feature
    /// columns give, in analyze's JSON, exactly the extract file's values (audio and text on every frame,
    /// face on the analysed frames). `clip.mp4` and `clip.mkv` of one folder both get their file.
    @Test func extractGivesAnalyzeFeatures() throws {
        let input = try freshFolder("extract-mod-in"), transcripts = try freshFolder("extract-mod-tr")
        let out = tempPath("extract-mod-out"), dir = try freshFolder("extract-mod-heads")
        try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.createSymbolicLink(atPath: "\(input)/clip.mp4", withDestinationPath: talkingClip)
        try FileManager.default.copyItem(atPath: talkingClip, toPath: "\(input)/clip.mkv")
        try FileManager.default.copyItem(atPath: "\(testMedia)/speech.txt", toPath: "\(transcripts)/clip.txt")
        let r = try runAffect(["extract", input, "-o", out, "--every", "3", "--audio-model", tinyAudio,
                               "--text-model", tinyText, "--transcript-dir", transcripts])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(files(in: out) == ["clip.mkv.safetensors", "clip.mp4.safetensors"], "\(files(in: out))")
        let st = try SafeTensorsFile(path: "\(out)/clip.mp4.safetensors")
        let n = try #require(st.info("times")).shape[0]
        #expect(st.info("audio")?.shape == [n, 32] && st.info("text")?.shape == [n, 8], "\(st.names)")
        #expect(st.info("text.segments")?.shape == [1, 8] && st.info("text.segment_times")?.shape == [1, 2])
        #expect(st.metadata["affect.extract"]?.contains("\"labels\"") == true)
        let audio = try st.tensor("audio").array, text = try st.tensor("text").array
        let face = try st.tensor("face").array, features = try st.tensor("features").array

        let audioCols = [0, 3, 5, 8, 11, 13, 17, 20, 23, 26, 29, 31], textCols = [0, 1, 2, 3, 4, 5, 6, 7], faceCols = [0, 3]
        try writeLinearHead("\(dir)/au_audio.safetensors", weight: oneHot(audioCols, width: 32))
        try writeLinearHead("\(dir)/expr_text.safetensors", weight: oneHot(textCols, width: 8))
        try writeLinearHead("\(dir)/va_face.safetensors", weight: oneHot(faceCols, width: 7))
        let a = try runAffect(["analyze", "\(input)/clip.mp4", "--every", "3", "--audio-model", tinyAudio, "--text-model", tinyText,
                               "--transcript", "\(transcripts)/clip.txt", "--au-head", "audio:\(dir)/au_audio.safetensors",
                               "--expr-head", "text:\(dir)/expr_text.safetensors", "--va-head", "face:\(dir)/va_face.safetensors",
                               "-o", "\(dir)/a.json"])
        #expect(a.status == 0, "\(a.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.json"))) as! [String: Any]
        let rows = try #require((json["tracks"] as? [[String: Any]])?.first?["rows"] as? [[String: Any]])
        #expect(rows.count == n)
        var faceRows = 0
        for (i, row) in rows.enumerated() {
            let au = (row["au"] as! [Double]).map(Float.init), expr = (row["expr"] as! [Double]).map(Float.init)
            #expect(au == audioCols.map { audio[i * 32 + $0] }, "audio, frame \(i)")
            #expect(expr == textCols.map { text[i * 8 + $0] }, "text, frame \(i)")
            if face[i] == 1 {
                faceRows += 1
                #expect(Float(row["valence"] as! Double) == features[i * 7 + 0] && Float(row["arousal"] as! Double) == features[i * 7 + 3], "face, frame \(i)")
            }
        }
        #expect(faceRows == (n + 2) / 3)
        // Rerun: both complete files are skipped; asking for audio only still counts them done.
        let again = try runAffect(["extract", input, "-o", out, "--audio-model", tinyAudio])
        #expect(again.stdout.contains("extracted 0, already done 2, failed 0"), "\(again.stdout)")
        // An output damaged after it was written (here `features` one row short of its frames, the rest intact)
        // was counted as done; it is redone.
        let mkv = try SafeTensorsFile(path: "\(out)/clip.mkv.safetensors")
        var damaged = SafeTensorsWriter(metadata: ["affect.extract": try #require(mkv.metadata["affect.extract"])])
        for name in ["times", "analyzed", "face", "boxes", "logits", "audio", "text"] {
            let t = try mkv.tensor(name)
            damaged.add(name, shape: t.shape, floats: t.array)
        }
        damaged.add("features", shape: [n - 1, 7], floats: Array(try mkv.tensor("features").array.prefix((n - 1) * 7)))
        try damaged.write(to: "\(out)/clip.mkv.safetensors")
        let redo = try runAffect(["extract", input, "-o", out, "--audio-model", tinyAudio])
        #expect(redo.stdout.contains("extracted 1, already done 1, failed 0"), "\(redo.stdout) \(redo.stderr)")
        #expect(try SafeTensorsFile(path: "\(out)/clip.mkv.safetensors").info("features")?.shape == [n, 7])
    }

    /// `--asr`: the transcript comes from the speech model (here a tiny CTC model: gibberish words, but words with
    /// times); its segments are embedded exactly as `analyze --asr` embeds them for its heads.
    @Test func extractWithSpeechRecognitionGivesAnalyzeText() throws {
        let input = try freshFolder("extract-asr-in"), dir = try freshFolder("extract-asr-heads")
        let out = tempPath("extract-asr-out")
        try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.createSymbolicLink(atPath: "\(input)/clip.mp4", withDestinationPath: talkingClip)
        let r = try runAffect(["extract", input, "-o", out, "--every", "5", "--text-model", tinyText, "--asr", tinyAudio])
        #expect(r.status == 0, "\(r.stderr)")
        let st = try SafeTensorsFile(path: "\(out)/clip.mp4.safetensors")
        let n = try #require(st.info("times")).shape[0]
        let segments = try #require(st.info("text.segment_times")).shape[0]
        #expect(segments >= 1 && st.info("text")?.shape == [n, 8], "\(st.names)")
        let text = try st.tensor("text").array
        #expect(text.contains { $0 != 0 }, "no text features")

        try writeLinearHead("\(dir)/expr_text.safetensors", weight: oneHot(Array(0..<8), width: 8))
        let a = try runAffect(["analyze", "\(input)/clip.mp4", "--every", "5", "--text-model", tinyText, "--asr", tinyAudio,
                               "--expr-head", "text:\(dir)/expr_text.safetensors", "-o", "\(dir)/a.json"])
        #expect(a.status == 0, "\(a.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.json"))) as! [String: Any]
        #expect((json["transcript"] as? [[String: Any]])?.count == segments)
        let rows = try #require((json["tracks"] as? [[String: Any]])?.first?["rows"] as? [[String: Any]])
        #expect(rows.count == n)
        for (i, row) in rows.enumerated() {
            let expr = (row["expr"] as! [Double]).map(Float.init)
            #expect(expr == Array(text[(i * 8)..<(i * 8 + 8)]), "text, frame \(i)")
        }
    }

    /// Options are checked before the output folder exists; each error is one sentence.
    @Test func badModalityOptionsCreateNothing() throws {
        let input = try freshFolder("extract-bad-in"), transcripts = try freshFolder("extract-bad-tr")
        try FileManager.default.createSymbolicLink(atPath: "\(input)/clip.mp4", withDestinationPath: talkingClip)
        let out = tempPath("extract-bad-out")
        try? FileManager.default.removeItem(atPath: out)
        let cases: [([String], String)] = [
            (["--transcript-dir", transcripts], "add --text-model"),
            (["--text-model", tinyText], "--text-model needs a --transcript-dir or --asr"),
            (["--text-model", tinyText, "--transcript-dir", transcripts], "no transcript for 1 video"),
            (["--text-model", tinyText, "--transcript-dir", "\(transcripts)/none"], "no such folder"),
            (["--audio-layer", "1"], "--audio-layer applies to --audio-model"),
            (["--audio-model", tinyAudio, "--audio-layer", "7"], "--audio-layer must be between 0 and 2"),
            (["--text-model", tinyText, "--transcript-dir", transcripts, "--asr", tinyAudio], "not both"),
            (["--audio-model", "\(fixtures)/media/speech.txt"], "speech.txt"),
        ]
        for (args, message) in cases {
            let r = try runAffect(["extract", input, "-o", out] + args)
            #expect(r.status == 2 && r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one sentence: \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out), "\(args) created the output folder")
        }
    }
}
