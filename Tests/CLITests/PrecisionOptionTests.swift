import Foundation
import Testing

/// `--precision` on the commands that load transformer encoders.
@Suite struct PrecisionOptionTests {
    let weights = "\(fixtures)/text/tiny_roberta_go.safetensors"
    let reference = "\(fixtures)/text/tiny_roberta_go.b3.ref.safetensors"

    /// `verify --precision int8` checks the int8 bound against the float32 reference and says so.
    @Test func verifyInt8ReportsTheBound() throws {
        let r = try runAffect(["verify", weights, reference, "--precision", "int8", "--threads", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("precision: int8") && r.stdout.contains("cosine ≥ 0.999"), "\(r.stdout)")
        #expect(r.stdout.contains("within the int8 bound"), "\(r.stdout)")
        // The float32 tolerance would reject the int8 outputs: the bound, not the tolerance, was applied.
        let tight = try runAffect(["verify", weights, reference, "--precision", "int8", "--tolerance", "1e-6"])
        #expect(tight.status == 0, "\(tight.stderr)")
    }

    @Test func runAndBenchTakeInt8() throws {
        let out = tempPath("precision-run.safetensors")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try runAffect(["run", weights, reference, "-o", out, "--precision", "int8"])
        #expect(r.status == 0 && FileManager.default.fileExists(atPath: out), "\(r.stderr)")
        let b = try runAffect(["bench", weights, "--precision", "int8", "--seconds", "0", "--min-runs", "1", "--tokens", "8"])
        #expect(b.status == 0 && b.stdout.contains("precision:  int8"), "\(b.stdout) \(b.stderr)")
    }

    @Test func unknownPrecisionIsRejected() throws {
        try expectRejectedOption(["verify", weights, reference, "--precision", "int4"], naming: "--precision")
        try expectRejectedOption(["bench", weights, "--precision", ""], naming: "--precision")
    }
}
