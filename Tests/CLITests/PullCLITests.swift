import Foundation
import Testing
import AffectKernels

/// `affect pull`, `affect models` and model names on other commands, against a loopback server.
@Suite(.serialized) struct PullCommandTests {
    let pt = (fixtures as NSString).appendingPathComponent("convert/efficientnet.pt")
    /// `git hash-object Tests/Fixtures/convert/efficientnet.pt`.
    let ptBlob = "git-blob-sha1:66f20b230a6cb35feeeab2a6497f4218e71a033a"

    /// A fresh cache folder and a registry file naming `tiny_enet` at `base`.
    func setUp(_ base: String, digest: String? = nil) throws -> (cache: String, registry: String) {
        let dir = tempPath("pull-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let registry = dir + "/registry.json"
        let json = """
        {"format": 1, "models": [{"name": "tiny_enet", "task": "test EfficientNet", "arch": "efficientnet", "licence": "MIT",
          "revision": "r1", "files": [{"path": "efficientnet.pt", "url": "\(base)/files/efficientnet.pt", "digest": "\(digest ?? ptBlob)"}],
          "convert": "efficientnet.pt"}]}
        """
        try Data(json.utf8).write(to: URL(fileURLWithPath: registry))
        return (dir + "/cache", registry)
    }

    func cacheFiles(_ cache: String) -> [String] {
        ((try? FileManager.default.subpathsOfDirectory(atPath: cache)) ?? []).filter {
            var d: ObjCBool = false
            return FileManager.default.fileExists(atPath: cache + "/" + $0, isDirectory: &d) && !d.boolValue && !$0.hasPrefix("affect/locks/")
        }
    }

    @Test func pullThenUseByName() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        server.put("/files/efficientnet.pt", try Data(contentsOf: URL(fileURLWithPath: pt)))
        let (cache, registry) = try setUp(server.base)
        let env = ["XDG_CACHE_HOME": cache]
        let before = try runAffect(["models", "--registry", registry], environment: env)
        #expect(before.status == 0, "\(before.stderr)")
        let row = before.stdout.split(separator: "\n").first { $0.hasPrefix("tiny_enet") }
        #expect(row?.hasSuffix("no") == true, "\(before.stdout)")
        #expect(before.stdout.contains("enet_b0_8_best_vgaf") && before.stdout.contains("wav2vec2-base-960h"))

        let r = try runAffect(["pull", "tiny_enet", "--registry", registry], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let path = r.stdout.split(separator: "\n").first.map { String($0.dropFirst("tiny_enet: ".count)) } ?? ""
        #expect(path.hasPrefix(cache + "/affect/models/tiny_enet.") && FileManager.default.fileExists(atPath: path), "\(r.stdout)")
        let after = try runAffect(["models", "--registry", registry], environment: env)
        #expect(after.stdout.split(separator: "\n").first { $0.hasPrefix("tiny_enet") }?.hasSuffix("yes") == true, "\(after.stdout)")

        // Other commands take the name (AFFECT_REGISTRY adds the entry there); nothing is fetched again.
        let count = server.requests.count
        let info = try runAffect(["info", "tiny_enet"], environment: env.merging(["AFFECT_REGISTRY": registry]) { $1 })
        #expect(info.status == 0, "\(info.stderr)")
        #expect(info.stdout.contains("arch:        efficientnet"))
        #expect(server.requests.count == count)

        // --to DIR writes NAME.safetensors there.
        let dir = tempPath("pull-to-\(UUID().uuidString)")
        let to = try runAffect(["pull", "tiny_enet", "--registry", registry, "--to", dir], environment: env)
        #expect(to.status == 0, "\(to.stderr)")
        #expect(try SafeTensorsFile(path: dir + "/tiny_enet.safetensors").metadata["affect.arch"] == "efficientnet")
    }

    @Test func tamperedFileExitsTwoAndLeavesNothing() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        server.put("/files/efficientnet.pt", try Data(contentsOf: URL(fileURLWithPath: pt)))
        server.tamper("/files/efficientnet.pt")
        let (cache, registry) = try setUp(server.base)
        let r = try runAffect(["pull", "tiny_enet", "--registry", registry], environment: ["XDG_CACHE_HOME": cache])
        expectBadInput(r, naming: "\(server.base)/files/efficientnet.pt", "tampered download")
        #expect(r.stderr.contains("does not match its digest"))
        #expect(cacheFiles(cache) == [], "\(cacheFiles(cache))")
        // A command given the name refuses it the same way: a tampered file never reaches a model.
        let info = try runAffect(["info", "tiny_enet"], environment: ["XDG_CACHE_HOME": cache, "AFFECT_REGISTRY": registry])
        #expect(info.status == 2 && info.stderr.contains("does not match its digest"), "\(info.stderr)")
        #expect(cacheFiles(cache) == [])
    }

    @Test func interruptedPullResumesInTheNextRun() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        server.put("/files/efficientnet.pt", try Data(contentsOf: URL(fileURLWithPath: pt)))
        server.cut("/files/efficientnet.pt", after: 4096, times: 3)
        let (cache, registry) = try setUp(server.base)
        let env = ["XDG_CACHE_HOME": cache]
        let first = try runAffect(["pull", "tiny_enet", "--registry", registry], environment: env)
        expectBadInput(first, naming: "\(server.base)/files/efficientnet.pt", "interrupted download")
        #expect(first.stderr.contains("put it at"))
        #expect(cacheFiles(cache).contains { $0.hasSuffix("efficientnet.pt.part") })
        let second = try runAffect(["pull", "tiny_enet", "--registry", registry], environment: env)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(server.requests.map(\.range) == [nil, "bytes=4096-", "bytes=8192-", "bytes=12288-"])
        #expect(!cacheFiles(cache).contains { $0.hasSuffix(".part") })
    }

    @Test func mirrorFromTheEnvironment() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        server.put("/m/github.com/example/raw/abc/files/efficientnet.pt", try Data(contentsOf: URL(fileURLWithPath: pt)))
        let (cache, registry) = try setUp("https://github.com/example/raw/abc")
        let r = try runAffect(["pull", "tiny_enet", "--registry", registry],
                              environment: ["XDG_CACHE_HOME": cache, "AFFECT_MODEL_MIRROR": server.base + "/m/"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(server.requests.map(\.path) == ["/m/github.com/example/raw/abc/files/efficientnet.pt"])
    }

    @Test func offlineNamesTheURLAndWhereToPutTheFile() throws {
        let server = try LoopbackServer(); defer { server.stop() }
        let (cache, registry) = try setUp(server.base)
        let env = ["XDG_CACHE_HOME": cache]
        let r = try runAffect(["pull", "tiny_enet", "--registry", registry, "--offline"], environment: env)
        expectBadInput(r, naming: "\(server.base)/files/efficientnet.pt", "offline pull")
        #expect(r.stderr.contains(cache + "/affect/sources/"))
        let bench = try runAffect(["bench", "tiny_enet", "--offline", "--seconds", "0"], environment: env.merging(["AFFECT_REGISTRY": registry]) { $1 })
        expectBadInput(bench, naming: "\(server.base)/files/efficientnet.pt", "offline bench")
        #expect(server.requests.isEmpty)
        let unknown = try runAffect(["pull", "no_such_model"], environment: env)
        expectBadInput(unknown, naming: "no_such_model", "unknown name")
    }

    @Test func sourceFolderIsConvertedOnceIntoTheCache() throws {
        let (cache, _) = try setUp("https://unused.example")
        let env = ["XDG_CACHE_HOME": cache]
        let folder = (fixtures as NSString).appendingPathComponent("convert/roberta_cls")
        for _ in 0..<2 {
            let r = try runAffect(["info", folder], environment: env)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("arch:        roberta"))
        }
        #expect(cacheFiles(cache).filter { $0.hasPrefix("affect/converted/") }.count == 1, "\(cacheFiles(cache))")
    }
}
