import Foundation
import Testing
import AffectKernels
import AffectConvert
import AffectTestSupport

/// Every input the FuzzConvert campaign saved (Fuzz/Crashes/FuzzConvert, first byte = the format selector of
/// Fuzz/Sources/FuzzConvert) converts or fails with one sentence naming the file; none may hang or trap again.
@Suite struct FuzzRegressionTests {
    static let crashes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Crashes/FuzzConvert").path

    /// A PyTorch zip whose pickle names hundreds of storages: every storage used to be looked up by walking the
    /// zip's whole directory (re-reading each local header), 31 s under the fuzzer; now one pass indexes it.
    @Test func savedConvertInputsFinish() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.crashes).sorted()
        #expect(!names.isEmpty)
        let dir = Scratch.directory("fuzz-regress")
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in names {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(Self.crashes)/\(name)"))
            let selector = Int(try #require(bytes.first) % 7)
            // Selectors 3 to 6 overwrite files of a committed folder; none has been saved yet.
            try #require(selector < 3, "\(name): replay for folder inputs (selector \(selector)) is not written yet")
            let ext = ["onnx", "pt", "pth"][selector]
            let path = dir.appendingPathComponent("\(name).\(ext)").path
            try bytes.dropFirst().write(to: URL(fileURLWithPath: path))
            do {
                _ = try Converter.convert(path)
            } catch {
                #expect(error.description.contains(path), "\(name): \(error)")
            }
        }
    }
}
