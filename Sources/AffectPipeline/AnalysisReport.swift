import Foundation
import AffectKernels

/// The outputs of `affect analyze`: CSV (one row per decoded frame and reported track), JSON (the same
/// plus video-level results and a summary), an SVG plot and a readable summary.
public struct AnalysisReport: Sendable {
    public let analysis: VideoAnalysis
    /// Engagement per track (`--engagement-model`), added as columns, per-track summaries and a summary line.
    public var engagement: EngagementAnalysis?

    /// ABAW index of each predicted class (identity with an EXPR head; the model's labels mapped by name
    /// without one), so the CSV's `expr` column can be scored with `affect evaluate`.
    let abawIndex: [Int?]?

    public init(_ analysis: VideoAnalysis) {
        self.analysis = analysis
        if analysis.tracks.first?.expression != nil {
            abawIndex = Array(0..<ClassMapping.abawExpression.count)
        } else {
            abawIndex = (try? ClassMapping(from: analysis.modelLabels, allowUnmapped: true))?.target
        }
    }

    var scan: VideoScan { analysis.scan }
    var first: TrackAnalysis? { analysis.tracks.first }

    // MARK: CSV

    /// Columns: `frame, time, track, face` (1 detected, 0 analysed without this face, empty when the frame
    /// was not analysed), the box `x1, y1, x2, y2` (empty without a face), the expression model's
    /// probabilities `p_<label>`, `expression` (predicted class) and `expr` (its ABAW index, when it has one),
    /// then, when their heads ran,
    /// `expr_<ABAW class>`, `valence, arousal`, the 12 AUs, `ah`.
    public func csvHeader() -> String {
        var h = ["frame", "time", "track", "face", "x1", "y1", "x2", "y2"]
        h += analysis.modelLabels.map { "p_\($0)" }
        h.append("expression")
        if abawIndex != nil { h.append("expr") }
        let t = first
        if t?.expression != nil { h += ClassMapping.abawExpression.map { "expr_\($0)" } }
        if t?.valenceArousal != nil { h += ["valence", "arousal"] }
        if t?.actionUnits != nil { h += EvaluationTask.auNames }
        if t?.ambivalence != nil { h.append("ah") }
        h += engagementHeader()
        return h.joined(separator: ",")
    }

    /// The whole CSV document.
    public func csv() -> String {
        var out = csvHeader() + "\n"
        let width = csvHeader().split(separator: ",").count
        // Rows by frame, then track; a frame no reported track covers gets one row with frame, time and face only.
        var order: [(frame: Int, track: Int, row: Int)] = []
        for (ti, t) in analysis.tracks.enumerated() { for (r, p) in t.rows.enumerated() { order.append((p, ti, r)) } }
        var covered = [Bool](repeating: false, count: scan.frameCount)
        for o in order { covered[o.frame] = true }
        for p in 0..<scan.frameCount where !covered[p] { order.append((p, -1, -1)) }
        order.sort { ($0.frame, $0.track) < ($1.frame, $1.track) }
        for (p, ti, r) in order {
            if ti < 0 {
                var cells = [String(p), fmt(scan.times[p], 4), "", scan.analyzed[p] ? "0" : ""]
                cells += [String](repeating: "", count: width - cells.count)
                out += cells.joined(separator: ",") + "\n"
            } else {
                out += csvRow(analysis.tracks[ti], row: r, position: p) + "\n"
            }
        }
        return out
    }

    func csvRow(_ t: TrackAnalysis, row r: Int, position p: Int) -> String {
        var cells = [String(p), fmt(scan.times[p], 4), String(t.id)]
        if let b = t.boxes[r] {
            cells += ["1", fmt(b.x1, 2), fmt(b.y1, 2), fmt(b.x2, 2), fmt(b.y2, 2)]
        } else {
            cells += [scan.analyzed[p] ? "0" : "", "", "", "", ""]
        }
        cells += t.probabilities.row(r).map { fmt($0, 6) }
        cells.append(t.classLabels[t.predicted[r]])
        if let map = abawIndex { cells.append(map[t.predicted[r]].map(String.init) ?? "") }
        if let e = t.expression { cells += e.row(r).map { fmt($0, 6) } }
        if let v = t.valenceArousal { cells += v.row(r).map { fmt($0, 6) } }
        if let a = t.actionUnits { cells += a.row(r).map { fmt($0, 6) } }
        if let h = t.ambivalence { cells.append(fmt(h[r], 6)) }
        cells += engagementCells(t, row: r)
        return cells.joined(separator: ",")
    }

    // MARK: JSON

    /// Per-track summary: frames with the face, share of frames per predicted class, mean probabilities,
    /// mean valence/arousal, share of frames per active AU, share of AH frames, EMI (no rows).
    public func summary(_ t: TrackAnalysis) -> AnalysisDocument.Track {
        let n = Double(max(t.rows.count, 1))
        var counts = [String: Int]()
        for c in t.predicted { counts[t.classLabels[c], default: 0] += 1 }
        let dominant = counts.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? ""
        var s = AnalysisDocument.Track(
            dominantExpression: dominant,
            expressionShare: counts.mapValues { Double($0) / n },
            faceFrames: t.faceFrames, firstFrame: t.rows.first ?? 0, frames: t.rows.count, lastFrame: t.rows.last ?? 0,
            meanProbabilities: labelled(zip(analysis.modelLabels, columnMeans(t.probabilities))), track: t.id)
        if let e = t.expression { s.meanExpr = labelled(zip(ClassMapping.abawExpression, columnMeans(e))) }
        if let v = t.valenceArousal {
            let m = columnMeans(v)
            s.meanValence = m[0]; s.meanArousal = m[1]
        }
        if let a = t.actionUnits {
            var share: [String: Double] = [:]
            for (j, name) in EvaluationTask.auNames.enumerated() {
                share[name] = Double((0..<a.rows).filter { a[$0, j] >= analysis.auThresholds.values[j] }.count) / n
            }
            s.auActiveShare = share
        }
        if let h = t.ambivalence { s.ahShare = Double(h.filter { Double($0) >= EvaluationTask.presenceThreshold }.count) / n }
        if let g = t.gateProbability { s.ahGateProbability = Double(g) }
        if let m = t.mimicry { s.emi = labelled(zip(EvaluationTask.emiNames, m.map(Double.init))) }
        s.engagement = engagementSummary(t)
        return s
    }

    /// The JSON document: video facts, options, transcript, per-track summaries and per-frame rows.
    public func document() -> AnalysisDocument {
        let o = analysis.options
        let video = AnalysisDocument.Video(analyzedFrames: scan.analyzed.filter { $0 }.count, duration: scan.duration, file: scan.path,
                                           fps: scan.frameRate, frames: scan.frameCount, height: scan.height, width: scan.width)
        let smoothing: AnalysisDocument.Smoothing?
        switch o.smoother {
        case .mean(let d): smoothing = .window("mean", d)
        case .median(let d): smoothing = .window("median", d)
        case .gaussian(let s, _, _): smoothing = .gaussian(s)
        case nil: smoothing = nil
        }
        let options = AnalysisDocument.Options(every: o.every, fps: o.fps, minFace: Double(o.minFaceSize), smoothing: smoothing,
                                               t: o.threshold.map(Double.init), tracks: o.tracks.rawValue, w: o.weights?.map(Double.init))
        let tracks = analysis.tracks.map { t -> AnalysisDocument.Track in
            var track = summary(t)
            track.rows = t.rows.indices.map { r -> AnalysisDocument.Row in
                let p = t.rows[r]
                var row = AnalysisDocument.Row(analyzed: scan.analyzed[p], expression: t.classLabels[t.predicted[r]], frame: p,
                                               probabilities: t.probabilities.row(r).map(Double.init), time: scan.times[p])
                if let b = t.boxes[r] { row.box = [b.x1, b.y1, b.x2, b.y2].map(Double.init); row.faceProbability = Double(b.probability) }
                if let e = t.expression { row.expr = e.row(r).map(Double.init) }
                if let v = t.valenceArousal { row.valence = Double(v[r, 0]); row.arousal = Double(v[r, 1]) }
                if let a = t.actionUnits { row.au = a.row(r).map(Double.init) }
                if let h = t.ambivalence { row.ah = Double(h[r]) }
                row.engagement = engagementRow(t, row: r)
                return row
            }
            return track
        }
        return AnalysisDocument(expressionModel: .init(file: analysis.modelPath, labels: analysis.modelLabels), options: options,
                                summary: summaryText(), tracks: tracks,
                                transcript: analysis.transcript.map { $0.segments.map { .init(end: $0.end, start: $0.start, text: $0.text) } },
                                video: video)
    }

    /// ``document()`` encoded.
    public func json() throws -> Data { try document().encoded() }

    // MARK: Summary

    /// Tracks described one by one in ``summaryText()``.
    public static let summaryTracks = 10

    /// A few readable lines for standard output (the ``summaryTracks`` tracks seen longest).
    public func summaryText() -> String {
        var lines: [String] = []
        let name = URL(fileURLWithPath: scan.path).lastPathComponent
        let rate = scan.frameRate.map { String(format: ", %.2f fps", $0) } ?? ""
        let analysed = scan.analyzed.filter { $0 }.count
        lines.append("\(name): \(scan.width)×\(scan.height)\(rate), \(scan.frameCount) frames (\(fmt(scan.duration, 2)) s)" +
                     (analysed < scan.frameCount ? ", \(analysed) analysed" : "") +
                     ", \(scan.tracks.count) face track\(scan.tracks.count == 1 ? "" : "s")")
        if analysis.tracks.isEmpty { lines.append("no face found in any analysed frame"); return lines.joined(separator: "\n") }
        // Many tracks (crowds, sparse sampling): the ones seen longest; the JSON has them all.
        let shown = analysis.tracks.count <= Self.summaryTracks ? analysis.tracks
            : Array(analysis.tracks.sorted { ($0.faceFrames, $1.id) > ($1.faceFrames, $0.id) }.prefix(Self.summaryTracks))
        for t in shown {
            let s = summary(t)
            let n = t.rows.count
            lines.append("track \(t.id): face in \(t.faceFrames) of \(n) frames" +
                         (analysis.options.tracks == .all ? " (frames \(t.rows.first!)–\(t.rows.last!))" : ""))
            let share = s.expressionShare.sorted { $0.value > $1.value }
            lines.append("  expression: " + share.prefix(3).map { "\($0.key) \(fmt($0.value * 100, 1)) %" }.joined(separator: ", ") + " of frames")
            let means = columnMeans(t.probabilities)
            let top = means.indices.sorted { means[$0] > means[$1] }.prefix(3)
            lines.append("  mean probability: " + top.map { "\(analysis.modelLabels[$0]) \(fmt(means[$0], 3))" }.joined(separator: ", "))
            if let v = s.meanValence, let a = s.meanArousal {
                lines.append("  valence \(fmt(v, 3)), arousal \(fmt(a, 3)) (mean)")
            }
            if let au = s.auActiveShare {
                let active = EvaluationTask.auNames.filter { (au[$0] ?? 0) >= EvaluationTask.presenceThreshold }
                lines.append("  action units active in most frames: " + (active.isEmpty ? "none" : active.joined(separator: " ")))
            }
            if let h = s.ahShare { lines.append("  ambivalence/hesitancy in \(fmt(h * 100, 1)) % of frames") }
            if let m = t.mimicry {
                lines.append("  EMI: " + zip(EvaluationTask.emiNames, m).map { "\($0) \(fmt($1, 3))" }.joined(separator: ", "))
            }
            if let line = engagementLine(t) { lines.append(line) }
        }
        if shown.count < analysis.tracks.count {
            lines.append("... and \(analysis.tracks.count - shown.count) shorter tracks (every track is in the CSV and JSON outputs)")
        }
        if let tr = analysis.transcript { lines.append("transcript: \(tr.segments.count) segment\(tr.segments.count == 1 ? "" : "s") (\(tr.source))") }
        return lines.joined(separator: "\n")
    }

    // MARK: SVG

    /// Small multiples on one time axis (the whole video): the transcript's segments along the top, then for
    /// every reported track (at most ``maxPlottedTracks``) its per-frame class probabilities (the EXPR head's
    /// when one ran, else the expression model's), one coloured line per class, and its valence and arousal
    /// in [−1, 1] when a VA head or a multi-task model gave them. Hand-written SVG.
    public func svg() -> String {
        let (w, left, right) = (960.0, 56.0, 150.0)
        let plotW = w - left - right
        let (probH, vaH, gap, axisH) = (150.0, 80.0, 22.0, 56.0)
        let title = escape(URL(fileURLWithPath: scan.path).lastPathComponent)
        let tracks = Array(analysis.tracks.prefix(Self.maxPlottedTracks))
        let segments = analysis.transcript?.segments ?? []
        let stripH = segments.isEmpty ? 0.0 : 34.0
        var top = 28.0 + stripH
        let panels = tracks.map { probH + gap + ($0.valenceArousal == nil ? 0 : vaH + gap) }
        let h = top + panels.reduce(0, +) + axisH + (analysis.tracks.count > tracks.count ? 18 : 0)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(max(h, 60)))\" viewBox=\"0 0 \(Int(w)) \(Int(max(h, 60)))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        guard let firstTrack = tracks.first else {
            return s + "<text x=\"\(left)\" y=\"20\">\(title): no face found</text>\n</svg>\n"
        }
        let t0 = 0.0, t1 = max(scan.duration, 1e-3)
        func x(_ time: Double) -> Double { left + (min(max(time, t0), t1) - t0) / (t1 - t0) * plotW }
        let kind = firstTrack.expression == nil ? "expression model" : "EXPR"
        s += "<text x=\"\(left)\" y=\"18\" font-size=\"14\">\(title): \(kind) probabilities of \(analysis.tracks.count) track\(analysis.tracks.count == 1 ? "" : "s")</text>\n"
        // The transcript: one band per segment, its text clipped to the band.
        if !segments.isEmpty {
            s += "<clipPath id=\"strip\"><rect x=\"\(f1(left))\" y=\"28\" width=\"\(f1(plotW))\" height=\"\(f1(stripH - 6))\"/></clipPath>\n<g clip-path=\"url(#strip)\">\n"
            for (i, seg) in segments.enumerated() {
                let (xa, xb) = (x(seg.start), max(x(seg.end), x(seg.start) + 1))
                s += "<rect x=\"\(f1(xa))\" y=\"28\" width=\"\(f1(xb - xa))\" height=\"\(f1(stripH - 6))\" fill=\"\(i % 2 == 0 ? "#eef" : "#dde")\"/>\n"
                let chars = max(0, Int((xb - xa - 6) / 6.5))
                if chars > 2 {
                    let text = seg.text.count > chars ? String(seg.text.prefix(chars - 1)) + "…" : seg.text
                    s += "<text x=\"\(f1(xa + 3))\" y=\"\(f1(28 + stripH / 2 + 1))\" font-size=\"11\">\(escape(text))</text>\n"
                }
            }
            s += "</g>\n<text x=\"\(f1(left - 6))\" y=\"\(f1(28 + stripH / 2 + 1))\" text-anchor=\"end\" font-size=\"11\">speech</text>\n"
        }
        let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f", "#e377c2", "#bcbd22"]
        /// One panel: a frame, its grid and value labels, and a line per column of `m` over the track's rows.
        func panel(_ t: TrackAnalysis, _ m: FeatureMatrix, y0: Double, height: Double, range: (Double, Double),
                   label: String, lineColours: [String]) -> String {
            var p = ""
            func y(_ v: Double) -> Double { y0 + (1 - (min(max(v, range.0), range.1) - range.0) / (range.1 - range.0)) * height }
            for k in 0...2 {
                let v = range.0 + Double(k) / 2 * (range.1 - range.0)
                p += "<line x1=\"\(f1(left))\" y1=\"\(f1(y(v)))\" x2=\"\(f1(left + plotW))\" y2=\"\(f1(y(v)))\" stroke=\"#ddd\"/>\n"
                p += "<text x=\"\(f1(left - 6))\" y=\"\(f1(y(v) + 4))\" text-anchor=\"end\">\(fmt(v, 1))</text>\n"
            }
            p += "<rect x=\"\(f1(left))\" y=\"\(f1(y0))\" width=\"\(f1(plotW))\" height=\"\(f1(height))\" fill=\"none\" stroke=\"black\"/>\n"
            p += "<text x=\"\(f1(left + 4))\" y=\"\(f1(y0 - 5))\">\(escape(label))</text>\n"
            // At most ~2 points per horizontal pixel.
            let stride = max(1, t.rows.count / Int(2 * plotW))
            var picks = Array(Swift.stride(from: 0, to: t.rows.count, by: stride))
            if picks.last != t.rows.count - 1 { picks.append(t.rows.count - 1) }
            for c in 0..<m.columns {
                let pts = picks.map { r in "\(f1(x(scan.times[t.rows[r]]))),\(f1(y(Double(m[r, c]))))" }
                p += "<polyline fill=\"none\" stroke=\"\(lineColours[c % lineColours.count])\" stroke-width=\"1.5\" points=\"\(pts.joined(separator: " "))\"/>\n"
            }
            return p
        }
        var legend: [String] = []
        for (i, t) in tracks.enumerated() {
            let (m, labels) = t.expression.map { ($0, ClassMapping.abawExpression) } ?? (t.probabilities, analysis.modelLabels)
            if legend.isEmpty { legend = labels }
            let span = "\(fmt(scan.times[t.rows.first!], 1))–\(fmt(scan.times[t.rows.last!], 1)) s, \(t.faceFrames) face frames"
            s += panel(t, m, y0: top + gap, height: probH - gap, range: (0, 1), label: "track \(t.id) (\(span))", lineColours: colours)
            top += panels[i] - (t.valenceArousal == nil ? 0 : vaH + gap)
            if let va = t.valenceArousal {
                s += panel(t, va, y0: top + gap, height: vaH - gap, range: (-1, 1), label: "track \(t.id): valence, arousal",
                           lineColours: ["#000000", "#e6550d"])
                top += vaH + gap
            }
        }
        // The time axis, under the last panel.
        let axisY = top + gap / 2
        let step = niceStep((t1 - t0) / 8)
        var tick = (t0 / step).rounded(.up) * step
        while tick <= t1 + 1e-9 {
            s += "<line x1=\"\(f1(x(tick)))\" y1=\"\(f1(axisY))\" x2=\"\(f1(x(tick)))\" y2=\"\(f1(axisY + 4))\" stroke=\"black\"/>\n"
            s += "<text x=\"\(f1(x(tick)))\" y=\"\(f1(axisY + 18))\" text-anchor=\"middle\">\(fmt(tick, step < 1 ? 1 : 0))</text>\n"
            tick += step
        }
        s += "<text x=\"\(f1(left + plotW / 2))\" y=\"\(f1(axisY + 34))\" text-anchor=\"middle\">time (s)</text>\n"
        if analysis.tracks.count > tracks.count {
            s += "<text x=\"\(f1(left))\" y=\"\(f1(axisY + 52))\">\(analysis.tracks.count - tracks.count) more tracks in the CSV/JSON output.</text>\n"
        }
        // One legend for every panel.
        let legendTop = 28.0 + stripH + gap
        for (c, name) in legend.enumerated() {
            let ly = legendTop + 8 + Double(c) * 18
            s += "<line x1=\"\(f1(w - right + 12))\" y1=\"\(f1(ly))\" x2=\"\(f1(w - right + 32))\" y2=\"\(f1(ly))\" stroke=\"\(colours[c % colours.count])\" stroke-width=\"3\"/>\n"
            s += "<text x=\"\(f1(w - right + 38))\" y=\"\(f1(ly + 4))\">\(escape(name))</text>\n"
        }
        if tracks.contains(where: { $0.valenceArousal != nil }) {
            let ly = legendTop + 8 + Double(legend.count + 1) * 18
            for (k, (name, colour)) in [("valence", "#000000"), ("arousal", "#e6550d")].enumerated() {
                let yy = ly + Double(k) * 18
                s += "<line x1=\"\(f1(w - right + 12))\" y1=\"\(f1(yy))\" x2=\"\(f1(w - right + 32))\" y2=\"\(f1(yy))\" stroke=\"\(colour)\" stroke-width=\"3\"/>\n"
                s += "<text x=\"\(f1(w - right + 38))\" y=\"\(f1(yy + 4))\">\(name)</text>\n"
            }
        }
        return s + "</svg>\n"
    }

    /// Tracks drawn in the SVG; the others are in the CSV and JSON outputs.
    public static let maxPlottedTracks = 24

    // MARK: Helpers

    func columnMeans(_ m: FeatureMatrix) -> [Double] {
        (0..<m.columns).map { j in m.rows == 0 ? 0 : (0..<m.rows).reduce(0.0) { $0 + Double(m[$1, j]) } / Double(m.rows) }
    }
}

/// `labels[i]: values[i]`; a repeated label (model metadata is untrusted) keeps its first value.
func labelled<S: Sequence>(_ pairs: S) -> [String: Double] where S.Element == (String, Double) {
    Dictionary(pairs.map { ($0.0, $0.1) }, uniquingKeysWith: { first, _ in first })
}

func fmt(_ v: Float, _ digits: Int) -> String { v.isFinite ? String(format: "%.\(digits)f", Double(v)) : "" }
func fmt(_ v: Double, _ digits: Int) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : "" }
func f1(_ v: Double) -> String { String(format: "%.1f", v) }
func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
/// 1, 2 or 5 × 10^k at least `raw`.
func niceStep(_ raw: Double) -> Double {
    guard raw > 0, raw.isFinite else { return 1 }
    let p = pow(10, floor(log10(raw)))
    for m in [1.0, 2, 5, 10] where m * p >= raw { return m * p }
    return 10 * p
}
