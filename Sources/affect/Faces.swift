import ArgumentParser
import Foundation
import AffectKernels
import AffectMedia
import AffectModels

struct Faces: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detect faces with MTCNN: boxes, probabilities and five landmarks per face.",
        discussion: "Images are decoded with FFmpeg (JPEG, PNG, BMP, ...). Weights default to the committed Weights/mtcnn.safetensors.")

    @Argument(help: "An image file.") var image: String
    @Option(help: "Smallest face side in pixels.") var minFace: Float = 40
    @Option(help: "MTCNN weight file.") var weights: String?
    @Option(help: "Output format: text or json.") var format: String = "text"
    @Option(help: "Also time detection over this many repeats (median printed to standard error).") var timeRepeats: Int = 0
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        compute.apply()
        guard ["text", "json"].contains(format) else { throw AffectError.badUsage("--format must be text or json.") }
        guard minFace >= 12 else { throw AffectError.badUsage("--min-face must be at least 12 pixels.") }
        var mtcnn = try MTCNN(weights: WeightFile(path: weights ?? defaultWeights("mtcnn.safetensors")))
        mtcnn.minFaceSize = minFace
        let img = try ImageDecoder.decode(path: image)
        let faces = mtcnn.detect(img)
        if timeRepeats > 0 {
            var times: [Double] = []
            for _ in 0..<timeRepeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = mtcnn.detect(img)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            times.sort()
            printErr(String(format: "detect: median %.1f ms over %d runs (min %.1f)", times[times.count / 2], times.count, times[0]))
        }
        if format == "json" {
            let list = faces.map { f -> [String: Any] in
                ["box": [f.x1, f.y1, f.x2, f.y2].map(Double.init), "probability": Double(f.probability),
                 "landmarks": f.landmarks.map { [Double($0.x), Double($0.y)] }]
            }
            let obj: [String: Any] = ["file": image, "width": img.width, "height": img.height, "faces": list]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("\(image): \(img.width)×\(img.height), \(faces.count) face\(faces.count == 1 ? "" : "s")")
            for (i, f) in faces.enumerated() {
                let marks = f.landmarks.map { String(format: "(%.1f, %.1f)", $0.x, $0.y) }.joined(separator: " ")
                print(String(format: "face %d: box %.1f %.1f %.1f %.1f  p=%.5f  landmarks %@", i, f.x1, f.y1, f.x2, f.y2,
                             f.probability, marks as NSString))
            }
        }
    }
}

/// A committed weight file in `Weights/`, found beside the executable's checkout or the working directory.
func defaultWeights(_ name: String) -> String {
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<6 {
        let cand = dir.appendingPathComponent("Weights/\(name)").path
        if FileManager.default.fileExists(atPath: cand) { return cand }
        dir = dir.deletingLastPathComponent()
    }
    return "Weights/\(name)"
}
