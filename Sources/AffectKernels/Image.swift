/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`[height][width][3]`), as decoders
/// produce frames and as EmotiEffLib receives face crops (NumPy `uint8` arrays in RGB order).
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)×\(height)")
        self.width = width; self.height = height; self.pixels = pixels
    }

    /// The sub-image `[y0, y1) × [x0, x1)`, clamped to the image (EmotiEffLib's `frame[y1:y2, x1:x2]`).
    public func cropped(x0: Int, y0: Int, x1: Int, y1: Int) -> RGBImage {
        let xa = min(max(x0, 0), width), xb = min(max(x1, xa), width)
        let ya = min(max(y0, 0), height), yb = min(max(y1, ya), height)
        let w = xb - xa, h = yb - ya
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            let src = ((ya + y) * width + xa) * 3
            out[(y * w * 3)..<((y + 1) * w * 3)] = pixels[src..<(src + w * 3)]
        }
        return RGBImage(width: w, height: h, pixels: out)
    }

    /// Float `[H, W, 3]` tensor with values 0…255.
    public func tensor() -> Tensor {
        let t = Tensor(uninitialized: [height, width, 3])
        pixels.withUnsafeBufferPointer { p in for i in 0..<p.count { t.data[i] = Float(p[i]) } }
        return t
    }
}
