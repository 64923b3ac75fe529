import AffectKernels

/// A row-major `rows × columns` matrix of per-frame values (features, logits or probabilities): the value
/// type every head/fusion step takes and returns. One row per frame (or per audio frame, word, video).
public struct FeatureMatrix: Equatable, Sendable {
    public let rows: Int
    public let columns: Int
    /// Row-major values, `rows × columns` of them.
    public private(set) var values: [Float]

    /// Throws unless `values.count == rows × columns`.
    public init(rows: Int, columns: Int, values: [Float]) throws {
        guard rows >= 0, columns >= 0, values.count == rows * columns else {
            throw AffectError.badInput("a \(rows)×\(columns) matrix needs \(max(rows, 0) * max(columns, 0)) values, got \(values.count).")
        }
        self.rows = rows; self.columns = columns; self.values = values
    }

    /// A `rows × columns` matrix of `value`.
    public init(rows: Int, columns: Int, repeating value: Float = 0) {
        precondition(rows >= 0 && columns >= 0)
        self.rows = rows; self.columns = columns; values = [Float](repeating: value, count: rows * columns)
    }

    /// From rows of equal length; `columns` is only needed when `rows` is empty.
    public init(_ rowArrays: [[Float]], columns: Int? = nil) throws {
        let c = rowArrays.first?.count ?? columns ?? 0
        for (i, r) in rowArrays.enumerated() where r.count != c {
            throw AffectError.badInput("row \(i) has \(r.count) values, expected \(c) like the first row.")
        }
        try self.init(rows: rowArrays.count, columns: c, values: rowArrays.flatMap { $0 })
    }

    /// From a 2-D tensor `[rows, columns]`.
    public init(_ t: Tensor) throws {
        guard t.rank == 2 else { throw AffectError.badInput("expected a 2-D tensor, got shape \(t.shape).") }
        try self.init(rows: t.shape[0], columns: t.shape[1], values: t.array)
    }

    /// The matrix as a `[rows, columns]` tensor (for heads).
    public var tensor: Tensor { Tensor(shape: [rows, columns], values: values) }

    public subscript(row: Int, column: Int) -> Float {
        get { values[row * columns + column] }
        set { values[row * columns + column] = newValue }
    }

    /// Row `r` as an array.
    public func row(_ r: Int) -> [Float] { Array(values[r * columns ..< (r + 1) * columns]) }

    /// Column `c` as an array.
    public func column(_ c: Int) -> [Float] { (0..<rows).map { values[$0 * columns + c] } }

    /// Index of the largest value of each row (the first one on ties, as `np.argmax`).
    public func argmaxPerRow() -> [Int] {
        (0..<rows).map { r in
            var best = 0
            for c in 1..<max(columns, 1) where values[r * columns + c] > values[r * columns + best] { best = c }
            return best
        }
    }
}
