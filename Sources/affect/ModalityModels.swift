import Foundation
import AffectKernels
import AffectModels
import AffectPipeline

/// The audio and text models of `analyze` and `extract`, loaded and checked the same way for both (so the
/// two commands accept the same options and give heads the same features).
struct ModalityModels {
    var audio: SpeechEmbedder?
    var text: SentenceEmbedder?
    var speech: (any SpeechRecognizer)?

    /// Loads what the options name; `hasTranscript` says whether transcripts are given (a file or a folder),
    /// `transcriptOption` names that option in messages.
    static func load(audioModel: String?, audioLayer: Int?, textModel: String?, textPooling: String, asr: String?,
                     hasTranscript: Bool, transcriptOption: String, precision: Precision = .float32) throws -> ModalityModels {
        if hasTranscript && asr != nil { throw AffectError.badUsage("give either \(transcriptOption) or --asr, not both.") }
        if let l = audioLayer { try checkRange(l, 0...1000, "--audio-layer") }
        guard let pooling = TextTransformer.Pooling(rawValue: textPooling), pooling != .token else {
            throw AffectError.badUsage("--text-pooling must be sentence, mean or cls, got `\(textPooling)`.")
        }
        var out = ModalityModels()
        if let a = asr { out.speech = try speechRecognizer(weights: resolveWeights(a), precision: precision) }
        if let m = textModel {
            guard hasTranscript || asr != nil else { throw AffectError.badUsage("--text-model needs a \(transcriptOption) or --asr.") }
            out.text = try SentenceEmbedder(weights: resolveWeights(m), pooling: pooling, precision: precision)
        }
        if let m = audioModel {
            var embedder = try SpeechEmbedder(weights: resolveWeights(m), precision: precision)
            let layers = embedder.speech.model.config.layers
            if let l = audioLayer, l > layers {
                throw AffectError.badUsage("--audio-layer must be between 0 and \(layers) for \(m), got \(l).")
            }
            embedder.layer = audioLayer
            out.audio = embedder
        } else if audioLayer != nil {
            throw AffectError.badUsage("--audio-layer applies to --audio-model.")
        }
        return out
    }
}
