import Foundation
import AffectKernels

/// Writes a trained ``MLP`` as an Affect head file (arch `head`, read by `MLPHead`: `affect run`, `affect
/// analyze --expr-head` …), with PyTorch `nn.Sequential` tensor names (`0.weight`, `0.bias`, `2.weight` …)
/// in the `[out, in]` layout.
///
/// The head format's outputs are softmax, sigmoid, linear and scikit-learn's; a tanh output (VA) is
/// written as a hidden `tanh` activation on the last dense layer followed by an exact identity layer
/// (`identity.weight` = I, no bias, linear output): multiplying by 1 and adding zeros changes no bit.
/// The gate (one dense layer) is written as `sklearn_binary`, the two columns `[1 − p, p]` the AH video gate
/// reads.
public enum HeadExport {
    /// The head file of `model` for `task`, naming its outputs `labels` and recording `training` (JSON) as
    /// metadata `affect.training`.
    public static func writer(_ model: MLP, task: TrainingTask, labels: [String], training: [String: Any]) throws -> SafeTensorsWriter {
        var tensors: [(String, [Int], [Float])] = []
        var layers: [[String: Any]] = []
        for l in 0..<model.layerCount {
            let name = String(2 * l)
            tensors.append(("\(name).weight", [model.widths[l + 1], model.widths[l]], model.weightArray(l)))
            tensors.append(("\(name).bias", [model.widths[l + 1]], model.biasArray(l)))
            let last = l == model.layerCount - 1
            layers.append(["weight": "\(name).weight", "bias": "\(name).bias", "layout": "out_in",
                           "activation": last ? (task.activation == .tanh ? "tanh" : "linear") : "relu"])
        }
        var output: String
        switch task.activation {
        case .softmax: output = "softmax"
        case .sigmoid: output = "sigmoid"
        case .linear: output = "linear"
        case .tanh:
            let n = model.outputWidth
            tensors.append(("identity.weight", [n, n], (0..<(n * n)).map { Float($0 / n == $0 % n ? 1 : 0) }))
            layers.append(["weight": "identity.weight", "layout": "out_in", "activation": "linear"])
            output = "linear"
        }
        var names = labels
        if task == .gate { output = "sklearn_binary"; names = ["0", "1"] }
        let config: [String: Any] = ["input_width": model.inputWidth, "layers": layers, "output": output, "framework": "affect fit"]
        func json(_ v: Any) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]), as: UTF8.self)
        }
        var meta = ["affect.format": "1", "affect.arch": "head", "affect.config": try json(config),
                    "affect.source": "affect fit --task \(task.rawValue)", "affect.training": try json(training)]
        if !names.isEmpty { meta["affect.labels"] = try json(names) }
        var w = SafeTensorsWriter(metadata: meta)
        for (name, shape, values) in tensors { w.add(name, shape: shape, floats: values) }
        return w
    }
}
