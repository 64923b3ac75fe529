// libjpeg(-turbo) for Swift. libjpeg reports fatal errors through error_exit, which must not return: the
// usual answer is setjmp/longjmp, and longjmp must never cross a Swift frame. So each entry point below is one
// C function that calls setjmp and then every libjpeg routine itself; the jump lands in the same frame and
// only C frames (libjpeg's) are unwound. Swift sees plain functions that return 0 or an error message.
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

/// Scans beyond this are refused: a progressive file of tiny scans would otherwise make every scan walk the
/// whole coefficient buffer (minutes of work from a small file). Real encoders write about ten; 500 is the
/// limit libjpeg-turbo's own tools recommend against such files.
#define AFFECT_JPEG_MAX_SCANS 500

typedef struct {
    struct jpeg_error_mgr pub;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} affect_jpeg_errors;

static inline void affect_jpeg_error_exit(j_common_ptr cinfo) {
    affect_jpeg_errors *e = (affect_jpeg_errors *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

/// Warnings that mean the entropy-coded data is damaged (the rest of the picture would be grey or garbage)
/// are errors; the others (unknown JFIF revision, extraneous bytes between markers, bad ICC marker) are
/// ignored, as by PIL.
static inline void affect_jpeg_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC || code == JWRN_HUFF_BAD_CODE ||
        code == JWRN_ARITH_BAD_CODE || code == JWRN_NOT_SEQUENTIAL || code == JWRN_BOGUS_PROGRESSION) {
        affect_jpeg_error_exit(cinfo);
    }
    cinfo->err->num_warnings++;
}

static inline void affect_jpeg_progress(j_common_ptr cinfo) {
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > AFFECT_JPEG_MAX_SCANS) {
        affect_jpeg_errors *e = (affect_jpeg_errors *)cinfo->err;
        snprintf(e->message, sizeof e->message, "more than %d scans", AFFECT_JPEG_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

/// What the header says. `components` is 1 (grey), 3 (RGB) or 4 (CMYK, with YCCK converted to CMYK).
typedef struct {
    int width, height, components;
} affect_jpeg_header;

static inline void affect_jpeg_setup(struct jpeg_decompress_struct *cinfo, affect_jpeg_errors *e) {
    // Zeroed so that jpeg_destroy_decompress is safe even if creation itself fails.
    memset(cinfo, 0, sizeof *cinfo);
    memset(e, 0, sizeof *e);
    cinfo->err = jpeg_std_error(&e->pub);
    e->pub.error_exit = affect_jpeg_error_exit;
    e->pub.emit_message = affect_jpeg_emit_message;
}

/// Reads the header and chooses the output colour space as PIL does: grey stays grey, 3 components become
/// RGB, 4 become CMYK. Fails on anything but 8-bit samples (PIL too: "cannot handle 12-bit layers").
static inline void affect_jpeg_read_header(struct jpeg_decompress_struct *cinfo, affect_jpeg_header *h) {
    jpeg_read_header(cinfo, TRUE);
    switch (cinfo->num_components) {
    case 1: cinfo->out_color_space = JCS_GRAYSCALE; h->components = 1; break;
    case 3: cinfo->out_color_space = JCS_RGB; h->components = 3; break;
    case 4: cinfo->out_color_space = JCS_CMYK; h->components = 4; break;
    default: ERREXIT1(cinfo, JERR_BAD_J_COLORSPACE, cinfo->jpeg_color_space);
    }
    if (cinfo->data_precision != 8) ERREXIT1(cinfo, JERR_BAD_PRECISION, cinfo->data_precision);
    h->width = (int)cinfo->image_width;
    h->height = (int)cinfo->image_height;
}

/// Fills `header` from `file`'s JPEG header without decoding pixels. Returns 0, or 1 with `message` set.
static inline int affect_jpeg_info(FILE *file, affect_jpeg_header *header, char *message, size_t size) {
    struct jpeg_decompress_struct cinfo;
    affect_jpeg_errors e;
    affect_jpeg_setup(&cinfo, &e);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&cinfo);
        snprintf(message, size, "%s", e.message);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, file);
    affect_jpeg_read_header(&cinfo, header);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

/// Decodes `file` into `pixels`, rows of `expected.width × expected.components` bytes, with libjpeg's
/// defaults as PIL leaves them (ISLOW integer DCT, fancy upsampling). The header must still say `expected`
/// (the file could have changed since `affect_jpeg_info`), else nothing is written. Returns 0, or 1 with
/// `message` set.
static inline int affect_jpeg_decode(FILE *file, affect_jpeg_header expected, unsigned char *pixels,
                                     char *message, size_t size) {
    struct jpeg_decompress_struct cinfo;
    affect_jpeg_errors e;
    affect_jpeg_setup(&cinfo, &e);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&cinfo);
        snprintf(message, size, "%s", e.message);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    e.progress.progress_monitor = affect_jpeg_progress;
    cinfo.progress = &e.progress;
    jpeg_stdio_src(&cinfo, file);
    affect_jpeg_header h;
    affect_jpeg_read_header(&cinfo, &h);
    if (h.width != expected.width || h.height != expected.height || h.components != expected.components) {
        snprintf(e.message, sizeof e.message, "the file changed while it was read");
        longjmp(e.jump, 1);
    }
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)h.width * (size_t)h.components;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
