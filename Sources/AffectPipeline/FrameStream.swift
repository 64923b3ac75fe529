import Foundation
import AffectKernels
import AffectMedia
import AffectModels

/// One face of one analysed frame, as soon as the face model has seen it.
public struct FaceObservation: Sendable {
    /// The tracker's id: the same person keeps it from frame to frame.
    public let track: Int
    public let box: FaceDetection
    /// The face model's expression probabilities (softmax of its expression logits), in the order of
    /// ``Analyzer/faceModel``'s labels.
    public let probabilities: [Float]
    /// Valence and arousal of a multi-task (`*_va_mtl`) face model.
    public let valence: Float?
    public let arousal: Float?

    public init(track: Int, box: FaceDetection, probabilities: [Float], valence: Float?, arousal: Float?) {
        self.track = track; self.box = box; self.probabilities = probabilities; self.valence = valence; self.arousal = arousal
    }
}

/// The faces of one analysed frame.
public struct FrameObservation: Sendable {
    /// Position of the frame among the decoded frames (0 for the first).
    public let position: Int
    /// Presentation time in seconds.
    public let time: Double
    public let faces: [FaceObservation]

    public init(position: Int, time: Double, faces: [FaceObservation]) {
        self.position = position; self.time = time; self.faces = faces
    }
}

/// How a live analysis ended.
public struct StreamSummary: Sendable {
    /// Frames the decoder delivered (after `every` / `fps` sampling).
    public var decoded = 0
    /// Frames analysed (given to the callback).
    public var analyzed = 0
    /// Frames dropped because the analysis fell behind a source that cannot wait.
    public var dropped = 0
    /// Whether the stop flag ended it (else the stream ended or timed out).
    public var stopped = false

    public init() {}
}

/// Faces of one frame: boxes, track ids, and the face model's prediction (nil without faces).
struct FrameFaces {
    var boxes: [FaceDetection] = []
    var tracks: [Int] = []
    var prediction: FacePrediction?
}

extension Analyzer {
    /// Detection, tracking and the face model on one frame: the step ``scan(path:progress:onFrame:)`` and
    /// ``stream(_:stop:timeout:onFrame:)`` share.
    func detectFaces(in image: RGBImage, position: Int, tracker: inout FaceTracker) throws -> FrameFaces {
        var out = try facesAndPrediction(in: image)
        out.tracks = tracker.update(frame: position, detections: out.boxes)
        return out
    }

    /// Detection and the face model on one frame, without tracking (which needs the frames in order); safe to
    /// run for several frames at once.
    func facesAndPrediction(in image: RGBImage) throws -> FrameFaces {
        var out = FrameFaces()
        out.boxes = detector.detect(image)
        guard !out.boxes.isEmpty else { return out }
        out.prediction = try faceModel.predict(image, faces: out.boxes)
        return out
    }

    /// The most threads for which ``scan(path:progress:onFrame:)`` analyses frames in parallel, one frame per
    /// thread: each holds a decoded RGB frame (6 MB at 1080p, 25 MB at 4K), and two per thread wait decoded.
    /// With more threads than this, frames go one at a time with each frame's work split across all threads.
    static let framesInFlight = 16

    /// What the callbacks receive for one frame: probabilities and valence/arousal per tracked face.
    func observation(_ found: FrameFaces, position: Int, time: Double) -> FrameObservation {
        let k = faceModel.expressionLabels.count
        let probabilities = found.prediction?.probabilities, va = found.prediction?.valenceArousal
        let faces = found.tracks.indices.map { i -> FaceObservation in
            let p = probabilities.map { Array(UnsafeBufferPointer(start: $0.data + i * k, count: k)) } ?? [Float](repeating: 0, count: k)
            return FaceObservation(track: found.tracks[i], box: found.boxes[i], probabilities: p,
                                   valence: va?.data[2 * i], arousal: va?.data[2 * i + 1])
        }
        return FrameObservation(position: position, time: time, faces: faces)
    }

    /// Analyses a source frame by frame as it arrives (a camera, a network stream, standard input, or a
    /// file read once), calling `onFrame` with each analysed frame's faces and the number of frames dropped
    /// so far. Nothing accumulates: memory stays flat however long the stream runs.
    ///
    /// Decoding runs on its own thread, two frames ahead at most. When the analysis falls behind a source
    /// that cannot wait (``MediaSource/cannotPause``: UDP, RTP, RTSP, SRT, cameras), the oldest waiting
    /// frame is dropped; other sources (files, pipes, TCP, HTTP) are paced by the analysis instead.
    /// `stop` ends it cleanly from another thread (a signal): the frame in hand is finished, the summary
    /// says it stopped. Heads, smoothing and other modalities need the whole video and are not applied.
    public func stream(_ source: MediaSource, stop: StopFlag = StopFlag(), timeout: Double = 10,
                       onFrame: (FrameObservation, _ dropped: Int) throws -> Void) throws -> StreamSummary {
        try options.validate()
        let decoder = try VideoDecoder(source: source, stop: stop, timeout: timeout)
        decoder.every = options.every
        decoder.targetFPS = options.fps
        // Track gaps are counted in decoded frames: a sampled stream skips `step` of them between analyses.
        let rate = decoder.frameRate ?? VideoDecoder.fallbackFrameRate
        let step = options.fps.map { max(1, Int((rate / $0).rounded(.up))) } ?? options.every
        var tracker = FaceTracker(maxGap: max(options.maxTrackGap, 2 * step))

        let queue = FrameQueue(capacity: 2, dropWhenFull: source.cannotPause)
        // The decoder moves to the reader thread: this one does not touch it again.
        nonisolated(unsafe) let reading = decoder
        let reader = Thread {
            defer { queue.finish() }
            do {
                while !stop.isStopped, let frame = try reading.nextFrame() {
                    guard queue.push(frame, stop: stop) else { break }
                }
            } catch {
                queue.fail(error)
            }
        }
        reader.stackSize = 1 << 20
        reader.start()
        var summary = StreamSummary()
        var lastTime = -Double.infinity
        do {
            while let (frame, dropped) = queue.pop() {
                // Broken timestamps (repeated pts) would make the timeline go backwards; nudge them forward.
                let time = max(frame.time, lastTime + 1e-6)
                lastTime = time
                let found = try detectFaces(in: frame.image, position: frame.index, tracker: &tracker)
                summary.analyzed += 1
                try onFrame(observation(found, position: frame.index, time: time), dropped)
            }
        } catch {
            stop.stop()
            queue.drain()
            queue.waitUntilFinished()
            throw error
        }
        queue.waitUntilFinished()
        if let e = queue.error, !stop.isStopped { throw e }
        summary.decoded = queue.pushed
        summary.dropped = queue.dropped
        summary.stopped = stop.isStopped
        return summary
    }
}

/// A video file's frames decoded ahead on their own thread, so decoding and the RGB conversion overlap the
/// analysis of the previous frame instead of leaving the other cores idle between frames.
///
/// At most `ahead` decoded frames wait (memory stays bounded). With one thread (``Threading/threads`` = 1)
/// frames are decoded on the caller's thread, as before: `--threads 1` uses one core. Frames and errors come
/// out in the order the decoder produced them: the frames before a decoding error first, then the error.
/// Releasing the prefetcher (e.g. when the consumer throws) stops the decoding thread and waits for it.
final class FramePrefetcher {
    private let decoder: VideoDecoder
    private let queue: FrameQueue?
    private let stop = StopFlag()

    init(_ decoder: VideoDecoder, ahead: Int = 2) {
        self.decoder = decoder
        guard Threading.threads > 1 else { queue = nil; return }
        let queue = FrameQueue(capacity: max(ahead, 1), dropWhenFull: false)
        self.queue = queue
        let source = DecoderHandle(decoder), stop = stop
        let reader = Thread {
            defer { queue.finish() }
            do {
                while !stop.isStopped, let frame = try source.decoder.nextFrame() {
                    guard queue.push(frame, stop: stop) else { break }
                }
            } catch {
                queue.fail(error)
            }
        }
        reader.stackSize = 1 << 20
        reader.start()
    }

    /// Returns finished frames' pixel buffers to the decoder for reuse (see ``VideoDecoder/recycle(_:)``).
    func recycle(_ images: [RGBImage]) { for image in images { decoder.recycle(image) } }

    /// The next frame, nil at the end of the video; rethrows the decoder's error after the frames before it.
    func next() throws -> VideoFrame? {
        guard let queue else { return try decoder.nextFrame() }
        if let (frame, _) = queue.pop() { return frame }
        queue.waitUntilFinished()
        if let e = queue.error { throw e }
        return nil
    }

    deinit {
        guard let queue else { return }
        stop.stop()
        queue.drain()
        queue.waitUntilFinished()
    }
}

/// Hands the decoder to its thread: only that thread uses it until the prefetcher's `deinit` has waited for
/// the thread to end (the caller reads only immutable properties meanwhile).
private final class DecoderHandle: @unchecked Sendable {
    let decoder: VideoDecoder
    init(_ decoder: VideoDecoder) { self.decoder = decoder }
}

/// The hand-over between the decoding thread and the analysis: at most `capacity` frames wait. When full,
/// the decoder either waits (a source that can be paused) or replaces the oldest waiting frame.
final class FrameQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var frames: [VideoFrame] = []
    private let capacity: Int
    private let dropWhenFull: Bool
    private var finished = false
    private var readerDone = false
    private(set) var pushed = 0
    private(set) var dropped = 0
    private(set) var error: Error?

    init(capacity: Int, dropWhenFull: Bool) { self.capacity = capacity; self.dropWhenFull = dropWhenFull }

    /// Hands a frame over; false when the consumer has gone (stop the decoder).
    func push(_ frame: VideoFrame, stop: StopFlag) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while frames.count >= capacity && !dropWhenFull && !finished && !stop.isStopped {
            condition.wait(until: Date(timeIntervalSinceNow: 0.1))
        }
        if finished || stop.isStopped { return false }
        if frames.count >= capacity { frames.removeFirst(); dropped += 1 }
        frames.append(frame)
        pushed += 1
        condition.broadcast()
        return true
    }

    /// The oldest waiting frame and the drop count so far; nil once the decoder is done and nothing waits.
    func pop() -> (VideoFrame, Int)? {
        condition.lock(); defer { condition.unlock() }
        while frames.isEmpty && !readerDone { condition.wait() }
        guard !frames.isEmpty else { return nil }
        let f = frames.removeFirst()
        condition.broadcast()
        return (f, dropped)
    }

    func fail(_ e: Error) { condition.lock(); error = e; condition.unlock() }

    /// The decoder's thread is done (end of stream, error or stop).
    func finish() { condition.lock(); readerDone = true; condition.broadcast(); condition.unlock() }

    /// The consumer has gone: frames waiting are released and the decoder stops at its next push.
    func drain() { condition.lock(); finished = true; frames.removeAll(); condition.broadcast(); condition.unlock() }

    func waitUntilFinished() {
        condition.lock(); defer { condition.unlock() }
        while !readerDone { condition.wait() }
    }
}

/// One analysed frame as JSON Lines writes it (`affect analyze --live`, the server's stream): Codable,
/// labels resolved, times rounded to microseconds.
public struct FrameRecord: Codable, Sendable, Equatable {
    public struct Face: Codable, Sendable, Equatable {
        public var track: Int
        /// x1, y1, x2, y2 in pixels of the displayed frame.
        public var box: [Float]
        /// The detector's face probability.
        public var score: Float
        /// The most probable expression class.
        public var expression: String
        public var probabilities: [String: Float]
        public var valence: Float?
        public var arousal: Float?
    }
    public var frame: Int
    public var time: Double
    public var faces: [Face]
    /// Frames dropped so far because the analysis fell behind (live sources only).
    public var dropped: Int?

    public init(_ o: FrameObservation, labels: [String], dropped: Int? = nil) {
        frame = o.position
        time = (o.time * 1e6).rounded() / 1e6
        self.dropped = dropped
        faces = o.faces.map { f in
            let best = f.probabilities.indices.max { f.probabilities[$0] < f.probabilities[$1] }
            var probs: [String: Float] = [:]
            for (j, p) in f.probabilities.enumerated() { probs[j < labels.count ? labels[j] : String(j)] = p }
            return Face(track: f.track, box: [f.box.x1, f.box.y1, f.box.x2, f.box.y2], score: f.box.probability,
                        expression: best.map { $0 < labels.count ? labels[$0] : String($0) } ?? "",
                        probabilities: probs, valence: f.valence, arousal: f.arousal)
        }
    }

    /// One line of JSON (keys sorted), without the newline.
    public func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
