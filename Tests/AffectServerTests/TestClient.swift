import Foundation

/// A minimal blocking HTTP/1.1 and WebSocket client over a loopback socket, so the tests need no HTTP
/// client package. Each request opens its own connection (`Connection: close`).
struct TestResponse {
    let status: Int
    let headers: [String: String]
    let body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
}

struct ClientError: Error, CustomStringConvertible { let description: String }

final class TestSocket {
    let fd: Int32
    private var buffer: [UInt8] = []

    /// The socket is stored only once connected: a failed connect closes it here, and `deinit` (which closes
    /// `fd`) never runs for an instance whose `fd` was not set. Closing it in both places closed some other
    /// thread's descriptor the second time: the server's just-accepted connection, which NIO then found gone
    /// (a precondition failure in `getpeername`), seen while the browser tests retried chromedriver's port.
    /// `timeout`: seconds a read may wait before it fails.
    init(port: Int, timeout: Int = 600) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError(description: "socket failed") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ClientError(description: "connect to port \(port) failed: \(reason)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    func send(_ data: [UInt8]) throws {
        var off = 0
        while off < data.count {
            let n = data[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw ClientError(description: "send failed: \(String(cString: strerror(errno)))") }
            off += n
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if n < 0 { throw ClientError(description: "recv failed: \(String(cString: strerror(errno)))") }
        if n == 0 { return false }
        buffer += chunk[0..<n]
        return true
    }

    func read(count: Int) throws -> [UInt8] {
        while buffer.count < count { guard try fill() else { throw ClientError(description: "connection closed early") } }
        let out = Array(buffer[0..<count]); buffer.removeFirst(count); return out
    }

    func readLine() throws -> String {
        while true {
            if let i = buffer.indices.dropFirst().first(where: { buffer[$0 - 1] == 13 && buffer[$0] == 10 }) {
                let line = String(decoding: buffer[0..<(i - 1)], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return line
            }
            guard try fill() else { throw ClientError(description: "connection closed in a header") }
        }
    }

    func readToEnd() throws -> [UInt8] {
        while try fill() {}
        defer { buffer = [] }
        return buffer
    }

    /// Status line and headers (names lower-cased).
    func readHead() throws -> (Int, [String: String]) {
        let status = try readLine()
        let parts = status.split(separator: " ")
        guard parts.count >= 2, let code = Int(parts[1]) else { throw ClientError(description: "bad status line `\(status)`") }
        var headers: [String: String] = [:]
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            if let c = line.firstIndex(of: ":") {
                headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return (code, headers)
    }
}

/// One request; the body is sent as is (or in `chunks` pieces with chunked encoding when `chunked`).
func request(_ port: Int, _ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:],
             chunked: Bool = false) throws -> TestResponse {
    let s = try TestSocket(port: port)
    var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
    for (k, v) in headers { head += "\(k): \(v)\r\n" }
    if let body {
        head += chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: \(body.count)\r\n"
    }
    head += "\r\n"
    try s.send(Array(head.utf8))
    // A server may answer (413, 429, 401) and close before the body is through: read its answer anyway.
    if let body { do { try sendBody(s, body, chunked: chunked) } catch {} }
    let (status, hdrs) = try s.readHead()
    var data: [UInt8]
    if hdrs["transfer-encoding"]?.lowercased() == "chunked" {
        data = []
        while true {
            guard let n = Int(try s.readLine().split(separator: ";")[0], radix: 16) else { throw ClientError(description: "bad chunk size") }
            if n == 0 { _ = try? s.readLine(); break }
            data += try s.read(count: n)
            _ = try s.readLine()
        }
    } else if let len = hdrs["content-length"].flatMap(Int.init) {
        data = try s.read(count: len)
    } else {
        data = try s.readToEnd()
    }
    return TestResponse(status: status, headers: hdrs, body: Data(data))
}

func sendBody(_ s: TestSocket, _ body: Data, chunked: Bool) throws {
    if chunked {
        var off = 0
        while off < body.count {
            let n = min(65536, body.count - off)
            try s.send(Array((String(n, radix: 16) + "\r\n").utf8) + Array(body[off..<(off + n)]) + [13, 10])
            off += n
        }
        try s.send(Array("0\r\n\r\n".utf8))
    } else {
        try s.send(Array(body))
    }
}

/// Runs blocking client code on a thread of its own, off Swift concurrency's few cooperative threads
/// (which the in-process server needs).
func offThread<T>(_ body: @escaping () throws -> T) async throws -> T {
    // `body` runs on the new thread only, and its result goes back to the awaiting task.
    nonisolated(unsafe) let work = body
    return try await withCheckedThrowingContinuation { c in
        let t = Thread {
            nonisolated(unsafe) let result = Result { try work() }
            c.resume(with: result)
        }
        t.stackSize = 4 << 20
        t.start()
    }
}

/// A WebSocket client: the upgrade, masked binary frames out, text frames in.
final class TestWebSocket {
    let socket: TestSocket
    let status: Int
    /// The upgrade answer's headers (names lower-cased).
    let headers: [String: String]

    init(port: Int, path: String, headers: [String: String] = [:]) throws {
        socket = try TestSocket(port: port)
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        head += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        try socket.send(Array((head + "\r\n").utf8))
        (status, self.headers) = try socket.readHead()
    }

    func send(binary payload: [UInt8], opcode: UInt8 = 0x2) throws {
        var frame: [UInt8] = [0x80 | opcode]
        let n = payload.count
        if n < 126 { frame.append(0x80 | UInt8(n)) } else if n < 65536 {
            frame += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for i in (0..<8).reversed() { frame.append(UInt8((n >> (8 * i)) & 0xFF)) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame += mask
        frame += payload.enumerated().map { $1 ^ mask[$0 & 3] }
        try socket.send(frame)
    }

    /// The next text message (pings are answered, other frames skipped); nil when the server closed.
    func receiveText() throws -> String? {
        while true {
            let h = try socket.read(count: 2)
            var n = Int(h[1] & 0x7F)
            if n == 126 { let b = try socket.read(count: 2); n = Int(b[0]) << 8 | Int(b[1]) }
            else if n == 127 { n = try socket.read(count: 8).reduce(0) { $0 << 8 | Int($1) } }
            let payload = try socket.read(count: n)
            switch h[0] & 0x0F {
            case 0x1: return String(decoding: payload, as: UTF8.self)
            case 0x8: return nil
            case 0x9: try send(binary: payload, opcode: 0xA)
            default: continue
            }
        }
    }

    func close() { try? send(binary: [0x03, 0xE8], opcode: 0x8) }
}
