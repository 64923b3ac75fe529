import ArgumentParser
import Foundation
import AffectKernels
import AffectModels

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the forward pass on every input.* tensor of a file and write output.* tensors.")

    @Argument(help: "An Affect weight file.") var weights: String
    @Argument(help: "A safetensors file with input.* tensors (a reference file).") var inputs: String
    @Option(name: .shortAndLong, help: "Output safetensors file.") var output: String
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var precisionOption: PrecisionOption

    func run() throws {
        try compute.apply()
        try checkOutputs([("-o", output)], inputs: [weights, inputs])
        let model = try ModelLoader.load(resolveWeights(weights), precision: precisionOption.precision)
        let ref = try ReferenceFile(path: inputs)
        let outs = try model.run(ref.inputs, source: inputs)
        var writer = SafeTensorsWriter(metadata: [
            "affect.reference": #"{"framework": "affect", "version": "1", "model": "\#(URL(fileURLWithPath: weights).lastPathComponent)"}"#,
        ])
        for (name, t) in outs.sorted(by: { $0.key < $1.key }) { writer.add("output.\(name)", t) }
        try writer.write(to: output)
        for (name, t) in outs.sorted(by: { $0.key < $1.key }) { print("output.\(name)  \(formatShape(t.shape))") }
    }
}
