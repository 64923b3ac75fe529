import Foundation
#if canImport(Glibc)
import Glibc
#endif
import AffectKernels

/// Where models live on this machine, and how a model's name or source becomes an Affect weight file.
///
/// The cache (`$XDG_CACHE_HOME/affect`, else `~/.cache/affect`) holds:
/// - `sources/KEY/NAME/`: a registry model's files, each renamed into place only after its digest matched,
///   and `affect-pull.json` (what was fetched, with the sha256 seen) once all of them are there;
/// - `models/NAME.KEY.safetensors`: its conversion; KEY is derived from the entry's URLs, digests and
///   revision, so an edited entry never reuses an old file;
/// - `converted/SHA256.safetensors`: a source file or folder given by path, converted once, keyed by the
///   digest of its bytes (`digests/` remembers a file's digest by path, inode, size and mtime);
/// - `locks/`: `flock` files, so that two processes pulling or converting the same thing take turns and
///   the second finds the first one's result.
///
/// ```swift
/// let path = try ModelStore.default.load("enet_b0_8_best_vgaf")   // downloads and converts when missing
/// let weights = try WeightFile(path: path)
/// ```
public struct ModelStore: Sendable {
    /// The cache folder.
    public var root: String
    public var registry: ModelRegistry
    /// Never download: a model that is not in the cache is an error naming where to put its files.
    public var offline: Bool
    /// Replaces every file's scheme and host: `https://HOST/PATH` is fetched from `MIRROR/HOST/PATH`.
    public var mirror: String?
    /// Download progress: (model name, file path, bytes so far, total when the server said).
    public var progress: (@Sendable (String, String, Int64, Int64?) -> Void)?

    public init(root: String, registry: ModelRegistry = .builtin, offline: Bool = false, mirror: String? = nil) {
        self.root = root
        self.registry = registry
        self.offline = offline
        self.mirror = mirror
    }

    /// The store the environment describes: `XDG_CACHE_HOME` (else `~/.cache`), `AFFECT_MODEL_MIRROR`,
    /// `AFFECT_OFFLINE=1`, and `AFFECT_REGISTRY` (registry files, `:`-separated, adding to the built-in one).
    public static var `default`: ModelStore {
        get throws(AffectError) {
            let env = ProcessInfo.processInfo.environment
            let base: String
            if let x = env["XDG_CACHE_HOME"], x.hasPrefix("/") { base = x } else {
                base = (env["HOME"] ?? NSHomeDirectory()) + "/.cache"
            }
            var registry = ModelRegistry.builtin
            for f in (env["AFFECT_REGISTRY"] ?? "").split(separator: ":") { registry = registry.adding(try ModelRegistry(path: String(f))) }
            let mirror = env["AFFECT_MODEL_MIRROR"].flatMap { $0.isEmpty ? nil : $0 }
            return ModelStore(root: base + "/affect", registry: registry, offline: env["AFFECT_OFFLINE"] == "1", mirror: mirror)
        }
    }

    // MARK: names and sources

    /// A weight-file argument as a `.safetensors` path: a registry name is pulled (unless offline) and
    /// converted; an existing source (folder, `.pt`/`.pth`/`.bin`/`.onnx`/`.h5`/`.hdf5`) is converted once into the
    /// cache; anything else is returned unchanged for the loader to open (or report).
    public func resolve(_ argument: String) throws(AffectError) -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: argument, isDirectory: &isDir) {
            let ext = (argument as NSString).pathExtension.lowercased()
            if isDir.boolValue || ["pt", "pth", "bin", "onnx", "h5", "hdf5"].contains(ext) { return try converted(source: argument) }
            return argument
        }
        if registry[argument] != nil { return try load(argument) }
        return argument
    }

    /// A registry model's weight file, pulled and converted when missing.
    public func load(_ name: String) throws(AffectError) -> String {
        let model = try entry(name)
        let out = convertedPath(model)
        if FileManager.default.fileExists(atPath: out) { return out }
        guard model.convert != nil else {
            throw .badInput("\(name): `affect convert` cannot read this model's source (\(model.note ?? model.arch)); `affect pull \(name)` downloads it for Tools/convert.py.")
        }
        return try pull(name)
    }

    /// Downloads (what is missing of) a registry model and converts it. Returns the weight file, written to
    /// `directory/NAME.safetensors` when a directory is given, else kept in the cache; for a model
    /// `affect convert` cannot read, the folder of its verified files (copied into `directory` when given).
    @discardableResult
    public func pull(_ name: String, to directory: String? = nil) throws(AffectError) -> String {
        let model = try entry(name)
        let cached = convertedPath(model)
        if directory == nil, model.convert != nil, FileManager.default.fileExists(atPath: cached) { return cached }
        let folder = try download(model)
        guard let what = model.convert else {
            guard let directory else { return folder }
            try makeFolder(directory)
            for f in try presentFiles(model, in: folder) {
                let dst = (directory as NSString).appendingPathComponent((f as NSString).lastPathComponent)
                try? FileManager.default.removeItem(atPath: dst)
                do { try FileManager.default.copyItem(atPath: (folder as NSString).appendingPathComponent(f), toPath: dst) } catch {
                    throw .badInput("\(dst): cannot copy the downloaded file there.")
                }
            }
            return directory
        }
        let source = what == "." ? folder : (folder as NSString).appendingPathComponent(what)
        if !FileManager.default.fileExists(atPath: cached) {
            try convertOnce(source, to: cached, lock: "model.\((cached as NSString).lastPathComponent)")
        }
        guard let directory else { return cached }
        try makeFolder(directory)
        let dst = (directory as NSString).appendingPathComponent("\(name).safetensors")
        try copyAtomically(cached, to: dst)
        return dst
    }

    /// Whether a registry model is ready without a download: converted, or (for sources `affect convert`
    /// cannot read) all its files verified.
    public func isPresent(_ model: RegistryModel) -> Bool {
        if model.convert != nil { return FileManager.default.fileExists(atPath: convertedPath(model)) }
        return FileManager.default.fileExists(atPath: (sourceFolder(model) as NSString).appendingPathComponent(manifestName))
    }

    /// Bytes the model takes in the cache (sources and conversion), nil when none of it is there.
    public func localSize(_ model: RegistryModel) -> Int64? {
        var total: Int64 = 0
        var any = false
        for p in [convertedPath(model)] + ((try? FileManager.default.subpathsOfDirectory(atPath: sourceFolder(model))) ?? [])
            .map({ (sourceFolder(model) as NSString).appendingPathComponent($0) }) {
            var st = stat()
            if stat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { total += Int64(st.st_size); any = true }
        }
        return any ? total : nil
    }

    // MARK: layout

    static let manifestName = "affect-pull.json"
    var manifestName: String { Self.manifestName }

    func entry(_ name: String) throws(AffectError) -> RegistryModel {
        guard let m = registry[name] else {
            throw .badInput("\(name): no such file, folder or model name (`affect models` lists the names).")
        }
        return m
    }

    /// KEY of a registry model: the first 16 hex digits of the sha256 of its revision, URLs and digests.
    public func key(_ model: RegistryModel) -> String {
        var s = SHA256()
        var text = model.revision + "\n"
        for f in model.files {
            for g in [f] + f.alternatives { text += "\(g.path) \(g.url) \(g.digest?.description ?? "-")\n" }
        }
        text += model.convert ?? "-"
        s.update(Data(text.utf8))
        return String(s.hexDigest().prefix(16))
    }

    /// The folder is named after the model, as the conversion's `affect.source` then says.
    public func sourceFolder(_ model: RegistryModel) -> String { "\(root)/sources/\(key(model))/\(model.name)" }
    public func convertedPath(_ model: RegistryModel) -> String { "\(root)/models/\(model.name).\(key(model)).safetensors" }
    var locks: String { "\(root)/locks" }

    /// The URL a file is fetched from, through the mirror when one is set.
    public func fetchURL(_ url: String) -> String {
        guard let mirror, let u = URLComponents(string: url), let host = u.host else { return url }
        var base = mirror
        while base.hasSuffix("/") { base.removeLast() }
        let port = u.port.map { ":\($0)" } ?? ""
        return base + "/" + host + port + u.percentEncodedPath + (u.percentEncodedQuery.map { "?" + $0 } ?? "")
    }

    func makeFolder(_ path: String) throws(AffectError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw .badInput("\(path): cannot create the folder (a parent is not a folder or not writable).")
        }
    }

    // MARK: downloading

    /// Files of the model present in its folder (the first present of each file's alternatives).
    func presentFiles(_ model: RegistryModel, in folder: String) throws(AffectError) -> [String] {
        model.files.compactMap { f in
            ([f] + f.alternatives).first { FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0.path)) }?.path
        }
    }

    /// Fetches the model's missing files into its source folder; returns the folder.
    func download(_ model: RegistryModel) throws(AffectError) -> String {
        let folder = sourceFolder(model)
        let manifest = (folder as NSString).appendingPathComponent(manifestName)
        if FileManager.default.fileExists(atPath: manifest) { return folder }
        try makeFolder(folder)
        try makeFolder(locks)
        var record: [JSON] = []
        do throws(AffectError) {
            for f in model.files {
                var got: (RegistryFile, String)?
                for candidate in [f] + f.alternatives {
                    let dst = (folder as NSString).appendingPathComponent(candidate.path)
                    if let sha = try fetch(model, candidate, to: dst, optional: f.optional || candidate != ([f] + f.alternatives).last!) {
                        got = (candidate, sha)
                        break
                    }
                }
                guard let (file, sha) = got else {
                    if f.optional { continue }
                    throw AffectError.badInput("\(model.name): the server has none of \(([f] + f.alternatives).map { fetchURL($0.url) }.joined(separator: ", ")).")
                }
                record.append(.object([("path", .string(file.path)), ("url", .string(file.url)),
                                       ("digest", file.digest.map { .string($0.description) } ?? .null), ("sha256", .string(sha)),
                                       ("size", .int(Int(Downloader.fileSize((folder as NSString).appendingPathComponent(file.path)))))]))
            }
        } catch {
            // A rejected model leaves no empty folder behind.
            for f in [folder, (folder as NSString).deletingLastPathComponent]
            where ((try? FileManager.default.contentsOfDirectory(atPath: f)) ?? ["x"]).isEmpty { rmdir(f) }
            throw error
        }
        let doc = JSON.object([("name", .string(model.name)), ("revision", .string(model.revision)), ("files", .array(record))])
        let tmp = AtomicFile.temporaryPath(for: manifest)   // unique per call: two threads may pull at once
        guard FileManager.default.createFile(atPath: tmp, contents: Data((doc.serialized() + "\n").utf8)), rename(tmp, manifest) == 0 else {
            unlink(tmp)
            throw .badInput("\(manifest): cannot write the download record.")
        }
        return folder
    }

    /// One file: already there (verified when it was renamed into place), or downloaded and verified.
    /// Returns its sha256, or nil when the server does not have it and `optional` allows that.
    func fetch(_ model: RegistryModel, _ file: RegistryFile, to dst: String, optional: Bool) throws(AffectError) -> String? {
        if FileManager.default.fileExists(atPath: dst) { return try SHA256.file(dst) }
        let url = fetchURL(file.url)
        if offline {
            throw .badInput("\(model.name): not downloaded and downloads are off; fetch \(url) and put it at \(dst), or allow downloads.")
        }
        guard let u = URL(string: url) else { throw .badInput("\(url): not a valid URL.") }
        let parent = (dst as NSString).deletingLastPathComponent
        try makeFolder(parent)
        let progress = self.progress
        let label = file.path
        do {
            let lockName = "source.\(key(model)).\(model.name).\(file.path.replacingOccurrences(of: "/", with: "_")).lock"
            return try Downloader.fetch(u, to: dst, lock: "\(locks)/\(lockName)", expected: file.digest) { done, total in
                progress?(model.name, label, done, total)
            }
        } catch let e as AffectError {
            throw e
        } catch FetchFailure.notFound(let status) {
            if optional { return nil }
            throw .badInput("\(url): the server answered HTTP \(status); fetch the file by hand and put it at \(dst).")
        } catch FetchFailure.failed(let why) {
            throw .badInput("\(url): cannot download (\(why)); fetch the file by hand and put it at \(dst).")
        } catch {
            throw .badInput("\(url): cannot download (\(error)); fetch the file by hand and put it at \(dst).")
        }
    }

    // MARK: converting

    /// Converts `source` to `output` unless another process already did; one converter at a time per output.
    func convertOnce(_ source: String, to output: String, lock name: String) throws(AffectError) {
        try makeFolder((output as NSString).deletingLastPathComponent)
        try makeFolder(locks)
        let lock = try FileLock("\(locks)/\(name).lock")
        defer { lock.release() }
        if FileManager.default.fileExists(atPath: output) { return }
        try Converter.convert(source, to: output)
    }

    /// A source file or folder converted into `converted/DIGEST.safetensors` (once).
    public func converted(source: String) throws(AffectError) -> String {
        let digest = try sourceDigest(source)
        let out = "\(root)/converted/\(digest).safetensors"
        if FileManager.default.fileExists(atPath: out) { return out }
        try convertOnce(source, to: out, lock: "converted.\(digest)")
        return out
    }

    /// The sha256 of a file, or for a folder the sha256 of its sorted `relative-path sha256` lines (hidden
    /// files skipped).
    public func sourceDigest(_ source: String) throws(AffectError) -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else { throw .badInput("\(source): no such file or folder.") }
        guard isDir.boolValue else { return try fileDigest(source) }
        guard let all = try? FileManager.default.subpathsOfDirectory(atPath: source) else {
            throw .badInput("\(source): cannot list the folder.")
        }
        var lines = ""
        for rel in all.sorted() where !rel.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
            let p = (source as NSString).appendingPathComponent(rel)
            var st = stat()
            guard stat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            lines += "\(rel) \(try fileDigest(p))\n"
        }
        var s = SHA256()
        s.update(Data(lines.utf8))
        return s.hexDigest()
    }

    /// A file's sha256, remembered under its path, device, inode, size and modification time so that a big
    /// checkpoint is hashed once, not at every run.
    func fileDigest(_ path: String) throws(AffectError) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .badInput("\(path): cannot read the file.") }
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var k = SHA256()
        k.update(Data("\(real)\0\(st.st_dev)\0\(st.st_ino)\0\(st.st_size)\0\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)".utf8))
        let memo = "\(root)/digests/\(k.hexDigest())"
        if let d = try? String(contentsOfFile: memo, encoding: .utf8), d.count == 64, d.allSatisfy(\.isHexDigit) { return d }
        let digest = try SHA256.file(path)
        // The memo is only a shortcut: failing to write it costs a re-hash next time, nothing more.
        if (try? FileManager.default.createDirectory(atPath: "\(root)/digests", withIntermediateDirectories: true)) != nil {
            let tmp = AtomicFile.temporaryPath(for: memo)
            if FileManager.default.createFile(atPath: tmp, contents: Data(digest.utf8)) { rename(tmp, memo) }
        }
        return digest
    }

    /// Copies a file to `dst` through a temporary file in the same folder and a rename.
    func copyAtomically(_ src: String, to dst: String) throws(AffectError) {
        let tmp = AtomicFile.temporaryPath(for: dst)
        unlink(tmp)
        do { try FileManager.default.copyItem(atPath: src, toPath: tmp) } catch {
            throw .badInput("\(dst): cannot write the file.")
        }
        guard rename(tmp, dst) == 0 else {
            unlink(tmp)
            throw .badInput("\(dst): cannot write the file (\(String(cString: strerror(errno)))).")
        }
    }
}
