import ArgumentParser
import Foundation
import AffectKernels
import AffectPipeline

/// `affect evaluate PRED GT --task expr|va|au|emi|ah`: the ABAW challenge measures.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score per-frame (or per-video) predictions against ground truth with the ABAW measures.",
        discussion: """
        Both files are CSV with a header line, one row per frame (EMI: per video). Rows are paired by a \
        `frame` column (EMI: `video`) when both files have one, otherwise by position.
          expr  column `expr` (class 0-7 in ABAW order Neutral, Anger, Disgust, Fear, Happiness, Sadness, \
        Surprise, Other), a single-value-per-line ABAW annotation file, or the 8 class-probability columns \
        (argmax); macro F1 over all 8 classes; ground truth -1 skipped.
          va    columns `valence`, `arousal`; mean CCC; ground truth -5 skipped.
          au    columns AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26 (values >= 0.5 are active); \
        mean binary F1; frames with any ground truth -1 skipped.
          emi   columns Admiration, Amusement, Determination, Empathic Pain, Excitement, Joy; mean Pearson r.
          ah    column `ah` or a single-column file (>= 0.5 is 1); macro F1 of the two classes (weighted F1 too); \
        ground truth -1 skipped.
        CSV fields may be quoted ("a,b"); a byte-order mark and CRLF line ends are fine; files up to 256 MiB. \
        Ground truth must hold its format's values (VA in [-1, 1] or -5, AU and AH 0/1/-1, EMI in [0, 1]); a \
        file without rows, a frame given twice, nothing left to score, or a correlation that is undefined \
        (a constant column) is an error (exit 2), never a NaN score.
        The last line is machine-readable: `score=<x>`.
        """)

    @Argument(help: "Predictions (CSV).") var predictions: String
    @Argument(help: "Ground truth (CSV or ABAW annotation .txt).") var groundTruth: String
    @Option(help: "Task: expr, va, au, emi or ah.") var task: String

    func run() throws {
        guard let t = EvaluationTask(rawValue: task.lowercased()) else {
            throw AffectError.badUsage("--task must be one of expr, va, au, emi, ah; got `\(task)`.")
        }
        let r = try Evaluation.evaluate(task: t, predictions: CSVTable(path: predictions), truth: CSVTable(path: groundTruth))
        let measure = ["expr": "macro F1", "va": "mean CCC", "au": "mean F1", "emi": "mean PCC", "ah": "macro F1"][t.rawValue]!
        print("task:    \(t.rawValue)  (\(r.used) rows scored, \(r.skipped) skipped as invalid)")
        for d in r.details { print(String(format: "  %-22@ %.6f", d.name as NSString, d.value)) }
        print(String(format: "%@: %.6f", measure as NSString, r.score))
        print(String(format: "score=%.6f", r.score))
    }
}
