import AffectKernels
import AffectMedia
import AffectModels
import FuzzSupport

/// Image files through the decoder (the first byte picks the extension, as users' files have one), then the
/// face detector on whatever decoded small enough: odd sizes (1 × N, N × 1, a few pixels) are what can break the
/// detector's pyramid. The detector runs up to 128 × 128 pixels: under AddressSanitizer and the fuzzer's
/// coverage hooks its convolutions were 90 % of the time (a megapixel pyramid ran the target at 24 exec/s, up to
/// 256 × 256 at 56 exec/s), and larger pictures add pyramid levels, not new shapes.
private let mtcnn = try! MTCNN(weights: WeightFile(path: "\(FuzzFile.repoRoot)/Weights/mtcnn.safetensors"))

runFuzzer { bytes, count in
    guard let bytes else { return 0 }
    let start = UnsafeRawPointer(bytes)
    guard count > 1 else { return 0 }
    let ext = ["jpg", "png", "bmp", "ppm"][Int(start.load(as: UInt8.self) % 4)]
    let path = FuzzFile.write(start + 1, count - 1, ext: ext)
    guard let image = try? ImageDecoder.decode(path: path) else { return 0 }
    if image.width * image.height <= 1 << 14 { _ = mtcnn.detect(image) }
    return 0
}
