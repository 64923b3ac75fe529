import Foundation
import AffectKernels

/// The heads `affect fit` trains, with their outputs, output activation and loss.
public enum TrainingTask: String, CaseIterable, Sendable {
    /// Expressions: 8 ABAW classes, softmax, (weighted) cross-entropy, macro F1.
    case expr
    /// Valence and arousal: tanh outputs, CCC loss, mean CCC.
    case va
    /// 12 action units: sigmoid, BCE, mean F1 with per-AU thresholds tuned on validation.
    case au
    /// Ambivalence/hesitancy per frame: one sigmoid, BCE, macro F1 of the two classes at 0.5.
    case ah
    /// Emotional mimicry intensity per video (STAT-pooled features): 6 linear outputs, MSE, mean Pearson r.
    case emi
    /// The AH video gate: logistic regression (no hidden layer), BCE, macro F1 at 0.5.
    case gate

    /// Output columns.
    public var outputs: Int {
        switch self {
        case .expr: return 8
        case .va: return 2
        case .au: return 12
        case .ah, .gate: return 1
        case .emi: return 6
        }
    }

    public var activation: OutputActivation {
        switch self {
        case .expr: return .softmax
        case .va: return .tanh
        case .au, .ah, .gate: return .sigmoid
        case .emi: return .linear
        }
    }

    public func loss(classWeights: [Float]? = nil) -> Loss {
        switch self {
        case .expr: return .crossEntropy(classWeights: classWeights)
        case .va: return .concordance
        case .au, .ah, .gate: return .binaryCrossEntropy
        case .emi: return .meanSquaredError
        }
    }

    /// Values per label row: one class index for EXPR, else one per output.
    public var targetWidth: Int { self == .expr ? 1 : outputs }

    /// The validation metric early stopping maximises.
    public var metricName: String {
        switch self {
        case .expr: return "macro F1"
        case .va: return "mean CCC"
        case .au: return "mean AU F1"
        case .ah, .gate: return "macro F1"
        case .emi: return "mean PCC"
        }
    }
}

/// One ABAW-format annotation file: an optional header line, then one row per frame (or per video for EMI
/// and the gate): EXPR a class index 0–7 (−1 unlabelled), VA `valence,arousal` in [−1, 1] (−5 unlabelled),
/// AU 12 comma-separated 0/1 (−1 unlabelled), AH and the gate 0 or 1 (−1 unlabelled), EMI 6 comma-separated
/// intensities in [0, 1].
public struct LabelFile: Sendable {
    /// `[rows, task.targetWidth]`; rows that are unlabelled hold zeros.
    public let values: [Float]
    /// Per row: whether it is labelled.
    public let labelled: [Bool]
    public var rows: Int { labelled.count }

    /// Bytes a label row may take on average (an AU row is about 24; this leaves room for spaces and decimals).
    public static let bytesPerRow = 256

    /// Reads `path` for `task`, refusing files of more than `maxRows` rows (checked on the byte size first).
    public init(path: String, task: TrainingTask, maxRows: Int) throws {
        func bad(_ m: String) -> AffectError { .badInput("\(path): \(m)") }
        let limit = maxRows * LabelFile.bytesPerRow + 4096
        guard let handle = FileHandle(forReadingAtPath: path) else {
            var isDir: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            throw bad(!exists ? "no such file." : isDir.boolValue ? "is a folder, expected a label file." : "cannot be read.")
        }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
        guard data.count <= limit else {
            throw bad("the label file is over \(limit) bytes, more than \(maxRows) rows can take.")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw bad("the label file is not UTF-8 text.") }
        // `\r\n` is one Character in Swift: split on every kind of line end.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
        let width = task.targetWidth, fields = task == .expr ? 1 : task.outputs
        var values: [Float] = [], labelled: [Bool] = []
        values.reserveCapacity(min(lines.count, maxRows) * width)
        for (k, line) in lines.enumerated() {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let numbers = cells.map { Double($0) }
            // Only the first line may be a header (ABAW files name their columns there).
            if k == 0 && numbers.contains(where: { $0 == nil }) { continue }
            guard labelled.count < maxRows else { throw bad("the label file has more than \(maxRows) rows.") }
            guard cells.count == fields, numbers.allSatisfy({ $0 != nil && $0!.isFinite }) else {
                throw bad("line \(k + 1) should hold \(fields) number\(fields == 1 ? "" : "s")\(fields > 1 ? " separated by commas" : ""), got `\(line.prefix(80))`.")
            }
            let v = numbers.map { $0! }
            func whole(_ x: Double, _ range: ClosedRange<Double>, _ what: String) throws -> Float {
                guard x == x.rounded(), range.contains(x) else { throw bad("line \(k + 1): \(what), got \(x).") }
                return Float(x)
            }
            switch task {
            case .expr:
                let c = try whole(v[0], -1...7, "an expression class must be 0 to 7 or −1 (unlabelled)")
                labelled.append(c >= 0); values.append(max(c, 0))
            case .va:
                if v.contains(-5) { labelled.append(false); values += [0, 0]; continue }
                guard v.allSatisfy({ (-1...1).contains($0) }) else {
                    throw bad("line \(k + 1): valence and arousal must be in [−1, 1] or −5 (unlabelled), got \(v[0]), \(v[1]).")
                }
                labelled.append(true); values += v.map { Float($0) }
            case .au, .ah, .gate:
                let b = try v.map { try whole($0, -1...1, "action unit and AH labels must be 0, 1 or −1 (unlabelled)") }
                let ok = !b.contains(-1)
                labelled.append(ok); values += ok ? b : [Float](repeating: 0, count: width)
            case .emi:
                guard v.allSatisfy({ (0...1).contains($0) }) else {
                    throw bad("line \(k + 1): mimicry intensities must be in [0, 1], got `\(line.prefix(80))`.")
                }
                labelled.append(true); values += v.map { Float($0) }
            }
        }
        guard !labelled.isEmpty else { throw bad("the label file holds no label rows.") }
        self.values = values; self.labelled = labelled
    }
}
