import Foundation
import AffectKernels
import AffectModels
import AffectPipeline

/// `/v1/analyze`'s query: `affect analyze`'s options by the same names (`min_face` for `--min-face`, `t`
/// for `--t`, …), with the same ranges, and models named among those the server loaded instead of paths.
struct AnalyzeParameters {
    var options = AnalyzerOptions()
    var faceModel: String?
    var expressionModel: String?
    /// Heads of each task as `[face:]NAME` arguments, in the order given.
    var heads: [(task: AnalysisTask, argument: String)] = []

    static let known: Set<String> = ["every", "fps", "min_face", "tracks", "min_track", "t", "w", "delta", "median", "sigma",
                                     "au_thresholds", "face_model", "expression_model",
                                     "expr_head", "va_head", "au_head", "ah_head", "emi_head"]

    init(query: [String: [String]]) throws {
        if let unknown = query.keys.sorted().first(where: { !Self.known.contains($0) }) {
            throw ServerError(.badRequest, "unknown analyze option `\(unknown)` (known: \(Self.known.sorted().joined(separator: ", "))).")
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v = try single(query, key) else { return nil }
            guard let n = Int(v), range.contains(n) else {
                throw ServerError(.badRequest, "\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound), got `\(v)`.")
            }
            return n
        }
        func real(_ key: String, _ range: ClosedRange<Double>) throws -> Double? {
            guard let v = try single(query, key) else { return nil }
            guard let x = Double(v), range.contains(x) else {
                throw ServerError(.badRequest, "\(key) must be a number from \(range.lowerBound) to \(range.upperBound), got `\(v)`.")
            }
            return x
        }
        func numbers(_ key: String) throws -> [Float]? {
            guard let v = try single(query, key) else { return nil }
            return try v.split(separator: ",", omittingEmptySubsequences: false).map {
                guard let x = Float($0.trimmingCharacters(in: .whitespaces)), x >= 0, x <= 1 else {
                    throw ServerError(.badRequest, "\(key): `\($0)` is not a number from 0 to 1.")
                }
                return x
            }
        }
        if let t = try single(query, "tracks") {
            guard let sel = TrackSelection(rawValue: t) else { throw ServerError(.badRequest, "tracks must be largest or all, got `\(t)`.") }
            options.tracks = sel
        }
        options.minTrackDetections = try int("min_track", 1...1_000_000) ?? 1
        options.every = try int("every", AnalyzerOptions.everyRange) ?? 1
        options.fps = try real("fps", AnalyzerOptions.fpsRange)
        if options.fps != nil && options.every != 1 { throw ServerError(.badRequest, "every and fps are alternatives: give one.") }
        options.minFaceSize = Float(try real("min_face", 12...10_000) ?? 40)
        options.threshold = try real("t", 0...1).map(Float.init)
        options.weights = try numbers("w")
        if let a = try numbers("au_thresholds") {
            guard a.count == 12 else {
                throw ServerError(.badRequest, "au_thresholds needs 12 values (\(EvaluationTask.auNames.joined(separator: ", "))), got \(a.count).")
            }
            options.auThresholds = try AUThresholds(a)
        }
        let delta = try int("delta", 0...TemporalSmoother.maxRadius)
        let sigma = try real("sigma", 0.01...1000)
        let median = try single(query, "median").map { try flag($0, "median") } ?? false
        switch (delta, sigma) {
        case (.some, .some): throw ServerError(.badRequest, "give either delta (window) or sigma (Gaussian), not both.")
        case (let d?, nil): options.smoother = median ? .median(delta: d) : .mean(delta: d)
        case (nil, let s?): options.smoother = .gaussian(sigma: s)
        case (nil, nil): if median { throw ServerError(.badRequest, "median needs delta.") }
        }
        faceModel = try single(query, "face_model")
        expressionModel = try single(query, "expression_model")
        for task in AnalysisTask.allCases {
            for a in query["\(task.rawValue)_head"] ?? [] { heads.append((task, a)) }
        }
        do { try options.validate() } catch let e as AffectError { throw ServerError(.badRequest, e.description) }
    }

    /// The analyzer these parameters describe, on the server's shared models (`affect analyze`'s
    /// makeAnalyzer, with names in place of files), validated.
    func analyzer(_ models: ModelSet) throws -> Analyzer {
        var model = try models.faceModel(faceModel).model
        if let e = expressionModel { model = CombinedFaceModel(features: model, expression: try models.faceModel(e).model) }
        let specs = try heads.map { task, argument -> HeadSpec in
            var name = argument
            if let colon = argument.firstIndex(of: ":") {
                let mods = argument[..<colon].split(separator: "+").map { $0.lowercased() }
                guard mods == ["face"] else {
                    throw ServerError(.badRequest, "\(task.rawValue)_head \(argument): the server's heads read face features only (audio and text modalities need `affect analyze`).")
                }
                name = String(argument[argument.index(after: colon)...])
            }
            guard let head = models.heads[name] else {
                throw ServerError(.badRequest, "\(task.rawValue)_head: no head named `\(name)` is loaded (loaded: \(models.heads.keys.sorted().joined(separator: ", "))).")
            }
            return HeadSpec(task: task, modalities: [.face], head: head)
        }
        // Every configuration the analyzer refuses comes from the client's options: 400 with the library's sentence.
        do {
            return try Analyzer(Analyzer.Configuration(detector: models.detector, faceModel: model, options: options, heads: specs))
        } catch {
            throw ServerError(.badRequest, "\(error)")
        }
    }
}
