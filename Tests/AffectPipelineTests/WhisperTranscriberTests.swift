import Foundation
import Testing
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

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
}
