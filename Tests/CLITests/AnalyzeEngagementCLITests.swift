import Foundation
import Testing
import AffectKernels
import AffectModels

/// An engagement model (EmotiEffLib's engagement_single_attention layout, as `affect convert` writes it from the
/// .h5) reading `width` features per frame, with deterministic weights that give varied probabilities.
func writeEngagementModel(_ path: String, featureWidth d: Int, hidden h: Int = 6, window: Int) throws {
    let config = #"{"model": "engagement_single_attention", "attention": "e", "hidden": "hidden_FC", "output": "dense", "feature_width": \#(d), "hidden_width": \#(h), "window": \#(window)}"#
    var w = SafeTensorsWriter(metadata: ["affect.format": "1", "affect.arch": "engagement", "affect.config": config,
                                         "affect.labels": #"["Distracted", "Engaged"]"#])
    func wave(_ n: Int, _ f: Double, _ a: Double) -> [Float] { (0..<n).map { Float(sin(Double($0) * f + 0.3) * a) } }
    w.add("e/kernel", shape: [2 * d, 1], floats: wave(2 * d, 0.37, 0.05))
    w.add("e/bias", shape: [1], floats: [0.1])
    w.add("hidden_FC/kernel", shape: [2 * d, h], floats: wave(2 * d * h, 0.11, 0.08))
    w.add("hidden_FC/bias", shape: [h], floats: wave(h, 0.9, 0.1))
    w.add("dense/kernel", shape: [h, 2], floats: wave(h * 2, 1.3, 0.9))
    w.add("dense/bias", shape: [2], floats: [0.05, -0.05])
    try w.write(to: path)
}

/// `affect analyze --engagement-model` end to end: the per-frame engagement the CLI writes is the model's score of
/// the window of its track centred on that frame (moved inwards at the ends), over the face features `extract`
/// gives for the same clip and options.
@Suite(.serialized) struct AnalyzeEngagementCLITests {
    let faceModel = "\(fixtures)/models/efficientnet_tiny.safetensors"

    @Test func perFrameEngagementIsTheCentredWindowOfTheTrack() throws {
        let dir = try freshFolder("analyze-engagement")
        let model = "\(dir)/engagement.safetensors", window = 12
        try writeEngagementModel(model, featureWidth: 320, window: window)
        let a = try runAffect(["analyze", talkingClip, "--face-model", faceModel,
                               "--engagement-model", model, "-o", "\(dir)/a.json", "-o", "\(dir)/a.csv"])
        #expect(a.status == 0, "\(a.stderr)")
        #expect(a.stdout.contains("engagement:"), "\(a.stdout)")
        let csvHeader = try String(contentsOfFile: "\(dir)/a.csv", encoding: .utf8).split(separator: "\n")[0]
        #expect(csvHeader.hasSuffix("engagement_Distracted,engagement_Engaged,engagement"), "\(csvHeader)")

        let input = try freshFolder("analyze-engagement-in")
        try FileManager.default.createSymbolicLink(atPath: "\(input)/clip.mp4", withDestinationPath: talkingClip)
        let x = try runAffect(["extract", input, "-o", "\(dir)/x", "--face-model", faceModel])
        #expect(x.status == 0, "\(x.stderr)")
        let st = try SafeTensorsFile(path: "\(dir)/x/clip.mp4.safetensors")
        let face = try st.tensor("face").array, all = try st.tensor("features")
        let d = all.shape[1]
        #expect(d == 320)

        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.json"))) as! [String: Any]
        let track = try #require((json["tracks"] as? [[String: Any]])?.first)
        let rows = try #require(track["rows"] as? [[String: Any]])
        let frames = rows.map { $0["frame"] as! Int }
        let n = rows.count
        #expect(n > window, "a track of \(n) rows does not exercise the sliding window")
        // Every frame is analysed (no --every) and the talking head is found on each, so no features are interpolated.
        #expect(frames.allSatisfy { face[$0] == 1 }, "frames without a face: \(frames.filter { face[$0] != 1 })")
        let features = Tensor(shape: [n, d], values: frames.flatMap { Array(all.array[($0 * d)..<($0 * d + d)]) })

        let engagement = try EngagementModel(path: model)
        let starts = (0..<n).map { r in min(max(r - window / 2, 0), n - window) }
        #expect(starts.first == 0 && starts.last == n - window)
        let want = engagement.scores(features: features, starts: starts, width: window)
        var worst: Float = 0, spread: Float = 0
        for r in 0..<n {
            let got = try #require(rows[r]["engagement"] as? [Double]).map(Float.init)
            #expect(got.count == 2)
            for j in 0..<2 { worst = max(worst, abs(got[j] - want.data[r * 2 + j])) }
            spread = max(spread, abs(want.data[r * 2] - want.data[1]))
        }
        #expect(worst <= 2e-6, "max abs difference \(worst)")
        #expect(spread > 1e-4, "windows give (nearly) the same probabilities: the test would not see misalignment")
        let summary = try #require(track["engagement"] as? [String: Any])
        #expect(summary["window"] as? Int == window)
        let mean = try #require(summary["mean_probabilities"] as? [String: Double])
        let wantMean = (0..<n).reduce(0.0) { $0 + Double(want.data[$1 * 2 + 1]) } / Double(n)
        #expect(abs((mean["Engaged"] ?? -1) - wantMean) < 1e-6)
    }

    /// A model of another feature width is refused before the video is decoded, naming the file; live sources are
    /// refused with the reason.
    @Test func refusals() throws {
        let dir = try freshFolder("analyze-engagement-bad")
        let model = "\(dir)/wide.safetensors"
        try writeEngagementModel(model, featureWidth: 1280, window: 8)
        let r = try runAffect(["analyze", talkingClip, "--face-model", faceModel, "--engagement-model", model, "-o", "\(dir)/a.csv"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("\(model): the engagement model reads 1280 features per frame"), "\(r.stderr)")
        #expect(files(in: dir) == ["wide.safetensors"], "an output was written")
        let fitting = "\(dir)/fitting.safetensors"
        try writeEngagementModel(fitting, featureWidth: 320, window: 8)
        let live = try runAffect(["analyze", talkingClip, "--live", "--face-model", faceModel, "--engagement-model", fitting])
        #expect(live.status == 2 && live.stderr.contains("needs the whole video"), "\(live.stderr)")
        let notEngagement = try runAffect(["analyze", talkingClip, "--engagement-model", faceModel])
        #expect(notEngagement.status == 2 && notEngagement.stderr.contains("expected an engagement model"), "\(notEngagement.stderr)")
    }
}
