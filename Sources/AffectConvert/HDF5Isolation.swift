import Foundation
import AffectKernels
#if canImport(Glibc)
import Glibc
#endif

/// Runs libhdf5 on an untrusted file in a child process.
///
/// Debian 12's libhdf5 1.10.8 crashes and loops forever on damaged files: bytes overwritten in a 23 KB Keras file
/// gave NULL writes in `H5F__accum_read` (a damaged object header address), NULL reads in `H5HG_read` and endless
/// loops deserializing a damaged global heap (the variable-length strings Keras writes). Those are bugs inside the
/// library, unreachable by checks before the call. So the walk runs in a forked child that writes its result
/// (the group tree, or the error sentence) into an unlinked temporary file and exits; this process reads it back.
/// A child killed by a signal or still running after the time limit becomes one sentence naming the file; this
/// process never runs libhdf5 on untrusted bytes itself.
///
/// The child only calls libhdf5 and the walk's Swift code, then `_exit`s without running atexit handlers or
/// flushing this process's buffers. It inherits no running threads: if one held a runtime lock at the fork, the
/// child would block on it and the time limit would end it, reported as a file that could not be read in time.
enum HDF5Isolation {
    /// Wall-clock limit of one read: `base` plus one second per `bytesPerSecond` bytes of file.
    static let base: Double = 10
    static let bytesPerSecond: Double = 20_000_000

    static func timeLimit(fileSize: Int) -> Double { base + Double(fileSize) / bytesPerSecond }

    static func run(_ path: String, fileSize: Int, timeLimit: Double? = nil,
                    _ body: () throws(AffectError) -> HDF5Group) throws(AffectError) -> HDF5Group {
        let limit = timeLimit ?? Self.timeLimit(fileSize: fileSize)
        // The result travels through a file that has no name from the start: nothing is left behind, even if both
        // processes are killed.
        var template = Array((NSTemporaryDirectory() + "/affect-hdf5-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw .badInput("\(path): cannot create a temporary file to read it (\(String(cString: strerror(errno)))).") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        defer { close(fd) }

        let pid = fork()
        guard pid >= 0 else { throw .badInput("\(path): cannot start a process to read it (\(String(cString: strerror(errno)))).") }
        if pid == 0 {
            // A crash here is the expected failure, reported by the parent: no crash handler (the Swift runtime's
            // backtracer would print pages), no messages from libhdf5.
            for sig in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP] { signal(sig, SIG_DFL) }
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, 1); dup2(null, 2) }
            var out = Encoder()
            do throws(AffectError) {
                let group = try body()
                out.byte(1)
                out.group(group)
            } catch {
                out = Encoder()
                out.byte(0)
                out.string(error.description)
            }
            _exit(writeAll(fd, out.bytes) ? 0 : 3)
        }

        let status = try wait(pid, limit: limit, path: path)
        if status.signal != 0 {
            throw .badInput("\(path): libhdf5 crashed reading it (signal \(status.signal)): the HDF5 file is damaged or crafted.")
        }
        // 3: the child could not write its result. Any other status is a death the child did not choose (e.g. a
        // sanitizer's report of libhdf5's bad access, which exits 1 instead of dying by the signal).
        if status.exit == 3 { throw .badInput("\(path): the HDF5 reader could not return its result (temporary space full?).") }
        guard status.exit == 0 else {
            throw .badInput("\(path): libhdf5 crashed reading it (exit status \(status.exit)): the HDF5 file is damaged or crafted.")
        }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0, lseek(fd, 0, SEEK_SET) == 0 else { throw .badInput("\(path): the HDF5 reader returned nothing.") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .badInput("\(path): the HDF5 reader's result could not be read back.") }
            done += n
        }
        var d = Decoder(bytes: bytes, path: path)
        if try d.byte() == 0 { throw .badInput(try d.string()) }
        let group = try d.group(depth: 0)
        guard d.at == bytes.count else { throw d.damaged() }
        return group
    }

    /// Waits for the child, killing it at the deadline.
    private static func wait(_ pid: pid_t, limit: Double, path: String) throws(AffectError) -> (exit: Int32, signal: Int32) {
        let deadline = Date().addingTimeInterval(limit)
        var pause: useconds_t = 200
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw .badInput("\(path): lost the process reading it.") }
            if Date() > deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                throw .badInput("\(path): libhdf5 did not finish reading it within \(Int(limit)) s: the HDF5 file is damaged or crafted.")
            }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        // The wait-status macros are not imported into Swift: low 7 bits = terminating signal, next byte = exit code.
        let signal = status & 0x7f
        return signal != 0 ? (0, signal) : ((status >> 8) & 0xff, 0)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    // MARK: - The tree as bytes (little-endian lengths, tagged members)

    struct Encoder {
        var bytes: [UInt8] = []
        mutating func byte(_ b: UInt8) { bytes.append(b) }
        mutating func int(_ v: Int) { withUnsafeBytes(of: UInt64(bitPattern: Int64(v)).littleEndian) { bytes.append(contentsOf: $0) } }
        mutating func string(_ s: String) { let u = Array(s.utf8); int(u.count); bytes += u }
        mutating func ints(_ v: [Int]) { int(v.count); v.forEach { int($0) } }

        mutating func group(_ g: HDF5Group) {
            attributes(g.attributes)
            int(g.members.count)
            for (name, member) in g.members {
                string(name)
                switch member {
                case .group(let child): byte(0); group(child)
                case .dataset(let d):
                    byte(1)
                    ints(d.shape); string(d.typeName); attributes(d.attributes)
                    if let t = d.tensor {
                        byte(1); string(t.dtype.rawValue); ints(t.shape); int(t.data.count); bytes += t.data
                    } else { byte(0) }
                }
            }
        }

        mutating func attributes(_ a: [String: HDF5Attribute]) {
            int(a.count)
            for (name, value) in a.sorted(by: { $0.key < $1.key }) {
                string(name)
                switch value {
                case .strings(let s, let scalar): byte(0); byte(scalar ? 1 : 0); int(s.count); s.forEach { string($0) }
                case .numbers(let v, let scalar): byte(1); byte(scalar ? 1 : 0); int(v.count); v.forEach { int(Int(bitPattern: UInt($0.bitPattern))) }
                case .unsupported(let what): byte(2); string(what)
                }
            }
        }
    }

    /// Reads the child's bytes with every length checked against what is left (the child is ours, but a child
    /// cut short mid-write must still be an error, not a trap).
    struct Decoder {
        let bytes: [UInt8]
        let path: String
        var at = 0

        func damaged() -> AffectError { .badInput("\(path): the HDF5 reader's result is damaged.") }

        mutating func byte() throws(AffectError) -> UInt8 {
            guard at < bytes.count else { throw damaged() }
            at += 1
            return bytes[at - 1]
        }
        mutating func int() throws(AffectError) -> Int {
            guard bytes.count - at >= 8 else { throw damaged() }
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[at + k]) << (8 * UInt64(k)) }
            at += 8
            return Int(bitPattern: UInt(v))
        }
        mutating func count() throws(AffectError) -> Int {
            let n = try int()
            guard n >= 0, n <= bytes.count - at else { throw damaged() }
            return n
        }
        mutating func raw(_ n: Int) throws(AffectError) -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - at else { throw damaged() }
            at += n
            return bytes[(at - n)..<at]
        }
        mutating func string() throws(AffectError) -> String { String(decoding: try raw(try count()), as: UTF8.self) }
        mutating func ints() throws(AffectError) -> [Int] {
            let n = try count()
            var v: [Int] = []
            for _ in 0..<n { v.append(try int()) }
            return v
        }

        mutating func group(depth: Int) throws(AffectError) -> HDF5Group {
            guard depth <= HDF5Reader.maxDepth else { throw damaged() }
            var g = HDF5Group()
            g.attributes = try attributes()
            for _ in 0..<(try count()) {
                let name = try string()
                switch try byte() {
                case 0: g.members.append((name, .group(try group(depth: depth + 1))))
                case 1:
                    var d = HDF5Dataset(shape: try ints(), tensor: nil, typeName: try string(), attributes: try attributes())
                    if try byte() == 1 {
                        guard let dtype = DType(rawValue: try string()) else { throw damaged() }
                        let shape = try ints()
                        let data = Data(try raw(try count()))
                        guard data.count == shape.reduce(dtype.byteSize, { $0 &* $1 }) else { throw damaged() }
                        d.tensor = SourceTensor(dtype: dtype, shape: shape, data: data)
                    }
                    g.members.append((name, .dataset(d)))
                default: throw damaged()
                }
            }
            return g
        }

        mutating func attributes() throws(AffectError) -> [String: HDF5Attribute] {
            var out: [String: HDF5Attribute] = [:]
            for _ in 0..<(try count()) {
                let name = try string()
                switch try byte() {
                case 0:
                    let scalar = try byte() == 1
                    var s: [String] = []
                    for _ in 0..<(try count()) { s.append(try string()) }
                    out[name] = .strings(s, scalar: scalar)
                case 1:
                    let scalar = try byte() == 1
                    var v: [Double] = []
                    for _ in 0..<(try count()) { v.append(Double(bitPattern: UInt64(UInt(bitPattern: try int())))) }
                    out[name] = .numbers(v, scalar: scalar)
                case 2: out[name] = .unsupported(try string())
                default: throw damaged()
                }
            }
            return out
        }
    }
}
