"""`--avx2-only` for the benchmark scripts: every child process sees a CPU without AVX-512, AMX or AVX-VNNI.

Builds `Tools/avx2only/avx2only.c` (CPUID faulting; see that file) and puts it in this process's environment, so
every child started afterwards (ours, ONNX Runtime, PyTorch, OpenCV, NumPy) runs its AVX2 + FMA code.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASKED = [False]


def mask_avx512():
    """Preloads the library into every later child (LD_PRELOAD), with glibc's string functions limited to AVX2 too,
    OpenBLAS told its kernel set (its constructor runs before the preloaded one's when it is linked, as in
    `affect`) and the Swift runtime's backtracer (a SIGSEGV handler of its own) off. Exits unless PyTorch then
    reports AVX2 as its CPU capability."""
    so = os.path.join(tempfile.mkdtemp(), "avx2only.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", so, os.path.join(HERE, "avx2only", "avx2only.c")],
                   check=True)
    os.environ["LD_PRELOAD"] = so
    os.environ["GLIBC_TUNABLES"] = "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ"
    os.environ["SWIFT_BACKTRACE"] = "enable=no"
    os.environ["OPENBLAS_CORETYPE"] = "Haswell"
    seen = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    if seen != "AVX2":
        sys.exit(f"--avx2-only: PyTorch still sees {seen!r}, not AVX2")
    MASKED[0] = True
