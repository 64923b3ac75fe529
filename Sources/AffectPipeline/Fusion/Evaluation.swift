import Foundation
import AffectKernels

/// A small CSV table: a header line of column names, then one row per frame (or per video). Fields are
/// separated by commas, surrounding spaces and double quotes are stripped, blank lines are skipped.
///
/// ABAW annotation files (`.txt` with a header of class names and one label per line for EXPR) are read
/// too: when every data row has a single field, the table has the single column ``singleColumn``.
public struct CSVTable: Sendable {
    public let path: String
    public let header: [String]
    public let rows: [[String]]
    /// Name of the column of a file whose rows hold one value under a multi-name header.
    public static let singleColumn = "value"

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AffectError.badInput("\(path): cannot read the file.")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw AffectError.badInput("\(path): the file is not UTF-8 text.") }
        try self.init(text: text, path: path)
    }

    public init(text: String, path: String = "CSV") throws {
        self.path = path
        func fields(_ line: Substring) -> [String] {
            line.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        var lines = text.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
        guard !lines.isEmpty else { throw AffectError.badInput("\(path): the file is empty; expected a header line and rows.") }
        var header = fields(lines.removeFirst())
        let rows = lines.map(fields)
        if header.count > 1, !rows.isEmpty, rows.allSatisfy({ $0.count == 1 }) { header = [Self.singleColumn] }
        for (i, r) in rows.enumerated() where r.count != header.count {
            throw AffectError.badInput("\(path): line \(i + 2) has \(r.count) fields, the header has \(header.count).")
        }
        self.header = header; self.rows = rows
    }

    /// Index of the column named `name` (case-insensitive), if any.
    public func columnIndex(_ name: String) -> Int? {
        header.firstIndex { $0.caseInsensitiveCompare(name) == .orderedSame }
    }

    /// The numeric values of column `c`; throws naming the line of a non-number.
    public func numbers(_ c: Int) throws -> [Double] {
        try rows.enumerated().map { i, r in
            guard let v = Double(r[c]), v.isFinite else {
                throw AffectError.badInput("\(path): line \(i + 2), column `\(header[c])`: `\(r[c])` is not a number.")
            }
            return v
        }
    }
}

/// The ABAW tasks `affect evaluate` scores.
public enum EvaluationTask: String, CaseIterable, Sendable {
    /// Expressions: macro F1 over the 8 ABAW classes (Neutral, Anger, Disgust, Fear, Happiness, Sadness,
    /// Surprise, Other), every class counted (an absent class scores 0). Ground truth −1 frames skipped.
    case expr
    /// Valence-arousal: mean of the two CCCs. Frames where either ground truth value is −5 are skipped.
    case va
    /// Action units: mean of the 12 per-AU binary F1 scores; predictions ≥ 0.5 count as active. Frames
    /// with any ground truth −1 are skipped.
    case au
    /// Emotional mimicry intensity: mean Pearson correlation over the 6 intensities (one row per video).
    case emi
    /// Ambivalence/hesitancy: macro F1 over the two classes (0 absent, 1 present), as the ABAW-8 AH
    /// challenge; the weighted F1 is reported too. Predictions ≥ 0.5 count as 1.
    case ah

    /// A binary output (an action unit, ambivalence/hesitancy) counts as present at this probability or above,
    /// as the challenge's evaluation scripts threshold them.
    public static let presenceThreshold = 0.5
    public static let auNames = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"]
    public static let emiNames = ["Admiration", "Amusement", "Determination", "Empathic Pain", "Excitement", "Joy"]
}

/// A task's score and its parts.
public struct EvaluationResult: Sendable {
    public let task: EvaluationTask
    /// The challenge measure.
    public let score: Double
    /// Named components (per class, per AU, per dimension) and extra measures, in print order.
    public let details: [(name: String, value: Double)]
    /// Rows scored and rows skipped for invalid ground truth.
    public let used: Int
    public let skipped: Int
}

/// Scoring prediction files against ground truth files.
///
/// Rows are paired by the `frame` column when both files have one (by `video` for EMI), otherwise by
/// position, which needs equal row counts. Columns: EXPR `expr` (class index 0–7), a single-column file
/// (ABAW annotation), or the 8 ABAW class-probability columns (argmax); VA `valence`, `arousal`; AU the
/// columns `AU1` … `AU26`; EMI the 6 intensity names; AH `ah` or a single-column file.
public enum Evaluation {
    public static func evaluate(task: EvaluationTask, predictions: CSVTable, truth: CSVTable) throws -> EvaluationResult {
        let (p, g) = try paired(predictions, truth, key: task == .emi ? "video" : "frame")
        switch task {
        case .expr:
            let pc = try exprClasses(predictions, p), gc = try exprClasses(truth, g)
            let keep = gc.indices.filter { gc[$0] != -1 }
            let (t, q) = (keep.map { gc[$0] }, keep.map { pc[$0] })
            for (i, v) in t.enumerated() where !(0..<8).contains(v) {
                throw AffectError.badInput("\(truth.path): expression label \(v) (row \(keep[i] + 1)) is not in 0…7 or −1.")
            }
            let f = try Metrics.f1Scores(truth: t, predicted: q, classes: 8)
            return EvaluationResult(task: task, score: f.reduce(0, +) / 8,
                                    details: zip(ClassMapping.abawExpression, f).map { ("F1 \($0)", $1) },
                                    used: t.count, skipped: gc.count - t.count)
        case .va:
            let pv = try columns(predictions, ["valence", "arousal"], p), gv = try columns(truth, ["valence", "arousal"], g)
            let keep = gv[0].indices.filter { gv[0][$0] != -5 && gv[1][$0] != -5 }
            let cv = try Metrics.ccc(keep.map { pv[0][$0] }, keep.map { gv[0][$0] })
            let ca = try Metrics.ccc(keep.map { pv[1][$0] }, keep.map { gv[1][$0] })
            return EvaluationResult(task: task, score: (cv + ca) / 2, details: [("CCC valence", cv), ("CCC arousal", ca)],
                                    used: keep.count, skipped: gv[0].count - keep.count)
        case .au:
            let names = EvaluationTask.auNames
            let pa = try columns(predictions, names, p), ga = try columns(truth, names, g)
            let keep = ga[0].indices.filter { i in ga.allSatisfy { $0[i] != -1 } }
            var f: [Double] = []
            for k in names.indices {
                f.append(try Metrics.f1Scores(truth: keep.map { ga[k][$0] >= EvaluationTask.presenceThreshold ? 1 : 0 },
                                              predicted: keep.map { pa[k][$0] >= EvaluationTask.presenceThreshold ? 1 : 0 }, classes: 2)[1])
            }
            return EvaluationResult(task: task, score: f.reduce(0, +) / Double(f.count),
                                    details: zip(names, f).map { ("F1 \($0)", $1) }, used: keep.count, skipped: ga[0].count - keep.count)
        case .emi:
            let names = EvaluationTask.emiNames
            let pe = try columns(predictions, names, p), ge = try columns(truth, names, g)
            let r = try names.indices.map { try Metrics.pearson(pe[$0], ge[$0]) }
            return EvaluationResult(task: task, score: r.reduce(0, +) / Double(r.count),
                                    details: zip(names, r).map { ("PCC \($0)", $1) }, used: ge[0].count, skipped: 0)
        case .ah:
            let pa = try single(predictions, "ah", p).map { $0 >= EvaluationTask.presenceThreshold ? 1 : 0 }
            let ga = try single(truth, "ah", g).map { $0 >= EvaluationTask.presenceThreshold ? 1 : 0 }
            let f = try Metrics.f1Scores(truth: ga, predicted: pa, classes: 2)
            let w = try Metrics.weightedF1(truth: ga, predicted: pa, classes: 2)
            return EvaluationResult(task: task, score: (f[0] + f[1]) / 2,
                                    details: [("F1 absent", f[0]), ("F1 present", f[1]), ("weighted F1", w)],
                                    used: ga.count, skipped: 0)
        }
    }

    /// Row indices of `a` and `b` that belong together.
    static func paired(_ a: CSVTable, _ b: CSVTable, key: String) throws -> ([Int], [Int]) {
        if let ka = a.columnIndex(key), let kb = b.columnIndex(key) {
            var index: [String: Int] = [:]
            for (i, r) in a.rows.enumerated() {
                if index[r[ka]] != nil { throw AffectError.badInput("\(a.path): \(key) `\(r[ka])` appears twice.") }
                index[r[ka]] = i
            }
            var pa: [Int] = [], pb: [Int] = []
            for (j, r) in b.rows.enumerated() {
                guard let i = index[r[kb]] else {
                    throw AffectError.badInput("\(a.path): no prediction for \(key) `\(r[kb])` of \(b.path).")
                }
                pa.append(i); pb.append(j)
            }
            return (pa, pb)
        }
        guard a.rows.count == b.rows.count else {
            throw AffectError.badInput("\(a.path) has \(a.rows.count) rows but \(b.path) has \(b.rows.count); give both a `\(key)` column or the same rows.")
        }
        guard !a.rows.isEmpty else { throw AffectError.badInput("\(a.path): no rows to evaluate.") }
        return (Array(a.rows.indices), Array(b.rows.indices))
    }

    static func columns(_ t: CSVTable, _ names: [String], _ rows: [Int]) throws -> [[Double]] {
        try names.map { n in
            guard let c = t.columnIndex(n) else {
                throw AffectError.badInput("\(t.path): column `\(n)` is missing (header: \(t.header.joined(separator: ","))).")
            }
            let v = try t.numbers(c)
            return rows.map { v[$0] }
        }
    }

    static func single(_ t: CSVTable, _ name: String, _ rows: [Int]) throws -> [Double] {
        if t.columnIndex(name) != nil { return try columns(t, [name], rows)[0] }
        if t.header.count == 1 { return try columns(t, [t.header[0]], rows)[0] }
        throw AffectError.badInput("\(t.path): expected a `\(name)` column or a single-column file.")
    }

    static func exprClasses(_ t: CSVTable, _ rows: [Int]) throws -> [Int] {
        if t.columnIndex("expr") != nil || t.header.count == 1 {
            return try single(t, "expr", rows).enumerated().map { i, v in
                guard v == v.rounded() else { throw AffectError.badInput("\(t.path): expression class `\(v)` (row \(rows[i] + 1)) is not an integer.") }
                return Int(v)
            }
        }
        let probs = try columns(t, ClassMapping.abawExpression, rows)
        return rows.indices.map { r in (0..<8).max { probs[$0][r] < probs[$1][r] || (probs[$0][r] == probs[$1][r] && $0 > $1) }! }
    }
}
