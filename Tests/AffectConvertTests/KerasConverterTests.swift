import Foundation
import Testing
import AffectKernels
@testable import AffectConvert

let kerasFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/keras").path

func kerasFixture(_ name: String) -> String { (kerasFixtures as NSString).appendingPathComponent(name) }

/// Keras `.h5` sources (Tests/Fixtures/keras, made by Tools/make_keras_fixtures.py with tf_keras) read by the
/// Swift HDF5 reader and converted: equal to what Tools/convert.py wrote beside them; malformed files refused
/// with one sentence naming the file.
@Suite struct KerasConverterTests {
    @Test(arguments: ["mini_xception.h5", "engagement.h5", "engagement_model.h5"])
    func matchesPython(_ name: String) throws {
        let scratch = ScratchFolder()
        let out = scratch.file("out.safetensors")
        try Converter.convert(kerasFixture(name), to: out)
        try ConvertFixtureTests().expectSameWeights(out, kerasFixture(name.replacingOccurrences(of: ".", with: "_") + ".safetensors"))
    }

    @Test func detectsKerasArchitectures() {
        #expect(Converter.detect(kerasFixture("mini_xception.h5")) == "mini_xception")
        #expect(Converter.detect(kerasFixture("engagement.h5")) == "engagement")
        #expect(Converter.detect(kerasFixture("engagement_model.h5")) == "engagement")
        #expect(Converter.detect(kerasFixture("engagement_h5.safetensors")) == nil)
    }

    @Test func readsGroupsDatasetsAndAttributes() throws {
        let f = try HDF5Reader.read(kerasFixture("mini_xception.h5"))
        #expect(f.attributes["keras_version"]?.string?.isEmpty == false)
        #expect(f.attributes["model_config"]?.string?.contains("SeparableConv2D") == true)
        let mw = try #require(f.group("model_weights"))
        let names = try #require(try KerasConverter.stringList(mw, "layer_names", "mini_xception.h5"))
        let firstName = names.first ?? ""
        #expect(firstName.hasPrefix("input"))
        let conv = try #require(mw.group("conv2d"))
        #expect(try KerasConverter.stringList(conv, "weight_names", "x") == ["conv2d/kernel:0"])
        let kernel = try #require(conv.group("conv2d")?.dataset("kernel:0"))
        #expect(kernel.shape == [3, 3, 1, 4])
        #expect(kernel.typeName == "float32")
        let bytes: Int = kernel.tensor?.data.count ?? 0
        #expect(bytes == 144)
    }

    @Test(arguments: [
        ("bad_dtype.h5", "int32"), ("bad_shape.h5", "shapes"), ("missing_dataset.h5", "missing"),
    ])
    func refusesMalformedEngagement(_ name: String, _ word: String) {
        let path = kerasFixture(name)
        #expect {
            try Converter.convert(path, options: ConvertOptions(arch: "engagement"))
        } throws: { e in
            guard case AffectError.badInput(let m) = e else { return false }
            return m.hasPrefix(path) && m.contains(word)
        }
    }

    /// Soft and external links are not followed, and data kept in another file is never read (the fixture points
    /// a kernel at /etc/hostname).
    @Test func refusesDataOutsideTheFile() {
        for name in ["external_link.h5", "external_storage.h5"] {
            let path = kerasFixture(name)
            #expect(throws: AffectError.self) { try Converter.convert(path, options: ConvertOptions(arch: "engagement")) }
        }
        #expect {
            try HDF5Reader.read(kerasFixture("external_storage.h5"))
        } throws: { e in
            (e as? AffectError)?.description.contains("external file") == true
        }
    }

    /// Every truncation of a valid file is refused with a sentence naming it (HDF5 knows its end of file).
    @Test func truncatedFilesAreRefused() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: kerasFixture("engagement.h5")))
        let scratch = ScratchFolder()
        let path = scratch.file("cut.h5")
        for length in [0, 7, 8, 100, 512, 2048, data.count / 2, data.count - 1] {
            try data.prefix(length).write(to: URL(fileURLWithPath: path))
            #expect {
                try Converter.convert(path, options: ConvertOptions(arch: "engagement"))
            } throws: { e in
                guard case AffectError.badInput(let m) = e else { return false }
                return m.hasPrefix(path)
            }
        }
    }

    /// Bytes overwritten anywhere in the file: a result or one sentence, never a trap. libhdf5 1.10.8 itself
    /// crashes on some of these (offsets 776, 2134, 2231: NULL memcpy in H5F__accum_read and H5HG_read) and loops
    /// forever on others (2425, 2522: the global heap); the reader's child process turns those into errors.
    @Test func corruptedFilesGiveAResultOrAnError() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: kerasFixture("engagement.h5")))
        let scratch = ScratchFolder()
        let path = scratch.file("bad.h5")
        var errors = 0, crashes = 0, hangs = 0
        for offset in stride(from: 0, to: data.count - 8, by: 97) {
            var d = data
            for k in 0..<8 { d[offset + k] = 0xFF }
            try d.write(to: URL(fileURLWithPath: path))
            do {
                // A short limit for the hangs; a file read in time is then converted as `affect convert` would.
                _ = try HDF5Reader.read(path, timeLimit: 3)
                _ = try Converter.convert(path, options: ConvertOptions(arch: "engagement"))
            } catch {
                errors += 1
                let message = error.description
                #expect(message.hasPrefix(path), "\(offset): \(message)")
                if message.contains("libhdf5 crashed") { crashes += 1 }
                if message.contains("did not finish") { hangs += 1 }
            }
        }
        #expect(errors > 0)
        // Which of these ends as a crash and which as a loop varies between runs (libhdf5 reads memory it never
        // wrote: the CI saw 2425 finish once; 970 sometimes loops): the count of both is what is stable.
        #expect(crashes >= 1 && crashes + hangs >= 3, "libhdf5 crashes \(crashes), hangs \(hangs): the isolation is not exercised")
    }

    /// Each way the child can end, made deterministic: a result, an error sentence, a signal, an exit it did not
    /// choose, and a loop past the limit (the limit kills it; the parent's answer names the file).
    @Test func isolationReportsEveryEnding() throws {
        let path = "/some/model.h5"
        var g = HDF5Group()
        g.attributes["k"] = .numbers([1.5, -2], scalar: false)
        let back = try HDF5Isolation.run(path, fileSize: 0) { g }
        #expect(back.attributes["k"] == .numbers([1.5, -2], scalar: false))
        let endings: [(String, () throws(AffectError) -> HDF5Group)] = [
            ("its own sentence", { () throws(AffectError) -> HDF5Group in throw AffectError.badInput("its own sentence") }),
            ("crashed reading it (signal 11)", { raise(SIGSEGV); return g }),
            ("crashed reading it (exit status 1)", { _exit(1) }),
            ("did not finish reading it within 1 s", { while true { usleep(10_000) } }),
        ]
        for (mention, body) in endings {
            #expect {
                try HDF5Isolation.run(path, fileSize: 0, timeLimit: 1, body)
            } throws: { e in
                guard case AffectError.badInput(let m) = e else { return false }
                return m.contains(mention) && (mention == "its own sentence" || m.hasPrefix(path))
            }
        }
    }

    /// The child process's result decodes to the same tree the walk produced (attributes of every kind, nested
    /// groups, float32 and float64 data).
    @Test func isolatedReadKeepsEverything() throws {
        let f = try HDF5Reader.read(kerasFixture("mini_xception.h5"))
        let weights = try #require(f.group("model_weights"))
        #expect(weights.attributes["layer_names"]?.strings?.isEmpty == false)
        var datasets = 0, floats = 0
        func walk(_ g: HDF5Group) {
            for (_, m) in g.members {
                switch m {
                case .group(let c): walk(c)
                case .dataset(let d):
                    datasets += 1
                    if let t = d.tensor { floats += 1; #expect(t.data.count == t.shape.reduce(t.dtype.byteSize, *)) }
                }
            }
        }
        walk(f)
        #expect(datasets > 0 && floats == datasets)
    }

    @Test func notHDF5() throws {
        let scratch = ScratchFolder()
        let path = scratch.file("model.h5")
        try Data("{\"not\": \"hdf5\"}".utf8).write(to: URL(fileURLWithPath: path))
        #expect(Converter.detect(path) == nil)
        // With the architecture named, and without: the reader's sentence, not "cannot tell which architecture".
        for options in [ConvertOptions(arch: "mini_xception"), ConvertOptions()] {
            #expect {
                try Converter.convert(path, options: options)
            } throws: { e in
                (e as? AffectError)?.description == "\(path): not an HDF5 file (no HDF5 signature)."
            }
        }
    }
}
