import AffectKernels

/// One video's decoded frames with what a per-frame model produced on each: a feature vector, logits or
/// probabilities where a face was found, `nil` where none was.
public struct FrameTimeline: Equatable, Sendable {
    /// Presentation time of each frame, in seconds, strictly increasing.
    public let times: [Double]
    /// Per frame: the vector (all of width ``width``) or `nil` for a frame without a face.
    public let values: [[Float]?]
    /// Width of every vector.
    public let width: Int

    /// Throws when the counts differ, times are not finite and strictly increasing, or widths differ.
    /// `width` is only needed when no frame has a face.
    public init(times: [Double], values: [[Float]?], width: Int? = nil) throws {
        guard times.count == values.count else {
            throw AffectError.badInput("the timeline has \(times.count) frame times for \(values.count) frames.")
        }
        guard times.allSatisfy(\.isFinite) else { throw AffectError.badInput("frame times must be finite.") }
        for i in times.indices.dropFirst() where !(times[i] > times[i - 1]) {
            throw AffectError.badInput("frame times must be strictly increasing (frame \(i) at \(times[i]) s follows \(times[i - 1]) s).")
        }
        let w = values.lazy.compactMap { $0?.count }.first ?? width ?? 0
        for (i, v) in values.enumerated() where v != nil && v!.count != w {
            throw AffectError.badInput("frame \(i) has \(v!.count) values, expected \(w).")
        }
        self.times = times; self.values = values; self.width = w
    }

    /// Frames at a constant rate: frame `i` at `i / fps` seconds.
    public init(fps: Double, values: [[Float]?], width: Int? = nil) throws {
        guard fps > 0, fps.isFinite else { throw AffectError.badInput("the frame rate must be positive, got \(fps).") }
        try self.init(times: (0..<values.count).map { Double($0) / fps }, values: values, width: width)
    }

    public var count: Int { values.count }
    /// Whether each frame has a face.
    public var hasFace: [Bool] { values.map { $0 != nil } }
    /// Indices of the frames with a face.
    public var faceIndices: [Int] { values.indices.filter { values[$0] != nil } }

    /// The face frames only, one row each (for pooling and heads).
    public func faceRows() -> FeatureMatrix {
        let rows = values.compactMap { $0 }
        var m = FeatureMatrix(rows: rows.count, columns: width)
        for (r, v) in rows.enumerated() { for j in 0..<width { m[r, j] = v[j] } }
        return m
    }

    /// Every frame, with frames without a face filled by linear interpolation (over frame times) between
    /// the neighbouring face frames, and frames before the first / after the last face frame holding that
    /// frame's value (SciPy `interp1d(t_face, v_face, axis=0, bounds_error=False,
    /// fill_value=(v_face[0], v_face[-1]))(t_all)`). With one face frame every frame gets its value.
    /// Throws when no frame has a face.
    public func filled() throws -> FeatureMatrix {
        let idx = faceIndices
        guard !idx.isEmpty else { throw AffectError.badInput("no frame of the video has a face; nothing to interpolate from.") }
        let interp = try LinearInterpolator(x: idx.map { times[$0] }, y: faceRows(), outside: .hold)
        var out = interp(times)
        // Face frames keep their own values bit for bit.
        for i in idx { for j in 0..<width { out[i, j] = values[i]![j] } }
        return out
    }
}
