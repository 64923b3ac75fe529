#include <libavformat/avformat.h>
#include <libavdevice/version.h>
#include <dlfcn.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libswscale/swscale.h>
#include <libswresample/swresample.h>

// FFmpeg's error macros are function-like and do not import into Swift.
static inline int affect_averror(int e) { return -e; }
static inline int affect_averror_eof(void) { return AVERROR_EOF; }
static inline int affect_averror_eagain(void) { return AVERROR(EAGAIN); }

// A stop flag shared between a thread that sets it and FFmpeg's interrupt callback that polls it.
static inline int affect_flag_load(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void affect_flag_store(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

// FFmpeg's capture devices (cameras), registered the first time one is opened, with libavdevice loaded then:
// linked, it and the 70-odd libraries it needs (X11, SDL, PulseAudio, JACK, …) were loaded and relocated at
// every start of the program, about 40 ms of a 130 ms start. Returns 0 if the library cannot be loaded.
static inline int affect_register_capture_devices(void) {
    void *library = dlopen("libavdevice.so." AV_STRINGIFY(LIBAVDEVICE_VERSION_MAJOR), RTLD_NOW | RTLD_GLOBAL);
    if (!library) return 0;
    void (*register_all)(void) = (void (*)(void))dlsym(library, "avdevice_register_all");
    if (!register_all) return 0;
    register_all();
    return 1;
}
