import Foundation

/// Where the tests write their files: one directory per test process, `<tmp>/affect-tests-<pid>`, removed when
/// the process exits. Each test target used to make its own `affect-…-<pid>` folders and left them behind
/// (about 30 MB in the temporary directory per `swift test`, the CLI tests' weight files most of it).
public enum Scratch {
    /// The process's directory, created on first use, when its removal at exit is registered.
    public static let root: URL = {
        let dir = rootURL()
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: rootURL()) }
        return dir
    }()

    private static func rootURL() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("affect-tests-\(getpid())")
    }

    /// The directory `name` inside ``root``, created if missing.
    public static func directory(_ name: String) -> URL {
        let dir = root.appendingPathComponent(name)
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The path of a file `name` directly inside ``root`` (not created).
    public static func path(_ name: String) -> String { root.appendingPathComponent(name).path }
}
