import ArgumentParser
import Foundation
import AffectKernels
import AffectMedia
import AffectModels

/// `affect`: run, verify and benchmark the models of the Affect engine.
struct Affect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "affect",
        abstract: "Audio-visual emotion understanding: native Swift inference of EmotiEffLib-style models.",
        subcommands: [Info.self, Run.self, Verify.self, Bench.self, Tokenize.self, EmbedText.self, Faces.self, Analyze.self, Extract.self,
                      Evaluate.self, Transcribe.self, EmbedAudio.self, DecodeAudio.self, Convert.self, Models.self, Pull.self, Serve.self, Fit.self])
}

/// Options every compute command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Threads for our kernels, 1 to \(Threading.maxThreads) (default: the cores available to this process, \(Threading.availableCores) here, from its CPU affinity and cgroup CPU quota).",
                               valueName: "n"))
    var threads: Int?
    @Flag(help: "Never download a model given by name (also AFFECT_OFFLINE=1): only what is in the cache.")
    var offline = false
    @Option(help: ArgumentHelp("Largest picture or video frame decoded, in pixels, 1 to 1000000000 (default \(MediaLimits.maxPixels), also AFFECT_MAX_PIXELS): larger ones are refused before any memory is taken for them.",
                               valueName: "pixels"))
    var maxPixels: Int?

    /// Checks the option and sets the thread count; call before any other work.
    func apply() throws {
        if let threads { try checkRange(threads, 1...Threading.maxThreads, "--threads") }
        Threading.setThreads(threads ?? Threading.availableCores)
        if offline { setenv("AFFECT_OFFLINE", "1", 1) }     // read by ModelStore.default (resolveWeights)
        if let env = ProcessInfo.processInfo.environment["AFFECT_MAX_PIXELS"], maxPixels == nil {
            guard let n = Int(env), (1...1_000_000_000).contains(n) else {
                throw AffectError.badUsage("AFFECT_MAX_PIXELS must be a whole number from 1 to 1000000000, got `\(env)`.")
            }
            MediaLimits.maxPixels = n
        }
        if let maxPixels {
            try checkRange(maxPixels, 1...1_000_000_000, "--max-pixels")
            MediaLimits.maxPixels = maxPixels
        }
        MediaLimits.advice = " (raise it with --max-pixels)"
    }
}

@main
enum Main {
    static func main() {
        // Outputs are written to temporary files first; an interrupted run removes its own.
        AtomicFile.removeTemporariesOnSignals()
        do {
            var command = try Affect.parseAsRoot()
            try command.run()
        } catch let e as AffectError {
            FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
            if case .checkFailed = e { exit(1) }
            exit(2)
        } catch let e as CocoaError {
            FileHandle.standardError.write(Data("error: \(describe(e))\n".utf8))
            exit(2)
        } catch let e as ExitCode {
            exit(e.rawValue)
        } catch {
            if Affect.exitCode(for: error) == .success { Affect.exit(withError: error) }
            // Usage errors: one message, exit status 2 (see the README), not ArgumentParser's 64.
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

/// Throws a usage error naming `option` unless `value` lies in `range` (NaN never does).
func checkRange(_ value: Int, _ range: ClosedRange<Int>, _ option: String, _ unit: String = "") throws {
    guard range.contains(value) else {
        throw AffectError.badUsage("\(option) must be between \(range.lowerBound) and \(range.upperBound)\(unit), got \(value).")
    }
}

func checkRange(_ value: Double, _ range: ClosedRange<Double>, _ option: String, _ unit: String = "") throws {
    guard range.contains(value) else {
        throw AffectError.badUsage("\(option) must be between \(number(range.lowerBound)) and \(number(range.upperBound))\(unit), got \(number(value)).")
    }
}

/// A value that must be positive (above 0, not 0 itself) and at most `maximum`.
func checkPositive(_ value: Double, atMost maximum: Double, _ option: String, _ unit: String = "") throws {
    guard value > 0, value <= maximum else {
        throw AffectError.badUsage("\(option) must be above 0 and at most \(number(maximum))\(unit), got \(number(value)).")
    }
}

/// `%g`: 0.001, 1000, 1e+300, nan.
func number(_ x: Double) -> String { String(format: "%g", x) }

/// One command's output files, checked before any work: none is one of the inputs (the same file after
/// resolving symbolic links, or the same inode), none is given twice, and each can be created in its folder
/// (which also removes temporary files a killed run left there). `outputs` pairs each path with its option.
func checkOutputs(_ outputs: [(option: String, path: String)], inputs: [String?]) throws {
    var seen: [String: String] = [:]
    for (option, path) in outputs {
        for case let input? in inputs where AtomicFile.sameFile(path, input) {
            throw AffectError.badUsage("\(option) \(path) is the input \(input); refusing to overwrite an input.")
        }
        let key = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        if let other = seen[key] { throw AffectError.badUsage("\(option) \(path): the same file is also given to \(other).") }
        seen[key] = option
        try AtomicFile.checkWritable(path)
    }
}

/// Creates `path` and its missing parents; a failure is one sentence naming the folder.
func makeFolder(_ path: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        // Foundation often reports only "unknown write error": look at the nearest existing ancestor instead.
        var ancestor = URL(fileURLWithPath: path).standardizedFileURL
        var isDir: ObjCBool = false
        while !FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isDir), ancestor.path != "/" {
            ancestor.deleteLastPathComponent()
        }
        let why = !isDir.boolValue ? "\(ancestor.path) is not a folder"
            : access(ancestor.path, W_OK | X_OK) != 0 ? "\(ancestor.path) is not writable"
            : (error as? CocoaError).map(reason) ?? error.localizedDescription
        throw AffectError.badInput("\(path): cannot create the folder (\(why)).")
    }
    guard access(path, W_OK | X_OK) == 0 else { throw AffectError.badInput("\(path): the folder is not writable.") }
}

/// A Foundation file error as one sentence naming its file.
func describe(_ e: CocoaError) -> String {
    let path = e.filePath ?? e.url?.path ?? "a file"
    return "\(path): the file operation failed (\(reason(e)))."
}

/// Why a Foundation file operation failed, in a few words.
func reason(_ e: CocoaError) -> String {
    if let posix = e.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
        switch Int32(posix.code) {
        case EACCES, EPERM: return "permission denied"
        case EROFS: return "read-only file system"
        case ENOSPC, EDQUOT: return "no space left on the device"
        case ENOTDIR: return "a parent is not a folder"
        case EEXIST: return "a file of that name exists"
        case ENOENT: return "a parent folder does not exist"
        default: return String(cString: strerror(Int32(posix.code)))
        }
    }
    switch e.code {
    case .fileWriteNoPermission, .fileReadNoPermission: return "permission denied"
    case .fileWriteVolumeReadOnly: return "read-only file system"
    case .fileWriteOutOfSpace: return "no space left on the device"
    case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or folder"
    case .fileWriteFileExists: return "a file of that name exists"
    default: return "error \(e.code.rawValue)"
    }
}
