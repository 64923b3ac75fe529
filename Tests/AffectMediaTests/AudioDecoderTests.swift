import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectTestSupport

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
/// The repository's own test media (Tools/make_test_media.sh: espeak-ng speech, clips made with ffmpeg).
private let media = repoRoot.appendingPathComponent("Tests/Fixtures/media").path

private func temp(_ name: String) -> String {
    let dir = Scratch.directory("audio")
    return dir.appendingPathComponent(name).path
}

/// What the `ffmpeg` command (the same FFmpeg libraries, installed by scripts/install-deps.sh) makes of a file
/// with `-vn -ac 1 -ar 16000 -f f32le`: the samples the speech models must hear.
func ffmpegSamples(_ path: String) throws -> [Float] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw AffectError.badInput("ffmpeg failed on \(path)") }
    return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

@Suite struct AudioDecoderTests {
    /// 16 kHz mono PCM WAV, 48 kHz stereo AAC in MP4 (video stream skipped), 22.05 kHz mono AAC: the same samples
    /// as ffmpeg's `-ac 1 -ar 16000` (swresample set up as ffmpeg does gives equality).
    @Test(arguments: ["speech.wav", "crowd.mp4", "talking.mp4"])
    func matchesFFmpeg(_ name: String) throws {
        let path = "\(media)/\(name)"
        let ref = try ffmpegSamples(path)
        #expect(ref.count > 16000 * 3, "\(name): ffmpeg decoded \(ref.count) samples")
        let d = try AudioDecoder(path: path)
        var samples: [Float] = []
        // Small chunks exercise the streaming path.
        while true { let c = try d.read(maxSamples: 7919); if c.isEmpty { break }; samples += c }
        #expect(samples.count == ref.count)
        #expect(d.samplesRead == ref.count)
        let worst = zip(samples, ref).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-6, "\(name): max sample difference \(worst)")
    }

    @Test func streamInformation() throws {
        let d = try AudioDecoder(path: "\(media)/crowd.mp4")
        #expect(d.sourceSampleRate == 48000 && d.sourceChannels == 2 && d.codecName == "aac")
        #expect(abs((d.duration ?? 0) - 4.0) < 0.1)
    }

    /// libsndfile writes; FFmpeg and libsndfile read back the same samples; resampling 44.1 kHz stereo keeps a
    /// tone's frequency and FFmpeg's down-mix level ((L + R)·√½).
    @Test func soundFileRoundTripAndResampling() throws {
        let n = 44100
        let tone = (0..<n).map { Float(0.25 * sin(2 * Double.pi * 440 * Double($0) / 44100)) }
        let wav = temp("tone.wav"), flac = temp("tone.flac")
        try SoundFile.write(tone, sampleRate: 44100, to: wav, format: .wavFloat)
        try SoundFile.write(tone, sampleRate: 44100, to: flac, format: .flac16)
        let back = try SoundFile.read(wav)
        #expect(back.sampleRate == 44100 && back.channels == 1 && back.samples == tone)
        let viaFFmpeg = try AudioDecoder.decodeAll(path: flac, sampleRate: 44100)
        #expect(viaFFmpeg.count == n)
        #expect(zip(viaFFmpeg, tone).map { abs($0 - $1) }.max()! < 1.0 / 32768 + 1e-6)

        // Stereo: L = tone, R = tone → mono (L + R)·√½ = √2·tone, at 16 kHz.
        var interleaved = [Float](repeating: 0, count: 2 * n)
        for i in 0..<n { interleaved[2 * i] = tone[i]; interleaved[2 * i + 1] = tone[i] }
        let stereo = temp("stereo.wav")
        try writeStereoWav(interleaved, sampleRate: 44100, to: stereo)
        let mono = try AudioDecoder.decodeAll(path: stereo)
        #expect(abs(mono.count - 16000) <= 1)
        let peak = mono[2000..<14000].map(abs).max()!
        #expect(abs(Double(peak) - 0.25 * 2.0.squareRoot()) < 0.01, "peak \(peak)")
        // 440 Hz: zero crossings per second ≈ 880.
        let crossings = zip(mono[1000..<15000], mono[1001..<15001]).filter { ($0 < 0) != ($1 < 0) }.count
        #expect(abs(Double(crossings) / (14000.0 / 16000) - 880) < 5)
    }

    /// Float WAV with two channels, written by hand (SoundFile writes mono).
    func writeStereoWav(_ x: [Float], sampleRate: Int, to path: String) throws {
        var d = Data()
        func u32(_ v: UInt32) { var le = v.littleEndian; d.append(Data(bytes: &le, count: 4)) }
        func u16(_ v: UInt16) { var le = v.littleEndian; d.append(Data(bytes: &le, count: 2)) }
        d.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(36 + x.count * 4)); d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(3); u16(2); u32(UInt32(sampleRate)); u32(UInt32(sampleRate * 8)); u16(8); u16(32)
        d.append(contentsOf: Array("data".utf8)); u32(UInt32(x.count * 4))
        x.withUnsafeBufferPointer { d.append(Data(buffer: $0)) }
        try d.write(to: URL(fileURLWithPath: path))
    }
}

/// Every bad audio input gets one clear error naming the file, or a documented empty result.
@Suite struct BadAudioTests {
    func expectBadInput(_ path: String, _ fragment: String) {
        do {
            _ = try AudioDecoder.decodeAll(path: path)
            Issue.record("\(path): decoded without an error (expected “\(fragment)”)")
        } catch let e as AffectError {
            #expect(e.description.contains(path) && e.description.contains(fragment), "\(e.description)")
        } catch {
            Issue.record("\(path): unexpected error \(error)")
        }
    }

    @Test func missingEmptyAndCorruptFiles() throws {
        expectBadInput(temp("does-not-exist.wav"), "no such file")
        let empty = temp("empty.wav")
        FileManager.default.createFile(atPath: empty, contents: Data())
        expectBadInput(empty, "empty")
        // Random bytes are no container FFmpeg knows.
        var g = SystemRandomNumberGenerator()
        let junk = temp("junk.mp3")
        FileManager.default.createFile(atPath: junk, contents: Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &g) }))
        // Random bytes either fail FFmpeg's probe or probe as a container with no audio stream.
        do {
            _ = try AudioDecoder.decodeAll(path: junk)
            Issue.record("\(junk): decoded without an error")
        } catch let e as AffectError {
            #expect(e.description.contains(junk) && (e.description.contains("FFmpeg") || e.description.contains("no audio stream")), "\(e.description)")
        }
        expectBadInput(FileManager.default.temporaryDirectory.path, "regular file")
    }

    /// A picture is a video stream without audio.
    @Test func fileWithoutAudioStream() throws {
        let ppm = temp("gray.ppm")
        var d = Data("P6\n16 16\n255\n".utf8)
        d.append(Data(repeating: 128, count: 16 * 16 * 3))
        FileManager.default.createFile(atPath: ppm, contents: d)
        expectBadInput(ppm, "no audio stream")
        expectBadInput("\(media)/group.png", "no audio stream")
    }

    /// A WAV cut short (header promises more data than the file holds) yields the samples before the cut;
    /// an MP4 cut before its index cannot be opened.
    @Test func truncatedFiles() throws {
        let full = (0..<16000).map { Float(0.5 * sin(Double($0) / 10)) }
        let wav = temp("full.wav")
        try SoundFile.write(full, sampleRate: 16000, to: wav, format: .wav16)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: wav))
        let cut = temp("cut.wav")
        try bytes.prefix(44 + 2 * 6000 + 1).write(to: URL(fileURLWithPath: cut))
        let partial = try AudioDecoder.decodeAll(path: cut)
        #expect(partial.count == 6000)
        #expect(zip(partial, full).map { abs($0 - $1) }.max()! < 1.0 / 16384)
        let headerOnly = temp("header-only.wav")
        try bytes.prefix(44).write(to: URL(fileURLWithPath: headerOnly))
        #expect(try AudioDecoder.decodeAll(path: headerOnly).isEmpty)

        let whole = try AudioDecoder.decodeAll(path: "\(media)/crowd.mp4").count
        let mp4 = try Data(contentsOf: URL(fileURLWithPath: "\(media)/crowd.mp4"))
        let cutMP4 = temp("cut.mp4")
        try mp4.prefix(mp4.count / 3).write(to: URL(fileURLWithPath: cutMP4))
        // Either FFmpeg cannot open it (index at the end) or it yields less audio than the whole file: never a crash.
        do {
            let s = try AudioDecoder.decodeAll(path: cutMP4)
            #expect(s.count < whole)
        } catch let e as AffectError {
            #expect(e.description.contains(cutMP4))
        }
    }

    /// Zero-length audio is a documented empty result; silence decodes to zeros.
    @Test func zeroLengthAndSilence() throws {
        let zero = temp("zero.wav")
        try SoundFile.write([], sampleRate: 16000, to: zero)
        #expect(try AudioDecoder.decodeAll(path: zero).isEmpty)
        let silent = temp("silent.flac")
        try SoundFile.write([Float](repeating: 0, count: 48000), sampleRate: 48000, to: silent, format: .flac16)
        let s = try AudioDecoder.decodeAll(path: silent)
        #expect(abs(s.count - 16000) <= 1 && s.allSatisfy { $0 == 0 })
    }
}
