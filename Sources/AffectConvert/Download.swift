import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
import AffectKernels

/// Why a download did not produce the file.
enum FetchFailure: Error {
    /// The server has no such file (HTTP 404 / 410): an optional file or an alternative may be skipped.
    case notFound(status: Int)
    /// Anything else: the sentence says what (refused connection, HTTP status, interrupted transfer).
    case failed(String)
}

/// HTTP(S) downloads into a file, resumable and verified before the file takes its final name.
///
/// The bytes go to `<destination>.part`; a later attempt asks for the rest with `Range: bytes=<size>-` (a
/// server that answers 200 instead of 206 starts the file over). Only once the digest matches is the file
/// renamed to `destination`, so a file under its final name has always been verified. An exclusive `flock`
/// on a lock file keeps two processes from writing the same partial file. URLSession (libcurl on
/// Linux) honours `https_proxy`, `http_proxy` and `no_proxy`.
public enum Downloader {
    /// Attempts per file: an interrupted transfer is resumed this many times before giving up.
    static let attempts = 3

    /// Fetches `url` into `destination`; returns the file's sha256. A digest mismatch removes the file and
    /// throws `badInput`; so does a file that could not be fetched (FetchFailure for the caller's message).
    static func fetch(_ url: URL, to destination: String, lock lockPath: String, expected: Digest?,
                      progress: ((Int64, Int64?) -> Void)? = nil) throws -> String {
        let part = destination + ".part"
        let lock = try FileLock(lockPath)
        defer { lock.release() }
        // Another process may have finished it while we waited for the lock.
        if FileManager.default.fileExists(atPath: destination) { return try SHA256.file(destination) }
        var lastError = "no attempt made"
        for attempt in 0..<attempts {
            let before = fileSize(part)
            do {
                try transfer(url, into: part, progress: progress)
                lastError = ""
                break
            } catch FetchFailure.failed(let why) {
                lastError = why
                // Worth another attempt at once only when this one moved the partial file: bytes arrived
                // (an interrupted transfer, resumed from there) or a bad resume reset it.
                if attempt + 1 < attempts, fileSize(part) != before { continue }
                break
            }
        }
        if !lastError.isEmpty { throw FetchFailure.failed(lastError) }
        if let expected {
            let seen = try expected.compute(part)
            guard seen == expected else {
                unlink(part)
                throw AffectError.badInput("\(url.absoluteString): the download does not match its digest (expected \(expected), got \(seen)); the file was removed.")
            }
        }
        let sha = try SHA256.file(part)
        guard rename(part, destination) == 0 else {
            throw AffectError.badInput("\(destination): cannot rename the downloaded file into place (\(String(cString: strerror(errno)))).")
        }
        return sha
    }

    static func fileSize(_ path: String) -> Int64 {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : 0
    }

    /// One HTTP request appending to `part` (resuming from its size); throws FetchFailure.
    static func transfer(_ url: URL, into part: String, progress: ((Int64, Int64?) -> Void)?) throws {
        let have = fileSize(part)
        var request = URLRequest(url: url)
        if have > 0 { request.setValue("bytes=\(have)-", forHTTPHeaderField: "Range") }
        let sink = TransferSink(part: part, offset: have, progress: progress)
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 60
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        config.urlCache = nil     // the downloads are our cache; nothing goes through Foundation's
        let session = URLSession(configuration: config, delegate: sink, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: request).resume()
        sink.done.wait()
        if let f = sink.failure { throw f }
    }
}

/// Receives one response into the partial file.
final class TransferSink: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let part: String
    let progress: ((Int64, Int64?) -> Void)?
    let done = DispatchSemaphore(value: 0)
    var offset: Int64
    var handle: FileHandle?
    var received: Int64 = 0
    var total: Int64?
    var failure: FetchFailure?

    init(part: String, offset: Int64, progress: ((Int64, Int64?) -> Void)?) {
        self.part = part
        self.offset = offset
        self.progress = progress
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        switch status {
        case 206:
            // The server must continue exactly where the partial file ends.
            let range = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Range") ?? ""
            guard range.hasPrefix("bytes \(offset)-") else {
                failure = .failed("the server answered a resume with the wrong range `\(range)`")
                // Start over next time.
                truncate(part, 0)
                completionHandler(.cancel)
                return
            }
        case 200:
            offset = 0     // the server ignored the range (or none was asked): the file starts over
        case 404, 410:
            failure = .notFound(status: status)
            completionHandler(.cancel)
            return
        default:
            failure = .failed("the server answered HTTP \(status)")
            completionHandler(.cancel)
            return
        }
        if response.expectedContentLength >= 0 { total = offset + response.expectedContentLength }
        if !FileManager.default.fileExists(atPath: part) { _ = FileManager.default.createFile(atPath: part, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: part) else {
            failure = .failed("\(part): cannot write the partial download")
            completionHandler(.cancel)
            return
        }
        h.truncateFile(atOffset: UInt64(offset))
        handle = h
        progress?(offset, total)
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let handle, failure == nil else { return }
        do { try handle.write(contentsOf: data) } catch {
            failure = .failed("\(part): cannot write the partial download (\(error.localizedDescription))")
            dataTask.cancel()
            return
        }
        received += Int64(data.count)
        progress?(offset + received, total)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        try? handle?.close()
        handle = nil
        if failure == nil, let error {
            failure = .failed(error.localizedDescription)
        }
        if failure == nil, let total, offset + received != total {
            failure = .failed("the transfer ended after \(offset + received) of \(total) bytes")
        }
        done.signal()
    }
}

/// An exclusive advisory lock on a file (`flock`), held until released or the process ends.
final class FileLock {
    let fd: Int32

    init(_ path: String) throws(AffectError) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .badInput("\(path): cannot create the lock file (\(String(cString: strerror(errno)))).") }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                close(fd)
                throw .badInput("\(path): cannot lock the file (\(String(cString: strerror(errno)))).")
            }
        }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
