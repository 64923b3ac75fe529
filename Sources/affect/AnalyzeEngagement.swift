import Foundation
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

/// `affect analyze --engagement-model`: loading and checks (the columns are AffectPipeline's EngagementAnalysis).
extension Analyze {
    /// The engagement model, checked against the face model's feature width before any decoding.
    func loadEngagementModel(faceModel: any FaceModel) throws -> EngagementModel? {
        guard let e = engagementModel else { return nil }
        let w = try WeightFile(path: resolveWeights(e))
        guard w.arch == "engagement" else {
            throw AffectError.badInput("--engagement-model \(e): this is a `\(w.arch)` weight file, expected an engagement model (EmotiEffLib's engagement_single_attention).")
        }
        let model = try EngagementModel(weights: w)
        try EngagementAnalysis.validate(model, faceModel: faceModel)
        return model
    }

    /// Engagement needs each track's whole timeline: refused on live sources, as the heads are.
    func refuseEngagementLive(_ source: MediaSource) throws {
        guard engagementModel != nil else { return }
        throw AffectError.badUsage("--engagement-model needs the whole video; live analysis (\(source.isLive ? source.name : "--live")) gives per-frame faces only. Analyse a file without --live for it.")
    }
}
