import ArgumentParser
import Foundation
import AffectKernels
import AffectModels

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a reference file's inputs and compare every output with the reference framework's.",
        discussion: "Exits 1 when any output's max error relative to the reference's max magnitude exceeds the tolerance. "
            + "With --precision int8 the float32 reference is checked against the int8 bound instead: cosine ≥ 0.999 "
            + "for every output and, for logits, the same top-1 class in ≥ 99 % of the rows.")

    @Argument(help: "An Affect weight file.") var weights: String
    @Argument(help: "A reference file (input.* and output.* tensors).") var reference: String
    @Option(help: "Maximum allowed max|ours − ref| / max|ref| per output, 0 to 1000.") var tolerance: Double = 1e-4
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var precisionOption: PrecisionOption

    func run() throws {
        try compute.apply()
        try checkRange(tolerance, 0...1000, "--tolerance")
        let model = try ModelLoader.load(resolveWeights(weights), precision: precisionOption.precision)
        let ref = try ReferenceFile(path: reference)
        if ref.outputs.isEmpty { throw AffectError.badInput("\(reference): the file has no `output.*` tensors to compare.") }
        let (compared, missing) = try Verification.verify(model, ref)
        if let fw = ref.provenance["framework"] {
            print("reference: \(fw) \(ref.provenance["version"] ?? "") \(ref.provenance["model"] ?? "")")
        }
        let int8 = precisionOption.precision == .int8
        if int8 { print("precision: int8 (\(Int8Kernel.current) kernel, \(Int8Weights.preferredLimit == 127 ? "8-bit weights" : "7-bit weights, inputs with a zero point")) against the float32 reference; bound: cosine ≥ \(OutputComparison.int8MinCosine), logits top-1 agreement ≥ \(Int(OutputComparison.int8MinTopOne * 100)) %") }
        print(pad("output", 28) + pad("shape", 18) + lpad("max_abs", 12) + lpad("max_rel", 12) + lpad("cosine", 12)
              + (int8 ? lpad("top1", 9) : "") + "  result")
        var ok = true
        for c in compared {
            let pass = int8 ? c.passesInt8Bound : c.passes(tolerance: tolerance)
            ok = ok && pass
            let shape = c.shapesMatch ? formatShape(c.shape) : "\(formatShape(c.shape)) vs ref \(formatShape(c.referenceShape))"
            print(pad(c.name, 28) + pad(shape, 18) + lpad(String(format: "%.3e", c.maxAbsError), 12)
                  + lpad(String(format: "%.3e", c.relativeError), 12) + lpad(String(format: "%.7f", c.cosine), 12)
                  + (int8 ? lpad(c.isLogits ? String(format: "%.1f%%", 100 * c.topOneAgreement) : "—", 9) : "")
                  + "  " + (pass ? "ok" : "FAIL"))
        }
        for m in missing { print("\(m): the model does not produce this output  FAIL"); ok = false }
        if !ok {
            throw AffectError.checkFailed(int8
                ? "\(reference): at int8, outputs are outside the bound (cosine ≥ \(OutputComparison.int8MinCosine), logits top-1 ≥ \(Int(OutputComparison.int8MinTopOne * 100)) %)."
                : "\(reference): outputs differ from the reference by more than the tolerance \(tolerance).")
        }
        print(int8 ? "verify: all \(compared.count) outputs within the int8 bound"
                   : "verify: all \(compared.count) outputs within tolerance \(tolerance)")
    }
}
