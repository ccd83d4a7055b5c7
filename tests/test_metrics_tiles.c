/* test_metrics_tiles: the moment measures on block-cyclic tiles
 * (imx_metrics_moments_tiles, the scalapack backend's measures) against the
 * replicated ones, at K = 48 .. 256, on any number of ranks:
 *   1. dead units equal; max and mean |corr|, Gaussian TC, effective rank
 *      and every eigenvalue within 1e-10 (relative; eigenvalues relative to
 *      the largest) of the replicated code's: correlated outputs, outputs
 *      with constant (dead) units and tiles that do not divide K, softmax
 *      outputs (TC with the null direction left out), and a duplicated unit
 *      (R singular: TC +infinity in both); reproducible and fast mode;
 *   2. reproducible mode: dead units, max and mean |corr| and TC have the
 *      same bits on all ranks (any grid: automatic, 1 x P, P x 1) as on rank
 *      0 alone with all the rows; the effective rank within 1e-12 (the
 *      eigensolver's bits depend on the grid);
 *   3. no K x K array: the correlations are not kept (corr NULL), and the
 *      bytes per rank the plan counts fall as 1/P; correlation.npy written
 *      from the tiles (every grid) has the replicated code's header and its
 *      entries within 1e-14 (reproducible mode: the bytes of 1 rank's);
 *   4. two grids at once (the layer's and the measures') have BLACS system
 *      handles of their own (they shared one, and freeing the measures' grid
 *      freed the layer's: a BLACS warning at the end of every run).
 * Collective. */
#include "imx/activation.h"
#include "imx/data.h"
#include "imx/dmat.h"
#include "imx/log.h"
#include "imx/metrics.h"
#include "imx/rng.h"

#include "testing.h"

static imx_ctx ctx;

/* The outputs of global row i (K values): a few shared factors and noise,
 * dead units constant, unit `dup` a copy of unit 0, or a softmax of them.
 * Deterministic in i, so every P sees the same data. */
static void row_of(int64_t i, int K, int dead, int dup, imx_activation act, double *a) {
  double f[4];
  for (int q = 0; q < 4; q++) f[q] = sin(0.37 * (double)(i + 1) * (q + 1) + q);
  for (int k = 0; k < K; k++) {
    double noise = sin(1e-3 * (double)((i + 7) * (k + 3) % 10007) * 97.0 + 0.1 * k);
    a[k] = (k % 5 + 1) * f[k % 4] * 0.3 + noise + 0.05 * k;
  }
  for (int k = 0; k < dead && k < K; k++) a[K - 1 - k] = 2.5;
  if (dup > 0) a[dup] = a[0];
  if (act == IMX_ACT_SOFTMAX) {
    double mx = a[0], s = 0;
    for (int k = 1; k < K; k++) mx = a[k] > mx ? a[k] : mx;
    for (int k = 0; k < K; k++) s += a[k] = exp(a[k] - mx);
    for (int k = 0; k < K; k++) a[k] /= s;
  }
}

typedef struct {
  const char *name;
  int K, nb, dead, dup;
  imx_activation act;
  imx_reduction mode;
} test_case;

/* The outputs of rows [row0, row0 + nloc) of case t. */
static double *outputs(const test_case *t, int64_t row0, int64_t nloc) {
  double *A = malloc((size_t)(nloc ? nloc : 1) * t->K * sizeof *A);
  for (int64_t i = 0; i < nloc; i++) row_of(row0 + i, t->K, t->dead, t->dup, t->act, A + i * t->K);
  return A;
}

/* The moment measures of case t on c: tiles 0 = replicated. */
static imx_err measure_to(imx_ctx *c, const test_case *t, int64_t N, int B, int tiles, int rows,
                          int cols, const char *corr_path, imx_metrics *m) {
  int64_t row0 = 0, nloc = 0;
  imx_shard(N, B, c->rank, c->size, &row0, &nloc);
  double *A = outputs(t, row0, nloc);
  imx_outputs o = {.N = N,
                   .nloc = nloc,
                   .block = B,
                   .K = t->K,
                   .act = t->act,
                   .A = A,
                   .tiles = tiles,
                   .grid_rows = rows,
                   .grid_cols = cols,
                   .corr_path = corr_path};
  imx_metrics_init(m);
  imx_err e = tiles ? imx_metrics_moments_tiles(c, t->mode, &o, m)
                    : imx_metrics_outputs(c, t->mode, &o, m);
  if (e) t_check(0, "%s: measures (tiles %d): %s", t->name, tiles, c->msg);
  free(A);
  return e;
}

static imx_err measure(imx_ctx *c, const test_case *t, int64_t N, int B, int tiles, int rows,
                       int cols, imx_metrics *m) {
  return measure_to(c, t, N, B, tiles, rows, cols, NULL, m);
}

/* correlation.npy from the tiles (each rank its tiles, MPI-IO) on every grid
 * of P ranks: the header of the replicated code's file (imx_npy_write of its
 * corr) and every entry within 1e-14 of its entry (the tiles' C is summed
 * differently, so the last bits may differ); in reproducible mode the bytes
 * rank 0 writes alone from all the rows. */
static void correlation_file(const test_case *t, const char *dir) {
  const int64_t N = 700;
  const int B = 64;
  int shapes[3][2] = {{0, 0}, {1, 0}, {0, 1}}, bad = 0;
  char path[256], ref[256], one[256];
  snprintf(path, sizeof path, "%s/correlation.npy", dir);
  snprintf(ref, sizeof ref, "%s/ref.npy", dir);
  snprintf(one, sizeof one, "%s/one.npy", dir);
  imx_metrics r, d;
  if (measure(&ctx, t, N, B, 0, 0, 0, &r)) return;
  if (ctx.rank == 0) {
    imx_ctx self;
    imx_ctx_init(&self, MPI_COMM_SELF);
    bad = imx_npy_write(&self, ref, r.corr, t->K, t->K) != IMX_OK;
    if (!bad) bad = measure_to(&self, t, N, B, t->nb, 0, 0, one, &d) != IMX_OK;
    if (!bad) imx_metrics_clear(&d);
    if (bad) t_check(0, "%s: correlation.npy on rank 0 alone: %s", t->name, self.msg);
    imx_ctx_finalize(&self);
  }
  MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
  for (int s = 0; s < 3 && !bad; s++) {
    if (measure_to(&ctx, t, N, B, t->nb, shapes[s][0], shapes[s][1], path, &d)) break;
    if (ctx.rank == 0) {
      unsigned char *x = NULL, *y = NULL, *z = NULL;
      long nx = t_file_bytes(path, &x), ny = t_file_bytes(ref, &y), nz = t_file_bytes(one, &z);
      long hb = ny - 8L * t->K * t->K;
      double worst = nx == ny && hb > 0 && !memcmp(x, y, (size_t)hb) ? 0 : INFINITY;
      for (long k = 0; worst < INFINITY && k < (long)t->K * t->K; k++) {
        double a, b;
        memcpy(&a, x + hb + 8 * k, 8), memcpy(&b, y + hb + 8 * k, 8);
        worst = fmax(worst, fabs(a - b));
      }
      int same = nx > 0 && nx == nz && !memcmp(x, z, (size_t)nx);
      int repro = t->mode == IMX_RED_REPRODUCIBLE;
      t_check(worst <= 1e-14 && (same || !repro) && !d.corr,
              "%s (K=%d, %d x %d tiles, grid %s, P=%d): correlation.npy from the tiles: header "
              "and entries of the replicated one, max |diff| %.1e (tol 1e-14); %s",
              t->name, t->K, t->nb, t->nb,
              s == 0   ? "auto"
              : s == 1 ? "1 x P"
                       : "P x 1",
              ctx.size, worst,
              !repro ? "fast mode: bits not compared across P"
              : same ? "the bytes of 1 rank's"
                     : "NOT the bytes of 1 rank's");
      free(x), free(y), free(z);
    }
    imx_metrics_clear(&d);
  }
  imx_metrics_clear(&r);
}

/* Same value or both infinite/NaN alike. */
static double err_of(double a, double b) {
  if (isinf(a) || isinf(b) || isnan(a) || isnan(b))
    return (isinf(a) && isinf(b)) || (isnan(a) && isnan(b)) ? 0 : INFINITY;
  return t_relerr(a, b, 1e-300);
}

static int same_bits(double a, double b) { return !memcmp(&a, &b, sizeof a); }

static void against_replicated(const test_case *t) {
  const int64_t N = 700;
  const int B = 64;
  imx_metrics r, d;
  if (measure(&ctx, t, N, B, 0, 0, 0, &r)) return;
  if (measure(&ctx, t, N, B, t->nb, 0, 0, &d)) {
    imx_metrics_clear(&r);
    return;
  }
  double e[4] = {err_of(d.max_abs_corr, r.max_abs_corr), err_of(d.mean_abs_corr, r.mean_abs_corr),
                 err_of(d.gaussian_tc, r.gaussian_tc), err_of(d.effective_rank, r.effective_rank)};
  double ee = 0;
  for (int k = 0; k < t->K; k++) {
    double x = fabs(d.eigenvalues[k] - r.eigenvalues[k]) / r.eigenvalues[0];
    ee = x > ee ? x : ee;
  }
  double worst = ee;
  for (int q = 0; q < 4; q++) worst = e[q] > worst ? e[q] : worst;
  t_check(d.dead_units == r.dead_units && worst <= 1e-10 && !d.corr,
          "%s (K=%d, %d x %d tiles, %s, P=%d): dead %d/%d, rel err max|corr| %.1e mean|corr| "
          "%.1e TC %.1e (%.6g) eff. rank %.1e (%.6g) eigenvalues %.1e (tol 1e-10)",
          t->name, t->K, t->nb, t->nb, imx_reduction_name(t->mode), ctx.size, d.dead_units,
          r.dead_units, e[0], e[1], e[2], d.gaussian_tc, e[3], d.effective_rank, ee);
  imx_metrics_clear(&r);
  imx_metrics_clear(&d);
}

/* Reproducible mode: the same bits on every grid of P ranks as on rank 0 alone. */
static void across_ranks(const test_case *t) {
  const int64_t N = 700;
  const int B = 64;
  imx_metrics one, g[3];
  int shapes[3][2] = {{0, 0}, {1, 0}, {0, 1}}, bad = 0;
  imx_metrics_init(&one);
  if (ctx.rank == 0) {
    imx_ctx self;
    imx_ctx_init(&self, MPI_COMM_SELF);
    bad = measure(&self, t, N, B, t->nb, 0, 0, &one) != IMX_OK;
    imx_ctx_finalize(&self);
  }
  MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
  double v[5] = {one.dead_units, one.max_abs_corr, one.mean_abs_corr, one.gaussian_tc,
                 one.effective_rank};
  MPI_Bcast(v, 5, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  for (int s = 0; s < 3 && !bad; s++) {
    if (measure(&ctx, t, N, B, t->nb, shapes[s][0], shapes[s][1], &g[s])) return;
    double er = t_relerr(g[s].effective_rank, v[4], 1e-300);
    t_check(g[s].dead_units == (int)v[0] && same_bits(g[s].max_abs_corr, v[1]) &&
                same_bits(g[s].mean_abs_corr, v[2]) && same_bits(g[s].gaussian_tc, v[3]) &&
                er <= 1e-12,
            "%s, grid %s on %d ranks against 1 rank: dead units, max and mean |corr|, TC "
            "bitwise (mean %.17g, TC %.17g); effective rank rel err %.1e (tol 1e-12)",
            t->name,
            s == 0   ? "auto"
            : s == 1 ? "1 x P"
                     : "P x 1",
            ctx.size, g[s].mean_abs_corr, g[s].gaussian_tc, er);
    imx_metrics_clear(&g[s]);
  }
  imx_metrics_clear(&one);
}

/* Two grids at once on one communicator (the layer's and the measures') have
 * BLACS system handles of their own, so freeing one leaves the other's. */
static void two_grids(void) {
  imx_grid *a = NULL, *b = NULL;
  imx_err e = imx_grid_create(&ctx, 0, 0, &a);
  if (!e) e = imx_grid_create(&ctx, 0, 0, &b);
  t_check(!e && a->handle != b->handle, "two grids at once: BLACS system handles %d and %d",
          a ? a->handle : -1, b ? b->handle : -1);
  imx_grid_free(&b);
  imx_grid_free(&a);
}

static void bytes(void) {
  int K = 16384;
  double b1 = imx_metrics_bytes(K, 1, 64, 0), b2 = imx_metrics_bytes(K, 2, 64, 0);
  double rep = imx_metrics_bytes(K, 2, 0, 0);
  t_check(b2 < 0.51 * b1 && b2 < rep / 6,
          "measures on tiles at K=16384: %.2f GiB per rank on 2 ranks, %.2f on 1, replicated "
          "%.2f (no K x K array)",
          b2 / 1073741824, b1 / 1073741824, rep / 1073741824);
  /* Regression: the end-of-run check counted the layer's 4.5 GiB per rank
   * twice against MemAvailable (which already leaves them out) and skipped
   * these measures on a node with 7.4 GiB per rank free beside the layer. */
  double layer = 4.5 * 1073741824, free_beside = 7.4 * 1073741824, need = 0;
  int fit_node = imx_metrics_fit(b2, layer, free_beside, 0, &need);
  double need_node = need;
  int fit_budget = imx_metrics_fit(b2, layer, free_beside, 1, &need);
  t_check(fit_node && need_node == b2 && !fit_budget && need == b2 + layer &&
              imx_metrics_fit(b2, layer, 0, 1, &need),
          "measures at K=16384 on 2 ranks fit beside a 4.5 GiB layer in 7.4 GiB read from the "
          "node (%.2f GiB counted), not in a 7.4 GiB parallel.memory_mib (%.2f GiB); unknown "
          "memory: they fit",
          need_node / 1073741824, need / 1073741824);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  imx_log_set_level(IMX_WARN);
  const test_case cases[] = {
      {"correlated outputs", 64, 8, 0, 0, IMX_ACT_IDENTITY, IMX_RED_REPRODUCIBLE},
      {"dead units, ragged tiles", 96, 20, 5, 0, IMX_ACT_IDENTITY, IMX_RED_REPRODUCIBLE},
      {"softmax outputs", 48, 16, 0, 0, IMX_ACT_SOFTMAX, IMX_RED_REPRODUCIBLE},
      {"duplicated unit", 64, 16, 0, 9, IMX_ACT_IDENTITY, IMX_RED_REPRODUCIBLE},
      {"fast mode", 128, 32, 3, 0, IMX_ACT_IDENTITY, IMX_RED_FAST},
      {"K=256", 256, 32, 2, 0, IMX_ACT_IDENTITY, IMX_RED_REPRODUCIBLE},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) against_replicated(&cases[c]);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    if (cases[c].mode == IMX_RED_REPRODUCIBLE) across_ranks(&cases[c]);
  char dir[64];
  t_tmpdir(ctx.comm, dir);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) correlation_file(&cases[c], dir);
  t_rmdir(ctx.comm, dir);
  two_grids();
  bytes();
  return t_end(&ctx);
}
