import ArgumentParser
import Foundation
import AffectKernels
import AffectModels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time repeated forward passes on synthetic inputs; last line `median_ms=<x>`.")

    @Argument(help: "An Affect weight file.") var weights: String
    @Option(help: "Batch size, 1 to 256.") var batch: Int = 1
    @Option(help: "Seconds to keep measuring after warm-up, 0 to 3600.") var seconds: Double = 5
    @Option(help: "Audio length for audio models, in seconds (above 0, at most 120).") var audioSeconds: Double = 10
    @Option(help: "Sequence length for text models, 1 to 8192 (at most the model's maximum is used).") var tokens: Int = 128
    @Option(help: "Minimum number of timed runs, 1 to 10000 (at most 10000 runs are timed).") var minRuns: Int = 5
    @Flag(help: "Also report the time and GFLOP/s of the matrix products inside the timed runs.") var profile = false
    @Option(help: "With --profile, how many matrix-product shapes to list (the most time first), 0 to 1000.")
    var profileShapes: Int = 12
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var precisionOption: PrecisionOption

    func run() throws {
        try compute.apply()
        try checkRange(batch, 1...256, "--batch")
        try checkRange(seconds, 0...3600, "--seconds", " s")
        try checkPositive(audioSeconds, atMost: 120, "--audio-seconds", " s")
        try checkRange(tokens, 1...8192, "--tokens")
        try checkRange(minRuns, 1...10_000, "--min-runs")
        try checkRange(profileShapes, 0...1000, "--profile-shapes")
        let model = try ModelLoader.load(resolveWeights(weights), precision: precisionOption.precision)
        let inputs = model.benchInputs(BenchShape(batch: batch, audioSeconds: audioSeconds, tokens: tokens))
        let src = "bench"
        for _ in 0..<2 { _ = try model.run(inputs, source: src) }
        var times: [Double] = []
        if profile { MatrixProfile.enable() }
        let start = DispatchTime.now().uptimeNanoseconds
        while times.count < minRuns || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try model.run(inputs, source: src)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            if times.count >= 10_000 { break }
        }
        MatrixProfile.disable()
        let products = MatrixProfile.snapshot
        let total = times.reduce(0, +)
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        print("model:      \(weights) (\(model.arch))")
        print("input:      " + inputs.floats.map { "\($0.key) \(formatShape($0.value.shape))" }.sorted().joined(separator: ", ")
              + inputs.ints.map { "\($0.key) \(formatShape($0.value.shape))" }.sorted().joined(separator: ", "))
        print("threads:    \(Threading.threads) (OpenBLAS kernels: \(Threading.blasCore))")
        print("vectors:    \(GEMMTile.vectorExtension) (this build's kernels, fixed by its target CPU)")
        if precisionOption.precision == .int8 { print("precision:  int8 (\(Int8Kernel.current) kernel)") }
        print("runs:       \(times.count)")
        print(String(format: "latency ms: min %.3f  median %.3f  max %.3f", times[0], median, times[times.count - 1]))
        print(String(format: "throughput: %.2f items/s", Double(batch) * 1000 / median))
        if let f = model.flops(inputs) {
            print(String(format: "compute:    %.3f GFLOP per pass, %.1f GFLOP/s", f / 1e9, f / 1e9 / (median / 1000)))
        }
        if profile {
            // Totals over every timed run; shares of the total wall time of those runs.
            for (kind, t) in products.sorted(by: { $0.value.seconds > $1.value.seconds }) {
                print(String(format: "products:   %@: %d calls, %.3f GFLOP per pass, %.1f %% of the time, %.1f GFLOP/s",
                             kind, t.calls / times.count, t.flops / Double(times.count) / 1e9,
                             100 * t.seconds * 1000 / total, t.gflops))
            }
            let f = products.values.reduce(0) { $0 + $1.flops }, s = products.values.reduce(0) { $0 + $1.seconds }
            if s > 0 {
                print(String(format: "products:   all: %.1f %% of the time, %.1f GFLOP/s; the rest of the pass %.3f ms",
                             100 * s * 1000 / total, f / s / 1e9, (total - s * 1000) / Double(times.count)))
            }
            // The shapes that took the most time: the layers where a kernel falls short shows here.
            for (shape, t) in MatrixProfile.shapeSnapshot.sorted(by: { $0.value.seconds > $1.value.seconds }).prefix(profileShapes) {
                print(String(format: "shape:      %@ %d×%d · %d×%d: %d calls, %.1f %% of the time, %.1f GFLOP/s",
                             shape.kind, shape.m, shape.k, shape.k, shape.n, t.calls / times.count,
                             100 * t.seconds * 1000 / total, t.gflops))
            }
        }
        print(String(format: "median_ms=%.4f", median))
    }
}
