// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): SwiftPM gives each executable its own entry
// point, so the harnesses call the driver themselves instead of relying on libFuzzer's main().
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));
