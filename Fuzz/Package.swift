// swift-tools-version:6.0
// libFuzzer targets for every parser of untrusted input. Not part of the main build or CI:
// `scripts/fuzz.sh TARGET SECONDS` builds them with `-sanitize=fuzzer,address` and runs one.
import PackageDescription

let targets = ["FuzzWeights", "FuzzRunInputs", "FuzzTokenizer", "FuzzTranscript", "FuzzImage", "FuzzConvert"]

let package = Package(
    name: "AffectFuzz",
    dependencies: [.package(name: "Affect", path: "..")],
    targets: [
        .systemLibrary(name: "CFuzzer", path: "Sources/CFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzer"]),
    ] + targets.map { name in
        .executableTarget(name: name, dependencies: [
            "FuzzSupport",
            .product(name: "Affect", package: "Affect"),
        ])
    },
    swiftLanguageModes: [.v5]
)
