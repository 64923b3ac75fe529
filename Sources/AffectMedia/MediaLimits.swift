/// Bounds on what a decoder will allocate for one picture, checked from the file's header before any pixel
/// memory is taken: a 775 KB PNG can declare 16000 × 16000 pixels (768 MB of RGB, gigabytes more downstream).
public enum MediaLimits {
    /// Default largest picture or video frame, in pixels, that ``ImageDecoder`` and ``VideoDecoder`` accept:
    /// 50 megapixels, a little above the largest full-resolution photos of common phones and cameras
    /// (8160 × 6120 = 49.9 MP). Its RGB image takes 150 MB. The decoders' `maxPixels` parameters default to
    /// it; a program (the CLI) may raise it once at start-up, before decoding.
    nonisolated(unsafe) public static var maxPixels = 50_000_000
    /// Appended to the over-the-limit error, e.g. " (raise it with --max-pixels)"; empty by default, since
    /// only the program knows how its user sets the limit.
    nonisolated(unsafe) public static var advice = ""
}
