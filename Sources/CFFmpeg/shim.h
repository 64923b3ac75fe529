#include <libavformat/avformat.h>
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
