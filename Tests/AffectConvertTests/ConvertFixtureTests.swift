import Foundation
import Testing
import AffectKernels
import AffectModels
@testable import AffectConvert
import AffectTestSupport

let convertFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/convert").path

/// A scratch folder removed when the test ends.
final class ScratchFolder {
    let path: String
    init() {
        path = AffectTestSupport.Scratch.path("convert-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Every source of Tests/Fixtures/convert (Tools/make_convert_fixtures.py) converted by Swift equals what
/// Tools/convert.py wrote beside it: tensor names, dtypes, shapes and bytes, and every metadata key
/// (JSON-equal; `affect.source` equal except for the folder path, which both spell as the source's name).
@Suite struct ConvertFixtureTests {
    static let sources = ["wav2vec2_ctc", "wav2vec2_base", "wav2vec2_bin", "hubert_ctc", "hubert_sharded",
                          "roberta_cls", "roberta_bpe", "roberta_bin", "bert_cls", "bert_sentence",
                          "efficientnet.onnx", "efficientnet.pt", "efficientnet.state_dict.pt",
                          "mobilefacenet.pt", "mobilefacenet.state_dict.pt", "mobilevit.pt", "mobilevit.state_dict.pt",
                          "efficientnet_b2.pt", "efficientnet_b2.state_dict.pt", "efficientnet_b2.onnx",
                          "mobilefacenet.onnx", "mobilevit.onnx"]

    @Test(arguments: sources)
    func matchesPython(_ name: String) throws {
        let source = (convertFixtures as NSString).appendingPathComponent(name)
        let expected = (convertFixtures as NSString).appendingPathComponent(name.replacingOccurrences(of: ".", with: "_") + ".safetensors")
        let scratch = ScratchFolder()
        let out = scratch.file("out.safetensors")
        try Converter.convert(source, to: out)
        try expectSameWeights(out, expected)
    }

    func expectSameWeights(_ got: String, _ want: String) throws {
        let a = try SafeTensorsFile(path: got), b = try SafeTensorsFile(path: want)
        #expect(a.names.sorted() == b.names.sorted())
        for t in b.tensors {
            guard let u = a.info(t.name) else { continue }
            #expect(u.dtype == t.dtype, "\(t.name) dtype")
            #expect(u.shape == t.shape, "\(t.name) shape")
            let x = Data(bytes: a.rawPointer(u), count: u.range.count), y = Data(bytes: b.rawPointer(t), count: t.range.count)
            #expect(x == y, "\(t.name) values")
        }
        #expect(a.metadata.keys.sorted() == b.metadata.keys.sorted())
        for (k, v) in b.metadata {
            guard let w = a.metadata[k] else { continue }
            if k == "affect.source" || k == "affect.format" || k == "affect.arch" {
                #expect(w == v, "\(k)")
            } else {
                #expect(try JSON.parse(Data(w.utf8), origin: k) == JSON.parse(Data(v.utf8), origin: k), "\(k): \(w.prefix(300)) vs \(v.prefix(300))")
            }
        }
    }

    /// EmotiEffLib's other backbones converted by Swift run as the framework did (Tools/make_convert_fixtures.py
    /// wrote `NAME.ref.safetensors` from the PyTorch module): the conversion keeps what the model computes, also
    /// from the ONNX exports, whose BatchNorms the exporter folded and whose names come from the graph's structure.
    @Test(arguments: ["mobilefacenet.pt", "mobilefacenet.state_dict.pt", "mobilefacenet.onnx", "mobilevit.pt",
                      "mobilevit.state_dict.pt", "mobilevit.onnx", "efficientnet_b2.pt", "efficientnet_b2.state_dict.pt",
                      "efficientnet_b2.onnx"])
    func convertedRunsLikeTheFramework(_ name: String) throws {
        let base = String(name.prefix(while: { $0 != "." }))
        let scratch = ScratchFolder()
        let out = scratch.file("out.safetensors")
        try Converter.convert((convertFixtures as NSString).appendingPathComponent(name), to: out)
        let ref = try ReferenceFile(path: (convertFixtures as NSString).appendingPathComponent("\(base).ref.safetensors"))
        let (compared, missing) = try Verification.verify(try ModelLoader.load(out), ref)
        #expect(missing.isEmpty)
        #expect(compared.count == 2)
        for c in compared { #expect(c.passes(tolerance: 1e-4), "\(name) \(c.name): relative error \(c.relativeError)") }
    }

    @Test func detectsEachFamily() {
        let f = { (n: String) in Converter.detect((convertFixtures as NSString).appendingPathComponent(n)) }
        #expect(f("wav2vec2_ctc") == "wav2vec2")
        #expect(f("hubert_sharded") == "hubert")
        #expect(f("roberta_bpe") == "roberta")
        #expect(f("bert_sentence") == "bert")
        #expect(f("efficientnet.onnx") == "efficientnet")
        #expect(f("efficientnet.pt") == "efficientnet")
        #expect(f("efficientnet_b2.onnx") == "efficientnet")
        #expect(f("mobilefacenet.pt") == "mobilefacenet")
        #expect(f("mobilevit.state_dict.pt") == "mobilevit")
        #expect(f("mobilefacenet.onnx") == "mobilefacenet")
        #expect(f("mobilevit.onnx") == "mobilevit")
        #expect(f("wav2vec2_ctc/config.json") == nil)
    }

    @Test func labelsOptionOverrides() throws {
        let m = try Converter.convert((convertFixtures as NSString).appendingPathComponent("efficientnet.onnx"),
                                      options: ConvertOptions(labels: ["a", "b"]))
        #expect(m.labels == ["a", "b"])
    }

    @Test func sha256KnownAnswers() {
        var s = SHA256()
        #expect(s.hexDigest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var t = SHA256()
        t.update(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
        #expect(t.hexDigest() == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var u = SHA256()
        for _ in 0..<1000 { u.update(Data(repeating: 0x61, count: 1000)) }
        #expect(u.hexDigest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
