"""pytest tests of Tools/avx2only/avx2only.c, the `--avx2-only` mask of the benchmark scripts.

    Tools/.venv/bin/python -m pytest Tools/tests/test_avx2only.py     # development only, not part of CI

Needs an x86-64 Linux host with the `cpuid_fault` flag and AVX-512 to mask (what the mask is for); elsewhere the
tests are skipped with the reason.
"""
import os
import signal
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "avx2only", "avx2only.c")

PROBE = r"""
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
static void *leaf7(void *out) {
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    *(unsigned *)out = b;
    return NULL;
}
int main(int argc, char **argv) {
    if (argc > 1) { volatile int *p = NULL; return *p; }   // a real fault must still kill the process
    unsigned main_b, thread_b, a, b1, c1, d1;
    leaf7(&main_b);
    pthread_t t;
    pthread_create(&t, NULL, leaf7, &thread_b);
    pthread_join(t, NULL);
    __cpuid(1, a, b1, c1, d1);
    printf("%u %u %u %u %u\n", (main_b >> 16) & 1, (thread_b >> 16) & 1, (main_b >> 5) & 1, (c1 >> 12) & 1,
           (main_b >> 31) & 1);
    return 0;
}
"""


def host_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(line.split(":", 1)[1].split() for line in f if line.startswith("flags")))
    except (OSError, StopIteration):
        return set()


FLAGS = host_flags()
pytestmark = pytest.mark.skipif(not {"cpuid_fault", "avx512f", "avx2"} <= FLAGS,
                                reason="needs cpuid_fault, AVX2 and AVX-512 on the host")


@pytest.fixture(scope="module")
def built():
    d = tempfile.mkdtemp()
    so, probe = os.path.join(d, "avx2only.so"), os.path.join(d, "probe")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", so, SOURCE], check=True)
    with open(probe + ".c", "w") as f:
        f.write(PROBE)
    subprocess.run(["cc", "-O2", "-pthread", "-o", probe, probe + ".c"], check=True)
    return so, probe


def run(probe, so, *args):
    env = dict(os.environ, **({"LD_PRELOAD": so} if so else {}))
    return subprocess.run([probe, *args], env=env, capture_output=True, text=True, timeout=30)


def test_masks_avx512_in_every_thread_and_keeps_avx2_and_fma(built):
    so, probe = built
    assert run(probe, None).stdout.split() == ["1", "1", "1", "1", "1"]  # unmasked: AVX-512F, AVX2, FMA, AVX-512VL
    # masked: no AVX-512F in the main thread or a new one, AVX2 and FMA kept, AVX-512VL gone
    assert run(probe, so).stdout.split() == ["0", "0", "1", "1", "0"]


def test_a_real_segfault_still_kills_the_process(built):
    so, probe = built
    p = run(probe, so, "crash")
    assert p.returncode == -signal.SIGSEGV
