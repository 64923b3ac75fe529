import Foundation
import Testing
import AffectKernels
@testable import AffectConvert

@Suite struct DigestTests {
    func sha1(_ s: String) -> String { var h = SHA1(); h.update(Data(s.utf8)); return h.hexDigest() }

    @Test func sha1Vectors() {
        // FIPS 180-2 appendix A and the empty string.
        #expect(sha1("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(sha1("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        var h = SHA1()
        let chunk = Data(repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { h.update(chunk) }   // across block boundaries in uneven pieces
        #expect(h.hexDigest() == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func gitBlobIds() throws {
        let scratch = ScratchFolder()
        let f = scratch.file("hello.txt")
        try Data("hello world\n".utf8).write(to: URL(fileURLWithPath: f))
        // `git hash-object` of the same bytes and of a committed fixture.
        #expect(try SHA1.gitBlob(f) == "3b18e512dba79e4c8300dd08aeb37f8e728b8dad")
        #expect(try SHA1.gitBlob(convertFixtures + "/efficientnet.pt") == "66f20b230a6cb35feeeab2a6497f4218e71a033a")
        #expect(Digest("git-blob-sha1:66F20B230A6CB35FEEEAB2A6497F4218E71A033A") == .gitBlobSHA1("66f20b230a6cb35feeeab2a6497f4218e71a033a"))
        #expect(Digest("sha1:66f20b230a6cb35feeeab2a6497f4218e71a033a") == nil)
        #expect(Digest("sha256:abc") == nil)
    }
}

@Suite struct RegistryTests {
    @Test func builtinRegistryPinsTheSeedsModels() throws {
        let r = ModelRegistry.builtin
        let commit = "f1df0e8548c666d268826e50b7de107fd5553e9d"
        for name in ["enet_b0_8_best_afew", "enet_b0_8_best_vgaf", "enet_b0_8_va_mtl", "enet_b2_7", "enet_b2_8", "mbf_va_mtl",
                     "mobilevit_va_mtl", "enet_b0_8_best_vgaf_onnx", "engagement_single_attention"] {
            let m = try #require(r[name], "\(name) missing")
            #expect(m.revision == commit)
            for f in m.files {
                #expect(f.url.hasPrefix("https://github.com/sb-ai-lab/EmotiEffLib/raw/\(commit)/models/"))
                guard case .gitBlobSHA1? = f.digest else { Issue.record("\(name): \(f.path) is not pinned by a git blob id"); continue }
            }
        }
        #expect(r["enet_b0_8_best_vgaf"]?.files.first?.digest == Digest("git-blob-sha1:7219cfb037209b253ea8b81cf969e60a00e9181c"))
        #expect(r["enet_b0_8_best_vgaf_onnx"]?.files.first?.digest == Digest("git-blob-sha1:49772db4e87ee6df57087fba131832a959e5c64d"))
        // Every EmotiEffLib ONNX export converts in Swift.
        #expect(r["mbf_va_mtl_onnx"]?.convert == "mbf_va_mtl.onnx")
        #expect(r["mobilevit_va_mtl_onnx"]?.convert == "mobilevit_va_mtl.onnx")
        for name in ["wav2vec2-base-960h", "hubert-large-ls960-ft", "roberta-base-go_emotions", "all-MiniLM-L6-v2"] {
            let m = try #require(r[name], "\(name) missing")
            #expect(m.convert == ".")
            // Unpinned entries say so.
            if !m.isPinned { #expect(m.note?.contains("sha256") == true, "\(name) has no note about its missing digest") }
            #expect(m.files.contains { $0.path == "config.json" })
        }
        for m in r.models { #expect(!m.licence.isEmpty && !m.task.isEmpty && !m.arch.isEmpty) }
    }

    @Test func badEntriesAreRejected() {
        func parse(_ files: String, name: String = "m") -> AffectError? {
            let json = #"{"format": 1, "models": [{"name": "\#(name)", "files": \#(files)}]}"#
            do { _ = try ModelRegistry(json: Data(json.utf8), origin: "r.json"); return nil } catch { return error }
        }
        #expect(parse(#"[{"path": "a.pt", "url": "https://x.org/a.pt", "digest": null}]"#) == nil)
        for bad in [#"[{"path": "../a.pt", "url": "https://x.org/a.pt"}]"#, #"[{"path": "/a.pt", "url": "https://x.org/a.pt"}]"#,
                    #"[{"path": "a.pt", "url": "file:///etc/passwd"}]"#, #"[{"path": "a.pt", "url": "https://x.org/a", "digest": "md5:00"}]"#,
                    "[]", #"[{"url": "https://x.org/a"}]"#] {
            let e = parse(bad)
            #expect(e?.description.contains("r.json") == true, "accepted \(bad)")
        }
        #expect(parse(#"[{"path": "a.pt", "url": "https://x.org/a.pt"}]"#, name: "../up") != nil)
    }

    @Test func mirrorMapsHostAndPath() {
        var s = ModelStore(root: "/tmp/x", mirror: "http://10.0.0.1:8080/models/")
        #expect(s.fetchURL("https://github.com/sb-ai-lab/EmotiEffLib/raw/abc/models/a.pt")
                == "http://10.0.0.1:8080/models/github.com/sb-ai-lab/EmotiEffLib/raw/abc/models/a.pt")
        #expect(s.fetchURL("https://huggingface.co/x/y/resolve/main/1_Pooling/config.json?download=1")
                == "http://10.0.0.1:8080/models/huggingface.co/x/y/resolve/main/1_Pooling/config.json?download=1")
        s.mirror = nil
        #expect(s.fetchURL("https://a.org/b") == "https://a.org/b")
    }
}

/// `ModelStore` against a loopback server: downloads verified before use, resumed, mirrored; sources
/// converted once into the cache.
@Suite(.serialized) struct ModelStoreTests {
    static let ptBlob = "git-blob-sha1:66f20b230a6cb35feeeab2a6497f4218e71a033a"

    func registry(_ server: LoopbackServer, digest: String? = ptBlob, host: String? = nil) throws -> ModelRegistry {
        let base = host ?? server.base
        let json = """
        {"format": 1, "models": [
          {"name": "tiny_enet", "task": "test", "arch": "efficientnet", "licence": "MIT", "revision": "r1",
           "files": [{"path": "efficientnet.pt", "url": "\(base)/files/efficientnet.pt", "digest": \(digest.map { "\"\($0)\"" } ?? "null")}],
           "convert": "efficientnet.pt"},
          {"name": "roberta_cls", "task": "test", "arch": "roberta", "licence": "MIT", "revision": "r1",
           "files": [{"path": "config.json", "url": "\(base)/hf/config.json"},
                     {"path": "tokenizer_config.json", "url": "\(base)/hf/tokenizer_config.json", "optional": true},
                     {"path": "tokenizer.json", "url": "\(base)/hf/tokenizer.json"},
                     {"path": "model.safetensors", "url": "\(base)/hf/missing.safetensors",
                      "alternatives": [{"path": "model.safetensors", "url": "\(base)/hf/model.safetensors"}]}],
           "convert": "."}
        ]}
        """
        return try ModelRegistry(json: Data(json.utf8), origin: "test registry")
    }

    func serve(_ server: LoopbackServer) throws {
        server.put("/files/efficientnet.pt", try Data(contentsOf: URL(fileURLWithPath: convertFixtures + "/efficientnet.pt")))
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            server.put("/hf/\(f)", try Data(contentsOf: URL(fileURLWithPath: convertFixtures + "/roberta_cls/\(f)")))
        }
    }

    /// Every regular file under `root`, relative.
    func filesIn(_ root: String) -> [String] {
        ((try? FileManager.default.subpathsOfDirectory(atPath: root)) ?? []).filter {
            var d: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + $0, isDirectory: &d) && !d.boolValue
        }
    }

    @Test func goodDownloadIsVerifiedConvertedAndLoads() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        try serve(server)
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), registry: try registry(server))
        let m = try #require(store.registry["tiny_enet"])
        #expect(!store.isPresent(m))
        let path = try store.load("tiny_enet")
        #expect(path == store.convertedPath(m) && store.isPresent(m))
        try ConvertFixtureTests().expectSameWeights(path, convertFixtures + "/efficientnet_pt.safetensors")
        // The download record keeps what was seen.
        let record = try JSON.read(store.sourceFolder(m) + "/affect-pull.json")
        #expect(record["files"]?.arrayValue?.first?["sha256"]?.stringValue == (try SHA256.file(convertFixtures + "/efficientnet.pt")))
        // A second load is served from the cache: no request.
        let before = server.requests.count
        #expect(try store.load("tiny_enet") == path)
        #expect(server.requests.count == before)
        // --to DIR: a copy named after the model.
        let out = try store.pull("tiny_enet", to: scratch.file("out"))
        #expect(out == scratch.file("out/tiny_enet.safetensors"))
        try ConvertFixtureTests().expectSameWeights(out, convertFixtures + "/efficientnet_pt.safetensors")
    }

    @Test func twoConcurrentPullsFetchOnce() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        try serve(server)
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), registry: try registry(server))
        let lock = NSLock()
        nonisolated(unsafe) var paths: [String] = []  // appended under `lock`
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let p: String
            do { p = try store.load("tiny_enet") } catch { p = "failed: \(error)" }
            lock.withLock { paths.append(p) }
        }
        let m = try #require(store.registry["tiny_enet"])
        #expect(paths == [store.convertedPath(m), store.convertedPath(m)])
        // The second waited on the lock and found the file: one request.
        #expect(server.requests.count == 1, "\(server.requests)")
        try ConvertFixtureTests().expectSameWeights(paths[0], convertFixtures + "/efficientnet_pt.safetensors")
    }

    @Test func malformedRegistryFilesAreOneSentence() {
        for text in ["", "{", "[]", #"{"models": 3}"#, #"{"format": 2, "models": []}"#, "\u{0}\u{1}garbage"] {
            let e = #expect(throws: AffectError.self) { try ModelRegistry(json: Data(text.utf8), origin: "bad.json") }
            #expect(e?.description.hasPrefix("bad.json") == true, "\(String(describing: e))")
        }
    }

    @Test func hfFolderWithOptionalAndAlternativeFiles() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        try serve(server)
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), registry: try registry(server))
        let path = try store.resolve("roberta_cls")
        try ConvertFixtureTests().expectSameWeights(path, convertFixtures + "/roberta_cls.safetensors")
        let asked = server.requests.map(\.path)
        #expect(asked.contains("/hf/missing.safetensors") && asked.contains("/hf/model.safetensors") && asked.contains("/hf/tokenizer_config.json"))
        let m = try #require(store.registry["roberta_cls"])
        #expect(filesIn(store.sourceFolder(m)).sorted() == ["affect-pull.json", "config.json", "model.safetensors", "tokenizer.json"])
    }

    @Test func tamperedFileIsRejectedAndRemoved() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        try serve(server)
        server.tamper("/files/efficientnet.pt")
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), registry: try registry(server))
        let e = #expect(throws: AffectError.self) { try store.load("tiny_enet") }
        #expect(e?.description.contains("does not match its digest") == true, "\(String(describing: e))")
        #expect(e?.description.contains("/files/efficientnet.pt") == true)
        // Nothing of the model is left: no file, no partial file, no conversion (lock files aside).
        #expect(filesIn(scratch.file("cache")).filter { !$0.hasPrefix("locks/") } == [])
    }

    @Test func interruptedDownloadResumesWithRange() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        try serve(server)
        let size = try Data(contentsOf: URL(fileURLWithPath: convertFixtures + "/efficientnet.pt")).count
        server.cut("/files/efficientnet.pt", after: size / 2)
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), registry: try registry(server))
        let path = try store.load("tiny_enet")
        try ConvertFixtureTests().expectSameWeights(path, convertFixtures + "/efficientnet_pt.safetensors")
        let asks = server.requests.filter { $0.path == "/files/efficientnet.pt" }
        #expect(asks.count == 2)
        #expect(asks.first?.range == nil && asks.last?.range == "bytes=\(size / 2)-", "\(asks)")
    }

    @Test func partialFileLeftByAFailedRunIsResumed() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        try serve(server)
        let size = try Data(contentsOf: URL(fileURLWithPath: convertFixtures + "/efficientnet.pt")).count
        // Every attempt of the first run is cut (the second and third add nothing past byte 1000).
        server.cut("/files/efficientnet.pt", after: 1000, times: Downloader.attempts)
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), registry: try registry(server))
        let e = #expect(throws: AffectError.self) { try store.load("tiny_enet") }
        #expect(e?.description.contains("put it at") == true, "\(String(describing: e))")
        let m = try #require(store.registry["tiny_enet"])
        let part = store.sourceFolder(m) + "/efficientnet.pt.part"
        // Each attempt resumed where the previous one was cut.
        let ranges = server.requests.map(\.range)
        #expect(ranges == [nil, "bytes=1000-", "bytes=2000-"])
        let left = Int64(1000 * Downloader.attempts)
        #expect(Downloader.fileSize(part) == left)
        _ = try store.load("tiny_enet")
        #expect(server.requests.last?.range == "bytes=\(left)-")
        #expect(!FileManager.default.fileExists(atPath: part))
        #expect(size > 1000)
    }

    @Test func mirrorReplacesTheHost() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        let pt = try Data(contentsOf: URL(fileURLWithPath: convertFixtures + "/efficientnet.pt"))
        server.put("/mirror/models.example.org/files/efficientnet.pt", pt)
        let scratch = ScratchFolder()
        var store = ModelStore(root: scratch.file("cache"), registry: try registry(server, host: "https://models.example.org"))
        store.mirror = server.base + "/mirror"
        try ConvertFixtureTests().expectSameWeights(try store.load("tiny_enet"), convertFixtures + "/efficientnet_pt.safetensors")
        #expect(server.requests.map(\.path) == ["/mirror/models.example.org/files/efficientnet.pt"])
    }

    @Test func offlineNamesTheURLAndThePlace() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        let scratch = ScratchFolder()
        var store = ModelStore(root: scratch.file("cache"), registry: try registry(server))
        store.offline = true
        let e = #expect(throws: AffectError.self) { try store.load("tiny_enet") }
        let m = try #require(store.registry["tiny_enet"])
        #expect(e?.description.contains("\(server.base)/files/efficientnet.pt") == true)
        #expect(e?.description.contains(store.sourceFolder(m) + "/efficientnet.pt") == true)
        #expect(server.requests.isEmpty)
        // Putting the file there by hand is enough (it is still converted; the digest was the user's call).
        try FileManager.default.createDirectory(atPath: store.sourceFolder(m), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: convertFixtures + "/efficientnet.pt", toPath: store.sourceFolder(m) + "/efficientnet.pt")
        try ConvertFixtureTests().expectSameWeights(try store.load("tiny_enet"), convertFixtures + "/efficientnet_pt.safetensors")
    }

    @Test func refusedConnectionIsOneSentence() throws {
        let server = try LoopbackServer()
        let reg = try registry(server)
        server.stop()   // nothing listens on the port any more
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), registry: reg)
        let e = #expect(throws: AffectError.self) { try store.load("tiny_enet") }
        #expect(e?.description.contains("cannot download") == true && e?.description.contains("put it at") == true, "\(String(describing: e))")
    }

    @Test func sourcesAreConvertedOnceIntoTheCache() throws {
        let scratch = ScratchFolder()
        let store = ModelStore(root: scratch.file("cache"), registry: ModelRegistry(models: []))
        let src = convertFixtures + "/efficientnet.onnx"
        // Two threads converting the same file (flock excludes separate open files, as of two processes):
        // both get the one result, and no temporary file is left.
        let lock = NSLock()
        nonisolated(unsafe) var results: [String] = []  // appended under `lock`
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let r = (try? store.resolve(src)) ?? "failed"
            lock.withLock { results.append(r) }
        }
        let a = try store.resolve(src)
        #expect(results == [a, a])
        #expect(a == "\(scratch.file("cache"))/converted/\(try SHA256.file(src)).safetensors")
        try ConvertFixtureTests().expectSameWeights(a, convertFixtures + "/efficientnet_onnx.safetensors")
        // A folder source and a weight file: the folder converts, the .safetensors passes through.
        let folder = try store.resolve(convertFixtures + "/roberta_cls")
        try ConvertFixtureTests().expectSameWeights(folder, convertFixtures + "/roberta_cls.safetensors")
        #expect(try store.resolve(convertFixtures + "/roberta_cls.safetensors") == convertFixtures + "/roberta_cls.safetensors")
        #expect(try store.resolve("no/such/file.safetensors") == "no/such/file.safetensors")
        #expect(filesIn(scratch.file("cache/converted")).filter { $0.hasSuffix(".tmp") } == [])
    }
}
