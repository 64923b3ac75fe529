import Foundation
import AffectKernels

/// The audio and text modalities of one video on its frame times: what heads reading `audio` or `text`
/// receive, computed once by ``ModalityExtractor`` for both `affect analyze` and `affect extract`, so a head
/// trained on extracted features sees at training time exactly what it sees at analysis time.
public struct ModalityFeatures: Sendable {
    /// The transcript with times (a given transcript placed on the video, or the speech recogniser's), if any.
    public var transcript: TimedTranscript?
    /// Audio embeddings interpolated onto the frame times, `[frames, audio width]`.
    public var audio: FeatureMatrix?
    /// Transcript segment embeddings interpolated onto the frame times, `[frames, text width]`.
    public var text: FeatureMatrix?
    /// One text embedding per transcript segment, in segment order (the AH video gate reads their mean).
    public var textSegments: FeatureMatrix?

    /// The aligned features of `modality` (nil for `face`, whose rows come from the face tracks).
    public subscript(modality: Modality) -> FeatureMatrix? {
        switch modality {
        case .face: return nil
        case .audio: return audio
        case .text: return text
        }
    }
}

/// Runs the non-face modalities of one video: the transcript (given, or recognised from the sound track),
/// the audio embedder over the sound track and the text embedder over the transcript segments, and aligns
/// both onto the video's frame times (``Alignment/audio(_:rate:to:outside:)``, ``TimedTranscript/align(_:to:)``).
public struct ModalityExtractor: Sendable {
    public var audio: (any AudioEmbedder)?
    public var text: (any TextEmbedder)?
    /// A transcript of the video (plain text is spread over its duration); takes precedence over `speech`.
    public var transcript: TimedTranscript?
    public var speech: (any SpeechRecognizer)?

    public init(audio: (any AudioEmbedder)? = nil, text: (any TextEmbedder)? = nil,
                transcript: TimedTranscript? = nil, speech: (any SpeechRecognizer)? = nil) {
        self.audio = audio; self.text = text; self.transcript = transcript; self.speech = speech
    }

    /// The modalities in `needed` (those whose models are set) for the media file `mediaPath` whose
    /// decoded frames are at `times` and which lasts `duration` seconds. The transcript is resolved whenever
    /// one is given or a recogniser is set (the report shows it), embedded only when `text` is needed.
    public func features(mediaPath: String, times: [Double], duration: Double, needed: Set<Modality>) throws -> ModalityFeatures {
        var out = ModalityFeatures()
        if let t = transcript {
            let timed = try t.timed(duration: duration)
            try timed.validate(duration: duration)
            out.transcript = timed
        } else if let s = speech {
            out.transcript = try s.transcribe(audioOf: mediaPath)
        }
        if needed.contains(.audio), let a = audio {
            let feats = try a.embed(audioOf: mediaPath)
            guard feats.rows > 0 else { throw AffectError.badInput("\(mediaPath): the audio model produced no frames (is the sound track empty?).") }
            out.audio = try Alignment.audio(feats, rate: a.frameRate, to: times)
        }
        if needed.contains(.text), let te = text, let tr = out.transcript {
            let emb = try te.embed(tr.segments.map(\.text))
            out.textSegments = emb
            out.text = try tr.align(emb, to: times)
        }
        return out
    }
}
