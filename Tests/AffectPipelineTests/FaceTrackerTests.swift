import Testing
import AffectKernels
import AffectModels
import AffectPipeline

func face(_ x: Float, _ y: Float, _ s: Float) -> FaceDetection {
    FaceDetection(x1: x, y1: y, x2: x + s, y2: y + s, probability: 0.99, landmarks: [])
}

@Suite struct FaceTrackerTests {
    @Test func keepsIdentitiesAcrossFramesAndGaps() {
        var t = FaceTracker(minIoU: 0.3, maxGap: 3)
        #expect(t.update(frame: 0, detections: [face(10, 10, 50), face(200, 10, 40)]) == [0, 1])
        // Both move a little and swap order in the detector's output.
        #expect(t.update(frame: 1, detections: [face(204, 12, 40), face(13, 11, 50)]) == [1, 0])
        // Person 1 disappears for two frames, then comes back: same id within maxGap.
        #expect(t.update(frame: 2, detections: [face(15, 12, 50)]) == [0])
        #expect(t.update(frame: 4, detections: [face(18, 12, 50), face(206, 12, 40)]) == [0, 1])
        // After a gap longer than maxGap, a face at the old place is a new person.
        #expect(t.update(frame: 9, detections: [face(206, 12, 40)]) == [2])
        #expect(t.tracks.count == 3)
        #expect(t.tracks[0].frames == [0, 1, 2, 4])
        #expect(t.mainTrack?.id == 0)
    }

    @Test func iouOfDisjointAndIdenticalBoxes() {
        #expect(FaceTracker.iou(face(0, 0, 10), face(20, 20, 10)) == 0)
        #expect(FaceTracker.iou(face(0, 0, 10), face(0, 0, 10)) == 1)
        #expect(abs(FaceTracker.iou(face(0, 0, 10), face(5, 0, 10)) - 50.0 / 150.0) < 1e-6)
    }

    @Test func cropTruncatesClampsAndAddsMargin() {
        let img = RGBImage(width: 20, height: 10, pixels: [UInt8](repeating: 1, count: 600))
        let c = img.crop(FaceDetection(x1: 2.7, y1: -3, x2: 8.9, y2: 6.5, probability: 1, landmarks: []))
        #expect(c.width == 6 && c.height == 6)
        let m = img.crop(FaceDetection(x1: 5, y1: 2, x2: 15, y2: 8, probability: 1, landmarks: []), margin: 0.1)
        #expect(m.width == 12 && m.height == 7)
    }
}
