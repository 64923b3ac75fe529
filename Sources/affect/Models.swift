import ArgumentParser
import Foundation
import AffectKernels
import AffectConvert

/// A weight-file argument as a `.safetensors` path (ModelStore.resolve): a registry name (pulled unless
/// `--offline` / `AFFECT_OFFLINE=1`), a source file or folder (converted once into the cache), or a weight file.
func resolveWeights(_ argument: String) throws -> String {
    var store = try ModelStore.default
    store.progress = DownloadProgress.shared.callback
    return try store.resolve(argument)
}

/// The store of `affect models` / `affect pull`: the environment's, plus `--registry` files and `--offline`.
func modelStore(registries: [String], offline: Bool) throws -> ModelStore {
    var store = try ModelStore.default
    for r in registries { store.registry = store.registry.adding(try ModelRegistry(path: r)) }
    if offline { store.offline = true }
    store.progress = DownloadProgress.shared.callback
    return store
}

/// Bytes as B, KB, MB or GB (powers of 1000, as download sizes are usually given).
func formatBytes(_ n: Int64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var v = Double(n), u = 0
    while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u] as NSString)
}

/// A download progress bar on standard error, drawn only on a terminal and at most ten times a second.
final class DownloadProgress: @unchecked Sendable {
    static let shared = DownloadProgress()
    let terminal = isatty(STDERR_FILENO) == 1
    let lock = NSLock()
    var last = Date.distantPast
    var current = ""

    var callback: (@Sendable (String, String, Int64, Int64?) -> Void)? {
        guard terminal else { return nil }
        return { [self] model, file, done, total in update("\(model)/\(file)", done, total) }
    }

    func update(_ label: String, _ done: Int64, _ total: Int64?) {
        lock.withLock {
            let now = Date()
            let finished = total == done
            guard finished || label != current || now.timeIntervalSince(last) >= 0.1 else { return }
            if label != current, !current.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) }
            current = label
            last = now
            var line = "pull \(label) "
            if let t = total, t > 0 {
                let f = min(Double(done) / Double(t), 1)
                let filled = Int(f * 30)
                line += "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled) + "]"
                line += String(format: " %3.0f%% ", f * 100) + "\(formatBytes(done)) / \(formatBytes(t))"
            } else {
                line += formatBytes(done)
            }
            FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K" + (finished ? "\n" : "")).utf8))
            if finished { current = "" }
        }
    }
}

/// `affect models`: the registry, with what is already on this machine.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the models `affect pull` knows: name, task, architecture, size, licence and whether each is here.",
        discussion: """
        The registry is built in (EmotiEffLib's files pinned by git blob ids at a fixed commit, Hugging Face \
        models by revision); --registry FILE (or AFFECT_REGISTRY=F1:F2) adds entries. SIZE is what the model \
        takes in the cache (its files and conversion), shown once it is there. Cache: $XDG_CACHE_HOME/affect \
        or ~/.cache/affect.
        """)

    @Option(help: "A registry JSON file whose entries are added (repeatable).") var registry: [String] = []

    func run() throws {
        let store = try modelStore(registries: registry, offline: true)
        print(pad("name", 30) + pad("task", 58) + pad("arch", 14) + pad("size", 10) + pad("licence", 12) + "here")
        for m in store.registry.models {
            let here = store.isPresent(m) ? "yes" : (m.convert == nil ? "no (Tools/convert.py)" : "no")
            print(pad(m.name, 30) + pad(m.task, 58) + pad(m.arch, 14) + pad(store.localSize(m).map(formatBytes) ?? "-", 10)
                  + pad(m.licence, 12) + here)
        }
        print("cache: \(store.root)")
    }
}
