// memhog: keeps one core streaming through memory, for `Tools/bench_peers.py --memory-pressure`.
//
// A benchmark on one core of an idle 2-core VM has the L3 and the memory bandwidth to itself; a worker on a
// busy server (or a VM whose neighbours are busy) does not. This loop, pinned to another core, reads and
// writes two buffers far larger than any L3 (256 MB each by default), so the timed process finds its weights
// and activations evicted from L3 and shares the memory controller: the engine that depends on the cache more
// slows down more. It never exits on its own; the benchmark kills it.
//
//   cc -O2 -o memhog Tools/memhog/memhog.c && taskset -c 1 ./memhog [MB]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long mb = argc > 1 ? atol(argv[1]) : 256;
    if (mb < 1 || mb > 65536) {
        fprintf(stderr, "memhog: buffer size %s MB is outside 1 to 65536\n", argv[1]);
        return 2;
    }
    size_t bytes = (size_t)mb << 20, n = bytes / sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes);
    if (!a || !b) {
        fprintf(stderr, "memhog: cannot allocate 2 x %ld MB\n", mb);
        return 2;
    }
    memset(a, 0, bytes);
    memset(b, 0, bytes);
    volatile float sink = 0;
    for (;;) {
        for (size_t i = 0; i < n; i++) a[i] = a[i] * 0.5f + b[i];
        sink += a[n / 2];
    }
}
