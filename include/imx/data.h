/* data: the row-sharded data set.
 *
 * Rows are grouped into blocks of B consecutive global rows (B = parallel.block;
 * the last block may be shorter). Rank p owns the whole blocks
 * [nb*p/P, nb*(p+1)/P) of the nb = ceil(N/B) blocks, i.e. a contiguous range of
 * global rows. Every source produces the same global data for any P.
 */
#ifndef IMX_DATA_H
#define IMX_DATA_H

#include <stdint.h>

#include "imx/ctx.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* data.source: where the samples come from, one row of imx_sources each. */
typedef enum {
  IMX_SRC_SYNTHETIC_ICA = 0,
  IMX_SRC_GMM,
  IMX_SRC_NPY,
  IMX_SRC_IDX,
  IMX_SRC_HDF5
} imx_source;

/* How a source loads: the generator, or a file format's header and row
 * readers (src/data/data_impl.h). */
typedef struct imx_source_ops imx_source_ops;

/* One data source. A new format is one row of imx_sources (src/data/source.c)
 * and a file of its own with its ops. */
typedef struct imx_source_row {
  const char *name;   /* the value of data.source (first: the config key table reads it) */
  int file;           /* 1: reads data.path (and data.labels); 0: a generator of data.dim columns */
  const char *suffix; /* files: the path endings that name this format, separated by spaces
                         (a path names it when it ends in one, or has one right before a ':'
                         that starts a place inside the file); NULL: the format of paths no
                         suffix names */
  const imx_source_ops *ops; /* how it loads */
} imx_source_row;

/* Every source, indexed by imx_source, ended by a row whose name is NULL. */
extern const imx_source_row imx_sources[];

/* The name of a source, or "?" outside the table. Local. */
const char *imx_source_name(imx_source s);

/* The file source that reads path, by its ending (see imx_source_row.suffix):
 * "x.npy" is npy, "x.h5" and "x.h5:/images" are hdf5, "train-images-idx3-ubyte"
 * is idx (the format no suffix names). Local. */
imx_source imx_source_of_path(const char *path);

typedef struct imx_data {
  int64_t N;       /* global rows */
  int n;           /* columns (features) */
  int block;       /* B */
  int64_t row0;    /* first global row of this rank */
  int64_t nloc;    /* rows on this rank */
  double *X;       /* nloc x n, row-major (C order), owned */
  int32_t *labels; /* nloc labels or NULL, owned */
  int nclasses;    /* 1 + max label, 0 if no labels */
  double *truth; /* synthetic-ica: n x n mixing matrix A (x = A s), replicated, owned; else NULL */
  double *means; /* gmm: components x n true means, replicated, owned; else NULL */
} imx_data;

/* Loaded data, after data.scale: each column's largest magnitude must be 0 or
 * within [IMX_DATA_MIN_ABS, IMX_DATA_MAX_ABS] (the range the reproducible sums
 * resolve exactly), and labels must be integers in [0, IMX_DATA_MAX_LABEL]. */
#define IMX_DATA_MAX_ABS 1e100
#define IMX_DATA_MIN_ABS 1e-100
#define IMX_DATA_MAX_LABEL 65535

/* Rows a generator makes when data.samples is 0. */
#define IMX_SYNTH_DEFAULT_SAMPLES 10000

/* The shard of rank `rank` of `size`: first row and row count. Local. */
void imx_shard(int64_t N, int block, int rank, int size, int64_t *row0, int64_t *nloc);

/* Load (or generate) the data of cfg->data on every rank: each rank reads or
 * generates only its rows. Errors (missing file, bad header, N < blocks...)
 * are agreed: all ranks return the same code. Collective. Free with imx_data_free. */
imx_err imx_data_load(imx_ctx *ctx, const imx_config *cfg, imx_data **out);
void imx_data_free(imx_data **d);

/* A fingerprint of the rows (and labels) of d, the same for any number of
 * ranks: a sum mod 2^64 of per-row hashes of the global row index, the bits of
 * the row and its label. Collective. */
imx_err imx_data_fingerprint(imx_ctx *ctx, const imx_data *d, uint64_t *fp);

/* ---- File formats (used by imx_data_load and by the writers of results) ---- */

/* .npy header: dtype '<f8', '<f4' (or '<i4'/'<i8'/'|u1' for label vectors), C order, 1-D or 2-D. */
typedef struct imx_npy_header {
  char descr[8];       /* "<f8", "<f4", "<i4", "<i8", "|u1" */
  int ndim;            /* 1 or 2 */
  int64_t shape[2];    /* rows, cols (cols = 1 for 1-D) */
  int64_t data_offset; /* byte offset of the first element */
  int itemsize;        /* bytes per element */
} imx_npy_header;

/* Parse a .npy header from the first bytes of a file. `what` names the file in
 * messages. Local. */
imx_err imx_npy_parse(imx_ctx *ctx, const char *what, const unsigned char *buf, size_t len,
                      imx_npy_header *h);

/* Write a 2-D float64 C-order .npy file (rows x cols) from a buffer on this rank
 * atomically (temp file + rename). Local. */
imx_err imx_npy_write(imx_ctx *ctx, const char *path, const double *a, int64_t rows, int64_t cols);

/* Read the whole 2-D .npy file into a new buffer (float32 or float64 on disk,
 * returned as double); rows/cols out. Local. Caller frees *a with free(). */
imx_err imx_npy_read_all(imx_ctx *ctx, const char *path, double **a, int64_t *rows, int64_t *cols);

#endif
