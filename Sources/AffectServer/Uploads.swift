import Foundation
import Hummingbird
import AffectKernels

/// The server's folder for uploads and jobs: every file in it has a generated name; no client-given name
/// or path ever reaches the filesystem.
public final class Workspace: Sendable {
    public let root: String
    /// Whether the server created `root` and removes it when it stops.
    let owned: Bool

    /// `directory` (created if missing) or, when nil, a new private folder under the temporary directory.
    public init(directory: String?) throws {
        if let d = directory {
            do { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) } catch {
                throw AffectError.badInput("\(d): cannot create the jobs folder (\(error.localizedDescription)).")
            }
            guard access(d, W_OK | X_OK) == 0 else { throw AffectError.badInput("\(d): the jobs folder is not writable.") }
            root = URL(fileURLWithPath: d).standardizedFileURL.path
            owned = false
        } else {
            let base = NSTemporaryDirectory()
            var template = Array(URL(fileURLWithPath: base).appendingPathComponent("affect-serve-XXXXXX").path.utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw AffectError.badInput("\(base): cannot create the server's temporary folder (\(String(cString: strerror(errno)))).")
            }
            root = String(cString: made)
            owned = true
        }
    }

    /// A new folder with a random name (0700), for one request or job.
    func makeFolder() throws -> String {
        let path = URL(fileURLWithPath: root).appendingPathComponent(UUID().uuidString.lowercased()).path
        guard mkdir(path, 0o700) == 0 else {
            throw ServerError(.internalServerError, "cannot create a job folder in \(root) (\(String(cString: strerror(errno)))).")
        }
        return path
    }

    /// Removes a folder this workspace made (the path is checked to lie inside the root).
    func remove(_ folder: String) {
        guard folder.hasPrefix(root + "/"), !folder.contains("/../") else { return }
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Removes the whole workspace if the server created it.
    func removeIfOwned() {
        if owned { try? FileManager.default.removeItem(atPath: root) }
    }
}

/// Streams a request body into `path` chunk by chunk (never the whole body in memory), refusing it with 413
/// as soon as it passes `limit` bytes (or at once when Content-Length says it will). Returns the byte count.
func receive(_ request: Request, to path: String, limit: Int, what: String) async throws -> Int {
    if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
        throw ServerError(.contentTooLarge, "the \(what) is \(declared) bytes, over the server's limit of \(limit) bytes.")
    }
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw ServerError(.internalServerError, "cannot create an upload file (\(String(cString: strerror(errno)))).") }
    defer { close(fd) }
    var total = 0
    for try await chunk in request.body {
        total += chunk.readableBytes
        guard total <= limit else {
            throw ServerError(.contentTooLarge, "the \(what) is over the server's limit of \(limit) bytes.")
        }
        try chunk.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ServerError(HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), "cannot store the upload (\(String(cString: strerror(errno)))).")
                }
                offset += n
            }
        }
    }
    guard total > 0 else { throw ServerError(.badRequest, "the request has no body; send the \(what) as the request body.") }
    return total
}

/// A body small enough to hold (JSON, text), collected up to `limit` bytes.
func collect(_ request: Request, limit: Int, what: String) async throws -> ByteBuffer {
    if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
        throw ServerError(.contentTooLarge, "the \(what) is \(declared) bytes, over the server's limit of \(limit) bytes.")
    }
    var buffer = ByteBuffer()
    for try await chunk in request.body {
        guard buffer.readableBytes + chunk.readableBytes <= limit else {
            throw ServerError(.contentTooLarge, "the \(what) is over the server's limit of \(limit) bytes.")
        }
        var c = chunk
        buffer.writeBuffer(&c)
    }
    return buffer
}
