import AffectKernels

/// An RGB colour for drawing on frames.
public struct RGBColor: Sendable, Equatable {
    public var r, g, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }

    /// Distinct colours for track ids (cycled).
    public static let palette: [RGBColor] = [
        RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189),
        RGBColor(255, 127, 14), RGBColor(23, 190, 207), RGBColor(227, 119, 194), RGBColor(188, 189, 34),
    ]
    public static let white = RGBColor(255, 255, 255)
    public static let black = RGBColor(0, 0, 0)
}

/// Boxes, bars and text drawn into an `RGBImage`, clipped to the picture (any coordinates are safe).
extension RGBImage {
    /// Blends `color` over the rectangle `[x0, x1) × [y0, y1)` with opacity `alpha` in [0, 1].
    public mutating func fill(x0: Int, y0: Int, x1: Int, y1: Int, _ color: RGBColor, alpha: Float = 1) {
        let (xa, xb) = (max(x0, 0), min(x1, width)), (ya, yb) = (max(y0, 0), min(y1, height))
        guard xa < xb, ya < yb else { return }
        let a = max(0, min(alpha, 1)), keep = 1 - a
        let (r, g, b) = (Float(color.r) * a, Float(color.g) * a, Float(color.b) * a)
        let w = width
        pixels.withUnsafeMutableBufferPointer { p in
            for y in ya..<yb {
                for x in xa..<xb {
                    let i = (y * w + x) * 3
                    p[i] = UInt8(Float(p[i]) * keep + r + 0.5)
                    p[i + 1] = UInt8(Float(p[i + 1]) * keep + g + 0.5)
                    p[i + 2] = UInt8(Float(p[i + 2]) * keep + b + 0.5)
                }
            }
        }
    }

    /// The outline of a rectangle, `thickness` pixels wide, inside `[x0, x1) × [y0, y1)`.
    public mutating func stroke(x0: Int, y0: Int, x1: Int, y1: Int, _ color: RGBColor, thickness: Int = 2) {
        let t = max(1, thickness)
        fill(x0: x0, y0: y0, x1: x1, y1: y0 + t, color)
        fill(x0: x0, y0: y1 - t, x1: x1, y1: y1, color)
        fill(x0: x0, y0: y0, x1: x0 + t, y1: y1, color)
        fill(x0: x1 - t, y0: y0, x1: x1, y1: y1, color)
    }

    /// Size in pixels of `text` drawn at `scale`.
    public static func textSize(_ text: String, scale: Int = 1) -> (width: Int, height: Int) {
        (text.unicodeScalars.count * BitmapFont.width * max(scale, 1), BitmapFont.height * max(scale, 1))
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel a `scale` × `scale` square; characters
    /// outside printable ASCII are drawn as `?`.
    public mutating func draw(_ text: String, x: Int, y: Int, _ color: RGBColor, scale: Int = 1) {
        let s = max(scale, 1)
        for (k, u) in text.unicodeScalars.enumerated() {
            let code = (32...126).contains(u.value) ? Int(u.value) : 63
            let gx = x + k * BitmapFont.width * s
            if gx >= width { break }
            for row in 0..<BitmapFont.height {
                let bits = BitmapFont.rows[(code - 32) * BitmapFont.height + row]
                guard bits != 0 else { continue }
                for col in 0..<BitmapFont.width where bits & (0x80 >> UInt8(col)) != 0 {
                    fill(x0: gx + col * s, y0: y + row * s, x1: gx + (col + 1) * s, y1: y + (row + 1) * s, color)
                }
            }
        }
    }

    /// A label: `text` on a filled band of `background` whose top-left corner is (x, y).
    public mutating func label(_ text: String, x: Int, y: Int, _ color: RGBColor, background: RGBColor, scale: Int = 1) {
        let (w, h) = Self.textSize(text, scale: scale)
        fill(x0: x, y0: y, x1: x + w + 4 * scale, y1: y + h, background, alpha: 0.85)
        draw(text, x: x + 2 * scale, y: y, color, scale: scale)
    }
}
