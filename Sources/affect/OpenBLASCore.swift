import CBLAS
import Foundation

/// Makes OpenBLAS use the kernels the CPU can run when its own detection falls back to a generic core.
///
/// OpenBLAS (a DYNAMIC_ARCH build) picks its kernels from the CPU's family/model numbers when the library
/// loads. Virtual machines that report an unknown model ("Intel(R) Xeon(R) Processor" with AVX-512) get
/// `Prescott`, the SSE3 kernels: sgemm then runs 3–4× below what the cores can do (wav2vec2-base: 81 % of its
/// time in `sgemm_kernel_PRESCOTT`). The choice can only be overridden through `OPENBLAS_CORETYPE` before the
/// library loads, so when OpenBLAS reports a generic core on a CPU whose flags show AVX-512 or AVX2 + FMA, the
/// tool sets `OPENBLAS_CORETYPE` to the matching core (Cooperlake, SkylakeX or Haswell) and re-executes itself
/// once. A value the user sets is always respected; results differ only in rounding.
enum OpenBLASCore {
    static func ensureNativeKernels() {
        #if os(Linux) && arch(x86_64)
        guard getenv("OPENBLAS_CORETYPE") == nil, let name = openblas_get_corename() else { return }
        let core = String(cString: name).lowercased()
        guard ["prescott", "core2", "nehalem", "katmai", "coppermine", "northwood", "banias", "atom"].contains(core),
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let flags = Set(flagsLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
        let target: String
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512_bf16"]) { target = "Cooperlake" }
        else if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl"]) { target = "SkylakeX" }
        else if flags.isSuperset(of: ["avx2", "fma"]) { target = "Haswell" }
        else { return }
        setenv("OPENBLAS_CORETYPE", target, 1)
        // On success execv does not return; on failure we simply carry on with the generic kernels.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        #endif
    }
}
