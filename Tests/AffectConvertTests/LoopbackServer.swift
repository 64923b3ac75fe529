import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 file server on 127.0.0.1 for download tests (one request per connection).
/// `GET` with an optional `Range: bytes=N-` (answered 206); files can be served tampered, or the
/// connection cut after some body bytes for the first requests.
/// (The same file serves AffectConvertTests and CLITests, through a symbolic link.)
final class LoopbackServer: @unchecked Sendable {
    struct Request: Sendable { var path: String; var range: String? }

    private let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var files: [String: Data] = [:]
    private var cuts: [String: (bytes: Int, times: Int)] = [:]
    private var tampered: Set<String> = []
    private var log: [Request] = []
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let t = Thread { [self] in serve() }
        t.start()
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func put(_ path: String, _ data: Data) { lock.withLock { files[path] = data } }
    /// The next `times` responses for `path` send only `bytes` of the body, then close the connection.
    func cut(_ path: String, after bytes: Int, times: Int = 1) { lock.withLock { cuts[path] = (bytes, times) } }
    /// Serve `path` with one byte flipped in the middle.
    func tamper(_ path: String) { lock.withLock { _ = tampered.insert(path) } }
    var requests: [Request] { lock.withLock { log } }

    func stop() {
        lock.withLock { stopped = true }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        finished.wait()
    }

    private func serve() {
        defer { finished.signal() }
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if lock.withLock({ stopped }) { return }
                if errno == EINTR { continue }
                return
            }
            handle(c)
            close(c)
        }
    }

    private func send(_ c: Int32, _ d: Data) {
        d.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = Glibc.send(c, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }

    private func handle(_ c: Int32) {
        var head = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        while !head.contains("\r\n\r\n".utf8) {
            let n = recv(c, &buf, buf.count, 0)
            if n <= 0 { return }
            head.append(contentsOf: buf[0..<n])
            if head.count > 65536 { return }
        }
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        let path = String(parts[1])
        let range = lines.dropFirst().first { $0.lowercased().hasPrefix("range:") }
            .map { String($0.dropFirst(6)).trimmingCharacters(in: .whitespaces) }
        let (data, cut, tamper): (Data?, Int?, Bool) = lock.withLock {
            log.append(Request(path: path, range: range))
            var cut: Int?
            if let c = cuts[path], c.times > 0 { cut = c.bytes; cuts[path] = (c.bytes, c.times - 1) }
            return (files[path], cut, tampered.contains(path))
        }
        guard var body = data else {
            send(c, Data("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        if tamper, !body.isEmpty { body[body.startIndex + body.count / 2] ^= 0xFF }
        var status = "200 OK"
        var extra = ""
        var start = 0
        if let r = range, r.hasPrefix("bytes="), r.hasSuffix("-"), let n = Int(r.dropFirst(6).dropLast()), n < body.count {
            start = n
            status = "206 Partial Content"
            extra = "Content-Range: bytes \(n)-\(body.count - 1)/\(body.count)\r\n"
        }
        let slice = body.subdata(in: start..<body.count)
        send(c, Data("HTTP/1.1 \(status)\r\nContent-Length: \(slice.count)\r\n\(extra)Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n".utf8))
        if let cut {
            send(c, slice.prefix(cut))
            return
        }
        send(c, slice)
    }
}
