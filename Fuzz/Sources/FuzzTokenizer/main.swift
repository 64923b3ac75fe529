import Foundation
import AffectModels
import FuzzSupport

/// Tokenizer files (`tokenizer.json`; the first byte picks `vocab.txt` or `vocab.json` + `merges.txt`
/// instead) and tokenizing text with whatever was accepted.
runFuzzer { bytes, count in
    guard let bytes else { return 0 }
    let start = UnsafeRawPointer(bytes)
    guard count > 1 else { return 0 }
    let data = Data(bytes: start + 1, count: count - 1)
    let tokenizer: Tokenizer?
    switch start.load(as: UInt8.self) % 3 {
    case 0: tokenizer = try? Tokenizer(json: data, source: "fuzz")
    case 1: tokenizer = String(data: data, encoding: .utf8).flatMap { try? Tokenizer(vocabTxt: $0) }
    default:
        // vocab.json and merges.txt separated by the first NUL byte.
        guard let cut = data.firstIndex(of: 0),
              let vocab = String(data: data[..<cut], encoding: .utf8),
              let merges = String(data: data[(cut + 1)...], encoding: .utf8) else { return 0 }
        tokenizer = try? Tokenizer(vocabJSON: vocab, merges: merges)
    }
    guard let t = tokenizer else { return 0 }
    let text = String(decoding: data.suffix(256), as: UTF8.self)
    for s in [text, "Hello, world! I'm fine.", "naïve café — 東京 🙂"] { _ = t.encode(s) }
    return 0
}
