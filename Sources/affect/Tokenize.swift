import ArgumentParser
import Foundation
import AffectKernels
import AffectModels

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize text with a text model's tokenizer: one line in, one line of token ids out.",
        discussion: """
        Ids include the special tokens ([CLS] … [SEP], <s> … </s>) exactly as the Hugging Face tokenizer's \
        encode(line).ids, without truncation unless --max-length is given. An empty line gives the special tokens \
        alone. Lines are split at \\n; text that is not valid UTF-8 is an error naming the line.
        """)

    @Argument(help: "A text weight file with an embedded tokenizer, or a tokenizer.json / vocab.txt / tokenizer folder.")
    var weights: String
    @Option(help: "Read lines from this file (default: standard input).") var file: String?
    @Option(help: "Truncate each line to this many ids, special tokens included (2 to 1000000).") var maxLength: Int?
    @Flag(help: "Print tokens instead of ids.") var tokens = false

    func run() throws {
        if let m = maxLength { try checkRange(m, 2...1_000_000, "--max-length") }
        let tokenizer: Tokenizer
        if weights.hasSuffix(".safetensors") {
            tokenizer = try Tokenizer(weights: WeightFile(path: weights))
        } else {
            tokenizer = try Tokenizer(path: weights)
        }
        var out = ""
        for line in try readTextLines(file: file, text: nil) {
            let e = tokenizer.encode(line, maxLength: maxLength)
            out += (tokens ? e.tokens : e.ids.map(String.init)).joined(separator: " ") + "\n"
            if out.utf8.count > 1 << 16 { FileHandle.standardOutput.write(Data(out.utf8)); out = "" }
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}
