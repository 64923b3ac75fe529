import ArgumentParser
import Foundation
import AffectKernels
import AffectModels
import AffectPipeline
import AffectTraining

/// `affect fit --task T`: trains a head on frozen features with the engine's own kernels.
struct Fit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a head (EXPR, VA, AU, AH, EMI or the AH video gate) on extracted features.",
        discussion: """
        Data: flat files, --features F.safetensors (tensor `features` [N, D]) with --labels L.txt (N rows in \
        the ABAW format of the task) and --val-features/--val-labels; or a folder of `affect extract` files \
        (--extract-dir) with an ABAW annotation folder (--annotations, VIDEO.txt per video, VIDEO.csv for \
        EMI) and --train-list/--val-list (one video name per line). Label rows: EXPR a class 0-7 (-1 \
        unlabelled, one header line allowed), VA `valence,arousal` (-5 unlabelled), AU 12 columns of 0/1 \
        (-1 unlabelled), AH and the gate 0/1, EMI 6 intensities. --modalities face+audio+text concatenates \
        the extract files' `features`, `audio` and `text` tensors (early fusion).
        The head is an MLP Dense(--hidden) ReLU [dropout] Dense(n) (the gate: logistic regression) trained \
        with Adam (PyTorch's defaults), a seeded shuffle, and early stopping on the validation metric (EXPR \
        macro F1, VA mean CCC, AU mean F1 with per-AU thresholds tuned on validation, AH and gate macro F1, \
        EMI mean Pearson r). The same settings give the same head on any thread count.
        Output: a head file for `affect run` and `affect analyze --expr-head` (etc.; pass the modalities as \
        `face+audio:HEAD`), with the settings, the validation metric and tuned values in its metadata \
        `affect.training`; per-epoch loss and metric on standard error; --log writes them as JSON. Outputs \
        are written atomically once training succeeded.
        Tuning (frame tasks expr, va, au, ah, from --extract-dir with --val-list): the fitted head runs on \
        every frame of each validation video as `affect analyze` runs it (filled over frames without the \
        face), then the blend weight w with the --blend-with head (0, 0.05 ... 1), the smoothing window delta \
        (window mean, 0 to 50 frames) and, for EXPR, the confidence threshold t (off, 0.40 ... 0.95, on the \
        extract files' face-model probabilities) are chosen in turn on the validation metric, and stored in \
        the head's metadata (`tuned`); `affect analyze` uses them unless its options say otherwise.
        """)

    @Option(help: "Task: expr, va, au, ah, emi or gate.") var task: String
    @Option(name: [.short, .customLong("output")], help: "The head file to write (.safetensors).") var output: String
    @Option(help: "Flat training features: a safetensors file with tensor `features` [N, D].") var features: String?
    @Option(help: "Training labels, one row per feature row.") var labels: String?
    @Option(help: "Flat validation features.") var valFeatures: String?
    @Option(help: "Validation labels.") var valLabels: String?
    @Option(help: "Folder of `affect extract` files (instead of --features).") var extractDir: String?
    @Option(help: "ABAW annotation folder (VIDEO.txt per video) for --extract-dir.") var annotations: String?
    @Option(help: "Training videos, one name per line (with --extract-dir).") var trainList: String?
    @Option(help: "Validation videos, one name per line (with --extract-dir).") var valList: String?
    @Option(help: "Modalities the features hold, in order: face, audio, text joined by + (early fusion).") var modalities: String = "face"
    @Option(help: "Hidden layer width, 1 to 65536 (0: no hidden layer).") var hidden: Int = 128
    @Option(help: "Epochs, 1 to 100000.") var epochs: Int = 30
    @Option(help: "Batch size, 1 to 65536.") var batchSize: Int = 256
    @Option(help: "Adam learning rate, above 0 and at most 10.") var lr: Double = 1e-3
    @Option(help: "L2 weight decay as torch.optim.Adam applies it, 0 to 10.") var weightDecay: Double = 0
    @Option(help: "Dropout on the hidden layer, 0 to 0.95.") var dropout: Double = 0
    @Option(help: "Seed of the initial weights, shuffles and dropout masks (0 to 2^63-1).") var seed: Int = 0
    @Option(help: "Epochs without a better validation metric before stopping, 1 to 100000.") var patience: Int = 5
    @Option(help: "EXPR class weights: balanced (N / (8 * count)), none, or 8 comma-separated values.") var classWeights: String = "balanced"
    @Option(help: "A head ([MODALITIES:]FILE, as analyze takes it) to blend with: tunes this head's late-fusion weight w on validation (needs --extract-dir and --val-list).") var blendWith: String?
    @Option(help: "Write the training log (settings, per-epoch loss and metric) as JSON.") var log: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        guard let task = TrainingTask(rawValue: task) else {
            throw AffectError.badUsage("--task must be expr, va, au, ah, emi or gate, got `\(self.task)`.")
        }
        let mods = modalities.split(separator: "+", omittingEmptySubsequences: false).map { $0.lowercased() }
        guard mods.allSatisfy({ Modality(rawValue: $0) != nil }), Set(mods).count == mods.count else {
            throw AffectError.badUsage("--modalities must be face, audio and/or text joined by +, each once, got `\(modalities)`.")
        }
        var settings = TrainingSettings()
        try checkRange(hidden, 0...65_536, "--hidden")
        settings.hidden = hidden == 0 ? [] : [hidden]
        try checkRange(epochs, 1...100_000, "--epochs"); settings.epochs = epochs
        try checkRange(batchSize, 1...65_536, "--batch-size"); settings.batchSize = batchSize
        try checkPositive(lr, atMost: 10, "--lr"); settings.learningRate = lr
        try checkRange(weightDecay, 0...10, "--weight-decay"); settings.weightDecay = weightDecay
        try checkRange(dropout, 0...0.95, "--dropout"); settings.dropout = Float(dropout)
        try checkRange(seed, 0...Int.max, "--seed"); settings.seed = UInt64(seed)
        try checkRange(patience, 1...100_000, "--patience"); settings.patience = patience
        try settings.validate()
        guard output.lowercased().hasSuffix(".safetensors") else { throw AffectError.badUsage("-o \(output): the head file must end in .safetensors.") }
        if let log, !log.lowercased().hasSuffix(".json") { throw AffectError.badUsage("--log \(log): the log must end in .json.") }
        try checkOutputs([("-o", output)] + (log.map { [("--log", $0)] } ?? []),
                         inputs: [features, labels, valFeatures, valLabels, trainList, valList, blendWith, blendWith.flatMap { $0.split(separator: ":").last.map(String.init) }])

        let analysisTask = AnalysisTask(rawValue: task.rawValue)
        let tunes = extractDir != nil && valList != nil && [.expr, .va, .au, .ah].contains(task)
        var other: HeadSpec?
        if let b = blendWith {
            guard tunes, let analysisTask else {
                throw AffectError.badUsage("--blend-with tunes w on validation videos: it needs --task expr, va, au or ah with --extract-dir and --val-list.")
            }
            other = try HeadSpec(task: analysisTask, argument: b, option: "--blend-with")
            let ok = other!.head.outputWidth == task.outputs || (task == .ah && other!.head.outputWidth == 2)
            guard ok else { throw AffectError.badInput("\(other!.head.path): gives \(other!.head.outputWidth) outputs; a \(task.rawValue.uppercased()) head gives \(task.outputs).") }
        }
        let (train, validation, sources) = try loadSets(task, modalities: mods)
        if task == .expr {
            switch classWeights.lowercased() {
            case "none": settings.classWeights = nil
            case "balanced": settings.classWeights = HeadTrainer.balancedClassWeights(train, classes: task.outputs)
            default:
                let v = classWeights.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
                guard v.count == task.outputs, v.allSatisfy({ $0 != nil }) else {
                    throw AffectError.badUsage("--class-weights must be balanced, none or \(task.outputs) comma-separated numbers, got `\(classWeights)`.")
                }
                settings.classWeights = v.map { $0! }
            }
            try settings.validate()
        } else if classWeights.lowercased() != "balanced" && classWeights.lowercased() != "none" {
            throw AffectError.badUsage("--class-weights applies to --task expr.")
        }
        // Built (and its size checked) before anything is printed: a refused head is one line on standard error.
        let trainer = try HeadTrainer(task: task, settings: settings, inputWidth: train.features.width)
        printErr("fit \(task.rawValue): \(train.count) training rows\(validation.map { ", \($0.count) validation rows" } ?? "") of width \(train.features.width), \(Threading.threads) thread\(Threading.threads == 1 ? "" : "s")")
        let started = Date()
        let result = try trainer.fit(train: train, validation: validation) { r in
            var line = "epoch \(r.epoch)/\(settings.epochs)  loss \(String(format: "%.5f", r.trainLoss))"
            if let m = r.metric { line += "  val \(task.metricName) \(String(format: "%.4f", m))\(r.best ? " *" : "")" }
            printErr(line + String(format: "  (%.1f s)", r.seconds))
        }
        let seconds = Date().timeIntervalSince(started)
        var training: [String: Any] = [
            "task": task.rawValue, "modalities": mods.joined(separator: "+"), "hidden": settings.hidden,
            "epochs": settings.epochs, "epochs_run": result.records.count, "best_epoch": result.bestEpoch,
            "batch_size": settings.batchSize, "lr": settings.learningRate, "weight_decay": settings.weightDecay,
            "dropout": Double(settings.dropout), "seed": seed, "patience": settings.patience, "optimizer": "adam",
            "loss": task.loss(classWeights: settings.classWeights).name, "train_rows": train.count,
            "feature_width": train.features.width, "sources": sources, "seconds": (seconds * 100).rounded() / 100,
        ]
        if let w = settings.classWeights { training["class_weights"] = w.map(Double.init) }
        if let validation { training["validation_rows"] = validation.count }
        if let m = result.bestMetric { training["metric"] = task.metricName; training["metric_value"] = m }
        if let t = result.thresholds { training["au_thresholds"] = t.map(Double.init) }
        var tunedLine: String?
        if tunes, let extractDir, let annotations, let valList {
            let tuning = FitTuning(task: task, modalities: mods, model: result.model, other: other)
            let (json, line) = try tuning.run(extracts: try TrainingData.extractFiles(in: extractDir), annotations: annotations,
                                              videos: try TrainingData.videoList(valList), listName: valList)
            training["tuned"] = json
            tunedLine = line
        }
        let head = try HeadExport.writer(result.model, task: task, labels: AnalysisTask(rawValue: task.rawValue)?.outputNames ?? [],
                                         training: training).serialized()
        var files: [(path: String, data: Data)] = [(output, head)]
        if let log {
            var json = training
            json["epochs_log"] = result.records.map { r -> [String: Any] in
                var e: [String: Any] = ["epoch": r.epoch, "train_loss": r.trainLoss, "best": r.best, "seconds": r.seconds]
                if let m = r.metric { e["metric"] = m }
                return e
            }
            files.append((log, try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])))
        }
        try AtomicFile.writeAll(files)
        let metric = result.bestMetric.map { ", validation \(task.metricName) \(String(format: "%.4f", $0))" } ?? ""
        print("wrote \(output): epoch \(result.bestEpoch) of \(result.records.count)\(metric)")
        if let tunedLine { print(tunedLine) }
        if let log { print("wrote \(log)") }
    }

    /// The training and validation sets from flat files or an extract folder, and the files they came from.
    func loadSets(_ task: TrainingTask, modalities: [String]) throws -> (LabelledRows, LabelledRows?, [String]) {
        if let features {
            guard extractDir == nil, annotations == nil, trainList == nil, valList == nil else {
                throw AffectError.badUsage("give either --features with --labels or --extract-dir with --annotations and --train-list, not both.")
            }
            guard let labels else { throw AffectError.badUsage("--features needs --labels.") }
            guard (valFeatures == nil) == (valLabels == nil) else { throw AffectError.badUsage("--val-features and --val-labels go together.") }
            let train = try TrainingData.flat(features: features, labels: labels, task: task)
            let val = try valFeatures.map { try TrainingData.flat(features: $0, labels: valLabels!, task: task) }
            if let val, val.features.width != train.features.width {
                throw AffectError.badInput("\(valFeatures!): features are \(val.features.width) wide, the training features \(train.features.width).")
            }
            return (train, val, [features, labels] + [valFeatures, valLabels].compactMap { $0 })
        }
        guard let extractDir else { throw AffectError.badUsage("give --features with --labels, or --extract-dir with --annotations and --train-list.") }
        guard let annotations, let trainList else { throw AffectError.badUsage("--extract-dir needs --annotations and --train-list.") }
        guard labels == nil, valFeatures == nil, valLabels == nil else {
            throw AffectError.badUsage("--labels, --val-features and --val-labels go with --features, not --extract-dir.")
        }
        if task == .gate && modalities != ["text"] { throw AffectError.badUsage("the gate reads the mean text features: give --modalities text.") }
        let extracts = try TrainingData.extractFiles(in: extractDir)
        let trainVideos = try TrainingData.videoList(trainList)
        let train = try TrainingData.folder(extracts: extracts, annotations: annotations, videos: trainVideos,
                                            modalities: modalities, task: task, listName: trainList)
        var val: LabelledRows?
        if let valList {
            let videos = try TrainingData.videoList(valList)
            if let both = videos.first(where: Set(trainVideos).contains) {
                throw AffectError.badInput("\(valList): video `\(both)` is also in the training list \(trainList).")
            }
            val = try TrainingData.folder(extracts: extracts, annotations: annotations, videos: videos,
                                          modalities: modalities, task: task, listName: valList)
        }
        return (train, val, [extractDir, annotations, trainList] + (valList.map { [$0] } ?? []))
    }
}
