// swift-tools-version:6.0
import PackageDescription

// Kernels need -Ounchecked-free code that still vectorises: we build release with -O (bounds checks stay on in
// the safe APIs, the hot loops use unsafe pointers) and enable cross-module optimisation so small kernel
// helpers inline into the models. See README "Build settings".
//
// The SIMD16 kernels need FMA and wide vectors: without a target CPU, x86-64 code generation assumes SSE2,
// splits every SIMD16 operation into four and turns `addingProduct` into libm `fmaf` calls. As llama.cpp does,
// the default is the building machine's own CPU (`native`); `AFFECT_TARGET_CPU=haswell` (AVX2 + FMA) builds
// a binary for any x86-64 server since 2013. When the target has AVX-512, `AFFECT_AVX512` selects the GEMM
// micro-kernel tile that fills its 32 vector registers (Ops/PackedGEMM.swift).
import Foundation
let targetCPU = ProcessInfo.processInfo.environment["AFFECT_TARGET_CPU"] ?? "native"
let avx512CPUs: Set<String> = ["skylake-avx512", "cascadelake", "cooperlake", "icelake-server", "icelake-client",
                               "tigerlake", "sapphirerapids", "emeraldrapids", "graniterapids", "znver4", "znver5",
                               "x86-64-v4"]
func hostHasAVX512() -> Bool {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
    return flags.split(separator: " ").contains("avx512f")
}
let avx512 = targetCPU == "native" ? hostHasAVX512() : avx512CPUs.contains(targetCPU)
#if arch(x86_64)
let cpuFlags = ["-target-cpu", targetCPU]
let cpuDefines: [SwiftSetting] = avx512 ? [.define("AFFECT_AVX512")] : []
// The int8 kernels choose AVX2 or AVX-512 VNNI at run time; a build for an AVX2 target keeps to AVX2.
let int8Defines: [CSetting] = avx512 ? [] : [.define("AFFECT_INT8_NO_VNNI")]
#else
let cpuFlags: [String] = []
let cpuDefines: [SwiftSetting] = []
let int8Defines: [CSetting] = []
#endif
// `AFFECT_PACKAGE_SUBSET=kernels` keeps only the kernels, the models and their tests: scripts/test.sh builds that
// subset a second time for AVX2 on AVX-512 hosts without rebuilding the media, CLI and server layers.
let kernelsOnly = ProcessInfo.processInfo.environment["AFFECT_PACKAGE_SUBSET"] == "kernels"
let kernelTargets: Set<String> = ["CBLAS", "CAffectInt8", "AffectKernels", "AffectModels", "AffectTestSupport", "AffectKernelsTests",
                                   "AffectModelsTests"]

let optimised: [SwiftSetting] = [
    .unsafeFlags(["-cross-module-optimization"] + cpuFlags, .when(configuration: .release)),
    .unsafeFlags(cpuFlags, .when(configuration: .debug)),
] + cpuDefines

let targets: [Target] = [
    // System libraries (module maps only).
    .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                   providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CFFmpeg", path: "Sources/CFFmpeg", pkgConfig: "libavformat",
                   providers: [.apt(["libavformat-dev", "libavdevice-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev", "libswresample-dev"])]),
    .systemLibrary(name: "CSndFile", path: "Sources/CSndFile", pkgConfig: "sndfile",
                   providers: [.apt(["libsndfile1-dev"])]),
    // libjpeg-turbo, as PIL and OpenCV decode JPEG (libjpeg-dev pulls libjpeg62-turbo-dev on Debian,
    // libjpeg-turbo8-dev on Ubuntu).
    .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", pkgConfig: "libjpeg",
                   providers: [.apt(["libjpeg-dev"])]),
    // libhdf5 for Keras `.h5` sources (Debian's serial build: `hdf5` pkg-config file, headers in
    // /usr/include/hdf5/serial). Only AffectConvert links it.
    .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                   providers: [.apt(["libhdf5-dev"])]),

    // The int8 GEMM kernels (`--precision int8`): C, because Swift cannot express vpmaddubsw / vpdpbusd.
    // No FMA contraction: every kernel rounds the dequantisation the same way.
    .target(name: "CAffectInt8", path: "Sources/CAffectInt8",
            cSettings: int8Defines + [.unsafeFlags(["-ffp-contract=off"])]),

    // Layers, lowest first: kernels < models < media < pipeline < CLI.
    // Swift 5 language mode for the kernels only: they hand raw pointers to worker threads by design (each
    // writes a disjoint range), which Swift 6's Sendable checking cannot express without wrappers in every loop.
    .target(name: "AffectKernels", dependencies: ["CBLAS", "CAffectInt8"], swiftSettings: optimised + [.swiftLanguageMode(.v5)]),
    .target(name: "AffectModels", dependencies: ["AffectKernels", "CBLAS"], swiftSettings: optimised),
    // Built for testing in release too: its tests drive the demuxer and the JPEG colour conversion directly.
    .target(name: "AffectMedia", dependencies: ["AffectKernels", "CFFmpeg", "CSndFile", "CJPEG"],
            swiftSettings: optimised + [.unsafeFlags(["-enable-testing"])]),
    .target(name: "AffectPipeline", dependencies: ["AffectKernels", "AffectModels", "AffectMedia"], swiftSettings: optimised),
    // Training heads on extracted features (`affect fit`): GEMM forward/backward passes, Adam, the losses.
    .target(name: "AffectTraining", dependencies: ["AffectKernels", "AffectModels", "CBLAS"], swiftSettings: optimised),
    // Checkpoint converters (beside the layers: they read source formats, never run a model).
    // Built for testing in release too: its tests reach the parsers' internals (the protobuf reader, the
    // unpickler), and the converters are not on any hot path.
    .target(name: "AffectConvert", dependencies: ["AffectKernels", "CHDF5", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            swiftSettings: [.unsafeFlags(["-enable-testing"])]),
    // `affect serve` as a library: routes, job store, bounded compute queue (above the pipeline).
    .target(name: "AffectServer", dependencies: [
        "AffectKernels", "AffectModels", "AffectMedia", "AffectPipeline",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdCore", package: "hummingbird"),
        .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    ]),
    .executableTarget(name: "affect", dependencies: [
        "AffectKernels", "AffectModels", "AffectMedia", "AffectPipeline", "AffectConvert", "AffectServer", "AffectTraining",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ], swiftSettings: optimised),

    // The tests' scratch directory (one per test process, removed at exit); no library depends on it.
    .target(name: "AffectTestSupport", path: "Tests/AffectTestSupport"),
    .testTarget(name: "AffectKernelsTests", dependencies: ["AffectKernels", "AffectTestSupport"]),
    .testTarget(name: "AffectModelsTests", dependencies: ["AffectModels", "AffectTestSupport"]),
    .testTarget(name: "AffectMediaTests", dependencies: ["AffectMedia", "AffectKernels", "AffectTestSupport"]),
    .testTarget(name: "AffectPipelineTests", dependencies: ["AffectPipeline", "AffectMedia", "AffectModels", "AffectTestSupport"]),
    .testTarget(name: "AffectConvertTests", dependencies: ["AffectConvert", "AffectKernels", "AffectModels", "AffectTestSupport"]),
    .testTarget(name: "AffectServerTests", dependencies: ["AffectServer", "AffectPipeline", "AffectMedia", "AffectModels", "AffectKernels", "affect", "AffectTestSupport"]),
    .testTarget(name: "AffectTrainingTests", dependencies: ["AffectTraining", "AffectKernels", "AffectModels", "AffectTestSupport"]),
    .testTarget(name: "CLITests", dependencies: ["affect", "AffectKernels", "AffectModels", "AffectTestSupport"]),
]

let package = Package(
    name: "Affect",
    platforms: [.macOS(.v14)],
    products: kernelsOnly ? [] : [
        .library(name: "Affect", targets: ["AffectKernels", "AffectModels", "AffectMedia", "AffectPipeline", "AffectConvert", "AffectTraining"]),
        .executable(name: "affect", targets: ["affect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        // `affect serve` (AffectServer): HTTP/1.1 and WebSocket on SwiftNIO.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.0.0"),
        // Already in Hummingbird's graph; named because AffectServer imports them directly.
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: kernelsOnly ? targets.filter { kernelTargets.contains($0.name) } : targets,
    // Swift 6 language mode (full data-race checking) everywhere but AffectKernels (see its target).
    swiftLanguageModes: [.v6]
)
