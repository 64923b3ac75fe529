import Foundation
import AffectKernels
import AffectModels
import AffectPipeline
import AffectTraining

/// `affect fit`'s post-processing tuning: the fitted head (and the `--blend-with` head) run on every frame of
/// each validation video as `affect analyze` runs them, then w, the smoothing window and t are chosen on the
/// validation metric (``PostprocessTuning``).
struct FitTuning {
    let task: TrainingTask
    let modalities: [String]
    let model: MLP
    let other: HeadSpec?

    /// The tuned values as stored in the head's metadata, and a line for the user.
    func run(extracts: [String: String], annotations: String, videos: [String], listName: String) throws -> (json: [String: Any], line: String) {
        var items: [TuningVideo] = [], targets: [[Float]] = [], flags: [[Bool]] = []
        var mapping: ClassMapping?, mappingKnown = false
        for video in videos {
            guard let path = extracts[video] else { throw AffectError.badInput("\(listName): video `\(video)` has no extract file.") }
            let file = try SafeTensorsFile(path: path)
            let times = try Self.times(file)
            let frames = times.count
            var present = [Bool](repeating: true, count: frames)
            if file.contains("face") {
                let face = try file.tensor("face")
                guard face.count == frames else { throw AffectError.badInput("\(path): `face` has \(face.count) values for \(frames) frames.") }
                for i in 0..<frames { present[i] = face.data[i] > 0.5 }
            }
            // analyze reports no track for a video without a face; such a video has nothing to tune on.
            guard present.contains(true) else { continue }

            /// Rows run as analyze runs them: a head reading the face on the frames with the face, then filled.
            func perFrame(_ mods: [String], _ run: (_ x: [Float], _ rows: Int, _ width: Int) throws -> FeatureMatrix) throws -> FeatureMatrix {
                let mats = try mods.map { try Self.matrix(file, TrainingData.tensorName($0), rows: frames) }
                let width = mats.reduce(0) { $0 + $1.columns }
                let keep = mods.contains("face") ? (0..<frames).filter { present[$0] } : Array(0..<frames)
                var x = [Float](); x.reserveCapacity(keep.count * width)
                for r in keep { for m in mats { x.append(contentsOf: m.values[(r * m.columns)..<((r + 1) * m.columns)]) } }
                let y = try run(x, keep.count, width)
                guard mods.contains("face") else { return y }
                return try Self.fill(y, rows: keep, times: times, path: path)
            }
            let outputs = try perFrame(modalities) { x, rows, width in
                try FeatureMatrix(rows: rows, columns: model.outputWidth, values: Self.predict(model, task: task, x, rows: rows))
            }
            var second: FeatureMatrix?
            if let o = other {
                second = try perFrame(o.modalities.map(\.rawValue)) { x, rows, width in
                    var p = try FeatureMatrix(o.head.predict(Tensor(shape: [rows, width], values: x), source: "\(path) (\(o.modalities.map(\.rawValue).joined(separator: "+")))"))
                    if task == .ah && p.columns == 2 { p = try FeatureMatrix(p.column(1).map { [$0] }, columns: 1) }
                    guard p.columns == model.outputWidth else {
                        throw AffectError.badInput("\(o.head.path): gives \(p.columns) outputs, the \(task.rawValue.uppercased()) head \(model.outputWidth).")
                    }
                    return p
                }
            }
            var probabilities: FeatureMatrix?
            if task == .expr, let labels = try Self.modelLabels(file), file.contains("logits") {
                if !mappingKnown { mapping = try? ClassMapping(from: labels); mappingKnown = true }
                if mapping?.modelLabels == labels {
                    let logits = try Self.matrix(file, "logits", rows: frames)
                    let k = labels.count
                    if logits.columns >= k {
                        let keep = (0..<frames).filter { present[$0] }
                        var p = FeatureMatrix(rows: keep.count, columns: k)
                        for (i, r) in keep.enumerated() {
                            var row = Array(logits.values[(r * logits.columns)..<(r * logits.columns + k)])
                            let m = row.max() ?? 0
                            row = row.map { expf($0 - m) }
                            let s = row.reduce(0, +)
                            for j in 0..<k { p[i, j] = row[j] / s }
                        }
                        probabilities = try Self.fill(p, rows: keep, times: times, path: path)
                    }
                }
            }
            items.append(try TuningVideo(outputs: outputs, other: second, probabilities: probabilities))
            let labels = try LabelFile(path: URL(fileURLWithPath: annotations).appendingPathComponent("\(video).txt").path,
                                       task: task, maxRows: max(frames, 1) + 10_000)
            let usable = min(frames, labels.rows)
            targets.append(Array(labels.values[0..<(usable * task.targetWidth)]))
            flags.append(Array(labels.labelled[0..<usable]))
        }
        guard !items.isEmpty else { throw AffectError.badInput("\(listName): no validation video has a face frame to tune on.") }
        var lastThresholds: [Float]?
        let score: ([FeatureMatrix]) throws -> Double = { outs in
            var o: [Float] = [], t: [Float] = [], rows = 0
            let tw = task.targetWidth
            for (v, m) in outs.enumerated() {
                for r in flags[v].indices where flags[v][r] {
                    o.append(contentsOf: m.values[(r * m.columns)..<((r + 1) * m.columns)])
                    t.append(contentsOf: targets[v][(r * tw)..<((r + 1) * tw)])
                    rows += 1
                }
            }
            guard rows > 0 else { throw AffectError.badInput("\(listName): no validation frame is labelled.") }
            let (value, thresholds) = ValidationMetric.evaluate(task, outputs: o, targets: t, rows: rows)
            lastThresholds = thresholds
            return value
        }
        let result = try PostprocessTuning.tune(items, blend: other != nil, mapping: task == .expr ? mapping : nil, score: score)
        _ = try score(try items.map { try $0.apply(result.settings, mapping: mapping) })
        var json: [String: Any] = ["delta": result.settings.delta, "metric_value": result.score,
                                   "candidates": result.tried.count, "validation_videos": items.count]
        var parts = ["delta \(result.settings.delta)"]
        if let w = result.settings.weight, let o = other {
            json["w"] = Double(w); json["blend_with"] = URL(fileURLWithPath: o.head.path).lastPathComponent
            json["blend_modalities"] = o.modalities.map(\.rawValue).joined(separator: "+")
            parts.insert("w \(number(Double(w))) (with \(URL(fileURLWithPath: o.head.path).lastPathComponent))", at: 0)
        }
        if task == .expr {
            if mapping == nil || !items.allSatisfy({ $0.probabilities != nil }) {
                parts.append("t not tuned (the extract files' face model labels do not map onto the ABAW classes)")
            } else {
                if let t = result.settings.threshold { json["t"] = Double(t) } else { json["t"] = NSNull() }
                parts.append("t \(result.settings.threshold.map { number(Double($0)) } ?? "off")")
            }
        }
        if task == .au, let t = lastThresholds { json["au_thresholds"] = t.map(Double.init) }
        return (json, "tuned on \(items.count) validation video\(items.count == 1 ? "" : "s"): \(parts.joined(separator: ", ")); validation \(task.metricName) \(String(format: "%.4f", result.score))")
    }

    /// The head's outputs after its activation for `rows` rows of `x`.
    static func predict(_ model: MLP, task: TrainingTask, _ x: [Float], rows: Int) -> [Float] {
        let n = model.outputWidth, d = model.inputWidth, chunk = 1024
        guard rows > 0 else { return [] }
        let ws = MLPWorkspace(model, batch: min(chunk, rows))
        var out = [Float](repeating: 0, count: rows * n)
        var start = 0
        x.withUnsafeBufferPointer { xp in
            while start < rows {
                let m = min(chunk, rows - start)
                model.predict(input: xp.baseAddress! + start * d, rows: m, workspace: ws)
                task.activation.apply(ws.logits, rows: m, outputs: n)
                out.withUnsafeMutableBufferPointer { ($0.baseAddress! + start * n).update(from: ws.logits, count: m * n) }
                start += m
            }
        }
        return out
    }

    /// Face-frame rows `y` (at frame positions `rows`) filled over every frame by linear interpolation in time.
    static func fill(_ y: FeatureMatrix, rows: [Int], times: [Double], path: String) throws -> FeatureMatrix {
        var values = [[Float]?](repeating: nil, count: times.count)
        for (i, r) in rows.enumerated() { values[r] = y.row(i) }
        return try FrameTimeline(times: times, values: values, width: y.columns).filled()
    }

    /// The extract file's frame times, checked (finite, strictly increasing).
    static func times(_ file: SafeTensorsFile) throws -> [Double] {
        guard let info = file.info("times"), info.dtype.isFloat, info.shape.count == 1 else {
            throw AffectError.badInput("\(file.path): tensor `times` [frames] is missing; is it an `affect extract` file?")
        }
        let t = try file.tensor(info).array.map(Double.init)
        for i in t.indices where !t[i].isFinite || (i > 0 && t[i] <= t[i - 1]) {
            throw AffectError.badInput("\(file.path): frame times must be finite and increasing (frame \(i)).")
        }
        return t
    }

    /// Tensor `name` of `file` as a `[rows, width]` matrix.
    static func matrix(_ file: SafeTensorsFile, _ name: String, rows: Int) throws -> FeatureMatrix {
        guard let info = file.info(name), info.dtype.isFloat, info.shape.count == 2, info.shape[0] == rows,
              info.shape[1] >= 1, info.shape[1] <= TrainingData.maxWidth else {
            throw AffectError.badInput("\(file.path): tensor `\(name)` must be float [\(rows), width] (one row per frame).")
        }
        let t = try file.tensor(info)
        if let bad = t.array.firstIndex(where: { !$0.isFinite }) {
            throw AffectError.badInput("\(file.path): `\(name)` row \(bad / info.shape[1]) is not finite.")
        }
        return try FeatureMatrix(rows: rows, columns: info.shape[1], values: t.array)
    }

    /// The face model's class labels an extract file records, if it records them.
    static func modelLabels(_ file: SafeTensorsFile) throws -> [String]? {
        guard let meta = try file.jsonMetadata("affect.extract") as? [String: Any] else { return nil }
        return meta["labels"] as? [String]
    }
}
