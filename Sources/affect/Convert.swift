import ArgumentParser
import Foundation
import AffectKernels
import AffectConvert

/// `affect convert`: Tools/convert.py in Swift, for the formats AffectConvert reads.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint (Hugging Face folder, .pt/.bin, EmotiEffLib .onnx) into an Affect weight file.",
        discussion: """
        SOURCE is a Hugging Face folder (wav2vec2 / HuBERT, RoBERTa / BERT, sentence-transformers), a PyTorch \
        .pt/.pth (whole pickled module or state dict, read without executing it), an EmotiEffLib EfficientNet \
        .onnx export, or facenet-pytorch's folder of pnet.pt/rnet.pt/onet.pt. The output equals Tools/convert.py's.
        """)

    @Argument(help: "Checkpoint file or folder.") var source: String
    @Option(name: .shortAndLong, help: "Output .safetensors file.") var output: String
    @Option(help: "Architecture (detected when omitted): \(Converter.architectures.joined(separator: ", ")).")
    var arch: String?
    @Option(help: "Comma-separated class names (override the detected ones).") var labels: String?
    @Option(help: "EfficientNet padding: same (default, as tf_ models) or symmetric.") var padType: String?
    @Option(help: "A tokenizer.json to embed (text models).") var tokenizer: String?

    func run() throws {
        if let p = padType, !["same", "symmetric"].contains(p) {
            throw AffectError.badUsage("--pad-type must be same or symmetric, not `\(p)`.")
        }
        let options = ConvertOptions(arch: arch, labels: labels.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) },
                                     padType: padType, tokenizer: tokenizer)
        let a = try Converter.convert(source, to: output, options: options)
        print("wrote \(output) (\(a))")
    }
}
