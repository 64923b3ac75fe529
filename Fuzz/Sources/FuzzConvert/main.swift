import Foundation
import AffectConvert
import FuzzSupport

/// Checkpoints `affect convert` reads: the first byte picks the format, the rest is the file.
/// 0 an EmotiEffLib ONNX file, 1 a PyTorch zip checkpoint (`torch.save`), 2 a legacy (pre-1.6) pickle checkpoint, 3 a Hugging Face
/// `config.json` and 4 its `model.safetensors` (beside the other's committed file), 5 a `vocab.json` + `merges.txt`
/// pair cut at the first NUL (a RoBERTa folder with a BPE tokenizer), 6 a JSON document alone, 7 a Keras `.h5` (HDF5
/// through libhdf5: read whole, then converted as a mini-Xception and as an engagement head). Whatever converts
/// is serialised as `affect convert` writes it.
let fixtures = FuzzFile.repoRoot + "/Tests/Fixtures/convert"

/// A copy of a committed Hugging Face folder in /dev/shm whose files the inputs overwrite one at a time.
func folder(_ name: String) -> String {
    let dir = "/dev/shm/affect-fuzz-\(getpid())-\(name)"
    if !FileManager.default.fileExists(atPath: dir) {
        try? FileManager.default.copyItem(atPath: "\(fixtures)/\(name)", toPath: dir)
    }
    return dir
}
let wav2vec2 = folder("wav2vec2_base"), roberta = folder("roberta_bpe")
let originals: [String: Data] = [
    "w/config.json": (try? Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/wav2vec2_base/config.json"))) ?? Data(),
    "w/model.safetensors": (try? Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/wav2vec2_base/model.safetensors"))) ?? Data(),
    "r/vocab.json": (try? Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/roberta_bpe/vocab.json"))) ?? Data(),
    "r/merges.txt": (try? Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/roberta_bpe/merges.txt"))) ?? Data(),
]

/// Overwrites `file` in `dir` with `data` (the other files of the folder stay as committed).
func put(_ data: Data, _ dir: String, _ file: String) -> Bool {
    (try? data.write(to: URL(fileURLWithPath: "\(dir)/\(file)"))) != nil
}

func convert(_ source: String, arch: String? = nil) {
    guard let model = try? Converter.convert(source, options: ConvertOptions(arch: arch)) else { return }
    _ = try? model.write(to: "/dev/shm/affect-fuzz-\(getpid())-out.safetensors")
}

runFuzzer { bytes, count in
    guard let bytes, count > 1 else { return 0 }
    let start = UnsafeRawPointer(bytes)
    let data = Data(bytes: start + 1, count: count - 1)
    switch start.load(as: UInt8.self) % 8 {
    case 0: convert(FuzzFile.write(start + 1, count - 1, ext: "onnx"))
    case 1: convert(FuzzFile.write(start + 1, count - 1, ext: "pt"))
    case 2: convert(FuzzFile.write(start + 1, count - 1, ext: "pth"))
    case 3:
        guard put(data, wav2vec2, "config.json"), put(originals["w/model.safetensors"]!, wav2vec2, "model.safetensors") else { return 0 }
        convert(wav2vec2)
    case 4:
        guard put(originals["w/config.json"]!, wav2vec2, "config.json"), put(data, wav2vec2, "model.safetensors") else { return 0 }
        convert(wav2vec2)
    case 5:
        guard let cut = data.firstIndex(of: 0),
              put(data[..<cut], roberta, "vocab.json"), put(data[(cut + 1)...], roberta, "merges.txt") else { return 0 }
        convert(roberta)
    case 7:
        let path = FuzzFile.write(start + 1, count - 1, ext: "h5")
        // libhdf5 runs in a child with a 10 s limit per read: a file it loops on would cost three limits if every
        // conversion read it again (past libFuzzer's 20 s timeout), and a file that fails to read fails them all.
        guard (try? HDF5Reader.read(path)) != nil else { return 0 }
        convert(path, arch: "mini_xception")
        convert(path, arch: "engagement")
    default:
        _ = try? JSON.parse(data, origin: "fuzz")
    }
    return 0
}
