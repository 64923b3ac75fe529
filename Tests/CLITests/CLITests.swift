import Foundation
import Testing
import AffectKernels
import AffectTestSupport

/// The `affect` binary built beside this test bundle.
func affectBinary() -> String {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    // The test runner may live inside `X.xctest/` or beside it.
    for _ in 0..<3 {
        let cand = dir.appendingPathComponent("affect").path
        if FileManager.default.isExecutableFile(atPath: cand) { return cand }
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("affect").path
}

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path

struct Result { var status: Int32; var stdout: String; var stderr: String }

/// Runs `affect` with `args`, and with `extra` environment variables (a private cache, a mirror, a registry).
func runAffect(_ args: [String], environment extra: [String: String] = [:]) throws -> Result {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: affectBinary())
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    // Loopback requests must never go through a proxy of the machine.
    env["no_proxy"] = "127.0.0.1"
    env["NO_PROXY"] = "127.0.0.1"
    for (k, v) in extra { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

func tempPath(_ name: String) -> String {
    let dir = Scratch.directory("cli")
    return dir.appendingPathComponent(name).path
}

/// A safetensors file from a raw header string and data bytes.
func rawSafetensors(_ header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
    var d = Data()
    var n = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
    d.append(Data(bytes: &n, count: 8))
    d.append(Data(header.utf8))
    d.append(contentsOf: data)
    return d
}

/// Asserts the one-sentence, exit-2 contract for a bad file.
func expectBadInput(_ r: Result, naming path: String, _ comment: String) {
    #expect(r.status == 2, "\(comment): exit status \(r.status), stderr: \(r.stderr)")
    #expect(r.stderr.contains(path), "\(comment): error does not name the file: \(r.stderr)")
    #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), "\(comment): crashed: \(r.stderr)")
    #expect(r.stderr.split(separator: "\n").count == 1, "\(comment): more than one line: \(r.stderr)")
}

@Suite struct VerifyCommandTests {
    let weights = "\(fixtures)/models/efficientnet_tiny.safetensors"

    @Test func verifyPassesOnCommittedReference() throws {
        for ref in ["efficientnet_tiny.b1.ref.safetensors", "efficientnet_tiny.b3.ref.safetensors"] {
            let r = try runAffect(["verify", weights, "\(fixtures)/models/\(ref)"])
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            #expect(r.stdout.contains("features") && r.stdout.contains("logits") && r.stdout.contains("cosine"))
        }
    }

    @Test func tamperedReferenceFails() throws {
        let ref = try SafeTensorsFile(path: "\(fixtures)/models/efficientnet_tiny.b3.ref.safetensors")
        var w = SafeTensorsWriter()
        for t in ref.tensors {
            var values = try ref.tensor(t).array
            if t.name == "output.logits" { values[4] += 0.05 * (values.map(abs).max() ?? 1) }
            w.add(t.name, shape: t.shape, floats: values)
        }
        let path = tempPath("tampered.safetensors")
        try w.write(to: path)
        let r = try runAffect(["verify", weights, path])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("FAIL"))
    }

    @Test func runWritesOutputs() throws {
        let out = tempPath("run-out.safetensors")
        let r = try runAffect(["run", weights, "\(fixtures)/models/efficientnet_tiny.b1.ref.safetensors", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        let f = try SafeTensorsFile(path: out)
        #expect(f.info("output.logits")?.shape == [1, 7])
        #expect(f.info("output.features")?.shape == [1, 320])
    }

    @Test func benchPrintsMedianLast() throws {
        let r = try runAffect(["bench", weights, "--seconds", "0", "--min-runs", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("median_ms="))
        #expect(Double(last.dropFirst("median_ms=".count)) != nil)
        // The build's kernels, which Tools/bench_peers.py titles a benchmark by when AFFECT_TARGET_CPU is not given.
        #expect(r.stdout.contains("\nvectors:    \(GEMMTile.vectorExtension) "), "\(r.stdout)")
    }

    @Test func benchProfileListsTheSlowestShapes() throws {
        let r = try runAffect(["bench", weights, "--seconds", "0", "--min-runs", "2", "--profile", "--profile-shapes", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        let shapes = r.stdout.split(separator: "\n").filter { $0.hasPrefix("shape:") }
        #expect(shapes.count == 3, "\(r.stdout)")
        // "shape:      packed GEMM M×K · K×N: C calls, P % of the time, G GFLOP/s", the most time first.
        let shares = shapes.compactMap { line -> Double? in
            guard let pct = line.range(of: " % of the time") else { return nil }
            return Double(line[..<pct.lowerBound].split(separator: " ").last ?? "")
        }
        #expect(shares.count == 3 && shares == shares.sorted(by: >), "\(shapes)")
        #expect(shapes.allSatisfy { $0.contains(" · ") && $0.hasSuffix("GFLOP/s") })
    }

    @Test func infoPrintsArchitecture() throws {
        let r = try runAffect(["info", weights])
        #expect(r.status == 0)
        #expect(r.stdout.contains("efficientnet") && r.stdout.contains("parameters"))
    }

    @Test func badUsageExitsTwo() throws {
        let r = try runAffect(["verify", weights])
        #expect(r.status == 2)
        let r2 = try runAffect(["bench", weights, "--batch", "0"])
        #expect(r2.status == 2)
    }
}

@Suite struct BadWeightFileTests {
    let ref = "\(fixtures)/models/efficientnet_tiny.b1.ref.safetensors"
    let meta = #""__metadata__":{"affect.arch":"efficientnet"}"#

    func check(_ name: String, _ contents: Data, _ comment: String) throws {
        let path = tempPath(name)
        try contents.write(to: URL(fileURLWithPath: path))
        for cmd in [["info", path], ["verify", path, ref]] {
            expectBadInput(try runAffect(cmd), naming: path, "\(comment) (\(cmd[0]))")
        }
    }

    @Test func emptyFile() throws { try check("empty.safetensors", Data(), "empty file") }

    @Test func headerLengthPastEnd() throws {
        try check("pastend.safetensors", rawSafetensors("{}", data: [], declaredLength: 4096), "header length past EOF")
    }

    @Test func absurdHeaderLength() throws {
        try check("absurd.safetensors", rawSafetensors("{}", data: [], declaredLength: 1 << 60), "absurd header length")
    }

    @Test func headerNotJSON() throws {
        try check("notjson.safetensors", rawSafetensors("this is not json", data: []), "header not JSON")
    }

    @Test func offsetsOutOfRange() throws {
        let h = #"{\#(meta),"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        try check("range.safetensors", rawSafetensors(h, data: [UInt8](repeating: 0, count: 8)), "offsets out of range")
    }

    @Test func overlappingOffsets() throws {
        let h = #"{\#(meta),"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        try check("overlap.safetensors", rawSafetensors(h, data: [UInt8](repeating: 0, count: 12)), "overlapping offsets")
    }

    @Test func dtypeShapeDisagreeWithBytes() throws {
        let h = #"{\#(meta),"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        try check("count.safetensors", rawSafetensors(h, data: [UInt8](repeating: 0, count: 8)), "byte count mismatch")
    }

    @Test func unknownDtype() throws {
        let h = #"{\#(meta),"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#
        try check("dtype.safetensors", rawSafetensors(h, data: [UInt8](repeating: 0, count: 8)), "unknown dtype")
    }

    @Test func missingArch() throws {
        let h = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        try check("noarch.safetensors", rawSafetensors(h, data: [UInt8](repeating: 0, count: 8)), "missing affect.arch")
    }

    @Test func missingTensor() throws {
        // A real weight file with one tensor the model needs left out.
        let src = try SafeTensorsFile(path: "\(fixtures)/models/efficientnet_tiny.safetensors")
        var w = SafeTensorsWriter(metadata: src.metadata)
        for t in src.tensors where t.name != "blocks.1.0.conv_pwl.weight" {
            w.add(t.name, shape: t.shape, floats: try src.tensor(t).array)
        }
        let path = tempPath("missing-tensor.safetensors")
        try w.write(to: path)
        let r = try runAffect(["verify", path, ref])
        expectBadInput(r, naming: path, "missing tensor")
        #expect(r.stderr.contains("blocks.1.0.conv_pwl.weight"))
    }

    @Test func misshapenTensor() throws {
        let src = try SafeTensorsFile(path: "\(fixtures)/models/efficientnet_tiny.safetensors")
        var w = SafeTensorsWriter(metadata: src.metadata)
        for t in src.tensors {
            let v = try src.tensor(t).array
            if t.name == "bn1.running_var" { w.add(t.name, shape: [v.count - 1], floats: Array(v.dropLast())) }
            else { w.add(t.name, shape: t.shape, floats: v) }
        }
        let path = tempPath("misshapen.safetensors")
        try w.write(to: path)
        let r = try runAffect(["verify", path, ref])
        expectBadInput(r, naming: path, "misshapen tensor")
        #expect(r.stderr.contains("bn1.running_var"))
    }

    @Test func wrongArchitecture() throws {
        let h = #"{"__metadata__":{"affect.arch":"no_such_arch"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let path = tempPath("wrongarch.safetensors")
        try rawSafetensors(h, data: [UInt8](repeating: 0, count: 8)).write(to: URL(fileURLWithPath: path))
        expectBadInput(try runAffect(["verify", path, ref]), naming: path, "unknown arch")
    }

    @Test func missingFile() throws {
        expectBadInput(try runAffect(["info", "/nonexistent/w.safetensors"]), naming: "/nonexistent/w.safetensors", "missing file")
    }
}

@Suite struct FacesCommandTests {
    @Test func badImagesExitTwo() throws {
        let empty = tempPath("empty.png")
        FileManager.default.createFile(atPath: empty, contents: Data())
        let garbage = tempPath("garbage.jpg")
        FileManager.default.createFile(atPath: garbage, contents: Data((0..<2048).map { UInt8(($0 * 7) % 256) }))
        for path in [empty, garbage, tempPath("missing.jpg")] {
            expectBadInput(try runAffect(["faces", path]), naming: path, "faces on a bad image")
        }
    }

    @Test func jsonOutputOnARealFace() throws {
        let image = "\(testMedia)/portrait.png"
        let r = try runAffect(["faces", image, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let faces = obj?["faces"] as? [[String: Any]]
        #expect(faces?.count == 1)
        #expect((faces?.first?["landmarks"] as? [[Double]])?.count == 5)
        let csv = try runAffect(["faces", image, "--format", "csv"])
        let lines = csv.stdout.split(separator: "\n")
        #expect(csv.status == 0 && lines.count == 2 && lines[0].hasPrefix("frame,time,track,x1"))
        #expect(lines[1].split(separator: ",", omittingEmptySubsequences: false).count == 18)
    }

    @Test func saveCropsWritesBoxAndAlignedCrops() throws {
        let image = "\(testMedia)/group.png"
        let dir = tempPath("crops-\(UUID().uuidString)")
        let r = try runAffect(["faces", image, "--format", "json", "--save-crops", dir + "/box"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let faces = obj?["faces"] as? [[String: Any]] ?? []
        #expect(faces.count == 4)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/box").sorted()
        #expect(names == (0..<4).map { "group_face\($0).png" })
        // The first crop is the box, truncated: decode it back and check its size.
        if let box = faces.first?["box"] as? [Double], let path = faces.first?["crop"] as? String {
            let png = try Data(contentsOf: URL(fileURLWithPath: path))
            let w = png[16..<20].reduce(0) { $0 << 8 | Int($1) }, h = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
            #expect(w == Int(box[2]) - Int(box[0]) && h == Int(box[3]) - Int(box[1]), "crop \(w)×\(h) for box \(box)")
        }
        let a = try runAffect(["faces", image, "--save-crops", dir + "/aligned", "--align", "--crop-size", "96", "--crop-format", "jpg"])
        #expect(a.status == 0, "\(a.stderr)")
        let aligned = try FileManager.default.contentsOfDirectory(atPath: dir + "/aligned")
        #expect(aligned.count == 4 && aligned.allSatisfy { $0.hasSuffix(".jpg") })
    }

    @Test func saveCropsIntoAnUnusableDirectoryExitsTwo() throws {
        let image = tempPath("crop-gradient.ppm")
        var ppm = Data("P6\n64 48\n255\n".utf8)
        ppm.append(contentsOf: (0..<(64 * 48 * 3)).map { UInt8($0 % 200) })
        try ppm.write(to: URL(fileURLWithPath: image))
        let file = tempPath("not-a-dir")
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        for dir in [file, file + "/sub"] {
            expectBadInput(try runAffect(["faces", image, "--save-crops", dir]), naming: dir, "--save-crops \(dir)")
        }
        let r = try runAffect(["faces", image, "--save-crops", tempPath("ok"), "--crop-format", "gif"])
        #expect(r.status == 2 && r.stderr.contains("--crop-format"))
        let m = try runAffect(["faces", image, "--align"])
        #expect(m.status == 2 && m.stderr.contains("--save-crops"))
    }

    /// A picture over the pixel limit is refused before decoding, naming the file and the option that raises
    /// the limit; raised, the same picture decodes.
    @Test func pixelLimitRefusesLargePictures() throws {
        let image = "\(testMedia)/group.png"     // 768 × 432 = 331 776 pixels
        let r = try runAffect(["faces", image, "--max-pixels", "300000"])
        expectBadInput(r, naming: image, "over the pixel limit")
        #expect(r.stderr.contains("pixel") && r.stderr.contains("--max-pixels"), "\(r.stderr)")
        #expect(try runAffect(["faces", image, "--max-pixels", "400000"]).status == 0)
        let bad = try runAffect(["faces", image, "--max-pixels", "0"])
        #expect(bad.status == 2 && bad.stderr.contains("--max-pixels"))
    }

    @Test func badVideosExitTwo() throws {
        let empty = tempPath("empty.mp4")
        FileManager.default.createFile(atPath: empty, contents: Data())
        let garbage = tempPath("garbage.mkv")
        FileManager.default.createFile(atPath: garbage, contents: Data((0..<65536).map { UInt8(($0 * 131) % 251) }))
        // A file with audio only: no video stream.
        for path in [empty, garbage, "\(testMedia)/speech.wav"] {
            expectBadInput(try runAffect(["faces", path, "--format", "csv"]), naming: path, "faces on a bad video")
        }
    }
}

