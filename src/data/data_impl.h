/* data_impl: internals shared by data.c, source.c, npy.c, idx.c, synth.c and
 * their tests.
 *
 * The readers here are the pieces imx_data_load assembles: header readers run on
 * one rank (rank 0) and their result is broadcast as plain bytes; row readers run
 * on every rank and fetch only that rank's rows. None of them agrees on errors:
 * the caller (data.c) does, at each phase boundary.
 */
#ifndef IMX_DATA_IMPL_H
#define IMX_DATA_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "imx/config.h"
#include "imx/ctx.h"
#include "imx/data.h"

/* ---- the sources (a row of imx_sources points to its ops) ---- */

/* Largest parsed header of a file format (bytes). */
#define IMX_SOURCE_HEADER_MAX 256

/* How a source loads. A generator sets generate; a file format sets the
 * rest, which the file loader of data.c calls in its phases (rank 0 reads the
 * headers, they are broadcast, every rank reads its rows). */
struct imx_source_ops {
  /* Generators: check cfg->data, lay out d (imx_data_layout) and make this
   * rank's rows. Collective, agreed. */
  imx_err (*generate)(imx_ctx *ctx, const imx_config *cfg, imx_data *d);
  /* Files (a parsed header is at most IMX_SOURCE_HEADER_MAX bytes).
   * Rank 0: the header of data.path into hx and, if data.labels is set, of
   * the labels into hy, checked against each other. Local. */
  imx_err (*read_headers)(imx_ctx *ctx, const imx_config *cfg, void *hx, void *hy);
  /* Rows and values per row of a file with header h. Local. */
  void (*shape)(const void *h, int64_t *rows, int64_t *cols);
  /* This rank's rows [row0, row0 + nrows) as raw items into out, which has
   * room for nrows*cols doubles. Local. */
  imx_err (*read_rows)(imx_ctx *ctx, const char *path, const void *h, int64_t row0, int64_t nrows,
                       void *out);
  /* The count raw items at the start of buf into count doubles, times scale,
   * in place. Local. */
  void (*to_double)(const void *h, void *buf, size_t count, double scale);
};

extern const imx_source_ops imx_npy_source;   /* npy.c */
extern const imx_source_ops imx_idx_source;   /* idx.c */
extern const imx_source_ops imx_synth_source; /* synth.c: synthetic-ica and gmm */

/* ---- data.c: the phases every loader shares ---- */

/* Check the global shape (N x n), take this rank's shard of d and allocate
 * d->X with room for nloc*n doubles; what names the data in messages.
 * Collective, agreed. */
imx_err imx_data_layout(imx_ctx *ctx, const imx_config *cfg, imx_data *d, int64_t N, int64_t n,
                        const char *what);
/* data.scale must be finite and nonzero. Local, the same on every rank. */
imx_err imx_data_check_scale(imx_ctx *ctx, double scale);
/* x[0 .. count) *= s (nothing for s = 1). Local. */
void imx_data_scale(double *x, size_t count, double s);
/* Every value of d->X finite; the first bad one in global order is reported.
 * Collective, agreed. */
imx_err imx_data_check_finite(imx_ctx *ctx, const imx_data *d, const char *what);

/* ---- npy.c ---- */

/* Read and check the header of a .npy file. Local (called on rank 0).
 *   path (in): the file, also named in messages.
 *   h (out): the parsed header; the file size has been checked to be exactly
 *     data_offset + rows*cols*itemsize.
 * Errors: IMX_ERR_IO (cannot open or read, with strerror), IMX_ERR_DATA (bad
 * header, truncated or over-long file). */
imx_err imx_npy_read_header(imx_ctx *ctx, const char *path, imx_npy_header *h);

/* Read this rank's rows of a .npy file with independent MPI-IO reads. Local:
 * every rank opens the file on its own (MPI_COMM_SELF), so a rank that cannot
 * open it fails alone and the caller's imx_agree reports it, where a
 * collective open could leave the other ranks waiting.
 *   path (in), h (in, global): the file and its header from imx_npy_read_header.
 *   row0, nrows (in, local): the global rows [row0, row0 + nrows) to read.
 *   out (out, local): nrows*cols*itemsize bytes, the raw little-endian items
 *     as on disk (convert with imx_npy_to_double); caller-owned.
 * Errors: IMX_ERR_IO (open or read failed), IMX_ERR_DATA (short read). */
imx_err imx_npy_read_rows(imx_ctx *ctx, const char *path, const imx_npy_header *h, int64_t row0,
                          int64_t nrows, void *out);

/* Convert raw .npy items to doubles in place. Local.
 *   descr (in): "<f8", "<f4", "<i4", "<i8" or "|u1".
 *   buf (in/out): count items at its start on entry, count doubles on exit;
 *     it must have room for count doubles. */
void imx_npy_to_double(const char *descr, void *buf, size_t count);

/* The bytes before the data of a version 1.0 .npy file holding a C-order
 * array of dtype descr ("<f8", "<i4") and shape (rows,) (ndim 1) or (rows,
 * cols), padded so the data start at a multiple of 64 bytes, into head;
 * returns their count. Local. */
#define IMX_NPY_HEADER_MAX 256
int imx_npy_header_bytes(const char *descr, int ndim, int64_t rows, int64_t cols,
                         unsigned char head[IMX_NPY_HEADER_MAX]);

/* ---- idx.c ---- */

/* IDX (MNIST) header. */
typedef struct imx_idx_header {
  int type;            /* type byte: 0x08 = unsigned byte (the only one supported) */
  int ndim;            /* 1 (labels), 2 or 3 (images) */
  int64_t dims[3];     /* big-endian uint32 dimensions */
  int64_t N;           /* dims[0] */
  int64_t n;           /* product of the other dims (1 for labels) */
  int64_t data_offset; /* 4 + 4*ndim */
  int gz;              /* 1 if the file is gzip'd (1f 8b magic) */
} imx_idx_header;

/* Read and check the header of an IDX file, gzip'd or not. Local (called on
 * rank 0).
 *   path (in): the file, also named in messages.
 *   h (out): the header; for uncompressed files the file size has been checked
 *     against the dimensions.
 * Errors: IMX_ERR_IO (cannot open or read), IMX_ERR_DATA (bad magic, type byte
 * other than 0x08, ndim, size, corrupt gzip header). */
imx_err imx_idx_read_header(imx_ctx *ctx, const char *path, imx_idx_header *h);

/* Read this rank's rows of an IDX file. Local. Gzip'd files are streamed
 * from the start, discarding the rows before row0 (gzip has no random access);
 * plain files are read with one pread.
 *   path (in), h (in, global): the file and its header from imx_idx_read_header.
 *   row0, nrows (in, local): the global rows [row0, row0 + nrows) to read.
 *   out (out, local): nrows*n bytes, caller-owned.
 * Errors: IMX_ERR_IO, IMX_ERR_DATA (premature end of data; data after the
 * last row, checked by the rank that holds it; corrupt gzip stream). */
imx_err imx_idx_read_rows(imx_ctx *ctx, const char *path, const imx_idx_header *h, int64_t row0,
                          int64_t nrows, unsigned char *out);

/* ---- synth.c ---- */

/* RNG streams of the generators: one per purpose, so that no two draws share
 * a counter. */
enum {
  IMX_STREAM_ICA_SOURCES = 101,
  IMX_STREAM_ICA_Q1 = 102,
  IMX_STREAM_ICA_Q2 = 103,
  IMX_STREAM_GMM_MEANS = 201,
  IMX_STREAM_GMM_COMPONENT = 202,
  IMX_STREAM_GMM_NOISE = 203
};

/* The ICA mixing matrix A = Q1 diag(sv) Q2^T, Q1 and Q2 random orthogonal, sv
 * log-spaced in [1, 3]. Local; the same bits on every rank.
 *   n, seed (in, global): size and generator seed.
 *   A (out, global): n x n, row-major, caller-owned.
 * Returns 0, or -1 if scratch memory ran out. */
int imx_synth_ica_mixing(int n, uint64_t seed, double *A);

/* Rows of x = A s with s Laplace, unit variance. Local; a value depends only
 * on (seed, global row, column).
 *   n, seed, A (in, global): as for imx_synth_ica_mixing.
 *   row0, nrows (in, local): the global rows to generate.
 *   X (out, local): nrows x n, row-major, caller-owned.
 * Returns 0, or -1 if scratch memory ran out. */
int imx_synth_ica_rows(int n, uint64_t seed, const double *A, int64_t row0, int64_t nrows,
                       double *X);

/* The gmm means: N(0, I) draws scaled by separation/sqrt(2n), so that the
 * typical distance between two means is `separation`. Local.
 *   n, components, separation, seed (in, global).
 *   means (out, global): components x n, row-major, caller-owned. */
void imx_synth_gmm_means(int n, int components, double separation, uint64_t seed, double *means);

/* Rows of the mixture: component c uniform, x = mean_c + N(0, I). Local; a
 * row depends only on (seed, global row).
 *   n, components, means, seed (in, global): as for imx_synth_gmm_means.
 *   row0, nrows (in, local): the global rows to generate.
 *   X (out, local): nrows x n; labels (out, local, may be NULL): nrows
 *     component indices. Both caller-owned. */
void imx_synth_gmm_rows(int n, int components, const double *means, uint64_t seed, int64_t row0,
                        int64_t nrows, double *X, int32_t *labels);

#endif
