import Foundation
import CFuzzer

/// One fuzzer input: bytes owned by libFuzzer for the duration of the call.
public typealias FuzzInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

/// Runs libFuzzer's driver with the process's arguments, calling `body` on every input; never returns.
public func runFuzzer(_ body: FuzzInput) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, body))
}

/// The engine reads users' files by path (memory-mapped, or through FFmpeg), so each input is written to a
/// file in /dev/shm (one per process, rewritten in place) and passed by path: the code under test is the
/// code a user's file reaches.
public enum FuzzFile {
    private static var paths: [String: String] = [:]

    /// Writes `count` bytes at `start` to this process's file with extension `ext` and returns its path.
    public static func write(_ start: UnsafeRawPointer?, _ count: Int, ext: String) -> String {
        let path: String
        if let p = paths[ext] { path = p } else {
            let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
            path = "\(dir)/affect-fuzz-\(getpid()).\(ext)"
            paths[ext] = path
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot write \(path)")
        var done = 0
        while done < count {
            let n = Foundation.write(fd, start! + done, count - done)
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
        close(fd)
        return path
    }

    /// The repository root (Fuzz/..), for seed models the harnesses load once.
    public static let repoRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    }()
}
