import ArgumentParser
import Foundation
import AffectKernels
import AffectMedia
import AffectModels
import AffectPipeline

struct Faces: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Detect faces with MTCNN: boxes, probabilities and five landmarks per face.",
        discussion: "JPEG stills are decoded with libjpeg-turbo as PIL decodes them, other images and videos with FFmpeg. Weights default to the committed Weights/mtcnn.safetensors.")

    @Argument(help: "An image or video file.") var image: String
    @Option(help: "For a video: detect on every Nth frame (1 to 10000).") var every: Int = 1
    @Option(help: "For a video: detect on this many frames per second, 0.001 to 1000 (the first frame at or after each instant).") var fps: Double?
    @Option(help: "Smallest face side in pixels, 12 to 10000.") var minFace: Float = 40
    @Option(help: "MTCNN weight file.") var weights: String?
    @Option(help: "Output format: text, json or csv (one row per face: frame, time, track, box, probability, landmarks).") var format: String = "text"
    @Option(help: "Also time detection over this many repeats, 0 to 10000 (median printed to standard error).") var timeRepeats: Int = 0
    @Option(help: ArgumentHelp("Write each face crop into this directory (created if missing).",
                               discussion: "Images: NAME_face<k>.png; videos: frame<index>_track<id>.png.", valueName: "dir"))
    var saveCrops: String?
    @Option(help: "Crop file format: png or jpg.") var cropFormat: String = "png"
    @Flag(help: "Save landmark-aligned crops (ArcFace five-point template) instead of box crops.") var align = false
    @Option(help: "Side of aligned crops in pixels, 16 to 1024.") var cropSize: Int = 112
    @Option(help: "Box crops: margin added on every side, as a fraction of the box size (0 to 4).") var margin: Float = 0
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        guard ["text", "json", "csv"].contains(format) else { throw AffectError.badUsage("--format must be text, json or csv.") }
        try checkRange(Double(minFace), 12...10_000, "--min-face", " pixels")
        try checkRange(every, AnalyzerOptions.everyRange, "--every")
        if let fps {
            try checkRange(fps, AnalyzerOptions.fpsRange, "--fps", " frames per second")
            guard every == 1 else { throw AffectError.badUsage("--every and --fps are alternatives: give one.") }
        }
        try checkRange(timeRepeats, 0...10_000, "--time-repeats")
        let crops = try cropWriter()
        var mtcnn = try MTCNN(weights: WeightFile(path: resolveWeights(weights ?? defaultWeights("mtcnn.safetensors"))))
        mtcnn.minFaceSize = minFace
        let stills = ["jpg", "jpeg", "png", "bmp", "ppm", "pgm", "webp", "tif", "tiff", "gif"]
        if !stills.contains(URL(fileURLWithPath: image).pathExtension.lowercased()) {
            try video(mtcnn, crops: crops)
            return
        }
        let img = try ImageDecoder.decode(path: image)
        let faces = mtcnn.detect(img)
        let stem = URL(fileURLWithPath: image).deletingPathExtension().lastPathComponent
        let cropPaths = try faces.enumerated().map { k, f in try crops?.save(img, f, name: "\(stem)_face\(k)") }
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
        if format == "csv" {
            print(Faces.csvHeader)
            for f in faces { print(Faces.csvRow(frame: 0, time: 0, track: nil, f)) }
            return
        }
        if format == "json" {
            let list = zip(faces, cropPaths).map { f, crop -> [String: Any] in
                var d: [String: Any] = ["box": [f.x1, f.y1, f.x2, f.y2].map(Double.init), "probability": Double(f.probability),
                                        "landmarks": f.landmarks.map { [Double($0.x), Double($0.y)] }]
                if let crop { d["crop"] = crop }
                return d
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

extension Faces {
    /// Per sampled frame: index, time and faces (text lines, or one JSON document).
    func video(_ mtcnn: MTCNN, crops: CropWriter?) throws {
        let decoder = try VideoDecoder(path: image)
        decoder.every = every
        decoder.targetFPS = fps
        var frames: [[String: Any]] = []
        var count = 0
        // A face may go undetected for up to about a second before its track ends.
        let perSecond = fps ?? (decoder.frameRate ?? 25) / Double(every)
        var tracker = FaceTracker(maxGap: max(1, Int(perSecond.rounded())))
        while let frame = try decoder.nextFrame() {
            let faces = mtcnn.detect(frame.image)
            let ids = tracker.update(frame: count, detections: faces)
            count += 1
            let cropPaths = try zip(faces, ids).map { f, id in
                try crops?.save(frame.image, f, name: String(format: "frame%06d_track%d", frame.index, id))
            }
            if format == "csv" {
                if count == 1 { print(Faces.csvHeader) }
                for (f, id) in zip(faces, ids) { print(Faces.csvRow(frame: frame.index, time: frame.time, track: id, f)) }
            } else if format == "json" {
                frames.append(["frame": frame.index, "time": frame.time, "faces": faces.indices.map { i -> [String: Any] in
                    let f = faces[i]
                    var d: [String: Any] = ["track": ids[i], "box": [f.x1, f.y1, f.x2, f.y2].map(Double.init),
                                            "probability": Double(f.probability), "landmarks": f.landmarks.map { [Double($0.x), Double($0.y)] }]
                    if let crop = cropPaths[i] { d["crop"] = crop }
                    return d
                }])
            } else {
                print(String(format: "frame %d  t=%.3f s  %d face%@", frame.index, frame.time, faces.count, faces.count == 1 ? "" : "s"))
                for (f, id) in zip(faces, ids) {
                    print(String(format: "  track %d  box %.1f %.1f %.1f %.1f  p=%.5f", id, f.x1, f.y1, f.x2, f.y2, f.probability))
                }
            }
        }
        if count == 0 { throw AffectError.badInput("\(image): no video frame could be decoded (truncated or corrupt).") }
        if format == "json" {
            var obj: [String: Any] = ["file": image, "width": decoder.width, "height": decoder.height, "every": every, "frames": frames]
            if let fps { obj["fps"] = fps }
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

/// Saves face crops into a directory checked up front.
struct CropWriter {
    let directory: String
    let format: ImageEncoder.Format
    let style: FaceCropStyle
    /// The file faces are detected in: a crop never replaces it.
    let input: String

    /// Writes the crop of `face` as `directory/name.ext` (atomically: a temporary file, then a rename);
    /// returns its path, or nil when the face box lies entirely outside the frame.
    func save(_ image: RGBImage, _ face: FaceDetection, name: String) throws -> String? {
        let crop = image.faceCrop(face, style: style)
        guard crop.width > 0, crop.height > 0 else { return nil }
        let path = URL(fileURLWithPath: directory).appendingPathComponent("\(name).\(format.fileExtension)").path
        if AtomicFile.sameFile(path, input) {
            throw AffectError.badUsage("--save-crops: the crop \(path) would replace the input \(input); choose another folder.")
        }
        try AtomicFile.write(Data(try ImageEncoder.encode(crop, format: format)), to: path)
        return path
    }
}

extension Faces {
    /// The crop writer the options ask for, with its directory created and checked before any work starts.
    func cropWriter() throws -> CropWriter? {
        guard let dir = saveCrops else {
            if align || margin != 0 || cropFormat != "png" || cropSize != 112 {
                throw AffectError.badUsage("--align, --margin, --crop-size and --crop-format apply to --save-crops DIR.")
            }
            return nil
        }
        guard let format = ImageEncoder.Format(path: "x.\(cropFormat)") else {
            throw AffectError.badUsage("--crop-format must be png or jpg.")
        }
        guard margin >= 0, margin <= 4 else { throw AffectError.badUsage("--margin must be between 0 and 4.") }
        guard (16...1024).contains(cropSize) else { throw AffectError.badUsage("--crop-size must be between 16 and 1024.") }
        if align && margin != 0 { throw AffectError.badUsage("--margin applies to box crops, not to --align.") }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            guard isDir.boolValue else { throw AffectError.badInput("\(dir): exists and is not a directory, cannot save crops there.") }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw AffectError.badInput("\(dir): cannot create the crop directory (a parent is missing, not a directory or not writable).")
            }
        }
        guard access(dir, W_OK | X_OK) == 0 else { throw AffectError.badInput("\(dir): the crop directory is not writable.") }
        // A file can really be created there (also as root on a read-only mount); stale temporaries go.
        try AtomicFile.checkWritable(URL(fileURLWithPath: dir).appendingPathComponent("crop.\(format.fileExtension)").path)
        return CropWriter(directory: dir, format: format, style: align ? .aligned(size: cropSize) : .box(margin: margin), input: image)
    }
}

extension Faces {
    static let csvHeader = "frame,time,track,x1,y1,x2,y2,probability," +
        (1...5).map { "lm\($0)_x,lm\($0)_y" }.joined(separator: ",")

    static func csvRow(frame: Int, time: Double, track: Int?, _ f: FaceDetection) -> String {
        var cells: [String] = [String(frame), String(format: "%.3f", time), track.map(String.init) ?? ""]
        for v in [f.x1, f.y1, f.x2, f.y2] { cells.append(String(format: "%.2f", v)) }
        cells.append(String(format: "%.6f", f.probability))
        for p in f.landmarks { cells.append(String(format: "%.2f", p.x)); cells.append(String(format: "%.2f", p.y)) }
        return cells.joined(separator: ",")
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
