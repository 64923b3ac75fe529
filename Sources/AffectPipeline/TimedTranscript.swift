import Foundation
import AffectKernels

/// A spoken-text transcript with times: segments of text with their start and end times in seconds.
///
/// Read from SubRip (`.srt`), WebVTT (`.vtt`) or plain text (`.txt`). Plain text carries no times: each
/// non-empty line is a segment, and ``timed(duration:)`` spreads the lines over the video in proportion to
/// their length (a speaker's words take time roughly in proportion to their characters).
public struct TimedTranscript: Sendable, Equatable {
    public struct Segment: Sendable, Equatable {
        public var start: Double
        public var end: Double
        public var text: String
        public init(start: Double, end: Double, text: String) { self.start = start; self.end = end; self.text = text }
    }

    /// Where the transcript came from (named in errors).
    public let source: String
    public private(set) var segments: [Segment]
    /// False for plain text until ``timed(duration:)`` gives it times.
    public let hasTimes: Bool

    /// Largest amount (seconds) a transcript may run past the end of the video: subtitle files often end
    /// their last cue a little after the last frame.
    public static let endTolerance = 0.5
    /// Largest transcript file read (text beyond this is not a transcript of one video).
    public static let maxBytes = 16 << 20

    public init(source: String, segments: [Segment], hasTimes: Bool = true) throws {
        self.source = source; self.segments = segments; self.hasTimes = hasTimes
        guard !segments.isEmpty else { throw AffectError.badInput("\(source): the transcript has no text.") }
        if hasTimes {
            for (i, s) in segments.enumerated() {
                guard s.start.isFinite, s.end.isFinite, s.start >= 0, s.end >= s.start else {
                    throw AffectError.badInput("\(source): segment \(i + 1) (\"\(s.text.prefix(40))\") ends (\(s.end) s) before it starts (\(s.start) s).")
                }
                if i > 0 && s.start < segments[i - 1].start {
                    throw AffectError.badInput("\(source): segment \(i + 1) starts at \(s.start) s, before segment \(i) (\(segments[i - 1].start) s); segments must be in time order.")
                }
            }
        }
    }

    /// Reads a transcript file; the format comes from the extension (`.srt`, `.vtt`, anything else is
    /// plain text), or from a `WEBVTT` first line.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AffectError.badInput("\(path): cannot read the transcript file.")
        }
        guard data.count <= Self.maxBytes else {
            throw AffectError.badInput("\(path): the transcript is \(data.count >> 20) MB, more than the \(Self.maxBytes >> 20) MB a transcript of one video can be.")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw AffectError.badInput("\(path): the transcript is not UTF-8 text.")
        }
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        let body = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        if ext == "vtt" || body.hasPrefix("WEBVTT") {
            try self.init(source: path, segments: try Self.parseCues(body, source: path, vtt: true))
        } else if ext == "srt" {
            try self.init(source: path, segments: try Self.parseCues(body, source: path, vtt: false))
        } else {
            let lines = body.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            try self.init(source: path, segments: lines.map { Segment(start: 0, end: 0, text: $0) }, hasTimes: false)
        }
    }

    /// The transcript with times: plain-text lines share `[0, duration)` in proportion to their character
    /// counts; a timed transcript is returned unchanged.
    public func timed(duration: Double) throws -> TimedTranscript {
        if hasTimes { return self }
        guard duration > 0 else { throw AffectError.badInput("\(source): cannot place a plain-text transcript on a video without duration.") }
        let lengths = segments.map { Double(max($0.text.count, 1)) }
        let total = lengths.reduce(0, +)
        var t = 0.0
        var out: [Segment] = []
        for (s, l) in zip(segments, lengths) {
            let end = t + duration * l / total
            out.append(Segment(start: t, end: end, text: s.text))
            t = end
        }
        return try TimedTranscript(source: source, segments: out)
    }

    /// Throws when the transcript runs past the end of a video lasting `duration` seconds (beyond
    /// ``endTolerance``): it then belongs to another video, or the video is cut short.
    public func validate(duration: Double) throws {
        guard hasTimes, let last = segments.last else { return }
        let end = segments.map(\.end).max() ?? last.end
        if end > duration + Self.endTolerance {
            throw AffectError.badInput(String(format: "%@: the transcript runs to %.2f s but the video lasts %.2f s; it does not belong to this video (or the video is truncated).",
                                              source, end, duration))
        }
    }

    /// Per frame time, the index of the segment being spoken (the last one starting at or before it and
    /// ending after it), or nil between segments.
    public func segmentIndex(at times: [Double]) -> [Int?] {
        times.map { t in segments.lastIndex { $0.start <= t && t < $0.end } }
    }

    /// Segment embeddings (one row per segment) placed at each segment's mid-time and interpolated onto
    /// `frameTimes` (SciPy `interp1d`, edges held; see ``Alignment/words(_:starts:ends:to:outside:)``).
    /// Segments sharing a mid-time are averaged into one point first.
    public func align(_ embeddings: FeatureMatrix, to frameTimes: [Double]) throws -> FeatureMatrix {
        guard hasTimes else { throw AffectError.badInput("\(source): a plain-text transcript needs times first (timed(duration:)).") }
        guard embeddings.rows == segments.count else {
            throw AffectError.badInput("\(source): \(embeddings.rows) text embeddings for \(segments.count) transcript segments.")
        }
        // Mid-times in order, merging equal ones so interpolation sees strictly increasing times.
        let order = segments.indices.sorted { mid($0) < mid($1) }
        var times: [Double] = [], rows: [[Float]] = [], counts: [Float] = []
        for i in order {
            let m = mid(i)
            if let last = times.last, m <= last {
                for j in 0..<embeddings.columns { rows[rows.count - 1][j] += embeddings[i, j] }
                counts[counts.count - 1] += 1
            } else {
                times.append(m); rows.append(embeddings.row(i)); counts.append(1)
            }
        }
        for k in rows.indices where counts[k] > 1 { rows[k] = rows[k].map { $0 / counts[k] } }
        let y = try FeatureMatrix(rows, columns: embeddings.columns)
        return try LinearInterpolator(x: times, y: y, outside: .hold)(frameTimes)
    }

    private func mid(_ i: Int) -> Double { (segments[i].start + segments[i].end) / 2 }

    /// SubRip and WebVTT cues: blocks separated by blank lines, each with a `start --> end` line followed
    /// by text lines (an optional id line before it). WebVTT's header, NOTE, STYLE and REGION blocks are
    /// skipped and inline tags (`<i>`, `<v Speaker>`, timestamps) removed.
    public static func parseCues(_ text: String, source: String, vtt: Bool) throws -> [Segment] {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var segments: [Segment] = []
        var i = 0
        var sawHeader = !vtt
        while i < lines.count {
            // One block: consecutive non-empty lines.
            while i < lines.count && lines[i].trimmingCharacters(in: .whitespaces).isEmpty { i += 1 }
            let first = i
            while i < lines.count && !lines[i].trimmingCharacters(in: .whitespaces).isEmpty { i += 1 }
            let block = Array(lines[first..<i])
            guard !block.isEmpty else { continue }
            if vtt && !sawHeader {
                guard block[0].hasPrefix("WEBVTT") else {
                    throw AffectError.badInput("\(source): a WebVTT file must start with `WEBVTT`.")
                }
                sawHeader = true
                continue
            }
            if vtt, let head = block[0].split(separator: " ").first, ["NOTE", "STYLE", "REGION"].contains(String(head)) { continue }
            guard let timing = block.firstIndex(where: { $0.contains("-->") }), timing <= 1 else {
                throw AffectError.badInput("\(source): line \(first + 1): expected a `start --> end` timing line in this cue.")
            }
            let parts = block[timing].components(separatedBy: "-->")
            let startText = parts[0].trimmingCharacters(in: .whitespaces)
            let endText = parts[1].trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
            guard let start = timestamp(startText), let end = timestamp(endText) else {
                throw AffectError.badInput("\(source): line \(first + timing + 1): `\(block[timing])` is not a valid `HH:MM:SS,mmm --> HH:MM:SS,mmm` timing.")
            }
            let words = block[(timing + 1)...].map(stripTags).joined(separator: " ").trimmingCharacters(in: .whitespaces)
            if words.isEmpty { continue }
            guard end >= start else {
                throw AffectError.badInput("\(source): line \(first + timing + 1): the cue ends (\(endText)) before it starts (\(startText)).")
            }
            segments.append(Segment(start: start, end: end, text: words))
        }
        if vtt && !sawHeader { throw AffectError.badInput("\(source): a WebVTT file must start with `WEBVTT`.") }
        return segments
    }

    /// `HH:MM:SS,mmm`, `HH:MM:SS.mmm` or `MM:SS.mmm` → seconds.
    static func timestamp(_ s: String) -> Double? {
        let parts = s.replacingOccurrences(of: ",", with: ".").split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count) else { return nil }
        var total = 0.0
        for (k, p) in parts.enumerated() {
            let last = k == parts.count - 1
            guard !p.isEmpty, p.allSatisfy({ $0.isASCII && ($0.isNumber || (last && $0 == ".")) }), let v = Double(p) else { return nil }
            if !last && v != v.rounded() { return nil }
            if k > 0 && v >= 60 { return nil }
            total = total * 60 + v
        }
        return total
    }

    static func stripTags(_ line: String) -> String {
        var out = "", inTag = false
        for c in line {
            if c == "<" { inTag = true } else if c == ">" { inTag = false } else if !inTag { out.append(c) }
        }
        return out.trimmingCharacters(in: .whitespaces)
    }
}
