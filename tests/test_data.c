/* test_data: imx_shard and imx_data_load for .npy and synthetic sources, run at
 * P = 1..4.
 *   - imx_shard: whole blocks, contiguous cover of [0, N), block counts per
 *     rank differ by at most one, no overflow for N near 2^62;
 *   - sharded .npy read (N=37, n=5, uneven splits for several B, f8 and f4,
 *     data.samples, data.scale): every rank holds exactly rows i + j*1e-3 of
 *     its shard; npy labels (int64, uint8) and nclasses;
 *   - synthetic-ica and gmm: the row hashes gathered from sub-communicators of
 *     every size 1..P equal the hashes of all rows generated serially, and
 *     the mixing matrix / means are bitwise those of the generator; sanity of
 *     the singular values of A and of the distances between gmm means;
 *   - errors agreed on every rank with one code and message: missing file,
 *     bad header, NaN/Inf with row and column, N < P blocks, data.samples too
 *     large, labels of the wrong length, truncated file, 1-D data.
 */
#include <math.h>
#include <stdint.h>

#include "../src/data/data_impl.h"
#include "testing.h"

static double pat(int64_t i, int64_t j) { return (double)i + (double)j * 1e-3; }

static void base_cfg(imx_config *cfg, imx_source src, const char *path, int block) {
  memset(cfg, 0, sizeof *cfg);
  cfg->data.source = src;
  snprintf(cfg->data.path, sizeof cfg->data.path, "%s", path);
  cfg->data.scale = 1.0;
  cfg->data.seed = 12345;
  cfg->parallel.block = block;
}

/* ---- imx_shard ---- */

static void test_shard(void) {
  const int64_t Ns[] = {1, 2, 7, 37, 100, 1000, 4611686018427387904LL};
  const int Bs[] = {1, 2, 3, 256};
  for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
    for (size_t b = 0; b < sizeof Bs / sizeof Bs[0]; b++)
      for (int P = 1; P <= 7; P++) {
        int64_t N = Ns[a], nb = (N + Bs[b] - 1) / Bs[b], next = 0, lo = INT64_MAX, hi = 0;
        if (nb < P) continue;
        for (int p = 0; p < P; p++) {
          int64_t r0, nl;
          imx_shard(N, Bs[b], p, P, &r0, &nl);
          t_check_quiet(r0 == next && r0 % Bs[b] == 0 && nl >= 1,
                        "shard N=%lld B=%d P=%d p=%d: row0 %lld nloc %lld", (long long)N, Bs[b], P,
                        p, (long long)r0, (long long)nl);
          int64_t blocks = (nl + Bs[b] - 1) / Bs[b];
          lo = blocks < lo ? blocks : lo;
          hi = blocks > hi ? blocks : hi;
          next = r0 + nl;
        }
        t_check_quiet(next == N, "shard N=%lld B=%d P=%d covers %lld rows", (long long)N, Bs[b], P,
                      (long long)next);
        t_check_quiet(hi - lo <= 1, "shard N=%lld B=%d P=%d: blocks per rank %lld..%lld",
                      (long long)N, Bs[b], P, (long long)lo, (long long)hi);
      }
  int64_t r0, nl;
  imx_shard(10, 3, 0, 1, &r0, &nl);
  t_check_quiet(r0 == 0 && nl == 10, "shard P=1");
  imx_shard(10, 3, 3, 4, &r0, &nl); /* nb = 4: rank 3 gets block 3 = row 9 */
  t_check_quiet(r0 == 9 && nl == 1, "shard last block short: %lld %lld", (long long)r0,
                (long long)nl);
}

/* ---- sharded .npy ---- */

/* Every local row equals want(i, j) exactly; shard geometry as imx_shard says. */
static void check_rows(imx_ctx *ctx, const imx_data *d, int64_t N, int n, int block, int f4,
                       double scale, const char *label) {
  int64_t r0, nl;
  int f0 = t_failed;
  imx_shard(N, block, ctx->rank, ctx->size, &r0, &nl);
  t_check_quiet(d->N == N && d->n == n && d->block == block && d->row0 == r0 && d->nloc == nl,
                "%s: N=%lld n=%d B=%d row0=%lld nloc=%lld (want %lld %d %d %lld %lld)", label,
                (long long)d->N, d->n, d->block, (long long)d->row0, (long long)d->nloc,
                (long long)N, n, block, (long long)r0, (long long)nl);
  double maxerr = 0;
  for (int64_t i = 0; i < d->nloc && d->nloc == nl; i++)
    for (int j = 0; j < n; j++) {
      double w = pat(d->row0 + i, j);
      if (f4) w = (float)w;
      maxerr = fmax(maxerr, fabs(d->X[i * n + j] - w * scale));
    }
  t_check_shards(ctx->comm, d->nloc, N, &maxerr, label);
  t_check(t_failed == f0, "%-28s N=%lld n=%d B=%d max error %g (tolerance 0)", label, (long long)N,
          n, block, maxerr);
}

static void write_matrix(imx_ctx *ctx, const char *path, int64_t R, int64_t C, int64_t badr,
                         int64_t badc, double badv) {
  if (ctx->rank == 0) {
    double *a = malloc((size_t)(R * C) * sizeof *a);
    for (int64_t i = 0; i < R; i++)
      for (int64_t j = 0; j < C; j++) a[i * C + j] = pat(i, j);
    if (badr >= 0) a[badr * C + badc] = badv;
    t_check_quiet(imx_npy_write(ctx, path, a, R, C) == IMX_OK, "write %s: %s", path, ctx->msg);
    free(a);
  }
  MPI_Barrier(ctx->comm);
}

static void test_npy(imx_ctx *ctx, const char *dir) {
  char path[256], p2[256];
  imx_config cfg;
  imx_data *d = NULL;
  snprintf(path, sizeof path, "%s/x.npy", dir);
  write_matrix(ctx, path, 37, 5, -1, 0, 0);

  const int blocks[] = {1, 2, 3, 4, 7};
  for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
    base_cfg(&cfg, IMX_SRC_NPY, path, blocks[b]);
    imx_err e = imx_data_load(ctx, &cfg, &d);
    t_check_quiet(e == IMX_OK, "load B=%d: %s", blocks[b], ctx->msg);
    if (!e) check_rows(ctx, d, 37, 5, blocks[b], 0, 1.0, "npy f8");
    t_check_quiet(!e && !d->labels && d->nclasses == 0 && !d->truth && !d->means,
                  "npy: no labels/truth expected");
    imx_data_free(&d);
    t_check_quiet(d == NULL, "imx_data_free did not null the pointer");
  }
  base_cfg(&cfg, IMX_SRC_NPY, path, 2);
  cfg.data.samples = 20;
  cfg.data.scale = 0.25;
  t_check_quiet(imx_data_load(ctx, &cfg, &d) == IMX_OK, "load samples=20: %s", ctx->msg);
  if (d) check_rows(ctx, d, 20, 5, 2, 0, 0.25, "npy samples=20 scale=0.25");
  imx_data_free(&d);
  imx_data_free(&d); /* NULL is fine */
  imx_data_free(NULL);

  /* numpy-written files: float32, and labels as int64 and uint8 vectors. */
  const char *labs[] = {"data/np_labels_i8.npy", "data/np_labels_u1.npy"};
  for (int f = 0; f < 2; f++) {
    base_cfg(&cfg, IMX_SRC_NPY, "data/np_f4.npy", 1);
    snprintf(cfg.data.labels, sizeof cfg.data.labels, "%s", labs[f]);
    t_check_quiet(imx_data_load(ctx, &cfg, &d) == IMX_OK, "load np_f4 + %s: %s", labs[f], ctx->msg);
    if (!d) continue;
    check_rows(ctx, d, 7, 3, 1, 1, 1.0, f ? "numpy f4 + u1 labels" : "numpy f4 + i8 labels");
    t_check_quiet(d->labels && d->nclasses == 3, "nclasses %d", d->nclasses);
    for (int64_t i = 0; d->labels && i < d->nloc; i++)
      t_check_quiet(d->labels[i] == (d->row0 + i) % 3, "label %lld = %d", (long long)(d->row0 + i),
                    d->labels[i]);
    imx_data_free(&d);
  }

  /* ---- errors ---- */
  snprintf(p2, sizeof p2, "%s/none.npy", dir);
  base_cfg(&cfg, IMX_SRC_NPY, p2, 1);
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_IO, "No such file", "missing npy");
  t_check_quiet(d == NULL, "d set after failure");
  base_cfg(&cfg, IMX_SRC_NPY, "data/np_fortran.npy", 1);
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA,
               "fortran_order arrays are not supported", "fortran npy");
  base_cfg(&cfg, IMX_SRC_NPY, "data/np_labels_i8.npy", 1);
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "must be 2-D", "1-D data");
  base_cfg(&cfg, IMX_SRC_NPY, path, 1);
  cfg.data.samples = 38;
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "has 37 rows but data.samples = 38",
               "samples > rows");
  base_cfg(&cfg, IMX_SRC_NPY, "data/np_f8.npy", 1);
  snprintf(cfg.data.labels, sizeof cfg.data.labels, "%s", "data/np_f8.npy");
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "labels must be a vector",
               "2-D labels");
  base_cfg(&cfg, IMX_SRC_NPY, path, 1);
  snprintf(cfg.data.labels, sizeof cfg.data.labels, "%s", "data/np_labels_i8.npy");
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "has 7 labels but data file",
               "labels length");

  /* Labels that are not non-negative integers: the first bad row is named. */
  {
    double lab[37];
    for (int i = 0; i < 37; i++) lab[i] = i % 4;
    lab[5] = 2.5;
    lab[33] = -1;
    snprintf(p2, sizeof p2, "%s/badlab.npy", dir);
    if (ctx->rank == 0)
      t_check_quiet(imx_npy_write(ctx, p2, lab, 37, 1) == IMX_OK, "write labels: %s", ctx->msg);
    MPI_Barrier(ctx->comm);
    base_cfg(&cfg, IMX_SRC_NPY, path, 1);
    snprintf(cfg.data.labels, sizeof cfg.data.labels, "%s", p2);
    t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "label 2.5 at row 5 is not",
                 "fractional label");
    cfg.data.samples = 30; /* row 33 unused, row 5 still bad */
    t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "label 2.5 at row 5 is not",
                 "fractional label 30");
    lab[5] = 1;
    if (ctx->rank == 0)
      t_check_quiet(imx_npy_write(ctx, p2, lab, 37, 1) == IMX_OK, "write labels: %s", ctx->msg);
    MPI_Barrier(ctx->comm);
    cfg.data.samples = 0;
    t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "label -1 at row 33",
                 "negative label");
    cfg.data.samples = 30;
    t_check_quiet(imx_data_load(ctx, &cfg, &d) == IMX_OK && d->nclasses == 4,
                  "f8 labels of 30 rows: %s", ctx->msg);
    imx_data_free(&d);
  }

  /* Non-finite values: the first in global row order wins, whichever rank has it. */
  snprintf(p2, sizeof p2, "%s/nan.npy", dir);
  write_matrix(ctx, p2, 37, 5, 23, 2, NAN);
  if (ctx->rank == 0) { /* a second bad value later in the file */
    double *a = NULL;
    int64_t r, c;
    imx_npy_read_all(ctx, p2, &a, &r, &c);
    a[30 * 5 + 1] = INFINITY;
    imx_npy_write(ctx, p2, a, r, c);
    free(a);
  }
  MPI_Barrier(ctx->comm);
  base_cfg(&cfg, IMX_SRC_NPY, p2, 1);
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA,
               "non-finite value nan at row 23, column 2", "NaN in npy");
  cfg.data.samples = 23;
  t_check_quiet(imx_data_load(ctx, &cfg, &d) == IMX_OK, "first 23 rows are finite: %s", ctx->msg);
  imx_data_free(&d);
  snprintf(p2, sizeof p2, "%s/inf.npy", dir);
  write_matrix(ctx, p2, 37, 5, 36, 4, -INFINITY);
  base_cfg(&cfg, IMX_SRC_NPY, p2, 2);
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA,
               "non-finite value -inf at row 36, column 4", "-Inf in last row");

  /* Truncated data file: rank 0's size check catches it for every rank. */
  snprintf(p2, sizeof p2, "%s/trunc.npy", dir);
  write_matrix(ctx, p2, 37, 5, -1, 0, 0);
  if (ctx->rank == 0) t_check_quiet(truncate(p2, 128 + 37 * 5 * 8 - 3) == 0, "truncate");
  MPI_Barrier(ctx->comm);
  base_cfg(&cfg, IMX_SRC_NPY, p2, 1);
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "expected 1608 bytes",
               "truncated npy");

  /* Fewer blocks than ranks. */
  if (ctx->size >= 2) {
    char msg[200];
    snprintf(path, sizeof path, "%s/x100.npy", dir);
    write_matrix(ctx, path, 100, 2, -1, 0, 0);
    base_cfg(&cfg, IMX_SRC_NPY, path, 256);
    snprintf(
        msg, sizeof msg,
        "data: N=100 rows make 1 blocks of B=256 but %d ranks need one block each; lower parallel.block "
        "or use fewer ranks",
        ctx->size);
    t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, msg, "N < P blocks (npy)");
    base_cfg(&cfg, IMX_SRC_GMM, "", 40);
    cfg.data.samples = 40 * (ctx->size - 1);
    cfg.data.dim = 2;
    cfg.data.components = 2;
    t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_DATA, "ranks need one block each",
                 "N < P blocks (gmm)");
  }
  base_cfg(&cfg, IMX_SRC_NPY, "", 1);
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), IMX_ERR_CONFIG, "data.path is empty",
               "empty path");
}

/* ---- synthetic: same data for any P ---- */

static uint64_t fnv(const void *p, size_t len, uint64_t h) {
  const unsigned char *b = p;
  for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

static uint64_t row_hash(const double *x, int n, const int32_t *label) {
  uint64_t h = fnv(x, (size_t)n * sizeof *x, 0xcbf29ce484222325ULL);
  return label ? fnv(label, sizeof *label, h) : h;
}

/* Load on the first k ranks of the world; rank 0 gathers the row hashes. */
static void hashes_on(imx_ctx *world, const imx_config *cfg, int k, uint64_t *all, double *truth,
                      size_t tlen) {
  MPI_Comm sub;
  MPI_Comm_split(world->comm, world->rank < k ? 0 : MPI_UNDEFINED, world->rank, &sub);
  if (sub == MPI_COMM_NULL) return;
  imx_ctx ctx;
  imx_ctx_init(&ctx, sub);
  imx_data *d = NULL;
  imx_err e = imx_data_load(&ctx, cfg, &d);
  t_check_quiet(e == IMX_OK, "synthetic load on %d ranks: %s", k, ctx.msg);
  if (!e) {
    uint64_t *h = malloc((size_t)d->nloc * sizeof *h);
    for (int64_t i = 0; i < d->nloc; i++)
      h[i] = row_hash(d->X + i * d->n, d->n, d->labels ? d->labels + i : NULL);
    int cnt = (int)d->nloc, *cnts = malloc((size_t)k * sizeof *cnts),
        *offs = malloc((size_t)k * sizeof *offs);
    MPI_Gather(&cnt, 1, MPI_INT, cnts, 1, MPI_INT, 0, ctx.comm);
    if (ctx.rank == 0)
      for (int p = 0; p < k; p++) offs[p] = p ? offs[p - 1] + cnts[p - 1] : 0;
    MPI_Gatherv(h, cnt, MPI_UINT64_T, all, cnts, offs, MPI_UINT64_T, 0, ctx.comm);
    const double *t = d->truth ? d->truth : d->means;
    t_check_quiet(t && memcmp(t, truth, tlen * sizeof *t) == 0,
                  "truth/means differ from the generator's on %d ranks", k);
    free(h);
    free(cnts);
    free(offs);
  }
  imx_data_free(&d);
  imx_ctx_finalize(&ctx);
  MPI_Comm_free(&sub);
}

static void test_synth(imx_ctx *ctx, imx_source src) {
  const int64_t N = 50;
  const int n = src == IMX_SRC_SYNTHETIC_ICA ? 6 : 3, C = 4;
  imx_config cfg;
  base_cfg(&cfg, src, "", 3);
  cfg.data.samples = N;
  cfg.data.dim = n;
  cfg.data.components = C;
  cfg.data.separation = 4.0;
  cfg.data.seed = 99;

  /* Serial reference: all rows through the generator functions. */
  size_t tlen = (size_t)n * (src == IMX_SRC_SYNTHETIC_ICA ? n : C);
  double *truth = malloc(tlen * sizeof *truth), *X = malloc((size_t)N * n * sizeof *X);
  int32_t *lab = malloc((size_t)N * sizeof *lab);
  if (src == IMX_SRC_SYNTHETIC_ICA) {
    imx_synth_ica_mixing(n, cfg.data.seed, truth);
    imx_synth_ica_rows(n, cfg.data.seed, truth, 0, N, X);
  } else {
    imx_synth_gmm_means(n, C, cfg.data.separation, cfg.data.seed, truth);
    imx_synth_gmm_rows(n, C, truth, cfg.data.seed, 0, N, X, lab);
  }
  uint64_t ref[50], got[50];
  for (int64_t i = 0; i < N; i++)
    ref[i] = row_hash(X + i * n, n, src == IMX_SRC_GMM ? lab + i : NULL);

  int mism = 0, f0 = t_failed;
  for (int k = 1; k <= ctx->size; k++) {
    memset(got, 0, sizeof got);
    hashes_on(ctx, &cfg, k, got, truth, tlen);
    if (ctx->rank == 0)
      for (int64_t i = 0; i < N; i++) mism += got[i] != ref[i];
  }
  t_check_quiet(mism == 0, "%s: %d rows differ from the serial reference",
                src == IMX_SRC_GMM ? "gmm" : "ica", mism);

  /* Sanity of the generators themselves (rank 0). */
  if (ctx->rank == 0 && src == IMX_SRC_SYNTHETIC_ICA) {
    /* trace(A^T A) = sum sv^2, trace((A^T A)^2) = sum sv^4 with sv = 3^(k/(n-1)). */
    double s2 = 0, s4 = 0, t2 = 0, t4 = 0;
    for (int k = 0; k < n; k++) {
      double sv = pow(3.0, (double)k / (n - 1));
      s2 += sv * sv;
      s4 += sv * sv * sv * sv;
    }
    for (int a = 0; a < n; a++)
      for (int b = 0; b < n; b++) {
        double g = 0;
        for (int r = 0; r < n; r++) g += truth[r * n + a] * truth[r * n + b];
        t4 += g * g;
        if (a == b) t2 += g;
      }
    double err = fmax(fabs(t2 - s2) / s2, fabs(t4 - s4) / s4);
    t_check_quiet(err < 1e-12, "ica: singular value moments off by %g (tolerance 1e-12)", err);
    t_check(
        t_failed == f0,
        "synthetic-ica: 1 .. %d ranks give the same bits; singular value moments rel. error %.2g (tolerance 1e-12)",
        ctx->size, err);
  }
  if (ctx->rank == 0 && src == IMX_SRC_GMM) {
    int counts[4] = {0};
    for (int64_t i = 0; i < N; i++) counts[lab[i]]++;
    t_check_quiet(counts[0] && counts[1] && counts[2] && counts[3], "gmm: a component got no rows");
    t_check(t_failed == f0, "gmm: 1 .. %d ranks give the same bits, component counts %d %d %d %d",
            ctx->size, counts[0], counts[1], counts[2], counts[3]);
  }
  free(truth);
  free(X);
  free(lab);
}

/* Mean distance between gmm means ~ separation (large n and C, loose bound),
 * and the sources of synthetic-ica have unit variance (sample of 4000 rows). */
static void test_synth_stats(imx_ctx *ctx) {
  if (ctx->rank != 0) return;
  int f0 = t_failed;
  const int n = 64, C = 20;
  double *mu = malloc((size_t)C * n * sizeof *mu), sum = 0;
  imx_synth_gmm_means(n, C, 5.0, 7, mu);
  int pairs = 0;
  for (int a = 0; a < C; a++)
    for (int b = a + 1; b < C; b++, pairs++) {
      double s = 0;
      for (int j = 0; j < n; j++)
        s += (mu[a * n + j] - mu[b * n + j]) * (mu[a * n + j] - mu[b * n + j]);
      sum += sqrt(s);
    }
  double mean = sum / pairs;
  t_check_quiet(fabs(mean - 5.0) < 0.5, "gmm: mean distance between means %g, want 5 +- 0.5", mean);
  free(mu);
  /* With A = I-free check: x = A s so E[x x^T] = A A^T; compare the trace. */
  const int m = 3;
  const int64_t N = 20000;
  double A[9], *X = malloc((size_t)N * m * sizeof *X), tr = 0, trA = 0;
  imx_synth_ica_mixing(m, 5, A);
  imx_synth_ica_rows(m, 5, A, 0, N, X);
  for (int64_t i = 0; i < N * m; i++) tr += X[i] * X[i] / N;
  for (int i = 0; i < 9; i++) trA += A[i] * A[i];
  t_check_quiet(fabs(tr / trA - 1) < 0.05, "ica: E|x|^2 / |A|_F^2 = %g, want 1 +- 0.05", tr / trA);
  t_check(
      t_failed == f0,
      "gmm mean distance %.3f (separation 5, tolerance 0.5); ica E|x|^2/|A|_F^2 = %.4f (1, tolerance 0.05)",
      mean, tr / trA);
  free(X);
}

int main(int argc, char **argv) {
  imx_ctx ctx;
  t_init(&argc, &argv, &ctx);
  char dir[64];
  t_tmpdir(ctx.comm, dir);

  test_shard();
  test_npy(&ctx, dir);
  test_synth(&ctx, IMX_SRC_SYNTHETIC_ICA);
  test_synth(&ctx, IMX_SRC_GMM);
  test_synth_stats(&ctx);

  t_rmdir(ctx.comm, dir);
  return t_end(&ctx);
}
