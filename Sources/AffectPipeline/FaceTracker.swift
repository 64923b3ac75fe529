import AffectKernels
import AffectModels

/// A face followed across frames.
public struct FaceTrack: Sendable {
    public let id: Int
    /// Frame index of each detection, and the detection.
    public var frames: [Int] = []
    public var detections: [FaceDetection] = []
    public var last: FaceDetection { detections[detections.count - 1] }
}

/// Keeps one identity per person across frames by box overlap (IoU), for single- and multi-subject videos.
///
/// Each frame's detections are matched greedily, highest IoU first, to the tracks seen within the last
/// `maxGap` frames; a match needs IoU ≥ `minIoU`. Unmatched detections start new tracks. Frames where a track
/// has no detection are simply absent from it (the fusion layer interpolates them).
public struct FaceTracker: Sendable {
    public var minIoU: Float
    public var maxGap: Int
    public private(set) var tracks: [FaceTrack] = []

    public init(minIoU: Float = 0.3, maxGap: Int = 25) {
        self.minIoU = minIoU; self.maxGap = maxGap
    }

    public static func iou(_ a: FaceDetection, _ b: FaceDetection) -> Float {
        let iw = max(0, min(a.x2, b.x2) - max(a.x1, b.x1)), ih = max(0, min(a.y2, b.y2) - max(a.y1, b.y1))
        let inter = iw * ih
        let union = a.area + b.area - inter
        return union > 0 ? inter / union : 0
    }

    /// Adds one frame's detections; returns the track id of each detection, in order.
    @discardableResult
    public mutating func update(frame: Int, detections: [FaceDetection]) -> [Int] {
        let live = tracks.indices.filter { frame - (tracks[$0].frames.last ?? frame) <= maxGap }
        var pairs: [(iou: Float, track: Int, det: Int)] = []
        for t in live { for (d, det) in detections.enumerated() {
            let v = FaceTracker.iou(tracks[t].last, det)
            if v >= minIoU { pairs.append((v, t, d)) }
        } }
        pairs.sort { $0.iou > $1.iou }
        var ids = [Int](repeating: -1, count: detections.count)
        var usedTracks = Set<Int>()
        for p in pairs where ids[p.det] < 0 && !usedTracks.contains(p.track) {
            ids[p.det] = tracks[p.track].id
            usedTracks.insert(p.track)
            tracks[p.track].frames.append(frame)
            tracks[p.track].detections.append(detections[p.det])
        }
        for d in detections.indices where ids[d] < 0 {
            let id = tracks.count
            tracks.append(FaceTrack(id: id, frames: [frame], detections: [detections[d]]))
            ids[d] = id
        }
        return ids
    }

    /// The track a single-subject pipeline follows: the one with the largest total face area.
    public var mainTrack: FaceTrack? {
        tracks.max { $0.detections.reduce(0) { $0 + $1.area } < $1.detections.reduce(0) { $0 + $1.area } }
    }
}
