import Foundation
import Testing
import AffectKernels

/// A small seeded generator for the synthetic sets these tests make (SplitMix64).
struct TestRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
    /// Roughly normal (sum of uniforms), mean 0, standard deviation 1.
    mutating func normal() -> Float { (0..<12).reduce(Float(0)) { s, _ in s + unit() } - 6 }
}

/// ABAW expression classes used by the synthetic task, and the mini-Xception class index of each
/// (angry, disgust, fear, happy, sad, surprise, neutral).
let synthClasses = [0, 1, 4, 5]
let miniXceptionIndex = [0: 6, 1: 0, 4: 3, 5: 4]

/// Macro F1 over the classes present in `truth` or `predicted`.
func macroF1(_ truth: [Int], _ predicted: [Int]) -> Double {
    let classes = Set(truth).union(predicted)
    return classes.map { c -> Double in
        let tp = zip(truth, predicted).filter { $0 == c && $1 == c }.count
        let fp = zip(truth, predicted).filter { $0 != c && $1 == c }.count
        let fn = zip(truth, predicted).filter { $0 == c && $1 != c }.count
        return tp == 0 ? 0 : 2 * Double(tp) / Double(2 * tp + fp + fn)
    }.reduce(0, +) / Double(classes.count)
}

@Suite(.serialized) struct FitCommandTests {
    /// A synthetic video the way `affect extract` writes it (widths of the committed mini-Xception, tiny
    /// wav2vec 2.0 and tiny RoBERTa): the class changes every 25 frames; face and audio features are the
    /// class's centroid plus noise, text is noise; every 9th frame has no face. Returns the labels.
    func writeVideo(_ path: String, frames: Int, random r: inout TestRandom, centroids: [Int: [Float]]) throws -> [Int] {
        var labels: [Int] = [], face: [Float] = [], features: [Float] = [], logits: [Float] = [], audio: [Float] = [], text: [Float] = []
        var c = synthClasses[Int(r.next() % 4)]
        for i in 0..<frames {
            if i % 25 == 0 { c = synthClasses[Int(r.next() % 4)] }
            labels.append(c)
            let has = i % 9 != 4
            face.append(has ? 1 : 0)
            let centre = centroids[c]!
            features += (0..<7).map { has ? centre[$0] + 1.2 * r.normal() : 0 }
            // The pre-trained model is right on about two frames in three.
            let guess = r.unit() < 0.65 ? miniXceptionIndex[c]! : Int(r.next() % 7)
            logits += (0..<7).map { has ? ($0 == guess ? 2.5 : 0) + 0.3 * r.normal() : 0 }
            audio += (0..<32).map { centre[$0 % 7] * 0.4 + r.normal() }
            text += (0..<8).map { _ in r.normal() }
        }
        let labelsJSON = #"["angry","disgust","fear","happy","sad","surprise","neutral"]"#
        var w = SafeTensorsWriter(metadata: ["affect.extract": #"{"video": "\#(URL(fileURLWithPath: path).lastPathComponent)", "labels": \#(labelsJSON)}"#])
        w.add("times", shape: [frames], floats: (0..<frames).map { Float($0) / 25 })
        w.add("face", shape: [frames], floats: face)
        w.add("features", shape: [frames, 7], floats: features)
        w.add("logits", shape: [frames, 7], floats: logits)
        w.add("audio", shape: [frames, 32], floats: audio)
        w.add("text", shape: [frames, 8], floats: text)
        try w.write(to: path)
        return labels
    }

    /// The synthetic split: 4 training and 2 validation videos, annotations in ABAW format.
    func makeSplit(_ name: String) throws -> (extracts: String, annotations: String, train: String, val: String, valLabels: [[Int]]) {
        let root = try freshFolder(name)
        let ex = "\(root)/extract", ann = "\(root)/annotations"
        try FileManager.default.createDirectory(atPath: ex, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: ann, withIntermediateDirectories: true)
        var r = TestRandom(state: 7)
        var centroids: [Int: [Float]] = [:]
        for c in synthClasses { centroids[c] = (0..<7).map { _ in 1.5 * r.normal() } }
        var valLabels: [[Int]] = []
        for v in 0..<6 {
            let labels = try writeVideo("\(ex)/v\(v).mp4.safetensors", frames: 200, random: &r, centroids: centroids)
            try ("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n" + labels.map(String.init).joined(separator: "\n") + "\n")
                .write(toFile: "\(ann)/v\(v).txt", atomically: true, encoding: .utf8)
            if v >= 4 { valLabels.append(labels) }
        }
        try "v0\nv1\nv2\nv3\n".write(toFile: "\(root)/train.txt", atomically: true, encoding: .utf8)
        try "v4.mp4\nv5.mp4\n".write(toFile: "\(root)/val.txt", atomically: true, encoding: .utf8)
        return (ex, ann, "\(root)/train.txt", "\(root)/val.txt", valLabels)
    }

    /// Early fusion from extract folders, w / delta / t tuned on validation and stored in the head; the head
    /// runs in `affect run` as trained, and `affect analyze` adopts the tuned values unless told otherwise.
    @Test func fitFromExtractsTunesAndAnalyzeUsesTheValues() throws {
        let s = try makeSplit("fit-split")
        let dir = try freshFolder("fit-out")
        // A weak second head on the face features (class centroids are unknown to it): copies the model's logits.
        var other = [[Float]](repeating: [Float](repeating: 0, count: 7), count: 8)
        for (abaw, mx) in miniXceptionIndex { other[abaw][mx] = 0.2 }
        try writeLinearHead("\(dir)/other.safetensors", weight: other)
        let head = "\(dir)/expr.safetensors"
        let r = try runAffect(["fit", "--task", "expr", "--extract-dir", s.extracts, "--annotations", s.annotations,
                               "--train-list", s.train, "--val-list", s.val, "--modalities", "face+audio+text",
                               "--epochs", "15", "--batch-size", "64", "--blend-with", "face:\(dir)/other.safetensors",
                               "-o", head, "--log", "\(dir)/log.json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("tuned on 2 validation videos: w "), "\(r.stdout)")
        let st = try SafeTensorsFile(path: head)
        let training = try #require(try st.jsonMetadata("affect.training") as? [String: Any])
        #expect(training["modalities"] as? String == "face+audio+text" && training["feature_width"] as? Int == 47)
        let tuned = try #require(training["tuned"] as? [String: Any])
        #expect(tuned["blend_with"] as? String == "other.safetensors" && (tuned["w"] as? Double) != nil && (tuned["delta"] as? Int) != nil && tuned.keys.contains("t"), "\(tuned)")
        let delta = try #require(tuned["delta"] as? Int)
        #expect(delta > 0, "labels constant over 25 frames: smoothing helps")
        #expect((tuned["metric_value"] as! Double) >= (training["metric_value"] as! Double) - 1e-9, "tuning never loses to the raw head")

        // `affect run` on the validation rows with a face: the head separates the classes.
        var x: [Float] = [], truth: [Int] = []
        for (k, v) in ["v4", "v5"].enumerated() {
            let f = try SafeTensorsFile(path: "\(s.extracts)/\(v).mp4.safetensors")
            let face = try f.tensor("face").array, fe = try f.tensor("features").array, au = try f.tensor("audio").array, te = try f.tensor("text").array
            for i in 0..<face.count where face[i] == 1 {
                x += fe[(i * 7)..<(i * 7 + 7)]; x += au[(i * 32)..<(i * 32 + 32)]; x += te[(i * 8)..<(i * 8 + 8)]
                truth.append(s.valLabels[k][i])
            }
        }
        var w = SafeTensorsWriter()
        w.add("input.features", shape: [truth.count, 47], floats: x)
        try w.write(to: "\(dir)/inputs.safetensors")
        let run = try runAffect(["run", head, "\(dir)/inputs.safetensors", "-o", "\(dir)/outputs.safetensors"])
        #expect(run.status == 0, "\(run.stderr)")
        let probs = try SafeTensorsFile(path: "\(dir)/outputs.safetensors").tensor("output.probs")
        #expect(probs.shape == [truth.count, 8])
        let predicted = (0..<truth.count).map { i in (0..<8).max { probs.data[i * 8 + $0] < probs.data[i * 8 + $1] }! }
        let f1 = macroF1(truth, predicted)
        #expect(f1 > 0.6, "macro F1 of the fitted head on validation: \(f1)")

        // analyze adopts the tuned values; explicit options win.
        let common = ["analyze", talkingClip, "--every", "5", "--audio-model", tinyAudio, "--text-model", tinyText,
                      "--transcript", "\(testMedia)/speech.txt", "--expr-head", "face+audio+text:\(head)"]
        let a = try runAffect(common + ["-o", "\(dir)/a.json"])
        #expect(a.status == 0, "\(a.stderr)")
        #expect(a.stderr.contains("expr.safetensors: tuned --delta \(delta)"), "\(a.stderr)")
        var options = try #require((try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.json"))) as? [String: Any])?["options"] as? [String: Any])
        #expect((options["smoothing"] as? [Any])?.last as? Int == delta, "\(options)")
        if let t = tuned["t"] as? Double { #expect(abs((options["t"] as? Double ?? -1) - t) < 1e-6, "\(options)") }
        let b = try runAffect(common + ["--delta", "0", "--t", "0.99", "-o", "\(dir)/b.json"])
        #expect(b.status == 0 && !b.stderr.contains("tuned --delta") && !b.stderr.contains("tuned --t"), "\(b.stderr)")
        options = try #require((try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/b.json"))) as? [String: Any])?["options"] as? [String: Any])
        #expect((options["smoothing"] as? [Any])?.last as? Int == 0 && abs((options["t"] as? Double ?? 0) - 0.99) < 1e-6, "\(options)")
        // Two EXPR heads, the fitted one tuned with the other: w is adopted, in the order given.
        if let tw = tuned["w"] as? Double {
            let c = try runAffect(common + ["--expr-head", "face:\(dir)/other.safetensors", "-o", "\(dir)/c.json"])
            #expect(c.status == 0 && c.stderr.contains("tuned --w"), "\(c.stderr)")
            options = try #require((try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/c.json"))) as? [String: Any])?["options"] as? [String: Any])
            #expect(abs(((options["w"] as? [Double])?.first ?? -1) - tw) < 1e-6, "\(options)")
        }
    }

    /// Flat files: the head learns a separable task and loads in `run`; the log holds every epoch.
    @Test func fitFromFlatFiles() throws {
        let dir = try freshFolder("fit-flat")
        var r = TestRandom(state: 3)
        func set(_ name: String, rows: Int) throws -> [Int] {
            var x: [Float] = [], y: [Int] = []
            for _ in 0..<rows {
                let c = Int(r.next() % 3)
                y.append(c)
                x += (0..<6).map { ($0 % 3 == c ? 2 : 0) + 0.7 * r.normal() }
            }
            var w = SafeTensorsWriter()
            w.add("features", shape: [rows, 6], floats: x)
            try w.write(to: "\(dir)/\(name).safetensors")
            try ("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n" + y.map(String.init).joined(separator: "\n") + "\n").write(toFile: "\(dir)/\(name).txt", atomically: true, encoding: .utf8)
            return y
        }
        _ = try set("train", rows: 600)
        let valY = try set("val", rows: 200)
        let res = try runAffect(["fit", "--task", "expr", "--features", "\(dir)/train.safetensors", "--labels", "\(dir)/train.txt",
                                 "--val-features", "\(dir)/val.safetensors", "--val-labels", "\(dir)/val.txt", "--hidden", "16",
                                 "--epochs", "20", "--batch-size", "32", "--lr", "0.01", "--class-weights", "none", "-o", "\(dir)/h.safetensors", "--log", "\(dir)/log.json"])
        #expect(res.status == 0, "\(res.stderr)")
        #expect(res.stderr.contains("epoch 1/20"), "per-epoch lines on standard error")
        let log = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/log.json"))) as? [String: Any])
        #expect(((log["epochs_log"] as? [Any])?.count ?? 0) >= 1)
        let valX = try SafeTensorsFile(path: "\(dir)/val.safetensors").tensor("features")
        var w = SafeTensorsWriter()
        w.add("input.features", valX)
        try w.write(to: "\(dir)/in.safetensors")
        #expect(try runAffect(["run", "\(dir)/h.safetensors", "\(dir)/in.safetensors", "-o", "\(dir)/out.safetensors"]).status == 0)
        let p = try SafeTensorsFile(path: "\(dir)/out.safetensors").tensor("output.probs")
        let predicted = (0..<valY.count).map { i in (0..<8).max { p.data[i * 8 + $0] < p.data[i * 8 + $1] }! }
        #expect(macroF1(valY, predicted) > 0.85, "\(macroF1(valY, predicted))")
    }

    /// Bad inputs: exit 2, one sentence naming the file or option, no output.
    @Test func badInputsExitTwo() throws {
        let s = try makeSplit("fit-bad")
        let dir = try freshFolder("fit-bad-out")
        var w = SafeTensorsWriter()
        w.add("features", shape: [3, 2], floats: [0, 1, 2, 3, 4, 5])
        try w.write(to: "\(dir)/f.safetensors")
        try "0\n1\n".write(toFile: "\(dir)/two.txt", atomically: true, encoding: .utf8)
        let out = "\(dir)/h.safetensors"
        let folder = ["--extract-dir", s.extracts, "--annotations", s.annotations, "--train-list", s.train]
        let cases: [([String], String)] = [
            (["--task", "expr", "--features", "\(dir)/f.safetensors", "--labels", "\(dir)/two.txt"], "two.txt"),
            (["--task", "nope", "--features", "\(dir)/f.safetensors", "--labels", "\(dir)/two.txt"], "--task must be"),
            (["--task", "expr", "--features", "\(dir)/f.safetensors", "--labels", "\(dir)/two.txt", "--blend-with", "x.safetensors"], "--blend-with tunes w"),
            (["--task", "expr", "--modalities", "face+face"] + folder, "--modalities must be"),
            (["--task", "expr", "--modalities", "face+audio"] + folder + ["--val-list", s.val, "--blend-with", "\(dir)/two.txt"], "two.txt"),
            (["--task", "expr", "--features", "\(dir)/f.safetensors", "--labels", "\(dir)/two.txt", "--epochs", "0"], "--epochs must be between"),
            (["--task", "expr", "--features", "\(dir)/missing.safetensors", "--labels", "\(dir)/two.txt"], "missing.safetensors"),
            (["--task", "expr", "--features", "\(dir)/f.safetensors", "--labels", "\(dir)/f.safetensors"], "-o"),
        ]
        for (args, message) in cases {
            let target = message == "-o" ? "\(dir)/f.safetensors" : out
            let r = try runAffect(["fit"] + args + ["-o", target])
            #expect(r.status == 2 && r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one sentence: \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        // An extract file without the modality asked for names the file and the tensor.
        var e = SafeTensorsWriter(metadata: ["affect.extract": #"{"video": "v9.mp4"}"#])
        e.add("times", shape: [2], floats: [0, 0.04]); e.add("features", shape: [2, 7], floats: [Float](repeating: 0, count: 14))
        let ex2 = try freshFolder("fit-bad-ex2")
        try e.write(to: "\(ex2)/v9.mp4.safetensors")
        try "Neutral\n0\n1\n".write(toFile: "\(s.annotations)/v9.txt", atomically: true, encoding: .utf8)
        try "v9\n".write(toFile: "\(dir)/l.txt", atomically: true, encoding: .utf8)
        let r = try runAffect(["fit", "--task", "expr", "--modalities", "face+audio", "--extract-dir", ex2, "--annotations", s.annotations,
                               "--train-list", "\(dir)/l.txt", "-o", out])
        #expect(r.status == 2 && r.stderr.contains("v9.mp4.safetensors") && r.stderr.contains("`audio`"), "\(r.stderr)")
    }
}
