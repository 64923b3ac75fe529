import Foundation
import Testing
import AffectKernels
import AffectTraining
import AffectTestSupport

/// Flat files and extract folders as users give them, good and bad: every problem is one sentence naming its file.
@Suite struct TrainingDataTests {
    let dir: String = {
        let d = Scratch.root.appendingPathComponent("fit-data-\(UInt32.random(in: 0...UInt32.max))").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    func write(_ name: String, _ text: String) throws -> String {
        let p = "\(dir)/\(name)"
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: p).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    func features(_ name: String, rows: Int, width: Int, tensor: String = "features", extra: [String: [Float]] = [:],
                  value: (Int, Int) -> Float = { r, c in Float(r) + Float(c) / 100 }) throws -> String {
        var w = SafeTensorsWriter()
        w.add(tensor, shape: [rows, width], floats: (0..<(rows * width)).map { value($0 / width, $0 % width) })
        for (k, v) in extra { w.add(k, shape: [v.count], floats: v) }
        let p = "\(dir)/\(name)"
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: p).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try w.write(to: p)
        return p
    }

    func expectError(_ fragments: [String], _ body: () throws -> Void) {
        #expect {
            try body()
        } throws: { e in
            guard let e = e as? AffectError, case .badInput(let m) = e else { return false }
            return fragments.allSatisfy { m.contains($0) }
        }
    }

    @Test func flatFilesKeepLabelledRows() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = try features("f.safetensors", rows: 4, width: 3)
        let l = try write("l.txt", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n2\n-1\n5\n0\n")
        let set = try TrainingData.flat(features: f, labels: l, task: .expr)
        #expect(set.rows == [0, 2, 3] && set.targets == [2, 5, 0] && set.features.width == 3)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: 9)
        defer { x.deallocate() }
        set.rows.withUnsafeBufferPointer { set.features.gather($0, into: x) }
        #expect(Array(UnsafeBufferPointer(start: x, count: 9)) == [0, 0.01, 0.02, 2, 2.01, 2.02, 3, 3.01, 3.02])
    }

    @Test func badFlatFilesNameTheFile() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = try features("f.safetensors", rows: 4, width: 3)
        let short = try write("short.txt", "1\n2\n")
        expectError([short, "2 label rows", "4 feature rows"]) { _ = try TrainingData.flat(features: f, labels: short, task: .expr) }
        let other = try features("g.safetensors", rows: 2, width: 3, tensor: "x")
        expectError([other, "`features` is missing"]) { _ = try TrainingData.flat(features: other, labels: short, task: .expr) }
        let nan = try features("nan.safetensors", rows: 2, width: 3) { r, c in r == 1 && c == 2 ? .nan : 0 }
        expectError([nan, "row 1", "column 2", "not finite"]) { _ = try TrainingData.flat(features: nan, labels: short, task: .expr) }
        let unlabelled = try write("none.txt", "-1\n-1\n")
        let two = try features("two.safetensors", rows: 2, width: 3)
        expectError([unlabelled, "no row is labelled"]) { _ = try TrainingData.flat(features: two, labels: unlabelled, task: .expr) }
        let garbage = try write("garbage.safetensors", "not a safetensors file at all")
        expectError([garbage]) { _ = try TrainingData.flat(features: garbage, labels: short, task: .expr) }
    }

    @Test func extractFoldersMatchVideosByName() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Two videos; v1's face is missing on frame 1; its annotation has one line more than it has frames.
        _ = try features("extract/a/v1.mp4.safetensors", rows: 3, width: 2, extra: ["face": [1, 0, 1]])
        _ = try features("extract/v2.mp4.safetensors", rows: 2, width: 2, extra: ["face": [1, 1]]) { r, c in 10 + Float(r) + Float(c) / 100 }
        _ = try write("ann/v1.txt", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n1\n2\n3\n4\n")
        _ = try write("ann/v2.txt", "h\n-1\n6\n")
        let list = try write("train.txt", "v1\n# a comment\nsome/where/v2.mp4\n")
        let extracts = try TrainingData.extractFiles(in: "\(dir)/extract")
        #expect(Set(extracts.keys) == ["v1", "v2"])
        let set = try TrainingData.folder(extracts: extracts, annotations: "\(dir)/ann", videos: TrainingData.videoList(list),
                                          modalities: ["face"], task: .expr, listName: list)
        #expect(set.targets == [1, 3, 6])
        let x = UnsafeMutablePointer<Float>.allocate(capacity: 6)
        defer { x.deallocate() }
        set.rows.withUnsafeBufferPointer { set.features.gather($0, into: x) }
        #expect(Array(UnsafeBufferPointer(start: x, count: 6)) == [0, 0.01, 2, 2.01, 11, 11.01])
        let missing = try write("missing.txt", "v3\n")
        expectError([missing, "`v3` has no extract file"]) {
            _ = try TrainingData.folder(extracts: extracts, annotations: "\(dir)/ann", videos: TrainingData.videoList(missing),
                                        modalities: ["face"], task: .expr, listName: missing)
        }
        expectError(["v1.mp4.safetensors", "`audio` is missing"]) {
            _ = try TrainingData.folder(extracts: extracts, annotations: "\(dir)/ann", videos: ["v1"], modalities: ["face", "audio"],
                                        task: .expr, listName: list)
        }
        let twice = try write("twice.txt", "v1\nv1.mp4\n")
        expectError([twice, "listed twice"]) { _ = try TrainingData.videoList(twice) }
        // `.` and `..` resolved to the name of the current or parent folder; a trailing `/` names a folder.
        for line in [".", "..", "x/..", "v1/"] {
            let dots = try write("dots.txt", "\(line)\n")
            expectError([dots, "is not a video name"]) { _ = try TrainingData.videoList(dots) }
        }
    }

    @Test func emiPoolsEachVideo() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try features("emi/x/v1.mp4.safetensors", rows: 3, width: 2, extra: ["face": [1, 1, 0]]) { r, c in Float(r * 2 + c) }
        _ = try write("emi/ann/v1.csv", "Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy\n0.1,0.2,0.3,0.4,0.5,0.6\n")
        let set = try TrainingData.folder(extracts: TrainingData.extractFiles(in: "\(dir)/emi/x"), annotations: "\(dir)/emi/ann",
                                          videos: ["v1"], modalities: ["face"], task: .emi, listName: "list")
        #expect(set.count == 1 && set.features.width == 8 && set.targets == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
        let x = UnsafeMutablePointer<Float>.allocate(capacity: 8)
        defer { x.deallocate() }
        set.rows.withUnsafeBufferPointer { set.features.gather($0, into: x) }
        // Frames 0 and 1 (frame 2 has no face): [0, 1] and [2, 3] → mean, std, min, max.
        #expect(Array(UnsafeBufferPointer(start: x, count: 8)) == [1, 2, 1, 1, 0, 1, 2, 3])
    }
}
