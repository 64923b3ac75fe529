import Foundation

/// Writing files so that a reader never sees half of one: every output goes to a temporary file in the target
/// folder and is renamed over the final name once complete (a rename within one folder is atomic).
///
/// Temporary files are named `.NAME.PID-N.affect-tmp`, hidden, beside their target. Those of this process are
/// removed when a write fails, and on SIGINT / SIGTERM / SIGHUP once ``removeTemporariesOnSignals()`` was
/// called; those of a process that was killed outright (SIGKILL, power loss) are recognised by their pattern
/// and removed by the next write into the same folder (``removeStaleTemporaries(in:)``) when their process is
/// gone.
public enum AtomicFile {
    /// What every temporary name ends with.
    public static let temporarySuffix = ".affect-tmp"

    nonisolated(unsafe) private static var counter = 0
    nonisolated(unsafe) private static var cleanedFolders: Set<String> = []
    private static let lock = NSLock()

    /// A fresh temporary name in the folder of `path`.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        lock.lock(); counter += 1; let n = counter; lock.unlock()
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid())-\(n)\(temporarySuffix)").path
    }

    /// Writes `data` to `path` atomically. Throws a one-sentence ``AffectError/badInput(_:)`` naming `path`.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { tmp in try writeBytes(data, to: tmp, naming: path) }
    }

    /// Lets `body` write a file at the temporary path it is given (e.g. a C library that opens a path itself),
    /// then renames it to `path`. When `body` throws, the temporary file is removed and errors that name the
    /// temporary path are reworded to name `path`.
    public static func write(to path: String, _ body: (String) throws -> Void) throws {
        try prepareFolder(of: path)
        let tmp = temporaryPath(for: path)
        let slot = Registry.add(tmp)
        defer { Registry.remove(slot) }
        do {
            try body(tmp)
            try commit(tmp, to: path)
        } catch let e as AffectError {
            unlink(tmp)
            throw reword(e, tmp, path)
        } catch {
            unlink(tmp)
            throw AffectError.badInput("\(path): cannot write the file (\(error.localizedDescription)).")
        }
    }

    /// Writes several files all or none: every folder is checked and every temporary file written first; only
    /// then are they renamed into place. A failure before the renames leaves no output and no temporary file.
    public static func writeAll(_ files: [(path: String, data: Data)]) throws {
        var temps: [(tmp: String, path: String, slot: Int?)] = []
        defer { for t in temps { unlink(t.tmp); Registry.remove(t.slot) } }
        for f in files {
            try prepareFolder(of: f.path)
            let tmp = temporaryPath(for: f.path)
            temps.append((tmp, f.path, Registry.add(tmp)))
            try writeBytes(f.data, to: tmp, naming: f.path)
        }
        for t in temps { try commit(t.tmp, to: t.path) }
    }

    /// Throws unless a file can be created in the folder of `path` (the folder exists, is a folder and is
    /// writable), by creating and removing a temporary file there; removes stale temporaries of that folder.
    /// Commands call it for every output before any long work.
    public static func checkWritable(_ path: String) throws {
        try prepareFolder(of: path)
        let tmp = temporaryPath(for: path)
        // Registered like any temporary: a signal between the create and the unlink must not leave the probe.
        let slot = Registry.add(tmp)
        defer { Registry.remove(slot) }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AffectError.badInput("\(path): cannot write the file (\(reason(errno, folderOf: path))).") }
        close(fd)
        unlink(tmp)
        if isDirectory(path) { throw AffectError.badInput("\(path): is a folder, not a file.") }
    }

    /// Whether `a` and `b` are the same file: equal after resolving symbolic links, or the same inode (hard
    /// links, bind mounts). False when either does not exist.
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Removes temporary files of this pattern in `folder` whose process no longer exists. Returns how many.
    @discardableResult
    public static func removeStaleTemporaries(in folder: String) -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.isEmpty ? "." : folder) else { return 0 }
        var removed = 0
        for name in names {
            guard let pid = ownerPid(ofTemporary: name), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            if unlink(URL(fileURLWithPath: folder.isEmpty ? "." : folder).appendingPathComponent(name).path) == 0 { removed += 1 }
        }
        return removed
    }

    /// The process id in a temporary name of this pattern (`.NAME.PID-N.affect-tmp`), nil for other names.
    public static func ownerPid(ofTemporary name: String) -> pid_t? {
        guard name.hasPrefix("."), name.hasSuffix(temporarySuffix) else { return nil }
        let stem = name.dropLast(temporarySuffix.count)
        guard let dot = stem.lastIndex(of: ".") else { return nil }
        let parts = stem[stem.index(after: dot)...].split(separator: "-")
        guard parts.count == 2, parts[1].allSatisfy(\.isNumber), let pid = pid_t(parts[0]), pid > 0 else { return nil }
        return pid
    }

    /// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove this process's temporary files, then let
    /// the signal end the process as it would have. For executables; libraries leave signals alone.
    public static func removeTemporariesOnSignals() {
        Registry.prepare()
        // A parent may have blocked these (test runners do); a command that is told to stop should stop.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&unblock, sig) }
        sigprocmask(SIG_UNBLOCK, &unblock, nil)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                Registry.unlinkAll()
                signal(sig, SIG_DFL)
                raise(sig)
            }
            sigemptyset(&action.sa_mask)
            sigaction(sig, &action, nil)
        }
    }

    // MARK: - Internals

    /// Checks the folder of `path` and, once per folder and process, removes stale temporaries there.
    private static func prepareFolder(of path: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else {
            throw AffectError.badInput("\(path): cannot write the file (the folder \(dir) does not exist).")
        }
        guard isDir.boolValue else { throw AffectError.badInput("\(path): cannot write the file (\(dir) is not a folder).") }
        lock.lock()
        let first = cleanedFolders.insert(dir).inserted
        lock.unlock()
        if first { removeStaleTemporaries(in: dir) }
    }

    private static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    private static func writeBytes(_ data: Data, to tmp: String, naming path: String) throws {
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AffectError.badInput("\(path): cannot write the file (\(reason(errno, folderOf: path))).") }
        defer { close(fd) }
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw AffectError.badInput("\(path): cannot write the file (\(reason(errno, folderOf: path))).")
                }
                offset += n
            }
        }
    }

    private static func commit(_ tmp: String, to path: String) throws {
        if isDirectory(path) { throw AffectError.badInput("\(path): is a folder, not a file.") }
        guard rename(tmp, path) == 0 else {
            throw AffectError.badInput("\(path): cannot write the file (\(reason(errno, folderOf: path))).")
        }
    }

    private static func reword(_ e: AffectError, _ tmp: String, _ path: String) -> AffectError {
        switch e {
        case .badInput(let m): return .badInput(m.replacingOccurrences(of: tmp, with: path))
        case .badUsage(let m): return .badUsage(m.replacingOccurrences(of: tmp, with: path))
        case .checkFailed(let m): return .checkFailed(m.replacingOccurrences(of: tmp, with: path))
        }
    }

    /// `errno` in words, for a file in the folder of `path`.
    public static func reason(_ code: Int32, folderOf path: String) -> String {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        switch code {
        case EACCES, EPERM: return "the folder \(dir) is not writable"
        case EROFS: return "the folder \(dir) is on a read-only file system"
        case ENOSPC, EDQUOT: return "no space left on the device"
        case ENOENT: return "the folder \(dir) does not exist"
        case ENOTDIR: return "\(dir) is not a folder"
        case EISDIR: return "it is a folder"
        default: return String(cString: strerror(code))
        }
    }

    /// Temporary paths of this process, in fixed C storage a signal handler may read without allocating.
    private enum Registry {
        static let slots = 256, width = Int(PATH_MAX)
        nonisolated(unsafe) static var paths: UnsafeMutablePointer<CChar>?
        /// 1 where a slot holds a live path; written after (set) or before (clear) the path itself.
        nonisolated(unsafe) static var used: UnsafeMutablePointer<UInt8>?
        static let lock = NSLock()

        static func prepare() {
            lock.lock(); defer { lock.unlock() }
            if paths == nil {
                paths = .allocate(capacity: slots * width)
                used = .allocate(capacity: slots)
                used!.initialize(repeating: 0, count: slots)
            }
        }

        /// Records `path`; nil when the registry is off or full (the file is then left to the stale clean-up).
        static func add(_ path: String) -> Int? {
            lock.lock(); defer { lock.unlock() }
            guard let paths, let used else { return nil }
            let bytes = Array(path.utf8CString)
            guard bytes.count <= width, let i = (0..<slots).first(where: { used[$0] == 0 }) else { return nil }
            bytes.withUnsafeBufferPointer { (paths + i * width).update(from: $0.baseAddress!, count: bytes.count) }
            used[i] = 1
            return i
        }

        static func remove(_ slot: Int?) {
            guard let slot, let used else { return }
            lock.lock(); used[slot] = 0; lock.unlock()
        }

        /// Async-signal-safe: reads the fixed storage and calls unlink only.
        static func unlinkAll() {
            guard let paths, let used else { return }
            for i in 0..<slots where used[i] == 1 { unlink(paths + i * width) }
        }
    }
}
