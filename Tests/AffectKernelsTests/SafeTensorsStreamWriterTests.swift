import Foundation
import Testing
import AffectKernels
import AffectTestSupport

/// ``SafeTensorsStreamWriter`` (embed-audio's per-frame output) writes what ``SafeTensorsWriter`` writes, read back
/// through the validating reader: the same tensors, shapes and metadata, the data 8-byte aligned.
@Suite struct SafeTensorsStreamWriterTests {
    func temp(_ name: String) -> String {
        Scratch.path("stw-\(name)")
    }

    @Test(arguments: [0, 1, 7, 5000])
    func rowsArrivingInPiecesReadBackAsOneTensor(_ rows: Int) throws {
        let columns = 13
        let values = (0..<(rows * columns)).map { Float($0 % 977) * 0.25 - 17 }
        let path = temp("rows-\(rows).safetensors")
        defer { unlink(path) }
        // A long metadata value (a deep path) and numbers that grow after the header room is reserved.
        let long = String(repeating: "folder/", count: 500) + "clip.mp4"
        let w = try SafeTensorsStreamWriter(path: path, metadata: ["file": long, "frames": "0"])
        w.begin("embeddings", columns: columns)
        var at = 0
        for piece in [3, 1, 250, 4000, 10_000] where at < rows {
            let n = min(piece, rows - at)
            try values.withUnsafeBufferPointer { try w.append($0.baseAddress! + at * columns, rows: n) }
            at += n
        }
        w.begin("frame_times", columns: 0)
        let times = (0..<rows).map { Float($0) * 0.02 }
        try times.withUnsafeBufferPointer { try w.append($0.baseAddress!, rows: rows) }
        w.metadata["frames"] = String(rows)
        try w.finish()

        let f = try SafeTensorsFile(path: path)
        #expect(f.metadata == ["file": long, "frames": String(rows)])
        let e = try f.tensor("embeddings"), t = try f.tensor("frame_times")
        #expect(e.shape == [rows, columns] && t.shape == [rows])
        #expect(Array(UnsafeBufferPointer(start: e.data, count: e.count)) == values)
        #expect(Array(UnsafeBufferPointer(start: t.data, count: t.count)) == times)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect((8 + headerLength) % 8 == 0)
        #expect(bytes.count == 8 + headerLength + 4 * (rows * columns + rows))
    }

    /// Metadata that outgrows the reserved room is an error, not a damaged file or a trap.
    @Test func headerOutgrowingItsRoomIsAnError() throws {
        let path = temp("outgrown.safetensors")
        defer { unlink(path) }
        let w = try SafeTensorsStreamWriter(path: path, metadata: ["note": "short"])
        w.begin("x", columns: 0)
        try [Float(1)].withUnsafeBufferPointer { try w.append($0.baseAddress!, rows: 1) }
        w.metadata["note"] = String(repeating: "x", count: 10_000)
        #expect(throws: AffectError.self) { try w.finish() }
    }
}
