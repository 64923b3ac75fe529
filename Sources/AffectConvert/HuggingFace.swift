import Foundation
import AffectKernels

/// Reading Hugging Face model folders: `config.json`, weights in `model.safetensors`, sharded safetensors
/// (`model.safetensors.index.json`) or `pytorch_model.bin`, and the side files the converters consult.
enum HFFolder {
    static func path(_ folder: String, _ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// A JSON file of the folder, or nil when it is absent.
    static func json(_ folder: String, _ name: String) throws(AffectError) -> JSON? {
        let p = path(folder, name)
        return exists(p) ? try JSON.read(p) : nil
    }

    /// A JSON file that must hold an object (config.json, preprocessor_config.json, ...).
    static func object(_ folder: String, _ name: String) throws(AffectError) -> JSON? {
        guard let v = try json(folder, name) else { return nil }
        guard case .object = v else { throw .badInput("\(path(folder, name)): not a JSON object.") }
        return v
    }

    /// The model type a folder's `config.json` names, without failing on folders that are not models.
    static func modelType(_ folder: String) -> String? {
        (try? object(folder, "config.json"))??["model_type"]?.stringValue
    }
}

/// Every tensor of a safetensors file, borrowing its memory mapping.
func readSafeTensors(_ path: String) throws(AffectError) -> StateDict {
    let file: SafeTensorsFile
    do { file = try SafeTensorsFile(path: path) } catch let e as AffectError { throw e } catch {
        throw .badInput("\(path): cannot read the file.")
    }
    var sd = StateDict()
    for t in file.tensors {
        let p = UnsafeMutableRawPointer(mutating: file.rawPointer(t))
        let bytes = t.range.count
        // The Data keeps the mapping alive for as long as any tensor uses it.
        let data = bytes == 0 ? Data() : Data(bytesNoCopy: p, count: bytes, deallocator: .custom { _, _ in _ = file })
        sd[t.name] = SourceTensor(dtype: t.dtype, shape: t.shape, data: data)
    }
    return sd
}

/// Weights of a Hugging Face folder and the files they came from, in the order `hf_audio.read_weights` uses:
/// `model.safetensors`, else the shards of `model.safetensors.index.json`, else `pytorch_model.bin`.
func readHFWeights(_ folder: String, sharded: Bool) throws(AffectError) -> (StateDict, [String]) {
    let st = HFFolder.path(folder, "model.safetensors")
    if HFFolder.exists(st) { return (try readSafeTensors(st), [st]) }
    let index = HFFolder.path(folder, "model.safetensors.index.json")
    if sharded, HFFolder.exists(index) {
        guard let map = try JSON.read(index)["weight_map"]?.objectValue else {
            throw .badInput("\(index): no `weight_map` object.")
        }
        var shards: [String] = []
        for (_, v) in map {
            guard let s = v.stringValue else { throw .badInput("\(index): a `weight_map` value is not a file name.") }
            // Shards are files of the folder; a path that climbs out of it is not one.
            guard !s.isEmpty, !s.contains("/"), s != "..", s != "." else {
                throw .badInput("\(index): `\(s)` is not a file name in the folder.")
            }
            shards.append(s)
        }
        shards = Array(Set(shards)).sorted()
        var sd = StateDict()
        var files: [String] = []
        for s in shards {
            let p = HFFolder.path(folder, s)
            sd.merge(try readSafeTensors(p))
            files.append(p)
        }
        return (sd, files)
    }
    let pt = HFFolder.path(folder, "pytorch_model.bin")
    if HFFolder.exists(pt) { return (try TorchCheckpoint.stateDict(pt), [pt]) }
    throw .badInput(sharded ? "\(folder): no model.safetensors, model.safetensors.index.json or pytorch_model.bin."
                            : "\(folder): no model.safetensors or pytorch_model.bin.")
}

/// The entries of `config.json` an engine needs, in `keys` order (Python keeps its CONFIG_KEYS order).
func pick(_ cfg: JSON, _ keys: [String]) -> JSON {
    .object(keys.compactMap { k in cfg[k].map { (k, $0) } })
}

func basename(_ path: String) -> String {
    // Python's os.path.basename(os.path.abspath(p)): trailing slashes do not count.
    let abs = URL(fileURLWithPath: path).standardizedFileURL.path
    return (abs as NSString).lastPathComponent
}
