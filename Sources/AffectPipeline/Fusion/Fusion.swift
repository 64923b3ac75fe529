import AffectKernels

/// Combining modalities' predictions or features.
public enum Fusion {
    /// Late fusion of two modalities: `p = w · a + (1 − w) · b`, elementwise. Throws when shapes differ.
    public static func blend(_ a: FeatureMatrix, _ b: FeatureMatrix, weight w: Float) throws -> FeatureMatrix {
        try blend([a, b], weights: [w, 1 - w])
    }

    /// Late fusion of several modalities: `p = Σ wᵢ · pᵢ` (weights are used as given; pass weights that sum
    /// to 1 to keep probabilities). Throws when shapes or counts differ.
    public static func blend(_ ps: [FeatureMatrix], weights: [Float]) throws -> FeatureMatrix {
        guard let first = ps.first else { throw AffectError.badInput("late fusion needs at least one modality.") }
        guard weights.count == ps.count else {
            throw AffectError.badInput("late fusion has \(ps.count) modalities but \(weights.count) weights.")
        }
        if let w = weights.first(where: { !$0.isFinite }) { throw AffectError.badInput("late fusion: weight \(w) is not a finite number.") }
        for (i, p) in ps.enumerated() where p.rows != first.rows || p.columns != first.columns {
            throw AffectError.badInput("late fusion: modality \(i) is \(p.rows)×\(p.columns), modality 0 is \(first.rows)×\(first.columns).")
        }
        var out = [Float](repeating: 0, count: first.values.count)
        for (p, w) in zip(ps, weights) {
            p.values.withUnsafeBufferPointer { v in for i in out.indices { out[i] += w * v[i] } }
        }
        return try FeatureMatrix(rows: first.rows, columns: first.columns, values: out)
    }

    /// Early fusion: rows concatenated across modalities (`np.concatenate(ms, axis=1)`), ready for a head.
    /// Throws when row counts differ.
    public static func concatenate(_ ms: [FeatureMatrix]) throws -> FeatureMatrix {
        guard let first = ms.first else { throw AffectError.badInput("early fusion needs at least one modality.") }
        for (i, m) in ms.enumerated() where m.rows != first.rows {
            throw AffectError.badInput("early fusion: modality \(i) has \(m.rows) rows, modality 0 has \(first.rows).")
        }
        let c = ms.reduce(0) { $0 + $1.columns }
        var out: [Float] = []
        out.reserveCapacity(first.rows * c)
        for r in 0..<first.rows { for m in ms { out += m.values[r * m.columns ..< (r + 1) * m.columns] } }
        return try FeatureMatrix(rows: first.rows, columns: c, values: out)
    }
}
