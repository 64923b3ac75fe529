import Foundation
import Testing
import AffectKernels
@testable import AffectConvert

/// Damaged sources (truncated or garbled ONNX protobuf, zip archive, pickle, JSON) end in an
/// `AffectError.badInput` that names the file: never a trap, a hang or an unbounded allocation.
@Suite struct MalformedInputTests {
    /// A deterministic generator, so a failure reproduces.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E3779B97F4A7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            return z ^ (z >> 31)
        }
    }

    func fixture(_ name: String) -> String { (convertFixtures as NSString).appendingPathComponent(name) }

    /// Runs `body`; it may succeed (a flipped weight byte is still a valid file) or fail with badInput naming `path`.
    func expectCleanOutcome(_ path: String, mustFail: Bool, _ body: () throws -> Void) {
        do {
            try body()
            #expect(!mustFail, "\(path) was accepted")
        } catch let e as AffectError {
            guard case .badInput(let m) = e else { Issue.record("\(path): \(e) is not badInput"); return }
            #expect(m.contains(path), "message does not name the file: \(m)")
        } catch {
            Issue.record("\(path): unexpected error \(error)")
        }
    }

    func damaged(_ name: String, ext: String, truncations: Int, garbles: Int, mustFailBelow: Double,
                 convert: (String) throws -> Void) throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: fixture(name)))
        let scratch = ScratchFolder()
        var rng = SplitMix(state: 42)
        for k in 0..<truncations {
            let n = original.count * k / truncations
            let p = scratch.file("truncated\(k).\(ext)")
            try original.prefix(n).write(to: URL(fileURLWithPath: p))
            expectCleanOutcome(p, mustFail: Double(n) < mustFailBelow * Double(original.count)) { try convert(p) }
        }
        for k in 0..<garbles {
            var d = original
            for _ in 0..<(1 + k % 8) {
                let i = Int.random(in: 0..<d.count, using: &rng)
                d[i] = k % 3 == 0 ? UInt8.random(in: 0...255, using: &rng) : d[i] ^ (1 << UInt8(k % 8))
            }
            let p = scratch.file("garbled\(k).\(ext)")
            try d.write(to: URL(fileURLWithPath: p))
            expectCleanOutcome(p, mustFail: false) { try convert(p) }
        }
    }

    @Test func damagedONNX() throws {
        try damaged("efficientnet.onnx", ext: "onnx", truncations: 40, garbles: 80, mustFailBelow: 0.95) {
            _ = try Converter.convert($0, options: ConvertOptions(arch: "efficientnet"))
        }
    }

    /// MobileFaceNet's and MobileViT's exports walk more of the graph (PRelu slopes, residual Adds, LayerNorm
    /// patterns, MatMul biases): damaged, they too end in one sentence naming the file.
    @Test(arguments: ["mobilefacenet.onnx", "mobilevit.onnx"])
    func damagedMobileONNX(_ name: String) throws {
        try damaged(name, ext: "onnx", truncations: 30, garbles: 80, mustFailBelow: 0.95) {
            _ = try Converter.convert($0)
        }
    }

    @Test func damagedZipCheckpoint() throws {
        try damaged("efficientnet.pt", ext: "pt", truncations: 24, garbles: 40, mustFailBelow: 1) {
            _ = try Converter.convert($0, options: ConvertOptions(arch: "efficientnet"))
        }
    }

    /// A central directory entry whose zip64 local header offset is 2⁶³ (or merely past the end): ZIPFoundation
    /// would trap converting it to `off_t`; the directory is checked first and the file refused.
    @Test func zip64OffsetsBeyondTheFileAreRefused() throws {
        func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        let scratch = ScratchFolder()
        for (k, offset) in [UInt64(1) << 63, UInt64.max, 1 << 40].enumerated() {
            let name = Array("archive/data.pkl".utf8)
            let extra = le(0x0001, 2) + le(8, 2) + le(offset, 8)
            var cd = le(0x0201_4B50, 4) + le(45, 2) + le(45, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4)
            cd += le(1, 4) + le(1, 4) + le(UInt64(name.count), 2) + le(UInt64(extra.count), 2) + le(0, 2)
            cd += le(0, 2) + le(0, 2) + le(0, 4) + le(0xFFFF_FFFF, 4) + name + extra
            let local = le(0x0403_4B50, 4) + [UInt8](repeating: 0, count: 26)
            let eocd = le(0x0605_4B50, 4) + le(0, 4) + le(1, 2) + le(1, 2) + le(UInt64(cd.count), 4) + le(UInt64(local.count), 4) + le(0, 2)
            let p = scratch.file("zip64-\(k).pt")
            try Data(local + cd + eocd).write(to: URL(fileURLWithPath: p))
            expectCleanOutcome(p, mustFail: true) { _ = try TorchCheckpoint.stateDict(p) }
        }
    }

    @Test func damagedLegacyPickle() throws {
        try damaged("pnet.pt", ext: "pt", truncations: 40, garbles: 120, mustFailBelow: 1) {
            _ = try TorchCheckpoint.stateDict($0)
        }
    }

    /// The unpickler alone on garbled pickle programs (opcodes, lengths and memo indices hit directly).
    @Test func garbledPickleProgram() throws {
        let path = fixture("pnet.pt")
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var rng = SplitMix(state: 7)
        for k in 0..<400 {
            var b = original
            for _ in 0..<(1 + k % 4) { b[Int.random(in: 0..<min(b.count, 2000), using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            expectCleanOutcome(path, mustFail: false) {
                var u = Unpickler(b, origin: path)
                u.persistent = { _ in .storage(PyStorage(dtype: .f32, data: Data(count: 64))) }
                while u.pos < b.count { _ = try u.load() }
            }
        }
    }

    @Test func legacyCheckpointMatchesPython() throws {
        let sd = try TorchCheckpoint.stateDict(fixture("pnet.pt"))
        let ref = try SafeTensorsFile(path: fixture("pnet_state_dict.safetensors"))
        #expect(sd.names.sorted() == ref.names.sorted())
        for t in ref.tensors {
            guard let s = sd[t.name]?.normalised() else { continue }
            #expect(s.dtype == t.dtype && s.shape == t.shape, "\(t.name)")
            #expect(s.data == Data(bytes: ref.rawPointer(t), count: t.range.count), "\(t.name)")
        }
    }

    /// A whole module saved in the legacy format (classes named by persistent ids, not globals): its tensors
    /// equal the state dict torch gave for it.
    @Test func legacyWholeModuleMatchesTorch() throws {
        let sd = try TorchCheckpoint.stateDict(fixture("legacy_module.pt"))
        let ref = try SafeTensorsFile(path: fixture("legacy_module_state_dict.safetensors"))
        #expect(sd.names.sorted() == ref.names.sorted())
        #expect(ref.names.contains("1.running_var") && ref.names.contains("2.weight"))
        for t in ref.tensors {
            let s = try #require(sd[t.name]?.normalised(), "\(t.name)")
            #expect(s.dtype == t.dtype && s.shape == t.shape, "\(t.name)")
            #expect(s.data == Data(bytes: ref.rawPointer(t), count: t.range.count), "\(t.name)")
        }
    }

    /// A copy of a fixture folder with one file replaced.
    func folder(_ name: String, replacing file: String, with data: Data, in scratch: ScratchFolder) throws -> String {
        let dst = scratch.file(name)
        try FileManager.default.copyItem(atPath: fixture(name), toPath: dst)
        try data.write(to: URL(fileURLWithPath: (dst as NSString).appendingPathComponent(file)))
        return dst
    }

    @Test(arguments: [Data("{\"model_type\": \"wav2vec2\", ".utf8), Data("[1, 2".utf8), Data([0xFF, 0xFE, 0x00]),
                      Data(String(repeating: "[", count: 100_000).utf8), Data("{\"model_type\": \"wav2vec2\"} x".utf8)])
    func damagedConfigJSON(_ bytes: Data) throws {
        let scratch = ScratchFolder()
        let dir = try folder("wav2vec2_ctc", replacing: "config.json", with: bytes, in: scratch)
        let config = (dir as NSString).appendingPathComponent("config.json")
        expectCleanOutcome(config, mustFail: true) { _ = try Converter.convert(dir, options: ConvertOptions(arch: "wav2vec2")) }
    }

    @Test func damagedVocabularies() throws {
        let scratch = ScratchFolder()
        let ctc = try folder("wav2vec2_ctc", replacing: "vocab.json", with: Data("{\"a\": 1e300}".utf8), in: scratch)
        expectCleanOutcome((ctc as NSString).appendingPathComponent("vocab.json"), mustFail: true) {
            _ = try Converter.convert(ctc)
        }
        let bpe = try folder("roberta_bpe", replacing: "vocab.json", with: Data("{\"a\": -3}".utf8), in: scratch)
        expectCleanOutcome((bpe as NSString).appendingPathComponent("vocab.json"), mustFail: true) {
            _ = try Converter.convert(bpe)
        }
    }

    @Test func shardIndexCannotLeaveTheFolder() throws {
        let scratch = ScratchFolder()
        let index = Data("{\"weight_map\": {\"a\": \"../../etc/passwd\"}}".utf8)
        let dir = try folder("hubert_sharded", replacing: "model.safetensors.index.json", with: index, in: scratch)
        expectCleanOutcome((dir as NSString).appendingPathComponent("model.safetensors.index.json"), mustFail: true) {
            _ = try Converter.convert(dir)
        }
    }

    @Test func missingSourceAndUnknownArch() {
        #expect(throws: AffectError.self) { try Converter.convert("/nonexistent/model.pt") }
        #expect(throws: AffectError.self) { try Converter.convert(fixture("efficientnet.pt"), options: ConvertOptions(arch: "resnet")) }
        #expect(throws: AffectError.self) { try Converter.convert(fixture("roberta_cls"), options: ConvertOptions(arch: "mini_xception")) }
    }
}
