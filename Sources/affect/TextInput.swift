import ArgumentParser
import Foundation
import AffectKernels
import AffectModels

/// Reads texts: the file's lines (split at `\n`; a final newline does not start another line), the given
/// text, or standard input's lines. Invalid UTF-8 is an error naming the line.
func readTextLines(file: String?, text: String?) throws -> [String] {
    if let text { return [text] }
    let data: Data
    let name: String
    if let file {
        guard FileManager.default.fileExists(atPath: file) else { throw AffectError.badInput("\(file): no such file.") }
        guard let d = FileManager.default.contents(atPath: file) else { throw AffectError.badInput("\(file): cannot read the file.") }
        data = d; name = file
    } else {
        data = FileHandle.standardInput.readDataToEndOfFile(); name = "standard input"
    }
    var lines: [String] = []
    var lineStart = data.startIndex
    var number = 1
    func take(_ range: Range<Data.Index>) throws {
        guard let s = String(validating: data[range], as: UTF8.self) else {
            throw AffectError.badInput("\(name): line \(number) is not valid UTF-8.")
        }
        lines.append(s)
        number += 1
    }
    for i in data.indices where data[i] == 0x0A {
        try take(lineStart..<i)
        lineStart = i + 1
    }
    if lineStart < data.endIndex { try take(lineStart..<data.endIndex) }
    return lines
}
