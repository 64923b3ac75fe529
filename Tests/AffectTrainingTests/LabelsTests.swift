import Foundation
import Testing
import AffectKernels
import AffectTraining
import AffectTestSupport

@Suite struct LabelsTests {
    func file(_ text: String, _ name: String = #function) throws -> String {
        let path = Scratch.path("labels-\(name.filter(\.isLetter)).txt")
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func abawFormats() throws {
        let expr = try LabelFile(path: file("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n7\n-1\r\n3\n\n"), task: .expr, maxRows: 10)
        #expect(expr.values == [0, 7, 0, 3] && expr.labelled == [true, true, false, true])
        let va = try LabelFile(path: file("valence,arousal\n0.5,-0.25\n-5,-5\n1,1\n"), task: .va, maxRows: 10)
        #expect(va.values == [0.5, -0.25, 0, 0, 1, 1] && va.labelled == [true, false, true])
        let au = try LabelFile(path: file("AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n0,1,0,0,0,0,1,0,0,0,0,1\n-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1\n"), task: .au, maxRows: 10)
        #expect(au.labelled == [true, false] && au.values.count == 24 && au.values[1] == 1)
        let ah = try LabelFile(path: file("1\n0\n"), task: .ah, maxRows: 10)
        #expect(ah.values == [1, 0])
        let emi = try LabelFile(path: file("0.1,0.2,0.3,0.4,0.5,0.6\n"), task: .emi, maxRows: 10)
        #expect(emi.values.count == 6)
    }

    @Test(arguments: [("expr", "0\n8\n", "line 2"), ("expr", "0\n1.5\n", "line 2"), ("expr", "h\nh2\n", "line 2"),
                      ("va", "0.5,2\n", "line 1"), ("va", "0.5\n", "line 1"), ("au", "0,1\n", "line 1"),
                      ("ah", "2\n", "line 1"), ("emi", "0,0,0,0,0,nan\n", "line 1"), ("expr", "", "no label rows"),
                      ("expr", "\u{FF}\u{FE}", "UTF-8")])
    func malformedFilesNameTheFileAndLine(_ c: (String, String, String)) throws {
        let path = Scratch.path("bad-\(abs(c.1.hashValue)).txt")
        let data = c.1 == "\u{FF}\u{FE}" ? Data([0xFF, 0xFE, 0x30]) : Data(c.1.utf8)
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            try LabelFile(path: path, task: TrainingTask(rawValue: c.0)!, maxRows: 10)
        } throws: { e in
            guard let e = e as? AffectError, case .badInput(let m) = e else { return false }
            return m.hasPrefix(path) && m.contains(c.2)
        }
    }

    @Test func sizeIsBoundedBeforeReading() throws {
        let path = try file(String(repeating: "0\n", count: 200))
        #expect(throws: AffectError.self) { try LabelFile(path: path, task: .expr, maxRows: 100) }
        #expect(throws: AffectError.self) { try LabelFile(path: path + ".missing", task: .expr, maxRows: 100) }
        #expect(try LabelFile(path: path, task: .expr, maxRows: 200).rows == 200)
    }
}
