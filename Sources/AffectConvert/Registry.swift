import Foundation
import AffectKernels

/// An integrity digest of a file's exact bytes.
public enum Digest: Equatable, Sendable, CustomStringConvertible {
    /// GitHub's blob id: SHA-1 of `"blob <size>\0"` followed by the bytes.
    case gitBlobSHA1(String)
    case sha256(String)

    /// Parses `git-blob-sha1:<40 hex>` or `sha256:<64 hex>`.
    public init?(_ s: String) {
        let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[1].allSatisfy(\.isHexDigit) else { return nil }
        let hex = parts[1].lowercased()
        switch parts[0] {
        case "git-blob-sha1" where hex.count == 40: self = .gitBlobSHA1(hex)
        case "sha256" where hex.count == 64: self = .sha256(hex)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .gitBlobSHA1(let h): return "git-blob-sha1:\(h)"
        case .sha256(let h): return "sha256:\(h)"
        }
    }

    /// The same kind of digest computed over `path`.
    public func compute(_ path: String) throws(AffectError) -> Digest {
        switch self {
        case .gitBlobSHA1: return .gitBlobSHA1(try SHA1.gitBlob(path))
        case .sha256: return .sha256(try SHA256.file(path))
        }
    }
}

/// One file of a registry model: where it lives in the model's folder, where to fetch it and what it must hash to.
public struct RegistryFile: Sendable, Equatable {
    /// Relative path inside the model's download folder.
    public var path: String
    public var url: String
    /// Nil where no digest can be known offline (Hugging Face revisions): `pull` then records the sha256 it saw.
    public var digest: Digest?
    /// A file the model can do without (a 404 is skipped).
    public var optional: Bool
    /// Other files that stand in for this one, tried in order when the server does not have it
    /// (`pytorch_model.bin` for `model.safetensors`).
    public var alternatives: [RegistryFile]
}

/// A model of the registry: what `affect models` lists and `affect pull` fetches.
public struct RegistryModel: Sendable, Equatable {
    public var name: String
    public var task: String
    public var arch: String
    public var licence: String
    public var repository: String
    /// The commit the files are pinned to (`main` where no commit id is known: then not a pin).
    public var revision: String
    public var files: [RegistryFile]
    /// What to convert, relative to the download folder (`.` for the folder itself); nil when `affect convert`
    /// cannot read this source (the file is then only downloaded and verified).
    public var convert: String?
    public var note: String?

    /// Whether every file is pinned by a digest.
    public var isPinned: Bool { files.allSatisfy { $0.digest != nil } }
}

/// The models `affect pull` knows: the committed list plus entries from the user's registry files.
public struct ModelRegistry: Sendable {
    public private(set) var models: [RegistryModel]

    /// The committed registry.
    public static let builtin: ModelRegistry = {
        // The committed JSON is checked by the tests; a failure here is a build defect, not user input.
        do { return try ModelRegistry(json: Data(builtinJSON.utf8), origin: "built-in registry") } catch {
            fatalError("the built-in model registry is invalid: \(error)")
        }
    }()

    public init(models: [RegistryModel]) { self.models = models }

    /// Parses a registry file (`{"format": 1, "models": [...]}`), checking every entry.
    public init(json data: Data, origin: String) throws(AffectError) {
        let root = try JSON.parse(data, origin: origin)
        guard case .object = root, let list = root["models"]?.arrayValue else {
            throw .badInput("\(origin): not a model registry (a JSON object with a `models` array).")
        }
        if let f = root["format"], f.intValue != 1 { throw .badInput("\(origin): registry format \(f.serialized()) is not 1.") }
        var models: [RegistryModel] = []
        for (i, m) in list.enumerated() {
            let model = try Self.model(m, origin: "\(origin): model \(i + 1)")
            guard !models.contains(where: { $0.name == model.name }) else {
                throw .badInput("\(origin): the name `\(model.name)` appears twice.")
            }
            models.append(model)
        }
        self.models = models
    }

    /// Reads a registry file.
    public init(path: String) throws(AffectError) {
        guard let d = FileManager.default.contents(atPath: path) else { throw .badInput("\(path): no such registry file.") }
        try self.init(json: d, origin: path)
    }

    public subscript(name: String) -> RegistryModel? { models.first { $0.name == name } }

    /// This registry with `other`'s entries added; an entry of `other` replaces one of the same name.
    public func adding(_ other: ModelRegistry) -> ModelRegistry {
        var out = models.filter { m in !other.models.contains { $0.name == m.name } }
        out += other.models
        return ModelRegistry(models: out)
    }

    static func string(_ v: JSON, _ key: String, _ origin: String) throws(AffectError) -> String {
        guard let s = v[key]?.stringValue, !s.isEmpty else { throw .badInput("\(origin): `\(key)` must be a non-empty string.") }
        return s
    }

    /// A relative path that stays inside the model's folder.
    static func relativePath(_ p: String, _ origin: String) throws(AffectError) -> String {
        let parts = p.split(separator: "/", omittingEmptySubsequences: false)
        guard !p.hasPrefix("/"), !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw .badInput("\(origin): `\(p)` is not a relative path inside the model's folder.")
        }
        return p
    }

    static func file(_ v: JSON, origin: String, allowAlternatives: Bool) throws(AffectError) -> RegistryFile {
        guard case .object = v else { throw .badInput("\(origin): a file entry is not an object.") }
        let path = try relativePath(try string(v, "path", origin), origin)
        let url = try string(v, "url", origin)
        guard let u = URL(string: url), ["http", "https"].contains(u.scheme?.lowercased() ?? ""), u.host != nil else {
            throw .badInput("\(origin): `\(url)` is not an http(s) URL.")
        }
        var digest: Digest?
        if let d = v["digest"], d != .null {
            guard let s = d.stringValue, let parsed = Digest(s) else {
                throw .badInput("\(origin): digest of `\(path)` must be git-blob-sha1:<40 hex> or sha256:<64 hex> (or null).")
            }
            digest = parsed
        }
        var alternatives: [RegistryFile] = []
        if let alts = v["alternatives"]?.arrayValue {
            guard allowAlternatives else { throw .badInput("\(origin): an alternative cannot have alternatives.") }
            for a in alts { alternatives.append(try file(a, origin: origin, allowAlternatives: false)) }
        }
        return RegistryFile(path: path, url: url, digest: digest, optional: v["optional"]?.boolValue ?? false, alternatives: alternatives)
    }

    static func model(_ v: JSON, origin: String) throws(AffectError) -> RegistryModel {
        guard case .object = v else { throw .badInput("\(origin): not an object.") }
        let name = try string(v, "name", origin)
        // Names become folder and file names in the cache.
        guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }), !name.hasPrefix(".") else {
            throw .badInput("\(origin): name `\(name)` may hold only letters, digits, `-`, `_` and `.`.")
        }
        let o = "\(origin) (\(name))"
        guard let list = v["files"]?.arrayValue, !list.isEmpty else { throw .badInput("\(o): `files` must be a non-empty array.") }
        var files: [RegistryFile] = []
        for f in list { files.append(try file(f, origin: o, allowAlternatives: true)) }
        var convert: String?
        if let c = v["convert"], c != .null {
            guard let s = c.stringValue else { throw .badInput("\(o): `convert` must be a path, `.` or null.") }
            convert = s == "." ? s : try relativePath(s, o)
        }
        return RegistryModel(name: name, task: v["task"]?.stringValue ?? "", arch: v["arch"]?.stringValue ?? "",
                             licence: v["licence"]?.stringValue ?? "unknown", repository: v["repository"]?.stringValue ?? "",
                             revision: v["revision"]?.stringValue ?? "", files: files, convert: convert, note: v["note"]?.stringValue)
    }
}
