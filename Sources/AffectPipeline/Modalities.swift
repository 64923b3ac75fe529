import Foundation
import AffectKernels
import AffectModels

/// Sentence (or segment) embeddings of text, e.g. all-MiniLM-L6-v2 through sentence-transformers pooling.
public protocol TextEmbedder: Sendable {
    /// The weight file (named in messages).
    var path: String { get }
    /// Width of one embedding.
    var width: Int { get }
    /// One row per text.
    func embed(_ texts: [String]) throws -> FeatureMatrix
}

/// Frame-level embeddings of a video's sound track, e.g. wav2vec 2.0 / HuBERT `last_hidden_state` at 50 Hz.
public protocol AudioEmbedder: Sendable {
    var path: String { get }
    var width: Int { get }
    /// Embedding frames per second (50 for wav2vec 2.0 / HuBERT); frame `i` is centred at
    /// ``Alignment/audioFrameTimes(count:rate:receptiveField:)``.
    var frameRate: Double { get }
    /// One row per audio frame of the audio stream of `mediaPath`.
    func embed(audioOf mediaPath: String) throws -> FeatureMatrix
}

/// Speech to text with times (e.g. a CTC head with greedy decoding), for `--asr`.
public protocol SpeechRecognizer: Sendable {
    var path: String { get }
    /// Timed segments of what is said in the audio stream of `mediaPath` (named `mediaPath` in errors).
    func transcribe(audioOf mediaPath: String) throws -> TimedTranscript
}
