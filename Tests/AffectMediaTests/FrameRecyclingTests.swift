import Foundation
import Testing
import AffectKernels
@testable import AffectMedia
import AffectTestSupport

/// A clip whose frames all differ (ffmpeg's moving test pattern), stored losslessly.
private func movingClip() throws -> String {
    let dir = Scratch.directory("recycle")
    let path = dir.appendingPathComponent("\(UUID().uuidString).mkv").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=10",
                   "-frames:v", "8", "-c:v", "ffv1", path]
    try p.run()
    p.waitUntilExit()
    try #require(p.terminationStatus == 0, "ffmpeg could not make the test clip")
    return path
}

/// Frames converted into recycled buffers are the frames a fresh decoder gives, and a recycled buffer that
/// is still held elsewhere is never written under its holder.
@Suite struct FrameRecyclingTests {
    @Test func recycledBuffersGiveTheSameFrames() throws {
        let path = try movingClip()
        var plain: [RGBImage] = []
        let a = try VideoDecoder(path: path)
        while let f = try a.nextFrame() { plain.append(f.image) }
        try #require(plain.count == 8)
        #expect(plain[0] != plain[1])

        let b = try VideoDecoder(path: path)
        var kept: RGBImage? = nil
        var n = 0
        while let f = try b.nextFrame() {
            #expect(f.image == plain[n], "frame \(n) differs when decoded into a recycled buffer")
            if n == 2 {
                kept = f.image           // still held here while offered for reuse
                b.recycle(f.image)
            } else {
                b.recycle(f.image)
            }
            n += 1
        }
        #expect(n == 8)
        // Buffers were in fact offered and taken: every frame after the first came from one.
        #expect(b.recycledFrames == 7)
        #expect(kept == plain[2], "a buffer still in use was overwritten")
    }
}
