import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectPipeline

@Suite struct FusionMetricsTests {
    @Test func metricsMatchScikitLearnAndNumPy() throws {
        let m = dict(fusionOps["metrics"])
        let t = ints(m["truth"]), p = ints(m["pred"])
        #expect(abs(try Metrics.macroF1(truth: t, predicted: p, classes: 8) - (m["macro_f1"] as? Double ?? 0)) < 1e-12)
        #expect(abs(try Metrics.weightedF1(truth: t, predicted: p, classes: 8) - (m["weighted_f1"] as? Double ?? 0)) < 1e-12)
        let per = try Metrics.f1Scores(truth: t, predicted: p, classes: 8)
        #expect(zip(per, doubles(m["per_class_f1"])).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(per[7] == 0)  // never predicted: zero_division=0
        let x = doubles(m["x"]), y = doubles(m["y"])
        #expect(abs(try Metrics.ccc(x, y) - (m["ccc"] as? Double ?? 0)) < 1e-12)
        #expect(abs(try Metrics.pearson(x, y) - (m["pearson"] as? Double ?? 0)) < 1e-12)
        #expect(throws: AffectError.self) { try Metrics.ccc([1, 2], [1]) }
        #expect(throws: AffectError.self) { try Metrics.macroF1(truth: [1], predicted: [], classes: 2) }
    }

    @Test(arguments: ["expr", "va", "au", "emi", "ah"])
    func evaluateFiles(_ task: String) throws {
        let dir = "\(fusionFixtures)/eval"
        let gt = FileManager.default.fileExists(atPath: "\(dir)/\(task)_gt.txt") ? "\(dir)/\(task)_gt.txt" : "\(dir)/\(task)_gt.csv"
        let r = try Evaluation.evaluate(task: EvaluationTask(rawValue: task)!, predictions: CSVTable(path: "\(dir)/\(task)_pred.csv"),
                                        truth: CSVTable(path: gt))
        let want = dict(fusionOps["evaluate"])[task] as? Double ?? -1
        #expect(abs(r.score - want) < 1e-9, "\(task): \(r.score) vs \(want)")
        switch task {
        case "expr": #expect(r.skipped == 3 && r.used == 117)
        case "va": #expect(r.skipped == 3)
        case "au": #expect(r.skipped == 2 && r.details.count == 12)
        case "ah": #expect(abs(r.details[2].value - (dict(fusionOps["evaluate"])["ah_weighted"] as? Double ?? -1)) < 1e-9)
        default: break
        }
    }

    @Test func exprClassColumnGivesTheSameScore() throws {
        let dir = "\(fusionFixtures)/eval"
        let r = try Evaluation.evaluate(task: .expr, predictions: CSVTable(path: "\(dir)/expr_pred_classes.csv"),
                                        truth: CSVTable(path: "\(dir)/expr_gt.txt"))
        #expect(abs(r.score - (dict(fusionOps["evaluate"])["expr"] as? Double ?? -1)) < 1e-9)
    }

    @Test func badEvaluationInputs() throws {
        let gt = try CSVTable(text: "valence,arousal\n0.1,0.2\n0.3,0.1\n", path: "gt.csv")
        #expect(throws: AffectError.self) {
            try Evaluation.evaluate(task: .va, predictions: CSVTable(text: "valence,arousal\n0.1,0.2\n", path: "p.csv"), truth: gt)
        }
        #expect(throws: AffectError.self) {
            try Evaluation.evaluate(task: .va, predictions: CSVTable(text: "valence\n0.1\n0.2\n", path: "p.csv"), truth: gt)
        }
        #expect {
            try Evaluation.evaluate(task: .va, predictions: CSVTable(text: "valence,arousal\n0.1,x\n0.2,0\n", path: "p.csv"), truth: gt)
        } throws: { "\($0)".contains("p.csv: line 2") }
        #expect(throws: AffectError.self) { try CSVTable(text: "", path: "e.csv") }
        #expect(throws: AffectError.self) { try CSVTable(text: "a,b\n1,2\n1,2,3\n", path: "e.csv") }
        #expect(throws: AffectError.self) { try CSVTable(path: "/nonexistent/file.csv") }
        #expect(throws: AffectError.self) {
            try Evaluation.evaluate(task: .expr, predictions: CSVTable(text: "expr\n9\n", path: "p.csv"),
                                    truth: CSVTable(text: "expr\n9\n", path: "g.csv"))
        }
    }

    @Test func csvTableReadsRFC4180AndRefusesDamage() throws {
        let t = try CSVTable(text: "\u{FEFF}frame,\"a,\"\"b\"\"\",c\r\n\r\n0, \"x\ny\" ,3\r\n1,,4\n", path: "q.csv")
        #expect(t.header == ["frame", "a,\"b\"", "c"])
        #expect(t.rows == [["0", "x\ny", "3"], ["1", "", "4"]])
        #expect(t.lines == [3, 5])     // blank line 2 skipped; the quoted line break moves the next row to line 5
        for (text, message) in [("a,b\n\"1,2\n", "q.csv: line 2: a quoted field is never closed"),
                                ("a,A\n1,2\n", "q.csv: column `A` appears twice"),
                                ("a,b\n1,2\n\n1,2,3\n", "q.csv: line 4 has 3 fields")] {
            #expect { _ = try CSVTable(text: text, path: "q.csv") } throws: { "\($0)".contains(message) }
        }
        // An out-of-range class is an error, not a trap of Int(Double); constant series are undefined, not NaN.
        let gt = try CSVTable(text: "frame,expr\n0,1\n1,2\n", path: "g.csv")
        #expect { try Evaluation.evaluate(task: .expr, predictions: CSVTable(text: "frame,expr\n0,1e20\n1,2\n", path: "p.csv"), truth: gt) }
            throws: { "\($0)".contains("p.csv: line 2") }
        let va = try CSVTable(text: "valence,arousal\n0.5,0.1\n0.5,0.2\n", path: "v.csv")
        #expect { try Evaluation.evaluate(task: .va, predictions: va, truth: va) } throws: { "\($0)".contains("undefined") }
        #expect { try Evaluation.evaluate(task: .expr, predictions: CSVTable(text: "frame,expr\n", path: "h.csv"), truth: gt) }
            throws: { "\($0)".contains("h.csv: the file has a header but no rows") }
    }

    @Test func videoGateMatchesScikitLearn() throws {
        guard let d = FileManager.default.contents(atPath: "\(fusionFixtures)/head_sklearn_binary.gate.json"),
              let o = try JSONSerialization.jsonObject(with: d) as? [String: Any] else {
            Issue.record("gate fixture missing"); return
        }
        let gate = try VideoGate(head: MLPHead(path: "\(fusionFixtures)/head_sklearn_binary.safetensors"))
        let videos = try (o["videos"] as? [Any] ?? []).map { try matrix($0) }
        let want = doubles(o["positive_proba"])
        #expect(videos.count == 4)
        var passed = 0
        for (v, p) in zip(videos, want) {
            #expect(abs(Double(try gate.probability(textFeatures: v)) - p) < 1e-5)
            let preds = FeatureMatrix(rows: 3, columns: 1, repeating: 0.8)
            let gated = try gate.apply(to: preds, textFeatures: v)
            #expect(gated == (p >= 0.5 ? preds : FeatureMatrix(rows: 3, columns: 1)))
            if p >= 0.5 { passed += 1 }
        }
        #expect(passed > 0 && passed < 4)
        #expect(throws: AffectError.self) { try gate.probability(textFeatures: FeatureMatrix(rows: 2, columns: 5)) }
    }
}
