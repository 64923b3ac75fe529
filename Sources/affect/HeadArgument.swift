import Foundation
import AffectKernels
import AffectModels
import AffectPipeline

extension HeadSpec {
    /// A head given on the command line as `[MODALITY[+MODALITY...]:]FILE`, e.g. `va.safetensors` (face
    /// features), `face+audio:va_early.safetensors` (early fusion) or `text:ah_text.safetensors`. `option`
    /// (`--va-head`, `--blend-with`) names the argument in messages.
    init(task: AnalysisTask, argument: String, option: String) throws {
        var mods: [Modality] = [.face]
        var file = argument
        if let colon = argument.firstIndex(of: ":") {
            let prefix = String(argument[..<colon])
            let parsed = prefix.split(separator: "+").compactMap { Modality(rawValue: String($0).lowercased()) }
            // A prefix that is not a list of modalities is part of the file name.
            if !prefix.isEmpty, parsed.count == prefix.split(separator: "+").count {
                mods = parsed
                file = String(argument[argument.index(after: colon)...])
                guard Set(mods).count == mods.count else {
                    throw AffectError.badUsage("\(option) \(argument): a modality is listed twice.")
                }
            }
        }
        self.init(task: task, modalities: mods, head: try MLPHead(path: file))
    }

    /// The `affect analyze` option of a task's heads.
    static func option(_ task: AnalysisTask) -> String { "--\(task.rawValue)-head" }
}
