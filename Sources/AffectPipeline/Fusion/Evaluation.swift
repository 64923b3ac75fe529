import Foundation
import AffectKernels

/// A small CSV table: a header line of column names, then one row per frame (or per video). Fields are
/// separated by commas; a field in double quotes may hold commas, line breaks and doubled quotes (`""`), as
/// RFC 4180 and Python's `csv` module read them; spaces around a field are stripped; blank lines, a UTF-8
/// byte-order mark and Windows line ends (CRLF) are accepted.
///
/// ABAW annotation files (`.txt` with a header of class names and one label per line for EXPR) are read
/// too: when every data row has a single field, the table has the single column ``singleColumn``.
///
/// Every file is untrusted: it is refused when over ``maxBytes``, not UTF-8, with an unclosed quote, a row
/// of another width than the header, or a column name given twice; each problem is one sentence naming the
/// file and the line.
public struct CSVTable: Sendable {
    public let path: String
    public let header: [String]
    public let rows: [[String]]
    /// The line of the file each row starts on (1-based, for messages).
    public let lines: [Int]
    /// Name of the column of a file whose rows hold one value under a multi-name header.
    public static let singleColumn = "value"
    /// The largest file read: 256 MiB, over ten times an ABAW test set's per-frame AU predictions.
    public static let maxBytes = 256 << 20

    public init(path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw AffectError.badInput("\(path): no such file.") }
        guard !isDir.boolValue else { throw AffectError.badInput("\(path): is a folder, expected a CSV file.") }
        let tooLarge = AffectError.badInput("\(path): the file is over \(Self.maxBytes >> 20) MiB, the most `evaluate` reads.")
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > Self.maxBytes { throw tooLarge }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw AffectError.badInput("\(path): cannot read the file.") }
        defer { try? handle.close() }
        // Read at most one byte past the limit: a huge file is refused without being loaded.
        guard let data = try? handle.read(upToCount: Self.maxBytes + 1) ?? Data() else {
            throw AffectError.badInput("\(path): cannot read the file.")
        }
        guard data.count <= Self.maxBytes else { throw tooLarge }     // a device or a file that grew
        guard let text = String(data: data, encoding: .utf8) else { throw AffectError.badInput("\(path): the file is not UTF-8 text.") }
        try self.init(text: text, path: path)
    }

    public init(text: String, path: String = "CSV") throws {
        self.path = path
        var records = try Self.records(text, path: path)
        guard !records.isEmpty else { throw AffectError.badInput("\(path): the file is empty; expected a header line and rows.") }
        var header = records.removeFirst().fields
        let rows = records.map(\.fields)
        if header.count > 1, !rows.isEmpty, rows.allSatisfy({ $0.count == 1 }) { header = [Self.singleColumn] }
        for (r, line) in zip(rows, records.map(\.line)) where r.count != header.count {
            throw AffectError.badInput("\(path): line \(line) has \(r.count) fields, the header has \(header.count).")
        }
        var seen = Set<String>()
        for name in header where !name.isEmpty {
            guard seen.insert(name.lowercased()).inserted else {
                throw AffectError.badInput("\(path): column `\(name)` appears twice in the header.")
            }
        }
        self.header = header; self.rows = rows; self.lines = records.map(\.line)
    }

    /// The file's non-blank records with the line each starts on.
    static func records(_ text: String, path: String) throws -> [(fields: [String], line: Int)] {
        var text = text
        return try text.withUTF8 { all -> [(fields: [String], line: Int)] in
            var bytes = all[...]
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }     // byte-order mark
            let quote: UInt8 = 0x22, comma: UInt8 = 0x2C, cr: UInt8 = 0x0D, lf: UInt8 = 0x0A
            var out: [(fields: [String], line: Int)] = []
            var fields: [String] = [], field: [UInt8] = []
            var quoted = false, inQuotes = false, blank = true
            var line = 1, recordLine = 1
            func endField() {
                let s = String(decoding: field, as: UTF8.self)
                fields.append(quoted ? s : s.trimmingCharacters(in: .whitespaces))
                field.removeAll(keepingCapacity: true); quoted = false
            }
            func endRecord() {
                endField()
                if !blank { out.append((fields, recordLine)) }
                fields = []; blank = true
            }
            var i = bytes.startIndex
            while i < bytes.endIndex {
                let b = bytes[i]
                i += 1
                if inQuotes {
                    if b == quote {
                        if i < bytes.endIndex && bytes[i] == quote { field.append(quote); i += 1 } else { inQuotes = false }
                    } else {
                        if b == lf || (b == cr && (i == bytes.endIndex || bytes[i] != lf)) { line += 1 }
                        field.append(b)
                    }
                    continue
                }
                switch b {
                case quote:
                    // An opening quote: what came before it in the field can only be spaces.
                    if field.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { field.removeAll(); quoted = true; inQuotes = true; blank = false }
                    else { field.append(b) }
                case comma:
                    blank = false
                    endField()
                case cr, lf:
                    if b == cr, i < bytes.endIndex, bytes[i] == lf { i += 1 }
                    endRecord()
                    line += 1; recordLine = line
                default:
                    if quoted {
                        // Text after a closing quote is kept, as Python's csv reader does; spaces are dropped.
                        if b != 0x20 && b != 0x09 { field.append(b) }
                    } else {
                        field.append(b)
                        if b != 0x20 && b != 0x09 { blank = false }
                    }
                }
            }
            guard !inQuotes else { throw AffectError.badInput("\(path): line \(recordLine): a quoted field is never closed.") }
            endRecord()
            return out
        }
    }

    /// Index of the column named `name` (case-insensitive), if any.
    public func columnIndex(_ name: String) -> Int? {
        header.firstIndex { $0.caseInsensitiveCompare(name) == .orderedSame }
    }

    /// The numeric values of column `c`; throws naming the line of a non-number or a non-finite value.
    public func numbers(_ c: Int) throws -> [Double] {
        try rows.enumerated().map { i, r in
            guard let v = Double(r[c]), v.isFinite else {
                throw AffectError.badInput("\(path): line \(lines[i]), column `\(header[c])`: `\(r[c].prefix(40))` is not a finite number.")
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
    /// challenge; the weighted F1 is reported too. Predictions ≥ 0.5 count as 1; ground truth −1 frames skipped.
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
///
/// Both files are untrusted. Ground truth must hold the values of its ABAW format (EXPR a class 0–7 or −1,
/// VA values in [−1, 1] or −5, AU and AH 0, 1 or −1, EMI intensities in [0, 1]); predictions must be finite
/// (EXPR classes 0–7). A file without rows, a key given twice, a set with no row left to score and a measure
/// that is undefined on the data (a correlation of a constant series) are errors naming the file, never a
/// NaN or a score of nothing.
public enum Evaluation {
    public static func evaluate(task: EvaluationTask, predictions: CSVTable, truth: CSVTable) throws -> EvaluationResult {
        let (p, g) = try paired(predictions, truth, key: task == .emi ? "video" : "frame")
        let result: EvaluationResult
        switch task {
        case .expr:
            let pc = try exprClasses(predictions, p, allowed: 0...7), gc = try exprClasses(truth, g, allowed: -1...7)
            let keep = gc.indices.filter { gc[$0] != -1 }
            try scored(keep.count, truth, "every frame is unlabelled (−1)")
            let (t, q) = (keep.map { gc[$0] }, keep.map { pc[$0] })
            let f = try Metrics.f1Scores(truth: t, predicted: q, classes: 8)
            result = EvaluationResult(task: task, score: f.reduce(0, +) / 8,
                                      details: zip(ClassMapping.abawExpression, f).map { ("F1 \($0)", $1) },
                                      used: t.count, skipped: gc.count - t.count)
        case .va:
            let names = ["valence", "arousal"]
            let pv = try columns(predictions, names, p), gv = try columns(truth, names, g)
            try checkTruth(truth, gv, names, g, "in [−1, 1] or −5 (unlabelled)") { (-1...1).contains($0) || $0 == -5 }
            let keep = gv[0].indices.filter { gv[0][$0] != -5 && gv[1][$0] != -5 }
            try scored(keep.count, truth, "every frame is unlabelled (−5)")
            let c = try names.indices.map { k in
                try correlation(.ccc, keep.map { pv[k][$0] }, keep.map { gv[k][$0] }, names[k], predictions, truth)
            }
            result = EvaluationResult(task: task, score: (c[0] + c[1]) / 2, details: [("CCC valence", c[0]), ("CCC arousal", c[1])],
                                      used: keep.count, skipped: gv[0].count - keep.count)
        case .au:
            let names = EvaluationTask.auNames
            let pa = try columns(predictions, names, p), ga = try columns(truth, names, g)
            try checkTruth(truth, ga, names, g, "0, 1 or −1 (unlabelled)") { $0 == 0 || $0 == 1 || $0 == -1 }
            let keep = ga[0].indices.filter { i in ga.allSatisfy { $0[i] != -1 } }
            try scored(keep.count, truth, "every frame has an unlabelled (−1) action unit")
            var f: [Double] = []
            for k in names.indices {
                f.append(try Metrics.f1Scores(truth: keep.map { ga[k][$0] >= EvaluationTask.presenceThreshold ? 1 : 0 },
                                              predicted: keep.map { pa[k][$0] >= EvaluationTask.presenceThreshold ? 1 : 0 }, classes: 2)[1])
            }
            result = EvaluationResult(task: task, score: f.reduce(0, +) / Double(f.count),
                                      details: zip(names, f).map { ("F1 \($0)", $1) }, used: keep.count, skipped: ga[0].count - keep.count)
        case .emi:
            let names = EvaluationTask.emiNames
            let pe = try columns(predictions, names, p), ge = try columns(truth, names, g)
            try checkTruth(truth, ge, names, g, "in [0, 1]") { (0...1).contains($0) }
            guard ge[0].count >= 2 else { throw AffectError.badInput("\(truth.path): a correlation needs at least 2 videos, got \(ge[0].count).") }
            let r = try names.indices.map { try correlation(.pearson, pe[$0], ge[$0], names[$0], predictions, truth) }
            result = EvaluationResult(task: task, score: r.reduce(0, +) / Double(r.count),
                                      details: zip(names, r).map { ("PCC \($0)", $1) }, used: ge[0].count, skipped: 0)
        case .ah:
            let pv = try single(predictions, "ah", p), gv = try single(truth, "ah", g)
            try checkTruth(truth, [gv], ["ah"], g, "0, 1 or −1 (unlabelled)") { $0 == 0 || $0 == 1 || $0 == -1 }
            let keep = gv.indices.filter { gv[$0] != -1 }
            try scored(keep.count, truth, "every frame is unlabelled (−1)")
            let pa = keep.map { pv[$0] >= EvaluationTask.presenceThreshold ? 1 : 0 }
            let ga = keep.map { gv[$0] >= EvaluationTask.presenceThreshold ? 1 : 0 }
            let f = try Metrics.f1Scores(truth: ga, predicted: pa, classes: 2)
            let w = try Metrics.weightedF1(truth: ga, predicted: pa, classes: 2)
            result = EvaluationResult(task: task, score: (f[0] + f[1]) / 2,
                                      details: [("F1 absent", f[0]), ("F1 present", f[1]), ("weighted F1", w)],
                                      used: keep.count, skipped: gv.count - keep.count)
        }
        // The last guard of the contract: no measure is ever reported as NaN or infinite.
        for (name, value) in [("score", result.score)] + result.details where !value.isFinite {
            throw AffectError.badInput("\(predictions.path): the \(name) is \(value) on these files; the values are out of range.")
        }
        return result
    }

    /// Throws when no row is left to score (`why` says why, naming the ground truth file).
    static func scored(_ count: Int, _ truth: CSVTable, _ why: String) throws {
        guard count > 0 else { throw AffectError.badInput("\(truth.path): no row to score: \(why).") }
    }

    enum Correlation { case ccc, pearson }

    /// The CCC or Pearson r of predictions `x` and ground truth `y` of one column, or an error when it is
    /// undefined: Pearson's r when either series is constant, the CCC when both are the same constant. (These
    /// are decided on the values, not on the computed variance: rounding leaves a constant 0.1 column a
    /// variance of 1e-34, which turns 0/0 into an arbitrary number in [−1, 1].)
    static func correlation(_ kind: Correlation, _ x: [Double], _ y: [Double], _ column: String, _ p: CSVTable, _ g: CSVTable) throws -> Double {
        func constant(_ v: [Double]) -> Bool { v.allSatisfy { $0 == v[0] } }
        let measure = kind == .ccc ? "CCC" : "Pearson r"
        switch kind {
        case .pearson:
            for (series, t) in [(x, p), (y, g)] where constant(series) {
                throw AffectError.badInput("\(t.path): `\(column)` is \(series[0]) on every scored row, so its \(measure) is undefined.")
            }
        case .ccc:
            if constant(x) && constant(y) && x[0] == y[0] {
                throw AffectError.badInput("\(p.path): `\(column)` and its ground truth in \(g.path) are both \(x[0]) on every scored row, so their \(measure) is undefined.")
            }
        }
        let value = try kind == .ccc ? Metrics.ccc(x, y) : Metrics.pearson(x, y)
        guard value.isFinite else {
            throw AffectError.badInput("\(p.path): the \(measure) of `\(column)` against \(g.path) is \(value); the values are too large.")
        }
        return value
    }

    /// Ground truth values of `columns` (of the paired `rows`) must pass `valid`.
    static func checkTruth(_ t: CSVTable, _ columns: [[Double]], _ names: [String], _ rows: [Int], _ expected: String,
                           _ valid: (Double) -> Bool) throws {
        for (k, c) in columns.enumerated() {
            if let i = c.firstIndex(where: { !valid($0) }) {
                throw AffectError.badInput("\(t.path): line \(t.lines[rows[i]]), `\(names[k])` is \(c[i]); ground truth must be \(expected).")
            }
        }
    }

    /// Row indices of `a` and `b` that belong together.
    static func paired(_ a: CSVTable, _ b: CSVTable, key: String) throws -> ([Int], [Int]) {
        for t in [a, b] where t.rows.isEmpty { throw AffectError.badInput("\(t.path): the file has a header but no rows to evaluate.") }
        if let ka = a.columnIndex(key), let kb = b.columnIndex(key) {
            var index: [String: Int] = [:]
            for (i, r) in a.rows.enumerated() {
                if index[r[ka]] != nil { throw AffectError.badInput("\(a.path): line \(a.lines[i]): \(key) `\(r[ka].prefix(40))` appears twice.") }
                index[r[ka]] = i
            }
            var seen = Set<String>()
            var pa: [Int] = [], pb: [Int] = []
            for (j, r) in b.rows.enumerated() {
                guard seen.insert(r[kb]).inserted else {
                    throw AffectError.badInput("\(b.path): line \(b.lines[j]): \(key) `\(r[kb].prefix(40))` appears twice.")
                }
                guard let i = index[r[kb]] else {
                    throw AffectError.badInput("\(a.path): no prediction for \(key) `\(r[kb].prefix(40))` of \(b.path).")
                }
                pa.append(i); pb.append(j)
            }
            return (pa, pb)
        }
        guard a.rows.count == b.rows.count else {
            throw AffectError.badInput("\(a.path) has \(a.rows.count) rows but \(b.path) has \(b.rows.count); give both a `\(key)` column or the same rows.")
        }
        return (Array(a.rows.indices), Array(b.rows.indices))
    }

    static func columns(_ t: CSVTable, _ names: [String], _ rows: [Int]) throws -> [[Double]] {
        try names.map { n in
            guard let c = t.columnIndex(n) else {
                throw AffectError.badInput("\(t.path): column `\(n)` is missing (header: \(t.header.joined(separator: ",").prefix(200))).")
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

    /// Expression classes of the paired `rows`: whole numbers in `allowed` (checked before any conversion
    /// to Int, which traps on values out of its range), or the argmax of the 8 probability columns.
    static func exprClasses(_ t: CSVTable, _ rows: [Int], allowed: ClosedRange<Int>) throws -> [Int] {
        if t.columnIndex("expr") != nil || t.header.count == 1 {
            return try single(t, "expr", rows).enumerated().map { i, v in
                guard v == v.rounded(), v >= Double(allowed.lowerBound), v <= Double(allowed.upperBound) else {
                    throw AffectError.badInput("\(t.path): line \(t.lines[rows[i]]): expression class `\(v)` is not a whole number from \(allowed.lowerBound) to \(allowed.upperBound).")
                }
                return Int(v)
            }
        }
        let probs = try columns(t, ClassMapping.abawExpression, rows)
        return rows.indices.map { r in (0..<8).max { probs[$0][r] < probs[$1][r] || (probs[$0][r] == probs[$1][r] && $0 > $1) }! }
    }
}
