import Foundation
import Testing
import AffectKernels

/// `affect convert` end to end: the written file loads as an Affect weight file and bad sources exit 2.
@Suite struct ConvertCommandTests {
    let convertDir = (fixtures as NSString).appendingPathComponent("convert")

    @Test func convertsAndRunsInfo() throws {
        let out = tempPath("convert-roberta.safetensors")
        let r = try runAffect(["convert", (convertDir as NSString).appendingPathComponent("roberta_cls"), "-o", out,
                               "--labels", "x,y,z"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("(roberta)"))
        let info = try runAffect(["info", out])
        #expect(info.status == 0, "\(info.stderr)")
        #expect(info.stdout.contains("labels:      x, y, z"))
        // Nothing but the output is left in the folder (the temporary file was renamed).
        let left = try FileManager.default.contentsOfDirectory(atPath: (out as NSString).deletingLastPathComponent)
        #expect(!left.contains { $0.hasPrefix(".convert-roberta") })
    }

    @Test func badSourceExitsTwo() throws {
        let bad = tempPath("garbage.onnx")
        try Data("not a protobuf at all \u{1}\u{2}".utf8).write(to: URL(fileURLWithPath: bad))
        expectBadInput(try runAffect(["convert", bad, "-o", tempPath("x.safetensors"), "--arch", "efficientnet"]),
                       naming: bad, "garbage onnx")
        let missing = tempPath("missing.pt")
        expectBadInput(try runAffect(["convert", missing, "-o", tempPath("y.safetensors")]), naming: missing, "missing source")
        let r = try runAffect(["convert", bad, "-o", tempPath("z.safetensors"), "--pad-type", "odd"])
        #expect(r.status == 2)
    }
}
