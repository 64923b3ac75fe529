import ArgumentParser
import Foundation
import AffectKernels
import AffectModels

/// `affect`: run, verify and benchmark the models of the Affect engine.
struct Affect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "affect",
        abstract: "Audio-visual emotion understanding: native Swift inference of EmotiEffLib-style models.",
        subcommands: [Info.self, Run.self, Verify.self, Bench.self, Tokenize.self, EmbedText.self, Faces.self, Analyze.self, Extract.self,
                       Evaluate.self, Transcribe.self, EmbedAudio.self, DecodeAudio.self, Convert.self, Models.self, Pull.self])
}

/// Options every compute command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for our kernels and OpenBLAS.")
    var threads: Int = 2
    @Flag(help: "Never download a model given by name (also AFFECT_OFFLINE=1): only what is in the cache.")
    var offline = false

    func apply() {
        Threading.setThreads(threads)
        if offline { setenv("AFFECT_OFFLINE", "1", 1) }     // read by ModelStore.default (resolveWeights)
    }
}

@main
enum Main {
    static func main() {
        do {
            var command = try Affect.parseAsRoot()
            try command.run()
        } catch let e as AffectError {
            FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
            if case .checkFailed = e { exit(1) }
            exit(2)
        } catch let e as ExitCode {
            exit(e.rawValue)
        } catch {
            if Affect.exitCode(for: error) == .success { Affect.exit(withError: error) }
            // Usage errors: one message, exit status 2 (SPEC 3.3), not ArgumentParser's 64.
            let message = Affect.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("error: \(message)\nUsage: see `affect help`.\n".utf8))
            exit(2)
        }
    }
}

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

func formatShape(_ s: [Int]) -> String { s.map(String.init).joined(separator: "×") }

/// Left-aligned in `width` columns (at least one space after).
func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }
/// Right-aligned in `width` columns.
func lpad(_ s: String, _ width: Int) -> String { s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s }
