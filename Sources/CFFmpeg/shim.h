#include <libavformat/avformat.h>
#include <libavdevice/avdevice.h>
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
