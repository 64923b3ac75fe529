import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline
import AffectTestSupport

private let whisperFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/whisper").path

/// `affect analyze --asr` takes a Whisper weight file: ``speechRecognizer(weights:)`` picks ``WhisperTranscriber``,
/// whose timed transcript is the long-form transcriber's non-empty segments for the decoded sound track.
@Suite struct WhisperTranscriberTests {
    @Test func whisperWeightsGiveAWhisperRecognizer() throws {
        let weights = "\(whisperFixtures)/whisper_fixture.safetensors", clip = "\(whisperFixtures)/clips/speech-us.wav"
        let recognizer = try speechRecognizer(weights: weights)
        let whisper = try #require(recognizer as? WhisperTranscriber)
        var options = WhisperLongForm.Options()
        options.decoding.language = "en"
        options.temperatures = [0]
        let quick = WhisperTranscriber(path: whisper.path, transcriber: whisper.transcriber, options: options)
        let transcript = try quick.transcribe(audioOf: clip)
        let direct = try whisper.transcriber.transcribe(try AudioDecoder.decodeAll(path: clip, sampleRate: 16000), options: options)
        let expected = direct.segments.filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }
        #expect(transcript.segments.count == expected.count && !expected.isEmpty)
        for (a, b) in zip(transcript.segments, expected) {
            #expect(a.start == b.start && a.text == b.text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// A 1.4 MB FLAC of 2 hours 2 minutes of silence (a decompression bomb: 470 MB of samples) is refused when
    /// the decoder passes the 2-hour mark, naming the file, before any sample is kept whole; the old path
    /// decoded the whole track first.
    @Test func audioPastTwoHoursIsRefusedWhileDecoding() throws {
        let dir = Scratch.directory("whisper-long")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("long-silence.flac").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
                       "-t", "7320", "-c:a", "flac", path]
        try p.run(); p.waitUntilExit()
        try #require(p.terminationStatus == 0)
        let whisper = try WhisperTranscriber(weights: "\(whisperFixtures)/whisper_fixture.safetensors")
        do {
            _ = try whisper.run(audioOf: path)
            Issue.record("2 hours 2 minutes of audio were transcribed")
        } catch AffectError.badInput(let message) {
            #expect(message.hasPrefix(path) && message.contains("2 hours"), "\(message)")
        }
    }
}
