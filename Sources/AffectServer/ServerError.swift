import Foundation
import Hummingbird
import NIOHTTP1
import AffectKernels

/// An error answered as `{"error": "..."}` with its HTTP status (and Retry-After when the server is busy).
public struct ServerError: Error, Sendable, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let message: String
    /// Seconds after which the client may retry (429, 503).
    public let retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ message: String, retryAfter: Int? = nil) {
        self.status = status; self.message = message; self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(message)" }

    /// Any error as the one the client sees: bad input and bad options are the client's (400), a file the
    /// server cannot write is the server's (500), as is anything unexpected (without internals).
    static func from(_ error: Error) -> ServerError {
        switch error {
        case let e as ServerError: return e
        case let e as AffectError:
            switch e {
            case .badInput(let m), .badUsage(let m): return ServerError(.badRequest, m)
            default: return ServerError(.internalServerError, e.description)
            }
        case let e as HTTPError:
            return ServerError(e.status, e.body ?? e.status.reasonPhrase)
        case let e as HTTPParserError:
            // A body the HTTP parser rejects mid-request (a bad chunk size): the client's framing, not ours.
            return ServerError(.badRequest, "the request is malformed HTTP (\(e)).")
        case is CancellationError:
            return ServerError(.serviceUnavailable, "the request was cancelled (the server is stopping).")
        default:
            return ServerError(.internalServerError, "internal error: \(error)")
        }
    }

    /// The JSON response.
    var response: Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let r = retryAfter { headers[.retryAfter] = String(r) }
        return JSON.response(["error": message], status: status, headers: headers)
    }
}

/// JSON bodies with sorted keys, as `affect faces --format json` writes them.
enum JSON {
    static func data(_ object: Any) -> Data {
        // Only dictionaries, arrays, strings, numbers and NSNull are ever passed; non-finite numbers are
        // mapped to null before this by `finite`.
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(#"{"error":"the result could not be encoded as JSON."}"#.utf8)
    }

    static func response(_ object: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [.contentType: "application/json"]) -> Response {
        var h = headers
        if h[.contentType] == nil { h[.contentType] = "application/json" }
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: data(object))))
    }

    /// A float as a JSON number, or null when it is NaN or infinite (JSON has neither).
    static func finite(_ x: Float) -> Any { x.isFinite ? Double(x) : NSNull() }
    static func finite(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
}
