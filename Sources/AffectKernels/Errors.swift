/// Every failure the engine reports: one sentence that names the file (or the thing) and the problem.
///
/// The CLI maps ``AffectError/badInput(_:)`` and ``AffectError/badUsage(_:)`` to exit status 2 and
/// ``AffectError/checkFailed(_:)`` to exit status 1.
public enum AffectError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A file or value given by the user is malformed, unsupported or inconsistent.
    case badInput(String)
    /// The command was called in a way that cannot work (wrong option combination, missing argument).
    case badUsage(String)
    /// A numerical check (verify) failed.
    case checkFailed(String)

    public var description: String {
        switch self {
        case .badInput(let m), .badUsage(let m), .checkFailed(let m): return m
        }
    }
}
