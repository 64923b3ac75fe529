import Foundation
import AffectKernels

/// Options of `affect convert`, as Tools/convert.py's.
public struct ConvertOptions: Sendable {
    /// The architecture (detected when nil).
    public var arch: String?
    /// Class names replacing the detected ones.
    public var labels: [String]?
    /// EfficientNet padding: `same` (default, as tf_ models) or `symmetric`.
    public var padType: String?
    /// A tokenizer.json to embed (text models), as given.
    public var tokenizer: String?

    public init(arch: String? = nil, labels: [String]? = nil, padType: String? = nil, tokenizer: String? = nil) {
        self.arch = arch
        self.labels = labels
        self.padType = padType
        self.tokenizer = tokenizer
    }
}

/// Converts checkpoints into Affect weight files (the format of AffectModels' FileFormats article) in Swift, producing what Tools/convert.py does:
/// the same tensor names, values and `affect.*` metadata.
public enum Converter {
    /// Architectures Tools/convert.py knows, with whether this converter handles them.
    public static let architectures = ["bert", "efficientnet", "engagement", "head", "hubert", "mini_xception", "mobilefacenet",
                                       "mobilevit", "mtcnn", "roberta", "wav2vec2", "whisper"]
    static let unsupported: Set<String> = ["head"]

    /// The architecture of a source, asking each family in Tools/convert.py's order; nil when none recognises it.
    public static func detect(_ source: String) -> String? {
        if let a = VisionConverter.detect(source) ?? KerasConverter.detect(source) ?? WhisperConverter.detect(source) { return a }
        if isDirectory(source), ["pnet", "rnet", "onet"].allSatisfy({ HFFolder.exists(HFFolder.path(source, "\($0).pt")) }) {
            return "mtcnn"
        }
        return AudioConverter.detect(source) ?? TextConverter.detect(source)
    }

    /// Reads and converts `source` (a file or a folder).
    public static func convert(_ source: String, options: ConvertOptions = ConvertOptions()) throws(AffectError) -> ConvertedModel {
        guard FileManager.default.fileExists(atPath: source) else { throw .badInput("\(source): no such file or folder.") }
        let arch: String
        if let a = options.arch {
            guard architectures.contains(a) else {
                throw .badUsage("unknown architecture `\(a)`; one of \(architectures.joined(separator: ", ")).")
            }
            arch = a
        } else {
            // A Keras file that cannot be read says why, not "cannot tell" (only Keras reads .h5 / .hdf5 files, so
            // asking it alone is what `detect` would do; a file libhdf5 loops on is read once, not twice).
            let detected = KerasConverter.isKerasFile(source) ? try KerasConverter.architecture(source) : detect(source)
            guard let a = detected else { throw .badInput("\(source): cannot tell which architecture this is; name the architecture explicitly.") }
            arch = a
        }
        if unsupported.contains(arch) {
            throw .badInput("\(source): `affect convert` does not read \(arch) sources yet; use Tools/convert.py.")
        }
        switch arch {
        case "wav2vec2", "hubert": return try AudioConverter.convert(source, arch: arch)
        case "roberta", "bert": return try TextConverter.convert(source, arch: arch, labels: options.labels, tokenizerFile: options.tokenizer)
        case "mtcnn": return try VisionConverter.convertMTCNN(source)
        case "whisper": return try WhisperConverter.convert(source, tokenizerFile: options.tokenizer)
        case "mini_xception", "engagement": return try KerasConverter.convert(source, arch: arch, options: options)
        default: return try VisionConverter.convert(source, arch: arch, options: options)
        }
    }

    /// Converts `source` and writes `output` atomically; returns the architecture.
    @discardableResult
    public static func convert(_ source: String, to output: String, options: ConvertOptions = ConvertOptions()) throws(AffectError) -> String {
        let model = try convert(source, options: options)
        try model.write(to: output)
        return model.arch
    }
}
