import AffectPipeline
import FuzzSupport

/// Transcript files: the first byte picks the format by extension (`.srt`, `.vtt`, `.txt`).
runFuzzer { bytes, count in
    guard let bytes else { return 0 }
    let start = UnsafeRawPointer(bytes)
    guard count > 1 else { return 0 }
    let ext = ["srt", "vtt", "txt"][Int(start.load(as: UInt8.self) % 3)]
    let path = FuzzFile.write(start + 1, count - 1, ext: ext)
    _ = try? TimedTranscript(path: path)
    return 0
}
