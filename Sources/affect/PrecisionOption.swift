import ArgumentParser
import AffectKernels

extension Precision: ExpressibleByArgument {}

/// `--precision`, for the commands that load transformer encoders or EfficientNet (run, verify, bench, analyze, serve).
struct PrecisionOption: ParsableArguments {
    @Option(help: ArgumentHelp("Precision of the transformer encoders' linear layers (wav2vec2, HuBERT, BERT, RoBERTa, Whisper) and of EfficientNet's expansion and head convolutions: float32 (default) or int8 (weights per output channel, inputs per row or pixel, int32 sums; cosine ≥ 0.999 to float32). Other models ignore it.",
                               valueName: "float32|int8"))
    var precision: Precision = .float32
}
