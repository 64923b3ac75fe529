// An AVX2-only x86-64 CPU, as far as the cpuid instruction can tell, for benchmarks on an AVX-512 host.
//
//   cc -O2 -shared -fPIC -o avx2only.so Tools/avx2only/avx2only.c
//   LD_PRELOAD=$PWD/avx2only.so GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F SWIFT_BACKTRACE=enable=no CMD ...
//
// Libraries choose their kernels by executing `cpuid` (ONNX Runtime's MLAS and cpuinfo, PyTorch's oneDNN and
// MKL, OpenBLAS's DYNAMIC_ARCH, NumPy). Linux can make `cpuid` fault for one process (arch_prctl
// ARCH_SET_CPUID, needs the `cpuid_fault` CPU flag, which KVM guests have); this library turns that on before
// `main` and answers each faulting `cpuid` from a SIGSEGV handler with the real values minus AVX-512, AMX and
// AVX-VNNI. The setting is inherited by threads and reset by execve (LD_PRELOAD carries it into children).
// What runs is then the AVX2 + FMA code every engine ships for CPUs such as AMD Zen 3, on this host's cores:
// an instruction-set comparison, not a measurement of such a CPU's microarchitecture.
//
// Bench-only tooling (Tools/bench_peers.py --avx2-only); never linked into Affect.
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction previous;

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, (unsigned long)enabled); }

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

// Clears what an AVX2-only CPU (Zen 3, Haswell … Comet Lake) does not report.
static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    if (leaf == 7 && sub == 0) {
        // EBX: AVX512F, DQ, IFMA, PF, ER, CD, BW, VL.
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) |
                  (1u << 31));
        // ECX: AVX512_VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ.
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        // EDX: AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, AVX512_FP16, AMX-TILE, AMX-INT8.
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~((1u << 4) | (1u << 5));  // AVX-VNNI, AVX512_BF16
    } else if (leaf == 0xD && sub == 0) {
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));  // opmask, ZMM, AMX tile state
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *g = uc->uc_mcontext.gregs;
    const uint8_t *ip = (const uint8_t *)g[REG_RIP];
    if (ip[0] == 0x0F && ip[1] == 0xA2) {
        uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], r[4];
        set_cpuid(1);
        real_cpuid(leaf, sub, r);
        set_cpuid(0);
        mask(leaf, sub, r);
        g[REG_RAX] = r[0];
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        return;
    }
    // A real fault: hand it to whoever handled SIGSEGV before us, or die of it.
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
        previous.sa_sigaction(sig, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL);
    }
}

__attribute__((constructor)) static void avx2only_init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous) != 0 || set_cpuid(0) != 0) {
        fputs("avx2only: cannot make cpuid fault here (no cpuid_fault CPU flag?)\n", stderr);
        _exit(2);
    }
}
