import Foundation
import AffectKernels

/// Reading the sets a head is trained on: flat feature files with one label row per feature row, or a
/// folder of `affect extract` files with ABAW annotation files matched by video name. Every file is
/// untrusted: shapes and sizes are checked before use and each problem is one sentence naming its file.
public enum TrainingData {
    /// The most rows one set may hold (2³¹ − 1: rows are indexed with Int32).
    public static let maxRows = Int(Int32.max)
    /// The widest feature row accepted.
    public static let maxWidth = 1 << 20

    /// A `[rows, width]` float tensor `name` of `file`, used in place when it is aligned F32.
    static func matrix(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
        guard let info = file.info(name) else {
            throw AffectError.badInput("\(file.path): tensor `\(name)` is missing (tensors: \(file.names.sorted().prefix(12).joined(separator: ", "))).")
        }
        guard info.dtype.isFloat, info.shape.count == 2, info.shape[1] >= 1, info.shape[1] <= maxWidth, info.shape[0] <= maxRows else {
            throw AffectError.badInput("\(file.path): tensor `\(name)` is \(info.dtype.rawValue) \(info.shape); expected float [rows, width] with a width of 1 to \(maxWidth).")
        }
        return try file.tensor(info)
    }

    /// Flat files: tensor `features` `[N, D]` of `featuresPath` and `N` label rows in `labelsPath`.
    /// Unlabelled rows are left out; any non-finite feature of a labelled row is an error.
    public static func flat(features featuresPath: String, labels labelsPath: String, task: TrainingTask) throws -> LabelledRows {
        let file = try SafeTensorsFile(path: featuresPath)
        let x = try matrix(file, "features")
        let n = x.shape[0]
        guard n > 0 else { throw AffectError.badInput("\(featuresPath): tensor `features` has no rows.") }
        let labels = try LabelFile(path: labelsPath, task: task, maxRows: n)
        guard labels.rows == n else {
            throw AffectError.badInput("\(labelsPath): holds \(labels.rows) label rows for the \(n) feature rows of \(featuresPath).")
        }
        let features = try TrainingFeatures(parts: [.init(name: featuresPath, tensors: [x])])
        return try labelled(features, labels: labels, rowsOf: { _ in (0..<Int32(n)).map { $0 } }, names: [labelsPath], task: task)
    }

    /// Keeps the labelled rows; `rowsOf(part)` gives each part's global feature rows in label order.
    static func labelled(_ features: TrainingFeatures, labels: LabelFile, rowsOf: (Int) -> [Int32], names: [String], task: TrainingTask) throws -> LabelledRows {
        let rows = rowsOf(0)
        var keep: [Int32] = [], targets: [Float] = []
        let w = task.targetWidth
        for (i, r) in rows.enumerated() where labels.labelled[i] {
            keep.append(r)
            targets.append(contentsOf: labels.values[(i * w)..<(i * w + w)])
        }
        guard !keep.isEmpty else { throw AffectError.badInput("\(names[0]): no row is labelled.") }
        if let (row, col) = features.firstNonFinite(keep) {
            throw AffectError.badInput("\(features.describe(row: row)), column \(col): the feature is not finite.")
        }
        return try LabelledRows(features: features, rows: keep, targets: targets, targetWidth: w)
    }

    /// The video name of an extract file or annotation file: its file name up to the first dot
    /// (`a/video_12.mp4.safetensors` and `video_12.txt` are both `video_12`).
    public static func videoName(_ path: String) -> String {
        let file = URL(fileURLWithPath: path).lastPathComponent
        return String(file.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(file))
    }

    /// Video names listed in `path`, one per line (blank lines and `#` comments skipped; a path or an
    /// extension on a line is reduced to the video name).
    public static func videoList(_ path: String, limit: Int = 1_000_000) throws -> [String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw AffectError.badInput("\(path): cannot read the video list.") }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: limit * 64 + 1)) ?? Data()
        guard data.count <= limit * 64 else { throw AffectError.badInput("\(path): the video list is over \(limit * 64) bytes.") }
        guard let text = String(data: data, encoding: .utf8) else { throw AffectError.badInput("\(path): the video list is not UTF-8 text.") }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let names = try lines.map { line in
            // `.`, `..` or a trailing `/` names a folder, not a video (and `.` would resolve to the current one).
            let last = line.split(separator: "/").last.map(String.init) ?? ""
            let name = videoName(line)
            guard !name.isEmpty, !line.hasSuffix("/"), last != ".", last != ".." else {
                throw AffectError.badInput("\(path): `\(line.prefix(80))` is not a video name.")
            }
            return name
        }
        guard !names.isEmpty else { throw AffectError.badInput("\(path): the video list names no video.") }
        guard Set(names).count == names.count else { throw AffectError.badInput("\(path): a video is listed twice.") }
        return names
    }

    /// Extract files under `folder` by video name; two files of one name are an error.
    public static func extractFiles(in folder: String) throws -> [String: String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue,
              let e = FileManager.default.enumerator(atPath: folder) else { throw AffectError.badInput("\(folder): no such folder.") }
        var out: [String: String] = [:]
        while let rel = e.nextObject() as? String {
            guard rel.hasSuffix(".safetensors") else { continue }
            let name = videoName(rel), path = URL(fileURLWithPath: folder).appendingPathComponent(rel).path
            if let other = out[name] { throw AffectError.badInput("\(folder): two extract files belong to video `\(name)`: \(other) and \(path).") }
            out[name] = path
        }
        return out
    }

    /// The tensor of an extract file that holds `modality`'s features (`face` → `features`).
    public static func tensorName(_ modality: String) -> String { modality == "face" ? "features" : modality }

    /// A set from extract files (`extracts`, by video name) and ABAW annotation files `annotations/VIDEO.txt`
    /// (`.csv` for EMI) for `videos`. Per-frame tasks use one row per labelled frame (frames beyond the
    /// shorter of the two files are left out; with the face modality, frames without the face too); EMI
    /// uses STAT pooling (mean, std, min, max) of each video's frames with a face, the gate the mean of
    /// its `text.segments` (the segment embeddings the analyzer's gate averages; the mean of the per-frame
    /// `text` rows in files without them) with label 1 when any of its AH frames is 1.
    public static func folder(extracts: [String: String], annotations: String, videos: [String], modalities: [String],
                              task: TrainingTask, listName: String) throws -> LabelledRows {
        var parts: [TrainingFeatures.Part] = [], labelFiles: [LabelFile] = [], partRows: [[Int32]] = []
        var next: Int32 = 0
        for video in videos {
            guard let path = extracts[video] else { throw AffectError.badInput("\(listName): video `\(video)` has no extract file.") }
            let file = try SafeTensorsFile(path: path)
            let mats = try modalities.map { try matrix(file, tensorName($0)) }
            let frames = mats[0].shape[0]
            for (m, t) in zip(modalities, mats) where t.shape[0] != frames {
                throw AffectError.badInput("\(path): `\(tensorName(m))` has \(t.shape[0]) rows, `\(tensorName(modalities[0]))` \(frames).")
            }
            var present = [Bool](repeating: true, count: frames)
            if modalities.contains("face"), file.contains("face") {
                let face = try file.tensor("face")
                guard face.count == frames else { throw AffectError.badInput("\(path): `face` has \(face.count) values for \(frames) frames.") }
                // `affect extract` writes 1 where the main track has a detection, else 0: anything else is damage.
                if let i = (0..<frames).first(where: { face.data[$0] != 0 && face.data[$0] != 1 }) {
                    throw AffectError.badInput("\(path): `face` is \(face.data[i]) at frame \(i); expected 0 or 1.")
                }
                for i in 0..<frames { present[i] = face.data[i] == 1 }
            }
            let ext = task == .emi ? "csv" : "txt"
            let labelPath = URL(fileURLWithPath: annotations).appendingPathComponent("\(video).\(ext)").path
            let labelTask: TrainingTask = task == .gate ? .ah : task
            let labels = try LabelFile(path: labelPath, task: labelTask, maxRows: task == .emi ? 1 : max(frames, 1) + 10_000)
            if task == .emi || task == .gate {
                // One pooled row per video.
                let pooled: Tensor
                if task == .gate, file.contains("text.segments") {
                    // What the video gate reads at analysis time: the mean of the transcript segments' embeddings.
                    let segments = try matrix(file, "text.segments")
                    guard segments.shape[0] > 0, segments.shape[1] == mats[0].shape[1] else {
                        throw AffectError.badInput("\(path): `text.segments` is \(segments.shape) for `text` \(mats[0].shape).")
                    }
                    pooled = pool([segments], rows: Array(0..<segments.shape[0]), stat: false)
                } else {
                    let kept = (0..<frames).filter { present[$0] }
                    guard !kept.isEmpty else { throw AffectError.badInput("\(path): no frame has the face, nothing to pool.") }
                    pooled = pool(mats, rows: kept, stat: task == .emi)
                }
                parts.append(try .init(name: path, tensors: [pooled]))
                var value = labels.values, flag = labels.labelled[0]
                if task == .gate {
                    let ah = labels.labelled.indices.filter { labels.labelled[$0] }
                    flag = !ah.isEmpty
                    value = [ah.contains { labels.values[$0] > 0.5 } ? 1 : 0]
                }
                labelFiles.append(try LabelFile(values: value, labelled: [flag]))
                partRows.append([next]); next += 1
            } else {
                guard Int(next) + frames <= maxRows else { throw AffectError.badInput("\(listName): the videos hold more than \(maxRows) frames.") }
                parts.append(try .init(name: path, tensors: mats))
                let usable = min(frames, labels.rows)
                var rows: [Int32] = [], values: [Float] = [], flags: [Bool] = []
                let w = task.targetWidth
                for i in 0..<usable {
                    rows.append(next + Int32(i))
                    values.append(contentsOf: labels.values[(i * w)..<(i * w + w)])
                    flags.append(labels.labelled[i] && present[i])
                }
                labelFiles.append(try LabelFile(values: values, labelled: flags))
                partRows.append(rows)
                next += Int32(frames)
            }
        }
        let features = try TrainingFeatures(parts: parts)
        let all = LabelFile(joining: labelFiles)
        return try labelled(features, labels: all, rowsOf: { _ in partRows.flatMap { $0 } }, names: [listName], task: task)
    }

    /// Mean (or STAT: mean, std, min, max) over `rows` of the concatenated matrices, as one `[1, D]` row
    /// (`[1, 4D]` for STAT), in double precision like the analyzer's pooling.
    static func pool(_ mats: [Tensor], rows: [Int], stat: Bool) -> Tensor {
        let width = mats.reduce(0) { $0 + $1.shape[1] }
        let out = Tensor(uninitialized: [1, stat ? 4 * width : width])
        var col = 0
        for m in mats {
            let w = m.shape[1]
            for j in 0..<w {
                var s = 0.0, s2 = 0.0, lo = Double.infinity, hi = -Double.infinity
                for r in rows { let v = Double(m.data[r * w + j]); s += v; lo = min(lo, v); hi = max(hi, v) }
                let mean = s / Double(rows.count)
                for r in rows { let d = Double(m.data[r * w + j]) - mean; s2 += d * d }
                out.data[col + j] = Float(mean)
                if stat {
                    out.data[width + col + j] = Float((s2 / Double(rows.count)).squareRoot())
                    out.data[2 * width + col + j] = Float(lo)
                    out.data[3 * width + col + j] = Float(hi)
                }
            }
            col += w
        }
        return out
    }
}

extension LabelFile {
    /// Labels already read (rows of `values.count / labelled.count` values).
    init(values: [Float], labelled: [Bool]) throws {
        self.values = values; self.labelled = labelled
    }

    /// Several label files one after the other.
    init(joining files: [LabelFile]) {
        values = files.flatMap(\.values); labelled = files.flatMap(\.labelled)
    }
}
