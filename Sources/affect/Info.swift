import ArgumentParser
import Foundation
import AffectKernels
import AffectModels

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a weight file's architecture, config, labels, tensor and parameter counts and size.")

    @Argument(help: "An Affect weight file (.safetensors).")
    var weights: String

    func run() throws {
        let w = try WeightFile(path: resolveWeights(weights))
        print("file:        \(weights)")
        let a = Architectures.named(w.arch)
        print("arch:        \(w.arch)\(a.map { " (\($0.role.rawValue): \($0.summary))" } ?? " (not an architecture this engine runs)")")
        if let c = w.file.metadata["affect.config"] { print("config:      \(c)") }
        if !w.labels.isEmpty { print("labels:      \(w.labels.joined(separator: ", "))") }
        if let p = w.file.metadata["affect.preprocess"] { print("preprocess:  \(p)") }
        if let s = w.file.metadata["affect.source"] { print("source:      \(s)") }
        if w.file.metadata["affect.tokenizer"] != nil { print("tokenizer:   yes") }
        print("tensors:     \(w.file.tensors.count)")
        print("parameters:  \(w.parameterCount) (\(String(format: "%.2f", Double(w.parameterCount) / 1e6)) M)")
        print("file size:   \(w.file.file.size) bytes (\(String(format: "%.1f", Double(w.file.file.size) / 1048576)) MiB)")
    }
}
