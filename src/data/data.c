/* data: sharding, the phases every loader shares, the file loader and
 * imx_data_load, which takes data.source's row of imx_sources (source.c)
 * (see include/imx/data.h).
 *
 * Every loader follows the same phases, each closed by imx_agree so that all
 * ranks leave with the same status and none waits in a collective that
 * another rank skipped:
 *   1. rank 0 reads and checks the file headers (files only);
 *   2. agree, then broadcast the parsed headers;
 *   3. every rank derives N and n, checks them, takes its shard and allocates;
 *   4. every rank reads or generates only its own rows;
 *   5. conversion to double, data.scale, and the finite check;
 *   6. labels, read the same way, and nclasses from a global maximum.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "data_impl.h"
#include "imx/log.h"

/* nb*p/P without forming nb*p, which may overflow for huge nb. */
static int64_t part(int64_t nb, int p, int P) { return (nb / P) * p + (nb % P) * p / P; }

/* The shard of one rank. Local.
 *   N, block (in, global): rows and rows per block B.
 *   rank, size (in): the rank asked about and the number of ranks.
 *   row0, nloc (out): its first global row and row count; 0, 0 when the
 *     arguments make no shard (N < 1, B < 1, rank out of range).
 * With nb = ceil(N/B) blocks, rank p owns blocks [nb*p/P, nb*(p+1)/P). */
void imx_shard(int64_t N, int block, int rank, int size, int64_t *row0, int64_t *nloc) {
  *row0 = 0;
  *nloc = 0;
  if (N <= 0 || block <= 0 || size <= 0 || rank < 0 || rank >= size) return;
  int64_t nb = (N - 1) / block + 1;
  int64_t b0 = part(nb, rank, size), b1 = part(nb, rank + 1, size);
  int64_t r0 = b0 >= nb ? N : b0 * block;
  int64_t r1 = b1 >= nb ? N : b1 * block;
  *row0 = r0;
  *nloc = r1 - r0;
}

/* Free a data set and everything it owns, and NULL the caller's pointer.
 * Local. Accepts NULL and a pointer to NULL. */
void imx_data_free(imx_data **d) {
  if (!d || !*d) return;
  free((*d)->X);
  free((*d)->labels);
  free((*d)->truth);
  free((*d)->means);
  free(*d);
  *d = NULL;
}

/* Phase 3: check the global shape, take this rank's shard and allocate X with
 * room for nloc*n doubles (which also holds the raw items of any narrower
 * dtype before their conversion). Inputs are the same on every rank, so the
 * checks fail everywhere alike; the allocation is agreed. Collective. */
imx_err imx_data_layout(imx_ctx *ctx, const imx_config *cfg, imx_data *d, int64_t N, int64_t n,
                        const char *what) {
  imx_err err = IMX_OK;
  int B = cfg->parallel.block;
  int64_t nb = B > 0 && N > 0 ? (N - 1) / B + 1 : 0;
  if (B < 1)
    err = imx_fail(ctx, IMX_ERR_CONFIG, "parallel.block = %d: need at least 1 row per block", B);
  else if (N < 1) err = imx_fail(ctx, IMX_ERR_DATA, "%s: no rows (N=%lld)", what, (long long)N);
  else if (n < 1 || n > INT_MAX)
    err = imx_fail(ctx, IMX_ERR_DATA, "%s: %lld columns per row (need 1 to %d)", what, (long long)n,
                   INT_MAX);
  else if (nb < ctx->size)
    err = imx_fail(
        ctx, IMX_ERR_DATA,
        "data: N=%lld rows make %lld blocks of B=%d but %d ranks need one block each; lower "
        "parallel.block or use fewer ranks",
        (long long)N, (long long)nb, B, ctx->size);
  if ((err = imx_agree(ctx, err))) return err;

  d->N = N;
  d->n = (int)n;
  d->block = B;
  imx_shard(N, B, ctx->rank, ctx->size, &d->row0, &d->nloc);
  if ((uint64_t)d->nloc > SIZE_MAX / sizeof(double) / (uint64_t)n) {
    err = imx_fail(ctx, IMX_ERR_NOMEM, "%s: shard of %lld x %lld doubles", what, (long long)d->nloc,
                   (long long)n);
  } else {
    d->X = imx_malloc_rows((size_t)d->nloc * (size_t)n * sizeof(double));
    if (!d->X)
      err = imx_fail(ctx, IMX_ERR_NOMEM, "%s: shard of %lld x %lld doubles (%.3g GB)", what,
                     (long long)d->nloc, (long long)n, (double)d->nloc * n * 8e-9);
  }
  imx_log_rank(ctx, IMX_DEBUG, "data: rows %lld..%lld of %lld", (long long)d->row0,
               (long long)(d->row0 + d->nloc - 1), (long long)N);
  return imx_agree(ctx, err);
}

/* data.scale must keep finite data finite and not erase them. Local, the same
 * on every rank. */
imx_err imx_data_check_scale(imx_ctx *ctx, double scale) {
  if (!isfinite(scale) || scale == 0.0)
    return imx_fail(ctx, IMX_ERR_CONFIG, "data.scale = %g: need a finite nonzero factor", scale);
  return IMX_OK;
}

void imx_data_scale(double *x, size_t count, double s) {
  if (s == 1.0) return;
  for (size_t i = 0; i < count; i++) x[i] *= s;
}

/* Agree on a failure that several ranks may see at once, reporting the one
 * with the smallest key (a global position): every rank passes the key of its
 * own first failure (INT64_MAX if none), and only the owner of the global
 * minimum keeps its error, so the message names the first bad item in global
 * order whatever the tie-breaking of imx_agree. Collective. */
static imx_err agree_first(imx_ctx *ctx, imx_err local, int64_t key) {
  int64_t first = key;
  if (MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT64_T, MPI_MIN, ctx->comm) != MPI_SUCCESS)
    return imx_agree(ctx,
                     imx_fail(ctx, IMX_ERR_MPI, "MPI_Allreduce of the first bad position failed"));
  return imx_agree(ctx, local && key == first ? local : IMX_OK);
}

/* Phase 5: every value must be finite; the first bad one in global order is
 * reported. Collective. */
imx_err imx_data_check_finite(imx_ctx *ctx, const imx_data *d, const char *what) {
  imx_err err = IMX_OK;
  int64_t key = INT64_MAX;
  size_t count = (size_t)d->nloc * (size_t)d->n, step = 4096;
  /* A chunk at a time without a branch per item (it vectorizes); the first
   * bad item of the first bad chunk is reported. */
  for (size_t c0 = 0; c0 < count && key == INT64_MAX; c0 += step) {
    size_t c1 = count - c0 < step ? count : c0 + step;
    int bad = 0;
    for (size_t i = c0; i < c1; i++) bad |= !(fabs(d->X[i]) <= DBL_MAX); /* NaN compares false */
    for (size_t i = c0; bad && i < c1; i++)
      if (!isfinite(d->X[i])) {
        key = d->row0 * d->n + (int64_t)i;
        err = imx_fail(ctx, IMX_ERR_DATA,
                       "%s: non-finite value %g at row %lld, column %d (0-based)", what, d->X[i],
                       (long long)(d->row0 + (int64_t)(i / (size_t)d->n)), (int)(i % (size_t)d->n));
        break;
      }
  }
  return agree_first(ctx, err, key);
}

/* Phase 5, after the finite check: every column's largest magnitude must lie
 * in [IMX_DATA_MIN_ABS, IMX_DATA_MAX_ABS] (or be 0). The reproducible sums
 * (include/imx/rsum.h) bound each factor by a power of two in [2^-450, 2^480]:
 * a column beyond 2^480 cannot be summed at all, and below about 2^-400 its
 * products (the variance of a column of 1e-150 values is 1e-300) fall under
 * the finest quantum and sum to 0. Such data are not wrong, only out of
 * scale, so the message names the column, where its largest value is, and the
 * data.scale that brings it into range. Collective. */
static imx_err check_range(imx_ctx *ctx, const imx_data *d, const char *what) {
  int n = d->n;
  double *gmx = malloc((size_t)n * sizeof *gmx);
  imx_err err = gmx ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "%s: column maxima (%d)", what, n);
  if (!(err = imx_agree(ctx, err))) {
    /* (not imx_colmax: the data module, and the fuzzers that link it, stay
     * free of the reductions and their BLAS) */
    for (int j = 0; j < n; j++) gmx[j] = 0;
    /* The items are finite (imx_data_check_finite ran): a plain maximum, which
     * vectorizes, is fmax. */
    for (int64_t i = 0; i < d->nloc; i++)
      for (int j = 0; j < n; j++) {
        double v = fabs(d->X[i * n + j]);
        gmx[j] = v > gmx[j] ? v : gmx[j];
      }
    if (MPI_Allreduce(MPI_IN_PLACE, gmx, n, MPI_DOUBLE, MPI_MAX, ctx->comm) != MPI_SUCCESS)
      err = imx_fail(ctx, IMX_ERR_MPI, "MPI_Allreduce of the column maxima failed");
    err = imx_agree(ctx, err);
  }
  int j = 0; /* the first column out of range, the same on every rank */
  while (!err && j < n && !(gmx[j] > IMX_DATA_MAX_ABS || (gmx[j] > 0 && gmx[j] < IMX_DATA_MIN_ABS)))
    j++;
  if (err || j == n) {
    free(gmx);
    return err;
  }
  int64_t key = INT64_MAX; /* the first row holding the maximum, on the ranks that hold it */
  for (int64_t i = 0; i < d->nloc && key == INT64_MAX; i++)
    if (fabs(d->X[i * n + j]) == gmx[j]) key = d->row0 + i;
  double hint = pow(10, -floor(log10(gmx[j])));
  if (key != INT64_MAX && gmx[j] > IMX_DATA_MAX_ABS)
    err = imx_fail(ctx, IMX_ERR_DATA,
                   "%s: column %d (0-based) reaches %g at row %lld, beyond the largest magnitude "
                   "%g that the program's sums take; scale the data into range, e.g. "
                   "data.scale: %g",
                   what, j, gmx[j], (long long)key, IMX_DATA_MAX_ABS, hint);
  else if (key != INT64_MAX)
    err = imx_fail(ctx, IMX_ERR_DATA,
                   "%s: column %d (0-based) is at most %g in magnitude (at row %lld), below the "
                   "%g that the program's sums resolve (its products would lose bits or sum to "
                   "0); scale the data into range, e.g. data.scale: %g",
                   what, j, gmx[j], (long long)key, IMX_DATA_MIN_ABS, hint);
  free(gmx);
  return agree_first(ctx, err, key);
}

/* Phase 6 tail: labels must be integers in [0, IMX_DATA_MAX_LABEL]; nclasses =
 * 1 + the global maximum. Most classes empty means a stray label (one 200
 * among Fashion-MNIST's 0..9 makes 201 classes): warned, with its row. vals
 * holds nloc labels as doubles. Collective. */
static imx_err set_labels(imx_ctx *ctx, imx_data *d, const double *vals, const char *what) {
  imx_err err = IMX_OK;
  int64_t key = INT64_MAX;
  int mx = -1;
  for (int64_t i = 0; i < d->nloc; i++) {
    double v = vals[i];
    if (!(v >= 0 && v <= IMX_DATA_MAX_LABEL && v == floor(v))) {
      key = d->row0 + i;
      err = imx_fail(ctx, IMX_ERR_DATA,
                     "%s: label %.17g at row %lld is not an integer from 0 to %d (labels are "
                     "class numbers; rows count from 0)",
                     what, v, (long long)(d->row0 + i), IMX_DATA_MAX_LABEL);
      break;
    }
    d->labels[i] = (int32_t)v;
    if (d->labels[i] > mx) mx = d->labels[i];
  }
  if ((err = agree_first(ctx, err, key))) return err;
  if (MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_INT, MPI_MAX, ctx->comm) != MPI_SUCCESS)
    err = imx_fail(ctx, IMX_ERR_MPI, "MPI_Allreduce of the largest label failed");
  d->nclasses = mx + 1;
  if ((err = imx_agree(ctx, err))) return err;
  /* Rows per class, and the first row of the largest label. */
  int64_t *count = calloc((size_t)d->nclasses + 1, sizeof *count), *first = NULL;
  err = imx_agree(ctx, count ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "%s: class counts", what));
  if (err) return err;
  first = count + d->nclasses;
  *first = INT64_MAX;
  for (int64_t i = 0; i < d->nloc; i++) {
    count[d->labels[i]]++;
    if (d->labels[i] == mx && *first == INT64_MAX) *first = d->row0 + i;
  }
  if (MPI_Allreduce(MPI_IN_PLACE, count, d->nclasses, MPI_INT64_T, MPI_SUM, ctx->comm) ||
      MPI_Allreduce(MPI_IN_PLACE, first, 1, MPI_INT64_T, MPI_MIN, ctx->comm))
    err = imx_fail(ctx, IMX_ERR_MPI, "MPI_Allreduce of the class counts failed");
  int empty = 0;
  for (int c = 0; c < d->nclasses; c++) empty += count[c] == 0;
  if (!err && 2 * empty > d->nclasses)
    imx_log(ctx, IMX_WARN,
            "%s: labels 0..%d make %d classes but %d of them have no row; the largest label, "
            "%d, is first at row %lld (0-based): check the labels",
            what, mx, d->nclasses, empty, mx, (long long)*first);
  free(count);
  return imx_agree(ctx, err);
}

/* Broadcast rank 0's parsed headers (plain structs, same binary everywhere). */
static imx_err bcast_bytes(imx_ctx *ctx, void *buf, size_t len) {
  int rc = MPI_Bcast(buf, (int)len, MPI_BYTE, 0, ctx->comm);
  return imx_agree(ctx, IMX_MPI_ERR(ctx, rc, "MPI_Bcast(headers)"));
}

/* N from the file's row count and data.samples (0 = all rows). Local. */
static imx_err take_samples(imx_ctx *ctx, const imx_config *cfg, const char *path, int64_t rows,
                            int64_t *N) {
  *N = rows;
  if (cfg->data.samples < 0)
    return imx_fail(ctx, IMX_ERR_CONFIG, "data.samples = %lld: need 0 (all rows) or a row count",
                    cfg->data.samples);
  if (cfg->data.samples > 0) {
    if (cfg->data.samples > rows)
      return imx_fail(ctx, IMX_ERR_DATA, "%s has %lld rows but data.samples = %lld asks for more",
                      path, (long long)rows, cfg->data.samples);
    *N = cfg->data.samples;
  }
  return IMX_OK;
}

static imx_err need_path(imx_ctx *ctx, const imx_config *cfg) {
  if (cfg->data.path[0] == '\0')
    return imx_fail(ctx, IMX_ERR_CONFIG, "data.path is empty: data.source %s needs a file",
                    imx_source_name(cfg->data.source));
  return IMX_OK;
}

/* ---- files ---- */

/* A parsed header, aligned for any header struct of a format. */
typedef union {
  max_align_t align;
  unsigned char bytes[IMX_SOURCE_HEADER_MAX];
} header_buf;

/* The phases of a file source, through its ops: rank 0 reads the headers
 * (data.path and data.labels), all ranks take them, lay out their shard, read
 * their rows, convert and scale them, then the labels the same way. */
static imx_err load_file(imx_ctx *ctx, const imx_config *cfg, const imx_source_ops *ops,
                         imx_data *d) {
  const char *px = cfg->data.path, *py = cfg->data.labels;
  struct {
    header_buf x, y;
  } h;
  memset(&h, 0, sizeof h);
  imx_err err = need_path(ctx, cfg);
  if (!err) err = imx_data_check_scale(ctx, cfg->data.scale);
  if (!err && ctx->rank == 0) err = ops->read_headers(ctx, cfg, &h.x, &h.y);
  IMX_TRY(imx_agree(ctx, err));
  IMX_TRY(bcast_bytes(ctx, &h, sizeof h));

  int64_t rows, cols, N;
  ops->shape(&h.x, &rows, &cols);
  IMX_TRY(imx_agree(ctx, take_samples(ctx, cfg, px, rows, &N)));
  IMX_TRY(imx_data_layout(ctx, cfg, d, N, cols, px));

  size_t count = (size_t)d->nloc * (size_t)d->n;
  IMX_TRY(imx_agree(ctx, ops->read_rows(ctx, px, &h.x, d->row0, d->nloc, d->X)));
  ops->to_double(&h.x, d->X, count, cfg->data.scale);
  IMX_TRY(imx_data_check_finite(ctx, d, px));
  IMX_TRY(check_range(ctx, d, px));

  if (py[0] == '\0') return IMX_OK;
  /* Raw items first, converted in place to doubles, then checked into int32. */
  double *vals = malloc((size_t)d->nloc * sizeof *vals);
  d->labels = malloc((size_t)d->nloc * sizeof *d->labels);
  err = vals && d->labels ? IMX_OK
                          : imx_fail(ctx, IMX_ERR_NOMEM, "%s: %lld labels", py, (long long)d->nloc);
  /* agreed first: a row reader may be collective (hdf5) */
  if (!(err = imx_agree(ctx, err))) err = ops->read_rows(ctx, py, &h.y, d->row0, d->nloc, vals);
  if (!(err = imx_agree(ctx, err))) {
    ops->to_double(&h.y, vals, (size_t)d->nloc, 1.0);
    err = set_labels(ctx, d, vals, py);
  }
  free(vals);
  return err;
}

/* Load or generate this rank's rows of cfg->data. Collective on ctx->comm.
 *   cfg (in, global): data.* and parallel.block; the same on every rank.
 *   out (out, local): the new data set, owned by the caller, freed with
 *     imx_data_free; NULL on error.
 * Errors, agreed (every rank returns the same code and message): IMX_ERR_IO
 * (missing or unreadable file), IMX_ERR_DATA (bad header, size, non-finite
 * value, bad label, fewer blocks than ranks; HDF5: missing dataset, wrong
 * rank or type), IMX_ERR_CONFIG (empty path, an HDF5 path naming no dataset,
 * bad scale/components/samples), IMX_ERR_NOMEM, IMX_ERR_MPI. */
imx_err imx_data_load(imx_ctx *ctx, const imx_config *cfg, imx_data **out) {
  *out = NULL;
  imx_data *d = calloc(1, sizeof *d);
  imx_err err = d ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "data record");
  if (!(err = imx_agree(ctx, err))) {
    int nsources = 0;
    while (imx_sources[nsources].name) nsources++;
    const imx_source_ops *ops = cfg->data.source >= 0 && (int)cfg->data.source < nsources
                                    ? imx_sources[cfg->data.source].ops
                                    : NULL;
    if (!ops)
      err = imx_agree(ctx, imx_fail(ctx, IMX_ERR_CONFIG, "data.source = %d is not a known source",
                                    (int)cfg->data.source));
    else if (ops->generate) err = ops->generate(ctx, cfg, d);
    else err = load_file(ctx, cfg, ops, d);
  }
  if (err) {
    imx_data_free(&d);
    return err;
  }
  *out = d;
  return IMX_OK;
}

/* A 64-bit mix (splitmix64's finalizer): every input bit moves every output bit. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

imx_err imx_data_fingerprint(imx_ctx *ctx, const imx_data *d, uint64_t *fp) {
  /* Each row's hash depends on its global index, its bits and its label; the
   * sum of the row hashes (mod 2^64) is exact and does not depend on which
   * rank holds which rows. N and n close it. */
  uint64_t sum = 0;
  /* ROWS rows side by side: each row's chain of mix64 is serial, the rows'
   * are independent (the same hashes, several in flight). */
  enum { ROWS = 4 };
  for (int64_t i0 = 0; i0 < d->nloc; i0 += ROWS) {
    int r = d->nloc - i0 < ROWS ? (int)(d->nloc - i0) : ROWS;
    uint64_t h[ROWS];
    for (int t = 0; t < r; t++) h[t] = mix64((uint64_t)(d->row0 + i0 + t) + 0x9e3779b97f4a7c15ULL);
    for (int j = 0; j < d->n; j++)
      for (int t = 0; t < r; t++) {
        uint64_t bits;
        memcpy(&bits, &d->X[(i0 + t) * (int64_t)d->n + j], 8);
        h[t] = mix64(h[t] ^ bits);
      }
    for (int t = 0; t < r; t++) {
      if (d->labels)
        h[t] = mix64(h[t] ^ (uint64_t)(uint32_t)d->labels[i0 + t] ^ 0xa5a5a5a5ULL << 32);
      sum += h[t];
    }
  }
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_UINT64_T, MPI_SUM, ctx->comm));
  *fp = mix64(sum ^ mix64((uint64_t)d->N) ^ (uint64_t)d->n);
  return IMX_OK;
}
