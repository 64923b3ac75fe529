import Foundation
import AffectKernels
import AffectMedia
import AffectModels

/// `affect analyze --render`: the analysed video again, with each reported track's box, id, top expression
/// and its probability, and valence/arousal bars drawn on every frame; the source's audio copied.
public enum AnnotatedVideo {
    /// Decodes `analysis`'s video once more and writes the annotated copy to `path` in `container`'s format
    /// (its extension: .mp4, .mkv, .mov). Frames that were not analysed (`--every`, `--fps`) show the boxes of
    /// the last analysed frame; an analysed frame without a track's face shows none for it.
    /// Returns the encoder's name.
    @discardableResult
    public static func render(_ analysis: VideoAnalysis, to path: String, container: String) throws -> String {
        let scan = analysis.scan
        let decoder = try VideoDecoder(path: scan.path)
        let rate = scan.frameRate ?? (scan.duration > 0 ? Double(scan.frameCount) / scan.duration : VideoDecoder.fallbackFrameRate)
        let writer = try VideoWriter(path: path, container: container, width: decoder.width, height: decoder.height,
                                     frameRate: rate, audioFrom: scan.path)
        let scale = max(1, min(decoder.width, decoder.height) / 540)
        var shown: [Int: Int] = [:]  // track index → row of the box on screen
        var position = 0
        while var frame = try decoder.nextFrame() {
            guard position < scan.frameCount else { break }
            let analysed = scan.analyzed[position]
            for (k, t) in analysis.tracks.enumerated() {
                guard let first = t.rows.first, position >= first, position - first < t.rows.count else { shown[k] = nil; continue }
                let row = position - first
                if analysed { shown[k] = t.boxes[row] == nil ? nil : row }
                guard let boxRow = shown[k], let box = t.boxes[boxRow] else { continue }
                draw(t, row: row, box: box, on: &frame.image, colour: RGBColor.palette[t.id % RGBColor.palette.count], scale: scale)
            }
            try writer.append(frame.image, time: scan.times[position])
            position += 1
        }
        try writer.finish()
        return writer.encoderName
    }

    /// One track's annotations: the box, a label above it, valence and arousal bars below it.
    static func draw(_ t: TrackAnalysis, row: Int, box: FaceDetection, on image: inout RGBImage, colour: RGBColor, scale: Int) {
        guard box.isFinite else { return }
        // Boxes come from a detector's floats: bounded before they become pixel indices.
        func px(_ v: Float) -> Int { Int(max(-1e6, min(1e6, v)).rounded()) }
        let (x0, y0, x1, y1) = (px(box.x1), px(box.y1), px(box.x2), px(box.y2))
        image.stroke(x0: x0, y0: y0, x1: x1, y1: y1, colour, thickness: 2 * scale)
        let scores = t.expression ?? t.probabilities
        let c = t.predicted[row]
        let name = c < t.classLabels.count ? t.classLabels[c] : String(c)
        let p = c < scores.columns ? scores[row, c] : 0
        let text = "#\(t.id) \(name) \(Int((p * 100).rounded()))%"
        let h = RGBImage.textSize(text, scale: scale).height
        image.label(text, x: x0, y: max(0, y0 - h), .white, background: colour, scale: scale)
        guard let va = t.valenceArousal else { return }
        // Two bars centred under the box: right of centre for positive values, left for negative.
        let barH = 5 * scale, w = max(x1 - x0, 20), mid = x0 + w / 2
        for (k, (letter, v)) in [("V", va[row, 0]), ("A", va[row, 1])].enumerated() {
            let top = y1 + 3 * scale + k * (barH + 3 * scale)
            image.fill(x0: x0, y0: top, x1: x0 + w, y1: top + barH, .black, alpha: 0.5)
            let end = mid + Int((max(-1, min(1, v.isFinite ? v : 0)) * Float(w / 2)).rounded())
            image.fill(x0: min(mid, end), y0: top, x1: max(mid, end) + 1, y1: top + barH, colour)
            image.draw(letter, x: x0 - BitmapFont.width * scale - 2, y: top + barH / 2 - BitmapFont.height * scale / 2, colour, scale: scale)
        }
    }
}
