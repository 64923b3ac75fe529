// swift-tools-version:6.0
import PackageDescription

// Kernels need -Ounchecked-free code that still vectorises: we build release with -O (bounds checks stay on in
// the safe APIs, the hot loops use unsafe pointers) and enable cross-module optimisation so small kernel
// helpers inline into the models. See README "Build settings".
let optimised: [SwiftSetting] = [
    .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
]

let package = Package(
    name: "Affect",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Affect", targets: ["AffectKernels", "AffectModels", "AffectMedia", "AffectPipeline"]),
        .executable(name: "affect", targets: ["affect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (module maps only).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFFmpeg", path: "Sources/CFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev", "libswresample-dev"])]),
        .systemLibrary(name: "CSndFile", path: "Sources/CSndFile", pkgConfig: "sndfile",
                       providers: [.apt(["libsndfile1-dev"])]),

        // Layers, lowest first: kernels < models < media < pipeline < CLI.
        .target(name: "AffectKernels", dependencies: ["CBLAS"], swiftSettings: optimised),
        .target(name: "AffectModels", dependencies: ["AffectKernels"], swiftSettings: optimised),
        .target(name: "AffectMedia", dependencies: ["AffectKernels", "CFFmpeg", "CSndFile"], swiftSettings: optimised),
        .target(name: "AffectPipeline", dependencies: ["AffectKernels", "AffectModels", "AffectMedia"], swiftSettings: optimised),
        .executableTarget(name: "affect", dependencies: [
            "AffectKernels", "AffectModels", "AffectMedia", "AffectPipeline",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: optimised),

        .testTarget(name: "AffectKernelsTests", dependencies: ["AffectKernels"]),
        .testTarget(name: "AffectModelsTests", dependencies: ["AffectModels"]),
        .testTarget(name: "AffectMediaTests", dependencies: ["AffectMedia"]),
        .testTarget(name: "AffectPipelineTests", dependencies: ["AffectPipeline"]),
        .testTarget(name: "CLITests", dependencies: ["affect", "AffectKernels", "AffectModels"]),
    ],
    // Swift 5 mode: kernels hand raw pointers to worker threads by design (each writes a disjoint range),
    // which Swift 6's Sendable checking cannot express without wrappers in every loop.
    swiftLanguageModes: [.v5]
)
