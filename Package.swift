// swift-tools-version:6.0
import PackageDescription

// Kernels need -Ounchecked-free code that still vectorises: we build release with -O (bounds checks stay on in
// the safe APIs, the hot loops use unsafe pointers) and enable cross-module optimisation so small kernel
// helpers inline into the models. See README "Build settings".
//
// The SIMD16 kernels need FMA and 256-bit vectors: without a target CPU, x86-64 code generation assumes SSE2,
// splits every SIMD16 operation into four and turns `addingProduct` into libm `fmaf` calls. `haswell`
// (AVX2 + FMA, any x86-64 server since 2013) is the default; `AFFECT_TARGET_CPU=znver4` (or `native`) at
// build time opts into AVX-512 on machines that have it.
import Foundation
let targetCPU = ProcessInfo.processInfo.environment["AFFECT_TARGET_CPU"] ?? "haswell"
#if arch(x86_64)
let cpuFlags = ["-target-cpu", targetCPU]
#else
let cpuFlags: [String] = []
#endif
let optimised: [SwiftSetting] = [
    .unsafeFlags(["-cross-module-optimization"] + cpuFlags, .when(configuration: .release)),
    .unsafeFlags(cpuFlags, .when(configuration: .debug)),
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
        .target(name: "AffectModels", dependencies: ["AffectKernels", "CBLAS"], swiftSettings: optimised),
        .target(name: "AffectMedia", dependencies: ["AffectKernels", "CFFmpeg", "CSndFile"], swiftSettings: optimised),
        .target(name: "AffectPipeline", dependencies: ["AffectKernels", "AffectModels", "AffectMedia"], swiftSettings: optimised),
        .executableTarget(name: "affect", dependencies: [
            "AffectKernels", "AffectModels", "AffectMedia", "AffectPipeline",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: optimised),

        .testTarget(name: "AffectKernelsTests", dependencies: ["AffectKernels"]),
        .testTarget(name: "AffectModelsTests", dependencies: ["AffectModels"]),
        .testTarget(name: "AffectMediaTests", dependencies: ["AffectMedia", "AffectKernels"]),
        .testTarget(name: "AffectPipelineTests", dependencies: ["AffectPipeline", "AffectMedia", "AffectModels"]),
        .testTarget(name: "CLITests", dependencies: ["affect", "AffectKernels", "AffectModels"]),
    ],
    // Swift 5 mode: kernels hand raw pointers to worker threads by design (each writes a disjoint range),
    // which Swift 6's Sendable checking cannot express without wrappers in every loop.
    swiftLanguageModes: [.v5]
)
