import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectPipeline

/// The typed JSON document: every part present when its analysis ran, keys sorted at every level.
@Suite struct AnalysisDocumentTests {
    /// Keys of the objects written at `indent` spaces, in the order they appear.
    func keys(_ json: String, indent: Int) -> [String] {
        let prefix = String(repeating: " ", count: indent) + "\""
        return json.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix(prefix), !line.dropFirst(indent).hasPrefix(" "), let end = line.range(of: "\" : ") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: indent + 1)..<end.lowerBound])
        }
    }

    /// A whole document with the optional parts (EXPR, VA, AU, EMI heads, the confidence filter,
    /// smoothing, weights): each part where it belongs, keys sorted.
    @Test func documentHasEveryPartSorted() throws {
        let faceModel = try MiniXception(weights: WeightFile(path: miniXceptionPath))
        let n = 8, k = 7
        let frames = [0, 2, 3, 6]
        let logits: [Float] = (0..<(frames.count * k)).map { Float(($0 * 5) % 11) * 0.25 - 1.2 }
        let scan = try VideoScan(path: "dir/clip.mp4", width: 64, height: 48, frameRate: 25, times: (0..<n).map { Double($0) / 25 },
                                 tracks: [try TrackObservations(id: 4, frames: frames, boxes: frames.map { face(Float($0) + 0.3) },
                                                                features: logits, logits: logits)],
                                 featureWidth: k, logitWidth: k)
        func head(_ name: String, _ outputs: Int, inputs: Int = 7, _ output: String = "linear") throws -> HeadSpec {
            let w: [[Float]] = (0..<outputs).map { (r: Int) -> [Float] in
                (0..<inputs).map { (c: Int) -> Float in Float((r * 3 + c) % 7) * 0.07 - 0.2 }
            }
            let file = try linearHead(name, weight: w, bias: (0..<outputs).map { (i: Int) -> Float in Float(i) * 0.01 }, output: output)
            let task = try #require(AnalysisTask(rawValue: String(name.prefix(while: { $0 != "_" }))))
            return HeadSpec(task: task, head: try MLPHead(path: file))
        }
        var options = AnalyzerOptions()
        options.smoother = .gaussian(sigma: 1.5)
        options.threshold = 0.3
        options.weights = [0.25]
        let heads = [try head("expr_doc", 8, "softmax"), try head("va_doc1", 2), try head("va_doc2", 2), try head("au_doc", 12, "sigmoid"),
                     try head("emi", 6, inputs: 28)]
        let analyzer = try Analyzer(detector: try MTCNN(weights: WeightFile(path: mtcnnPath)), faceModel: faceModel, options: options, heads: heads)
        let json = try AnalysisReport(try analyzer.analyze(scan: scan)).json()
        let text = String(decoding: json, as: UTF8.self)
        #expect(keys(text, indent: 2) == ["expression_model", "options", "summary", "tracks", "video"], "\(text)")
        let trackKeys = keys(text, indent: 6)
        #expect(trackKeys == trackKeys.sorted() && trackKeys.contains("au_active_share") && trackKeys.contains("mean_expr"), "\(trackKeys)")
        // AU names by code unit, as every key.
        let auKeys = keys(text, indent: 8).filter { $0.hasPrefix("AU") }
        #expect(auKeys.count == 12 && auKeys == auKeys.sorted(), "\(auKeys)")
        let doc = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let t = try #require((doc["tracks"] as? [[String: Any]])?.first)
        #expect((t["au_active_share"] as? [String: Double])?.count == 12 && (t["emi"] as? [String: Double])?.count == 6)
        #expect((t["mean_expr"] as? [String: Double])?.count == 8 && t["mean_valence"] is Double)
        let rows = try #require(t["rows"] as? [[String: Any]])
        #expect(rows.count == n && rows[1]["box"] == nil && rows[2]["box"] != nil)
        #expect((doc["options"] as? [String: Any])?["smoothing"] as? [AnyHashable] == ["gaussian", 1.5])
    }
}
