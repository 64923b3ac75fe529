import Foundation
import AffectKernels

/// The feature rows a head is trained on, read in place: one or more parts (a flat feature file, or one
/// extract file per video), each holding one matrix per modality with the same row count. Early fusion is
/// the concatenation of a row's modality matrices, made only when a batch is gathered, so memory stays that
/// of the (memory-mapped) files plus one batch.
public final class TrainingFeatures: @unchecked Sendable {
    /// One file's rows: a `[rows, width]` row-major matrix per modality, kept alive by `owners`.
    public struct Part {
        public let name: String
        public let rows: Int
        let matrices: [(pointer: UnsafePointer<Float>, width: Int)]
        let owners: [AnyObject]

        /// A part of `tensors` (rank 2, equal row counts), concatenated column-wise in this order.
        public init(name: String, tensors: [Tensor]) throws {
            guard let first = tensors.first else { throw AffectError.badInput("\(name): no feature matrices.") }
            for t in tensors {
                guard t.rank == 2, t.shape[0] == first.shape[0], t.shape[1] > 0 else {
                    throw AffectError.badInput("\(name): feature matrices must be [rows, width] with one row count, got \(tensors.map { $0.shape }).")
                }
            }
            self.name = name
            rows = first.shape[0]
            matrices = tensors.map { (pointer: UnsafePointer($0.data), width: $0.shape[1]) }
            owners = tensors.map { $0.storage }
        }

        var width: Int { matrices.reduce(0) { $0 + $1.width } }
    }

    public let parts: [Part]
    /// Columns of a gathered row (the sum of the modalities' widths).
    public let width: Int
    /// Rows over all parts.
    public let count: Int
    private let partStarts: [Int]

    public init(parts: [Part]) throws {
        guard let first = parts.first else { throw AffectError.badInput("no feature files to train on.") }
        let widths = first.matrices.map(\.width)
        for p in parts where p.matrices.map(\.width) != widths {
            throw AffectError.badInput("\(p.name): feature widths \(p.matrices.map(\.width)) differ from \(widths) in \(first.name).")
        }
        self.parts = parts
        width = first.width
        var starts: [Int] = [], n = 0
        for p in parts { starts.append(n); n += p.rows }
        partStarts = starts
        count = n
    }

    /// The part and the row within it of global row `r`.
    @inline(__always) func locate(_ r: Int) -> (Int, Int) {
        // Binary search: the last part starting at or before r.
        var lo = 0, hi = partStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if partStarts[mid] <= r { lo = mid } else { hi = mid - 1 }
        }
        return (lo, r - partStarts[lo])
    }

    /// Copies rows `indices` (global row numbers) into `out` `[indices.count, width]`.
    public func gather(_ indices: UnsafeBufferPointer<Int32>, into out: UnsafeMutablePointer<Float>) {
        let w = width
        parallelFor(indices.count, minChunk: max(1, 65_536 / max(w, 1))) { i0, i1 in
            for i in i0..<i1 {
                let (p, row) = self.locate(Int(indices[i]))
                var dst = out + i * w
                for m in self.parts[p].matrices {
                    dst.update(from: m.pointer + row * m.width, count: m.width)
                    dst += m.width
                }
            }
        }
    }

    /// The first non-finite value among rows `indices`, as (global row, column), or nil.
    public func firstNonFinite(_ indices: [Int32]) -> (row: Int, column: Int)? {
        for r in indices {
            let (p, row) = locate(Int(r))
            var col = 0
            for m in parts[p].matrices {
                let src = m.pointer + row * m.width
                for j in 0..<m.width where !src[j].isFinite { return (Int(r), col + j) }
                col += m.width
            }
        }
        return nil
    }

    /// The part name and row of global row `r` (for messages).
    public func describe(row r: Int) -> String {
        let (p, row) = locate(r)
        return "\(parts[p].name) row \(row)"
    }
}

/// A training or validation set: which feature rows take part (the labelled ones) and their targets.
public struct LabelledRows: Sendable {
    public let features: TrainingFeatures
    /// Global feature rows, in label order.
    public let rows: [Int32]
    /// `[rows.count, targetWidth]`: a class index for EXPR, else the target values.
    public let targets: [Float]
    public let targetWidth: Int

    public init(features: TrainingFeatures, rows: [Int32], targets: [Float], targetWidth: Int) throws {
        guard targets.count == rows.count * targetWidth else {
            throw AffectError.badInput("\(rows.count) rows need \(rows.count * targetWidth) target values, got \(targets.count).")
        }
        guard !rows.isEmpty else { throw AffectError.badInput("no labelled rows to train on.") }
        self.features = features; self.rows = rows; self.targets = targets; self.targetWidth = targetWidth
    }

    public var count: Int { rows.count }
}
