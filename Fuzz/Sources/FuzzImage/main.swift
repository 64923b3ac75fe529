import AffectKernels
import AffectMedia
import AffectModels
import FuzzSupport

/// Image files through the decoder (the first byte picks the extension, as users' files have one), then the
/// face detector on whatever decoded small enough: odd sizes (1 × N, N × 1, a few pixels) are what can break the
/// detector's pyramid, and a megapixel pyramid under AddressSanitizer ran the target at 24 exec/s.
private let mtcnn = try! MTCNN(weights: WeightFile(path: "\(FuzzFile.repoRoot)/Weights/mtcnn.safetensors"))

runFuzzer { bytes, count in
    guard let bytes else { return 0 }
    let start = UnsafeRawPointer(bytes)
    guard count > 1 else { return 0 }
    let ext = ["jpg", "png", "bmp", "ppm"][Int(start.load(as: UInt8.self) % 4)]
    let path = FuzzFile.write(start + 1, count - 1, ext: ext)
    guard let image = try? ImageDecoder.decode(path: path) else { return 0 }
    if image.width * image.height <= 1 << 16 { _ = mtcnn.detect(image) }
    return 0
}
