import AffectKernels

/// Which task class each of a model's classes stands for, e.g. EmotiEffLib's 8 classes → ABAW EXPR.
///
/// Built-in name matching (case-insensitive) knows the spellings of EmotiEffLib (Anger, Happiness, ...),
/// the fer package's mini-Xception (angry, happy, ...) and ABAW (Neutral, ..., Other). Classes a task lacks
/// must be mapped explicitly; the defaults are:
/// - **Contempt → Other**: ABAW's "Other" holds every expression outside the six basic ones and neutral,
///   which is where Aff-Wild2's annotators put contempt;
/// - a task class no model class maps to (ABAW "Other" for a 7-class model) gets probability 0 in
///   ``remap(_:)`` and is never chosen by the confidence filter.
public struct ClassMapping: Equatable, Sendable {
    public let modelLabels: [String]
    public let taskLabels: [String]
    /// For each model class, the index of its task class, or `nil` when it has none.
    public let target: [Int?]

    /// ABAW EXPR class order.
    public static let abawExpression = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
    /// EmotiEffLib's 8-class order.
    public static let emotiEffLib8 = ["Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
    /// EmotiEffLib's 7-class order.
    public static let emotiEffLib7 = ["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
    /// The fer package's mini-Xception order.
    public static let ferMiniXception = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

    /// Spellings that name the same emotion; the key is the canonical (ABAW) name.
    static let synonyms: [String: [String]] = [
        "neutral": ["neutral"], "anger": ["anger", "angry"], "disgust": ["disgust", "disgusted"],
        "fear": ["fear", "fearful", "afraid"], "happiness": ["happiness", "happy", "joy"],
        "sadness": ["sadness", "sad"], "surprise": ["surprise", "surprised"], "other": ["other", "contempt"],
    ]

    /// An explicit mapping: `target[i]` is the task index of model class `i` (or `nil`).
    public init(modelLabels: [String], taskLabels: [String], target: [Int?]) throws {
        guard target.count == modelLabels.count else {
            throw AffectError.badInput("class mapping has \(target.count) entries for \(modelLabels.count) model classes.")
        }
        for (i, t) in target.enumerated() where t != nil && !(0..<taskLabels.count).contains(t!) {
            throw AffectError.badInput("class mapping sends `\(modelLabels[i])` to task index \(t!), out of 0..<\(taskLabels.count).")
        }
        self.modelLabels = modelLabels; self.taskLabels = taskLabels; self.target = target
    }

    /// Maps by name (see the type's documentation for the spellings, including Contempt → Other).
    /// Throws when a model class matches no task class, naming it, unless `allowUnmapped`.
    public init(from modelLabels: [String], to taskLabels: [String] = ClassMapping.abawExpression,
                allowUnmapped: Bool = false) throws {
        func canonical(_ s: String) -> String {
            let l = s.lowercased().trimmingCharacters(in: .whitespaces)
            return Self.synonyms.first { $0.value.contains(l) }?.key ?? l
        }
        let taskCanon = taskLabels.map(canonical)
        var target: [Int?] = []
        for l in modelLabels {
            let t = taskCanon.firstIndex(of: canonical(l))
            if t == nil && !allowUnmapped {
                throw AffectError.badInput("class `\(l)` of the model has no counterpart among the task's classes \(taskLabels).")
            }
            target.append(t)
        }
        try self.init(modelLabels: modelLabels, taskLabels: taskLabels, target: target)
    }

    /// Model probabilities (columns in model order) as task probabilities: each task column is the sum of
    /// the model columns mapped to it, 0 where none is.
    public func remap(_ probs: FeatureMatrix) throws -> FeatureMatrix {
        guard probs.columns == modelLabels.count else {
            throw AffectError.badInput("the model gives \(probs.columns) probabilities per frame, the class mapping expects \(modelLabels.count).")
        }
        var out = FeatureMatrix(rows: probs.rows, columns: taskLabels.count)
        for r in 0..<probs.rows { for (i, t) in target.enumerated() { if let t { out[r, t] += probs[r, i] } } }
        return out
    }
}

/// The authors' confidence filter: where the pre-trained expression model's (smoothed) probability of
/// its best class exceeds `threshold`, that class (mapped to the task) wins; elsewhere the task head's
/// argmax does. A best class without a task counterpart never overrides.
///
/// Equivalent NumPy: `np.where(model.max(1) > t, mapping[model.argmax(1)], task.argmax(1))`.
public struct ConfidenceFilter: Sendable {
    public var threshold: Float
    public var mapping: ClassMapping

    public init(threshold: Float, mapping: ClassMapping) {
        self.threshold = threshold; self.mapping = mapping
    }

    /// Predicted task class per frame. `task`: frames × task classes; `model`: frames × model classes.
    public func apply(task: FeatureMatrix, model: FeatureMatrix) throws -> [Int] {
        guard task.rows == model.rows else {
            throw AffectError.badInput("confidence filter: \(task.rows) frames of task predictions but \(model.rows) of the pre-trained model.")
        }
        guard task.columns == mapping.taskLabels.count, model.columns == mapping.modelLabels.count else {
            throw AffectError.badInput("confidence filter: expected \(mapping.taskLabels.count) task and \(mapping.modelLabels.count) model classes, got \(task.columns) and \(model.columns).")
        }
        let taskBest = task.argmaxPerRow(), modelBest = model.argmaxPerRow()
        return (0..<task.rows).map { r in
            let b = modelBest[r]
            if model[r, b] > threshold, let t = mapping.target[b] { return t }
            return taskBest[r]
        }
    }
}
