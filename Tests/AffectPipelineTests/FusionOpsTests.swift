import Foundation
import Testing
import AffectKernels
import AffectPipeline

let fusionFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/fusion").path

/// NumPy / SciPy / scikit-learn results written by `Tools/make_reference.py fusion_fixtures Tests/Fixtures/fusion`.
var fusionOps: [String: Any] {
    guard let d = FileManager.default.contents(atPath: "\(fusionFixtures)/ops.json"),
          let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [:] }
    return o
}

func dict(_ v: Any?) -> [String: Any] { v as? [String: Any] ?? [:] }
func doubles(_ v: Any?) -> [Double] { (v as? [NSNumber])?.map(\.doubleValue) ?? [] }
func ints(_ v: Any?) -> [Int] { (v as? [NSNumber])?.map(\.intValue) ?? [] }
func matrix(_ v: Any?) throws -> FeatureMatrix {
    try FeatureMatrix(((v as? [[NSNumber]]) ?? []).map { $0.map(\.floatValue) })
}

/// Max |a − b| over two matrices of the same shape (infinity when shapes differ).
func maxError(_ a: FeatureMatrix, _ b: FeatureMatrix) -> Float {
    guard a.rows == b.rows, a.columns == b.columns else { return .infinity }
    return zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 0
}

@Suite struct FusionOpsTests {
    @Test func fixturesPresent() { #expect(!fusionOps.isEmpty, "Tests/Fixtures/fusion/ops.json missing or unreadable") }

    @Test func interp1dModes() throws {
        let cases = fusionOps["interp"] as? [[String: Any]] ?? []
        #expect(cases.count == 3)
        for c in cases {
            let mode: Extrapolation = switch c["mode"] as? String {
            case "extrapolate": .extrapolate
            case "hold": .hold
            default: .constant(-1)
            }
            let interp = try LinearInterpolator(x: doubles(c["x"]), y: matrix(c["y"]), outside: mode)
            let got = interp(doubles(c["x_new"]))
            let want = try matrix(c["expected"])
            #expect(want.rows == 25)
            #expect(maxError(got, want) < 1e-6, "mode \(mode)")
        }
    }

    @Test func interpolatorRejectsBadSamples() throws {
        let y = try FeatureMatrix([[1], [2], [3]])
        #expect(throws: AffectError.self) { try LinearInterpolator(x: [0, 1], y: y) }
        #expect(throws: AffectError.self) { try LinearInterpolator(x: [0, 2, 1], y: y) }
        #expect(throws: AffectError.self) { try LinearInterpolator(x: [0, 1, 1], y: y) }
        #expect(throws: AffectError.self) { try LinearInterpolator(x: [0, .nan, 1], y: y) }
        #expect(throws: AffectError.self) { try LinearInterpolator(x: [0], y: FeatureMatrix([[1]]), outside: .extrapolate) }
        let one = try LinearInterpolator(x: [0.5], y: FeatureMatrix([[7]]), outside: .hold)
        #expect(one([0, 0.5, 3]).values == [7, 7, 7])
    }

    @Test func gapsBetweenFaceFramesAreInterpolated() throws {
        let g = dict(fusionOps["gapfill"])
        let values = (g["values"] as? [Any] ?? []).map { ($0 as? [NSNumber])?.map(\.floatValue) }
        let timeline = try FrameTimeline(fps: g["fps"] as? Double ?? 25, values: values)
        #expect(timeline.count == 40 && timeline.faceIndices.count == 27)
        let filled = try timeline.filled()
        #expect(maxError(filled, try matrix(g["expected"])) < 1e-6)
        // Face frames are untouched, edge frames hold the first / last face frame.
        #expect(filled.row(5) == values[5]!)
        #expect(filled.row(0) == values[3]! && filled.row(39) == values[34]!)
        #expect(timeline.faceRows().rows == 27)
    }

    @Test func timelineValidation() throws {
        #expect(throws: AffectError.self) { try FrameTimeline(times: [0, 1], values: [[1]]) }
        #expect(throws: AffectError.self) { try FrameTimeline(times: [0, 0], values: [[1], [2]]) }
        #expect(throws: AffectError.self) { try FrameTimeline(times: [0, 1], values: [[1], [2, 3]]) }
        #expect(throws: AffectError.self) { try FrameTimeline(fps: 0, values: [[1]]) }
        let empty = try FrameTimeline(fps: 25, values: [nil, nil], width: 3)
        #expect(empty.width == 3 && empty.faceRows().rows == 0)
        #expect(throws: AffectError.self) { try empty.filled() }
    }

    @Test func audioAndWordsOntoFrameTimes() throws {
        let a = dict(fusionOps["audio"])
        let audio = try Alignment.audio(matrix(a["features"]), to: doubles(a["frame_times"]))
        #expect(maxError(audio, try matrix(a["expected"])) < 1e-6)
        let w = dict(fusionOps["words"])
        let words = try Alignment.words(matrix(w["features"]), starts: doubles(w["starts"]), ends: doubles(w["ends"]),
                                        to: doubles(w["frame_times"]))
        #expect(maxError(words, try matrix(w["expected"])) < 1e-6)
        #expect(throws: AffectError.self) { try Alignment.words(matrix(w["features"]), starts: [0, 1, 2, 3], ends: [1, 0, 3, 4], to: [0]) }
        #expect(zip(Alignment.audioFrameTimes(count: 3), [0.0125, 0.0325, 0.0525]).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test func smoothersMatchNumPyAndSciPy() throws {
        let p = try matrix(fusionOps["smooth_input"])
        let cases = fusionOps["smooth"] as? [[String: Any]] ?? []
        #expect(cases.count == 14)
        for c in cases {
            let smoother: TemporalSmoother
            switch c["kind"] as? String {
            case "mean": smoother = .mean(delta: c["delta"] as? Int ?? -1)
            case "median": smoother = .median(delta: c["delta"] as? Int ?? -1)
            default:
                smoother = .gaussian(sigma: c["sigma"] as? Double ?? 0,
                                     mode: BoundaryMode(rawValue: c["mode"] as? String ?? "") ?? .reflect)
            }
            let err = maxError(try smoother.apply(p), try matrix(c["expected"]))
            #expect(err < 2e-6, "\(smoother): \(err)")
        }
        #expect(throws: AffectError.self) { try TemporalSmoother.mean(delta: -1).apply(p) }
        #expect(throws: AffectError.self) { try TemporalSmoother.gaussian(sigma: 0).apply(p) }
        #expect(try TemporalSmoother.median(delta: 3).apply(FeatureMatrix(rows: 0, columns: 2)).rows == 0)
    }

    @Test func statAndMeanPooling() throws {
        let o = dict(fusionOps["pool"])
        let x = try matrix(o["input"])
        let stat = try Pooling.stat(x), want = doubles(o["stat"])
        #expect(stat.count == 24)
        #expect(zip(stat, want).allSatisfy { abs(Double($0) - $1) < 1e-5 })
        #expect(zip(try Pooling.mean(x), doubles(o["mean"])).allSatisfy { abs(Double($0) - $1) < 1e-5 })
        #expect(throws: AffectError.self) { try Pooling.stat(FeatureMatrix(rows: 0, columns: 3)) }
        // The streaming form (embed-audio over a long recording) agrees, fed in uneven chunks.
        var running = RunningPooling(columns: x.columns)
        var flat: [Float] = []
        for i in 0..<x.rows { for j in 0..<x.columns { flat.append(x[i, j]) } }
        var start = 0
        for chunk in [1, 0, 2, x.rows] where start < x.rows {
            let n = min(chunk, x.rows - start)
            flat.withUnsafeBufferPointer { running.add($0.baseAddress! + start * x.columns, rows: n) }
            start += n
        }
        #expect(running.rows == x.rows)
        #expect(zip(try running.stat(), stat).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
        #expect(zip(try running.means(), try Pooling.mean(x)).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
        #expect(throws: AffectError.self) { try RunningPooling(columns: 3).stat() }
    }

    @Test func lateAndEarlyFusion() throws {
        let o = dict(fusionOps["blend"])
        let a = try matrix(o["a"]), b = try matrix(o["b"]), c = try matrix(o["c"])
        let w = Float(o["w"] as? Double ?? 0)
        #expect(maxError(try Fusion.blend(a, b, weight: w), try matrix(o["expected2"])) < 1e-6)
        let w3 = doubles(o["weights3"]).map(Float.init)
        #expect(maxError(try Fusion.blend([a, b, c], weights: w3), try matrix(o["expected3"])) < 1e-6)
        let b3 = try FeatureMatrix(rows: b.rows, columns: 3, values: (0..<b.rows).flatMap { b.row($0).prefix(3) })
        #expect(try Fusion.concatenate([a, b3]) == (try matrix(o["concat"])))
        #expect(throws: AffectError.self) { try Fusion.blend([a, b], weights: [1]) }
        #expect(throws: AffectError.self) { try Fusion.blend(a, b3, weight: 0.5) }
        #expect(throws: AffectError.self) { try Fusion.concatenate([a, FeatureMatrix(rows: 3, columns: 2)]) }
    }

    @Test func confidenceFilterAndClassMapping() throws {
        let o = dict(fusionOps["filter"])
        let mapping = try ClassMapping(from: ClassMapping.emotiEffLib8)
        #expect(mapping.target.map { $0 ?? -1 } == ints(o["mapping"]))
        let filter = ConfidenceFilter(threshold: Float(o["threshold"] as? Double ?? 0), mapping: mapping)
        let model = try matrix(o["model"]), task = try matrix(o["task"])
        let got = try filter.apply(task: task, model: model)
        #expect(got == ints(o["expected"]))
        // Some frames are overridden, some are not: the test exercises both branches.
        #expect(got != task.argmaxPerRow())
        #expect(maxError(try mapping.remap(model), try matrix(o["remapped"])) < 1e-6)
        #expect(throws: AffectError.self) { try filter.apply(task: task, model: task.row(0).isEmpty ? task : FeatureMatrix(rows: 2, columns: 8)) }
    }

    @Test func builtInClassOrders() throws {
        let fer = try ClassMapping(from: ClassMapping.ferMiniXception)
        // angry, disgust, fear, happy, sad, surprise, neutral → Neutral=0 … Other=7
        #expect(fer.target == [1, 2, 3, 4, 5, 6, 0])
        let eff7 = try ClassMapping(from: ClassMapping.emotiEffLib7)
        #expect(eff7.target == [1, 2, 3, 4, 0, 5, 6])
        // Other never receives probability from a 7-class model.
        let p = try eff7.remap(FeatureMatrix(rows: 1, columns: 7, repeating: 1.0 / 7))
        #expect(p[0, 7] == 0 && abs(p.values.reduce(0, +) - 1) < 1e-6)
        #expect(throws: AffectError.self) { try ClassMapping(from: ["Anger", "Boredom"]) }
        let loose = try ClassMapping(from: ["Anger", "Boredom"], allowUnmapped: true)
        #expect(loose.target == [1, nil])
        // An unmapped best class never overrides the task.
        let f = ConfidenceFilter(threshold: 0.5, mapping: loose)
        let task = try FeatureMatrix([[0, 0, 1, 0, 0, 0, 0, 0]])
        #expect(try f.apply(task: task, model: FeatureMatrix([[0.1, 0.9]])) == [2])
        #expect(try f.apply(task: task, model: FeatureMatrix([[0.9, 0.1]])) == [1])
        #expect(throws: AffectError.self) { try ClassMapping(modelLabels: ["a"], taskLabels: ["b"], target: [3]) }
    }
}
