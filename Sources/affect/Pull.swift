import ArgumentParser
import Foundation
import AffectKernels
import AffectConvert

/// `affect pull NAME`: download a registry model, verify it, convert it.
struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a model of the registry, verify its digest and convert it into an Affect weight file.",
        discussion: """
        Files go to the cache ($XDG_CACHE_HOME/affect or ~/.cache/affect) as NAME.part first; an interrupted \
        download resumes from there (HTTP Range), and a file takes its final name only once its digest (git blob \
        id or sha256) matches: a mismatch removes it and exits 2. Where the registry has no digest (a Hugging \
        Face revision), the sha256 seen is recorded in the model's affect-pull.json. The model is then converted \
        (as `affect convert`) into the cache, or into DIR/NAME.safetensors with --to.
        Proxies: https_proxy, http_proxy and no_proxy are honoured. AFFECT_MODEL_MIRROR=BASE fetches \
        https://HOST/PATH from BASE/HOST/PATH instead (an air-gapped mirror laid out by host). Other commands \
        take a model name wherever they take a weight file, and pull it when missing.
        """)

    @Argument(help: "Model names (`affect models` lists them).") var names: [String]
    @Option(help: "Write NAME.safetensors into this folder instead of keeping it only in the cache.") var to: String?
    @Option(help: "A registry JSON file whose entries are added (repeatable).") var registry: [String] = []
    @Flag(help: "Never download: succeed only when the files are already in the cache.") var offline = false

    func validate() throws {
        guard !names.isEmpty else { throw ValidationError("give at least one model name (`affect models` lists them).") }
    }

    func run() throws {
        let store = try modelStore(registries: registry, offline: offline)
        for name in names {
            guard let model = store.registry[name] else {
                throw AffectError.badInput("\(name): not a model name of the registry (`affect models` lists them).")
            }
            let path = try store.pull(name, to: to)
            if model.convert == nil {
                print("\(name): verified files in \(path) (\(model.note ?? "affect convert cannot read this source"))")
            } else {
                print("\(name): \(path)")
            }
            if !model.isPinned {
                print("\(name): the registry has no digest for some files (\(model.revision == "main" ? "revision main" : "revision \(model.revision)")); the sha256 seen is recorded in \(store.sourceFolder(model))/affect-pull.json")
            }
        }
    }
}
