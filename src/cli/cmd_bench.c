/* cmd_bench: `infomax bench`, time per objective-and-gradient evaluation by
 * phase, for sizes the user chooses, as a table and a CSV.
 *
 *   mpiexec -n P infomax bench [CONFIG.yaml] [KEY=V1,V2,...]... [--set KEY=VALUE]...
 *                              [--out FILE.csv]
 *
 * Every KEY=V1,V2,... positional argument sweeps a configuration key
 * (model.units=64,256,1024); the runs are the cross product, in order. Words
 * without a dot set the benchmark itself (see bench_help in src/cli/main.c):
 * evals, warmup, iterations, dgemm, blas, reduce, allreduce, weights.
 *
 * Per run: load (or generate) and preprocess the data (reused while the data
 * section does not change), create the layer, `warmup` evaluations, then
 * `evals` timed evaluations between barriers. The table reports the best
 * evaluation (wall time, barrier to barrier) and its phases (max over ranks),
 * the CPU time of the cheapest evaluation (max over ranks), the mean, the BLAS-3 flops and rates, the measured DGEMM rate of every rank
 * (square n=dgemm, best of 3, all ranks at once, before and after the run),
 * the pure BLAS-3 time of the layer's own calls at the layer's shapes, the cost of the reproducible
 * reduction (deposits, column maxima, three bins in MPI_Allreduce) against
 * plain MPI_Allreduce, and the load: the 1-minute load average and the CPU
 * used by other processes (from /proc/stat, minus ours) during the timed
 * evaluations, in cores. With iterations=N > 0, N TAO iterations follow and
 * give TAO's own time per iteration (phase optimizer).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "imx/blas.h"
#include "imx/cli.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/layer.h"
#include "imx/log.h"
#include "imx/moments.h"
#include "imx/objective.h"
#include "imx/preprocess.h"
#include "imx/rsum.h"
#include "imx/timer.h"
#include "imx/train.h"
#include "imx/version.h"

#define MAX_SWEEP 16  /* keys swept */
#define MAX_VALUES 64 /* values per key */
#define VAL_LEN 256

/* The benchmark's own settings. */
typedef struct bench_opts {
  int evals;             /* timed evaluations per run */
  int warmup;            /* untimed evaluations first */
  int iterations;        /* TAO iterations for the optimizer phase (0: none) */
  int dgemm;             /* size of the square DGEMM rate probe (0: none) */
  int blas;              /* time the layer's BLAS-3 calls alone (bool) */
  int reduce;            /* time the parts of the reductions (bool) */
  int allreduce;         /* MPI_Allreduce calibration table (bool) */
  char weights[VAL_LEN]; /* write W, b of the first run to PREFIX_W.npy, PREFIX_b.npy */
} bench_opts;

typedef struct sweep {
  char key[VAL_LEN];
  int nval;
  char val[MAX_VALUES][VAL_LEN];
} sweep;

/* One result row. */
typedef struct row {
  int P, K, n;
  long long N;
  char act[16], preset[32], red[16], path[16], linalg[16], prec[8];
  double best, mean;         /* seconds per evaluation */
  double cpu;                /* CPU seconds of the least costly evaluation (max over ranks) */
  double ph[IMX_NTIMERS];    /* phases of the best evaluation, max over ranks */
  double opt;                /* optimizer seconds per TAO iteration (NAN: not run) */
  double gflop, blas3_gflop; /* flops of one evaluation (global), BLAS-3 share */
  double blas3_s;            /* the layer's BLAS-3 calls alone, seconds (max over ranks) */
  double peak;               /* DGEMM rate per rank (min over ranks), GFLOP/s */
  double dep_s, colmax_s, ar_rep_s, ar_fast_s; /* reduction parts, seconds per evaluation */
  double load1, foreign;                       /* load average, foreign CPU (cores) */
  double sent; /* bytes sent per rank in the best evaluation, max over ranks (imx_comm_sent) */
  double loss;
} row;

static double cpu_busy_seconds(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return 0;
  unsigned long long v[8] = {0};
  int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (got < 8) return 0;
  /* user nice system irq softirq steal; not idle, iowait */
  return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double own_cpu_seconds(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + 1e-6 * r.ru_utime.tv_usec + r.ru_stime.tv_sec +
         1e-6 * r.ru_stime.tv_usec;
}

static double loadavg1(void) {
  double v = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &v) != 1) v = -1;
    fclose(f);
  }
  return v;
}

/* The status of an MPI call, recorded as IMX_MPI records it (IMX_ERR_MPI,
 * the call and MPI's message) but returned instead of returning, so that a
 * timing loop can stop, free its buffers and agree: a failed call never
 * becomes a silent wrong time. Local. */
#define BENCH_MPI(ctx, call) mpi_status((ctx), (call), #call, __func__, __LINE__)
static imx_err mpi_status(imx_ctx *ctx, int rc, const char *call, const char *func, int line) {
  return rc == MPI_SUCCESS ? IMX_OK : imx_fail_mpi(ctx, rc, call, func, __FILE__, line);
}

/* Count values 1e-3 (i % mod) into p, floats or doubles. Local. */
static void fill(void *p, size_t count, int mod, int single) {
  for (size_t i = 0; i < count; i++) {
    double v = 1e-3 * (double)(i % (size_t)mod);
    if (single) ((float *)p)[i] = (float)v;
    else ((double *)p)[i] = v;
  }
}

/* The layer's BLAS-3 calls of one data-path evaluation (replicated backend)
 * alone, at its shapes and on the rank's rows, outputs into block-sized
 * scratch: forward X_b W^T, syrk D_b^T D_b, backward D_b G, gradient
 * dZ_b^T X_b; in double, or with single in float32 on a float copy of the
 * rows (parallel.precision: single). Best of 2; max over ranks. Collective. */
static imx_err blas3_alone(imx_ctx *ctx, const imx_data *d, int K, int step, int single,
                           double *secs) {
  int n = d->n;
  size_t KK = (size_t)K * K, blk = (size_t)step * K, Kn = (size_t)K * n;
  size_t xn = (size_t)d->nloc * n, es = single ? sizeof(float) : sizeof(double);
  char *W = malloc(Kn * es), *G = malloc(KK * es), *Z = malloc(blk * es), *T = malloc(blk * es);
  char *S = malloc(KK * es), *gW = malloc(Kn * es), *Xf = single ? malloc(xn * es + 1) : NULL;
  int bad = !W || !G || !Z || !T || !S || !gW || (single && !Xf);
  imx_err e = BENCH_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, ctx->comm));
  if (!e && bad) e = imx_fail(ctx, IMX_ERR_NOMEM, "blas probe K=%d", K);
  if (!e) {
    for (size_t i = 0; single && i < xn; i++) ((float *)Xf)[i] = (float)d->X[i];
    fill(W, Kn, 13, single), fill(G, KK, 11, single), fill(Z, blk, 5, single);
    fill(T, blk, 5, single);
    const double one = 1, zero = 0;
    const float onef = 1, zerof = 0;
    double best = INFINITY;
    for (int r = 0; r < 2 && !e; r++) {
      e = BENCH_MPI(ctx, MPI_Barrier(ctx->comm));
      double t = imx_now();
      for (int64_t r0 = 0; r0 < d->nloc; r0 += step) {
        int c = (int)(r0 + step < d->nloc ? step : d->nloc - r0);
        if (single) {
          const float *Xc = (const float *)Xf + r0 * n;
          float *w = (float *)W, *g = (float *)G, *z = (float *)Z, *tt = (float *)T;
          sgemm_("T", "N", &K, &c, &n, &onef, w, &n, Xc, &n, &zerof, z, &K);
          ssyrk_("U", "N", &K, &c, &onef, z, &K, &zerof, (float *)S, &K);
          sgemm_("N", "N", &K, &c, &K, &onef, g, &K, z, &K, &zerof, tt, &K);
          sgemm_("N", "T", &n, &K, &c, &onef, Xc, &n, tt, &K, &zerof, (float *)gW, &n);
        } else {
          const double *Xc = d->X + r0 * n;
          double *w = (double *)W, *g = (double *)G, *z = (double *)Z, *tt = (double *)T;
          dgemm_("T", "N", &K, &c, &n, &one, w, &n, Xc, &n, &zero, z, &K);
          dsyrk_("U", "N", &K, &c, &one, z, &K, &zero, (double *)S, &K);
          dgemm_("N", "N", &K, &c, &K, &one, g, &K, z, &K, &zero, tt, &K);
          dgemm_("N", "T", &n, &K, &c, &one, Xc, &n, tt, &K, &zero, (double *)gW, &n);
        }
      }
      t = imx_now() - t;
      best = t < best ? t : best;
    }
    *secs = best;
    if (!e)
      e = BENCH_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, secs, 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
  }
  free(W), free(G), free(Z), free(T), free(S), free(gW), free(Xf);
  return imx_agree(ctx, e);
}

/* nblk deposits of partial (rows x cols) into s, imx_rsum_group(s) per
 * call from distinct buffers (copies in the sum's scratch, made once), as
 * imx_moments_atb adds the blocks' products. Local. */
static void deposit_groups(imx_rsum *s, const double *partial, int64_t nblk, int rows, int cols) {
  int g = imx_rsum_group(s) < 4 ? imx_rsum_group(s) : 4;
  size_t count = (size_t)rows * cols;
  const double *parts[4];
  for (int k = 0; k < g; k++) {
    memcpy(imx_rsum_work(s) + k * count, partial, count * sizeof *partial);
    parts[k] = imx_rsum_work(s) + k * count;
  }
  for (int64_t b = 0; b < nblk; b += g)
    imx_rsum_add_n(s, parts, nblk - b < g ? (int)(nblk - b) : g, cols);
}

/* The parts of one data-path evaluation's reductions: the reproducible
 * deposits of every local block's partials (K x K lower, K x n, 2 K), the
 * column maxima over the rank's nloc x K outputs (three: A, D, dZ, each in
 * the loop that writes them, a block at a time in cache),
 * and MPI_Allreduce of three bins against one. Best of 2; max over ranks.
 * Collective. */
static imx_err reduce_parts(imx_ctx *ctx, const imx_data *d, int K, int block, row *rw) {
  int n = d->n;
  int64_t nblk = (d->nloc + block - 1) / block;
  imx_rsum *sKK = NULL, *sKn = NULL, *fKK = NULL, *fKn = NULL;
  double *p = malloc(((size_t)K * K + (size_t)K * n + (size_t)block * K) * sizeof *p);
  double *mx = malloc((size_t)(K > n ? K : n) * sizeof *mx), *out = NULL;
  int bad = !p || !mx;
  imx_err e = IMX_OK;
  if (!bad) e = imx_rsum_create(ctx, IMX_RED_REPRODUCIBLE, K, K, 1, &sKK);
  if (!bad && !e) e = imx_rsum_create(ctx, IMX_RED_REPRODUCIBLE, K, n, 0, &sKn);
  if (!bad && !e) e = imx_rsum_create(ctx, IMX_RED_FAST, K, K, 1, &fKK);
  if (!bad && !e) e = imx_rsum_create(ctx, IMX_RED_FAST, K, n, 0, &fKn);
  if (!bad && !e) out = malloc((size_t)K * (K > n ? K : n) * sizeof *out);
  bad |= !out;
  if (bad && !e) e = imx_fail(ctx, IMX_ERR_NOMEM, "reduction probe K=%d", K);
  e = imx_agree(ctx, e);
  if (!e) {
    double *pKK = p, *pKn = p + (size_t)K * K, *rows = pKn + (size_t)K * n;
    for (size_t i = 0; i < (size_t)K * K; i++) pKK[i] = 0.25 * sin((double)i);
    for (size_t i = 0; i < (size_t)K * n; i++) pKn[i] = 0.25 * cos((double)i);
    for (size_t i = 0; i < (size_t)block * K; i++) rows[i] = sin(0.5 * (double)i);
    for (int j = 0; j < K; j++) mx[j] = 0;
    double dep = INFINITY, cmx = INFINITY, arr = INFINITY, arf = INFINITY;
    for (int r = 0; r < 2 && !e; r++) {
      /* Deposits: one per local block per sum, the local part of each sum,
       * imx_rsum_group blocks' partials (each its own buffer) per pass over
       * the bins, as imx_moments_atb adds them. */
      double t = imx_now();
      imx_rsum_begin(sKK, 1.0, NULL, NULL);
      imx_rsum_begin(sKn, 1.0, NULL, NULL);
      deposit_groups(sKK, pKK, nblk, K, K);
      deposit_groups(sKn, pKn, nblk, K, n);
      t = imx_now() - t;
      dep = t < dep ? t : dep;
      /* Column maxima: three passes over nloc x K, a block at a time while it
       * is in cache (A, D and dZ, taken in the loops that write them). */
      t = imx_now();
      for (int pass = 0; pass < 3; pass++)
        for (int64_t b = 0; b < nblk; b++)
          for (int i = 0; i < block; i++)
            for (int j = 0; j < K; j++) {
              double v = fabs(rows[(size_t)i * K + j]);
              if (v > mx[j]) mx[j] = v;
            }
      t = imx_now() - t;
      cmx = t < cmx ? t : cmx;
      /* The reductions: three bins (reproducible) against one (fast). */
      e = BENCH_MPI(ctx, MPI_Barrier(ctx->comm));
      t = imx_now();
      if (!e) e = imx_rsum_end(ctx, sKK, out);
      if (!e) e = imx_rsum_end(ctx, sKn, out);
      t = imx_now() - t;
      arr = t < arr ? t : arr;
      imx_rsum_begin(fKK, 1.0, NULL, NULL);
      imx_rsum_begin(fKn, 1.0, NULL, NULL);
      imx_rsum_add(fKK, pKK, K);
      imx_rsum_add(fKn, pKn, n);
      if (!e) e = BENCH_MPI(ctx, MPI_Barrier(ctx->comm));
      t = imx_now();
      if (!e) e = imx_rsum_end(ctx, fKK, out);
      if (!e) e = imx_rsum_end(ctx, fKn, out);
      t = imx_now() - t;
      arf = t < arf ? t : arf;
    }
    double v[4] = {dep, cmx + 1e-300 * mx[0], arr, arf};
    e = imx_agree(ctx, e);
    if (!e)
      e = imx_agree(
          ctx, BENCH_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_DOUBLE, MPI_MAX, ctx->comm)));
    if (!e) {
      rw->dep_s = v[0], rw->colmax_s = v[1], rw->ar_rep_s = v[2], rw->ar_fast_s = v[3];
    }
  }
  imx_rsum_free(&sKK), imx_rsum_free(&sKn), imx_rsum_free(&fKK), imx_rsum_free(&fKn);
  free(p), free(mx), free(out);
  return e;
}

/* MPI_Allreduce(SUM) of 1 .. max_doubles doubles, best of reps, written as
 * CSV (bytes, seconds) on rank 0; the calibration of the communication model
 * (bench/comm_model.py). Collective. */
static imx_err allreduce_table(imx_ctx *ctx, size_t max_doubles, FILE *csv) {
  double *buf = calloc(max_doubles ? max_doubles : 1, sizeof *buf);
  int bad = !buf;
  imx_err e = BENCH_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, ctx->comm));
  if (!e && bad) e = imx_fail(ctx, IMX_ERR_NOMEM, "allreduce probe of %zu doubles", max_doubles);
  if (e) {
    free(buf);
    return e;
  }
  if (ctx->rank == 0) {
    imx_log(ctx, IMX_INFO,
            "\nMPI_Allreduce(MPI_SUM) of doubles, P=%d (best of reps after one warm-up)",
            ctx->size);
    imx_log(ctx, IMX_INFO, "%14s %12s %12s", "bytes", "seconds", "GB/s");
    if (csv) fprintf(csv, "P,bytes,seconds,load1\n");
  }
  for (size_t cnt = 1; !e && cnt <= max_doubles; cnt *= 4) {
    int reps = cnt < 4096 ? 200 : cnt < (1u << 20) ? 20 : 5;
    double best = INFINITY;
    for (int r = 0; r <= reps && !e; r++) {
      e = BENCH_MPI(ctx, MPI_Barrier(ctx->comm));
      double t = imx_now();
      if (!e)
        e = BENCH_MPI(ctx,
                      MPI_Allreduce(MPI_IN_PLACE, buf, (int)cnt, MPI_DOUBLE, MPI_SUM, ctx->comm));
      t = imx_now() - t;
      if (r > 0 && t < best) best = t;
    }
    if (!e)
      e = BENCH_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &best, 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
    e = imx_agree(ctx, e);
    if (e) break;
    double bytes = 8.0 * (double)cnt;
    if (ctx->rank == 0) {
      imx_log(ctx, IMX_INFO, "%14.0f %12.3e %12.3f", bytes, best, bytes / best / 1e9);
      if (csv) fprintf(csv, "%d,%.0f,%.6e,%.2f\n", ctx->size, bytes, best, loadavg1());
    }
  }
  free(buf);
  return e;
}

/* Flops of one evaluation (global): total and the BLAS-3 part. */
static void flops(const imx_config *c, const imx_layer *l, double *total, double *blas3) {
  double K = imx_layer_units(l), n = imx_layer_inputs(l), N = (double)imx_layer_samples(l);
  double chol = K * K * K; /* potrf K^3/3 + potri 2K^3/3 */
  const imx_objective *obj = imx_layer_objective(l);
  if (!strcmp(imx_layer_path(l), "moments")) {
    *blas3 = 2 * n * n * K + 2 * K * K * n + 2 * K * K * n;
  } else {
    *blas3 = 2 * N * K * n + N * K * (K + 1) + 2 * N * K * n;
    if (imx_objective_needs_cov(obj)) *blas3 += 2 * N * K * K;
    /* The scalapack backend's solves (2 N K^2, beside D G when other terms
     * write G) instead of the inverse: the flops of the algorithm run. */
    if (imx_objective_needs_cov(obj) && !strcmp(imx_layer_linalg(l), "scalapack") &&
        imx_objective_dist_solves(obj, imx_layer_samples(l), (int)K)) {
      chol = K * K * K / 3;
      if (imx_objective_dist_rest(obj)) *blas3 += 2 * N * K * K;
    }
  }
  (void)c;
  *total = *blas3 + (imx_objective_needs_cov(imx_layer_objective(l)) ? chol : 0);
}

/* One run: data (cached across runs while cfg->data is unchanged), layer,
 * timed evaluations and the probes. Collective. */
static imx_err run_one(imx_ctx *ctx, const imx_config *cfg, const bench_opts *o, imx_data **dp,
                       imx_config *dcfg, row *rw, int first) {
  if (*dp && memcmp(&dcfg->data, &cfg->data, sizeof cfg->data)) imx_data_free(dp);
  if (!*dp) {
    IMX_TRY(imx_data_load(ctx, cfg, dp));
    IMX_TRY(imx_preprocess_apply(ctx, cfg, *dp, NULL, NULL));
    *dcfg = *cfg;
  }
  imx_data *d = *dp;
  imx_layer *l = NULL;
  IMX_TRY(imx_layer_create(ctx, cfg, d, &l));
  int np = imx_layer_nparams(l);
  double *theta = malloc((size_t)np * sizeof *theta), *grad = malloc((size_t)np * sizeof *grad);
  imx_err e = imx_agree(ctx, theta && grad ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "parameters"));
  if (!e) e = imx_layer_init_params(ctx, l, cfg, theta);
  memset(rw, 0, sizeof *rw);
  rw->P = ctx->size, rw->K = imx_layer_units(l), rw->n = imx_layer_inputs(l);
  rw->N = imx_layer_samples(l);
  snprintf(rw->act, sizeof rw->act, "%s", imx_activation_name(cfg->model.activation));
  snprintf(rw->preset, sizeof rw->preset, "%s", cfg->objective.preset);
  snprintf(rw->red, sizeof rw->red, "%s", imx_reduction_name(cfg->parallel.reduction));
  snprintf(rw->path, sizeof rw->path, "%s", imx_layer_path(l));
  snprintf(rw->linalg, sizeof rw->linalg, "%s", imx_layer_linalg(l));
  snprintf(rw->prec, sizeof rw->prec, "%s", imx_precision_name(cfg->parallel.precision));
  rw->opt = rw->blas3_s = rw->peak = NAN;
  rw->dep_s = rw->colmax_s = rw->ar_rep_s = rw->ar_fast_s = NAN;
  double f = 0, peak0 = NAN;
  /* The DGEMM rate before and after the run (the better one counts: on a
   * shared machine a single probe may fall in a busy moment). */
  if (!e) e = imx_linalg_dgemm_rate(ctx, o->dgemm, &peak0);
  for (int k = 0; !e && k < o->warmup; k++) e = imx_layer_eval(ctx, l, theta, &f, grad, NULL);
  /* Timed evaluations. */
  rw->best = INFINITY;
  double sum = 0, busy0 = cpu_busy_seconds(), own0 = own_cpu_seconds(), t0 = imx_now();
  rw->load1 = loadavg1();
  rw->cpu = INFINITY;
  for (int k = 0; !e && k < o->evals; k++) {
    imx_timer_reset();
    e = BENCH_MPI(ctx, MPI_Barrier(ctx->comm));
    ctx->sent_bytes = 0;
    double t = imx_now(), c = own_cpu_seconds();
    if (!e) e = imx_layer_eval(ctx, l, theta, &f, grad, NULL);
    c = own_cpu_seconds() - c;
    if (!e) e = BENCH_MPI(ctx, MPI_Barrier(ctx->comm));
    t = imx_now() - t;
    /* CPU time: what the evaluation cost this rank, whatever share of the
     * cores it got (under load the wall time also holds the waits). */
    if (!e) e = BENCH_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &c, 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
    if (!e && c < rw->cpu) rw->cpu = c;
    double ph[IMX_NTIMERS + 1];
    for (int i = 0; i < IMX_NTIMERS; i++) ph[i] = imx_timer_get((imx_timer_id)i);
    ph[IMX_NTIMERS] = ctx->sent_bytes;
    if (!e)
      e = BENCH_MPI(
          ctx, MPI_Allreduce(MPI_IN_PLACE, ph, IMX_NTIMERS + 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
    if (!e) e = BENCH_MPI(ctx, MPI_Bcast(&t, 1, MPI_DOUBLE, 0, ctx->comm));
    e = imx_agree(ctx, e);
    if (e) break;
    sum += t;
    if (t < rw->best) {
      rw->best = t;
      memcpy(rw->ph, ph, sizeof rw->ph);
      rw->sent = ph[IMX_NTIMERS];
    }
  }
  double wall = imx_now() - t0, own = own_cpu_seconds() - own0, busy = cpu_busy_seconds() - busy0;
  if (!e)
    e = imx_agree(
        ctx, BENCH_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &own, 1, MPI_DOUBLE, MPI_SUM, ctx->comm)));
  /* Ranks may share a host: foreign = busy - all ranks' own (one host). */
  rw->foreign = wall > 0 ? (busy - own) / wall : 0;
  if (rw->foreign < 0) rw->foreign = 0;
  rw->mean = o->evals > 0 ? sum / o->evals : NAN;
  rw->loss = f;
  flops(cfg, l, &rw->gflop, &rw->blas3_gflop);
  rw->gflop /= 1e9, rw->blas3_gflop /= 1e9;
  if (!e && first && o->weights[0] && ctx->rank == 0) {
    int K = rw->K, n = rw->n;
    double *W = malloc((size_t)K * n * sizeof *W), *b = malloc((size_t)K * sizeof *b);
    char path[VAL_LEN + 16];
    if (!W || !b) e = imx_fail(ctx, IMX_ERR_NOMEM, "weights");
    if (!e) imx_layer_weights(l, theta, W, b);
    snprintf(path, sizeof path, "%s_W.npy", o->weights);
    if (!e) e = imx_npy_write(ctx, path, W, K, n);
    snprintf(path, sizeof path, "%s_b.npy", o->weights);
    if (!e) e = imx_npy_write(ctx, path, b, K, 1);
    free(W), free(b);
  }
  e = imx_agree(ctx, e);
  /* TAO's own time per iteration. */
  if (!e && o->iterations > 0) {
    imx_config tc = *cfg;
    tc.optimizer.max_it = o->iterations;
    tc.output.checkpoint_every = 0;
    imx_train_io io = {0};
    imx_train_result res;
    memset(&res, 0, sizeof res);
    imx_log_level keep = IMX_INFO;
    imx_log_set_level(IMX_WARN);
    imx_timer_reset();
    e = imx_train(ctx, &tc, l, theta, &io, &res);
    imx_log_set_level(keep);
    double t = imx_timer_get(IMX_T_OPTIMIZER);
    if (!e)
      e = imx_agree(
          ctx, BENCH_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, ctx->comm)));
    rw->opt = res.iterations > 0 ? t / res.iterations : NAN;
  }
  int step = cfg->parallel.reduction == IMX_RED_REPRODUCIBLE
                 ? d->block
                 : (int)(d->nloc < 4096 ? (d->nloc > 0 ? d->nloc : 1) : 4096);
  if (!e && o->blas && !strcmp(rw->path, "data"))
    e = blas3_alone(ctx, d, rw->K, step, cfg->parallel.precision == IMX_PRECISION_SINGLE,
                    &rw->blas3_s);
  if (!e && o->reduce && !strcmp(rw->path, "data")) e = reduce_parts(ctx, d, rw->K, d->block, rw);
  if (!e) e = imx_linalg_dgemm_rate(ctx, o->dgemm, &rw->peak);
  if (!e && (isnan(rw->peak) || peak0 > rw->peak)) rw->peak = peak0;
  free(theta), free(grad);
  imx_layer_free(&l);
  return e;
}

/* Extra cost of the reproducible reductions as a share of the evaluation:
 * deposits, column maxima and three bins instead of one in MPI_Allreduce
 * (reproducible runs only; NAN otherwise). */
static double repro_frac(const row *r) {
  if (strcmp(r->red, "reproducible")) return NAN;
  return (r->dep_s + r->colmax_s + r->ar_rep_s - r->ar_fast_s) / r->best;
}

static const char *csv_header =
    "P,N,n,K,activation,preset,reduction,path,linalg,precision,evals,eval_best_s,eval_mean_s,forward_s,"
    "moments_s,reduce_s,linalg_s,backward_s,other_s,optimizer_s_per_it,gflop,blas3_gflop,"
    "gflops,blas3_gflops_phases,blas3_alone_s,blas3_alone_gflops,dgemm_gflops,blas3_frac_peak,"
    "deposit_s,colmax_s,allreduce_rep_s,allreduce_fast_s,repro_overhead_frac,load1,"
    "foreign_cores,sent_bytes_per_rank,openblas_coretype,eval_cpu_s,loss";

static void csv_row(FILE *f, const row *r, int evals) {
  double ph = r->ph[IMX_T_FORWARD] + r->ph[IMX_T_MOMENTS] + r->ph[IMX_T_REDUCE] +
              r->ph[IMX_T_LINALG] + r->ph[IMX_T_BACKWARD];
  /* Phases holding BLAS-3 work (forward, moments, backward, reduce). */
  double b3 = r->ph[IMX_T_FORWARD] + r->ph[IMX_T_MOMENTS] + r->ph[IMX_T_BACKWARD] +
              r->ph[IMX_T_REDUCE];
  double b3rate = r->blas3_gflop / (b3 > 0 ? b3 : NAN);
  double alone = r->blas3_gflop / r->P / r->blas3_s; /* per rank */
  double repro = repro_frac(r);
  const char *ct = getenv("OPENBLAS_CORETYPE");
  fprintf(
      f,
      "%d,%lld,%d,%d,%s,%s,%s,%s,%s,%s,%d,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,"
      "%.6e,%.4f,%.4f,%.6e,%.4f,%.4f,%.4f,%.6e,%.6e,%.6e,%.6e,%.4f,%.2f,%.2f,%.0f,%s,%.6e,%.17g\n",
      r->P, r->N, r->n, r->K, r->act, r->preset, r->red, r->path, r->linalg, r->prec, evals,
      r->best, r->mean, r->ph[IMX_T_FORWARD], r->ph[IMX_T_MOMENTS], r->ph[IMX_T_REDUCE],
      r->ph[IMX_T_LINALG], r->ph[IMX_T_BACKWARD], r->best - ph, r->opt, r->gflop, r->blas3_gflop,
      r->gflop / r->best, b3rate, r->blas3_s, alone, r->peak, b3rate / r->P / r->peak, r->dep_s,
      r->colmax_s, r->ar_rep_s, r->ar_fast_s, repro, r->load1, r->foreign, r->sent,
      ct && ct[0] ? ct : "auto", r->cpu, r->loss);
}

static void table_header(imx_ctx *ctx) {
  imx_log(ctx, IMX_INFO,
          "%3s %7s %5s %5s %-8s %-12s %-6s %-7s %8s %8s %8s %8s %8s %8s %8s %8s %7s %7s %6s %6s "
          "%5s %9s",
          "P", "N", "n", "K", "act", "reduction", "prec", "path", "eval_s", "cpu_s", "forward",
          "moments", "reduce", "linalg", "backward", "optim/it", "GF/s", "b3%pk", "repro", "load",
          "frgn", "sent_MiB");
}

static void table_row(imx_ctx *ctx, const row *r) {
  double b3 = r->ph[IMX_T_FORWARD] + r->ph[IMX_T_MOMENTS] + r->ph[IMX_T_BACKWARD] +
              r->ph[IMX_T_REDUCE];
  double frac = r->blas3_gflop / b3 / r->P / r->peak;
  double repro = repro_frac(r);
  imx_log(ctx, IMX_INFO,
          "%3d %7lld %5d %5d %-8s %-12s %-6s %-7s %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f "
          "%7.1f %6.0f%% %5.1f%% %6.1f %5.2f %9.3f",
          r->P, r->N, r->n, r->K, r->act, r->red, r->prec, r->path, r->best, r->cpu,
          r->ph[IMX_T_FORWARD], r->ph[IMX_T_MOMENTS], r->ph[IMX_T_REDUCE], r->ph[IMX_T_LINALG],
          r->ph[IMX_T_BACKWARD], r->opt, r->gflop / r->best, 100 * frac, 100 * repro, r->load1,
          r->foreign, r->sent / 1048576);
}

/* Parse "word=value" benchmark settings and "section.key=v1,v2" sweeps. */
static imx_err parse_pos(imx_ctx *ctx, const imx_args *a, const char **cfgfile, bench_opts *o,
                         sweep *sw, int *nsw) {
  *cfgfile = NULL, *nsw = 0;
  for (int i = 0; i < a->npos; i++) {
    const char *t = a->pos[i], *eq = strchr(t, '=');
    if (!eq) {
      if (*cfgfile)
        return imx_fail(ctx, IMX_ERR_USAGE, "bench: two configuration files (%s, %s)", *cfgfile, t);
      *cfgfile = t;
      continue;
    }
    size_t kl = (size_t)(eq - t);
    if (kl == 0 || kl >= VAL_LEN || strlen(eq + 1) >= VAL_LEN * MAX_VALUES / 4)
      return imx_fail(ctx, IMX_ERR_USAGE, "bench: bad argument \"%s\"", t);
    if (!memchr(t, '.', kl)) { /* a benchmark setting */
      const char *v = eq + 1;
      char *end;
      long x = strtol(v, &end, 10);
      int isnum = *v && !*end && x >= 0 && x <= 1000000;
      if (!strncmp(t, "weights", kl) && kl == 7) snprintf(o->weights, sizeof o->weights, "%s", v);
      else if (!isnum) return imx_fail(ctx, IMX_ERR_USAGE, "bench: %s needs a count >= 0", t);
      else if (kl == 5 && !strncmp(t, "evals", kl)) o->evals = (int)x;
      else if (kl == 6 && !strncmp(t, "warmup", kl)) o->warmup = (int)x;
      else if (kl == 10 && !strncmp(t, "iterations", kl)) o->iterations = (int)x;
      else if (kl == 5 && !strncmp(t, "dgemm", kl)) o->dgemm = (int)x;
      else if (kl == 4 && !strncmp(t, "blas", kl)) o->blas = (int)x;
      else if (kl == 6 && !strncmp(t, "reduce", kl)) o->reduce = (int)x;
      else if (kl == 9 && !strncmp(t, "allreduce", kl)) o->allreduce = (int)x;
      else
        return imx_fail(ctx, IMX_ERR_USAGE,
                        "bench: unknown setting \"%.*s\" (evals, warmup, "
                        "iterations, dgemm, blas, reduce, allreduce, weights)",
                        (int)kl, t);
      if (o->evals < 1) return imx_fail(ctx, IMX_ERR_USAGE, "bench: evals must be >= 1");
      continue;
    }
    if (*nsw >= MAX_SWEEP)
      return imx_fail(ctx, IMX_ERR_USAGE, "bench: more than %d swept keys", MAX_SWEEP);
    sweep *s = &sw[(*nsw)++];
    memcpy(s->key, t, kl), s->key[kl] = 0;
    s->nval = 0;
    const char *v = eq + 1;
    for (;;) {
      const char *c = strchr(v, ',');
      size_t vl = c ? (size_t)(c - v) : strlen(v);
      if (vl == 0 || vl >= VAL_LEN || s->nval >= MAX_VALUES)
        return imx_fail(ctx, IMX_ERR_USAGE, "bench: bad value list in \"%s\"", t);
      memcpy(s->val[s->nval], v, vl), s->val[s->nval][vl] = 0;
      s->nval++;
      if (!c) break;
      v = c + 1;
    }
  }
  return IMX_OK;
}

int imx_cmd_bench(imx_ctx *ctx, const imx_args *a) {
  bench_opts o = {.evals = 5, .warmup = 1, .iterations = 3, .dgemm = 2000, .blas = 1, .reduce = 1};
  static sweep sw[MAX_SWEEP];
  int nsw = 0;
  const char *cfgfile = NULL;
  imx_err e = parse_pos(ctx, a, &cfgfile, &o, sw, &nsw);
  if (e) {
    if (ctx->rank == 0) fprintf(stderr, "infomax: %s\n(see infomax bench --help)\n", ctx->msg);
    return e;
  }
  /* The cross product of the sweeps, first key slowest. */
  int total = 1;
  for (int s = 0; s < nsw; s++) total *= sw[s].nval;
  FILE *csv = NULL, *arcsv = NULL;
  if (ctx->rank == 0 && a->out) {
    csv = fopen(a->out, "w");
    if (!csv) e = imx_fail(ctx, IMX_ERR_IO, "cannot write %s", a->out);
  }
  if ((e = imx_agree(ctx, e))) {
    imx_report(ctx);
    return e;
  }
  char **set = malloc((size_t)(a->nset + nsw + 1) * sizeof *set);
  char(*asg)[2 * VAL_LEN + 2] = malloc((size_t)(nsw + 1) * sizeof *asg);
  row *rows = calloc((size_t)total, sizeof *rows);
  if ((e = imx_agree(ctx, set && asg && rows ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "bench")))) {
    imx_report(ctx);
    free(set), free(asg), free(rows);
    return e;
  }
  const char *ct = getenv("OPENBLAS_CORETYPE"), *th = getenv("OPENBLAS_NUM_THREADS");
  imx_log(ctx, IMX_INFO,
          "infomax %s bench: %d run%s on %d rank%s; %d warm-up + %d timed "
          "evaluations each (best shown); OPENBLAS_CORETYPE=%s OPENBLAS_NUM_THREADS=%s",
          imx_version(), total, total > 1 ? "s" : "", ctx->size, ctx->size > 1 ? "s" : "", o.warmup,
          o.evals, ct ? ct : "(unset)", th ? th : "(unset)");
  imx_log(
      ctx, IMX_INFO,
      "seconds per evaluation; cpu_s: CPU seconds of the cheapest evaluation (max over ranks; "
      "steadier than eval_s under load);\nphases of the best evaluation (max over ranks); "
      "optim/it: TAO's own seconds per iteration;\nGF/s: flops of the evaluation / its time; "
      "b3%%pk: BLAS-3 flops / time of the phases holding them, per rank, against the\n"
      "measured DGEMM rate; repro: extra cost of reproducible reductions (deposits, column maxima, "
      "3 bins) per evaluation;\nload: 1-minute load average; frgn: cores used by other "
      "processes during the timed evaluations\n");
  if (ctx->rank == 0) table_header(ctx);
  if (csv) fprintf(csv, "%s\n", csv_header);

  imx_data *d = NULL;
  static imx_config cfg, dcfg;
  imx_log_level keep = IMX_INFO;
  size_t maxKK = 1;
  for (int r = 0; r < total && !e; r++) {
    int nset = 0;
    for (int i = 0; i < a->nset; i++) set[nset++] = a->set[i];
    for (int s = 0, q = r, div = total; s < nsw; s++) {
      div /= sw[s].nval;
      int idx = q / div;
      q %= div;
      snprintf(asg[s], sizeof asg[s], "%s=%s", sw[s].key, sw[s].val[idx]);
      set[nset++] = asg[s];
    }
    imx_log_set_level(IMX_WARN);
    e = imx_config_setup(ctx, &cfg, cfgfile, nset, set);
    if (!e) e = run_one(ctx, &cfg, &o, &d, &dcfg, &rows[r], r == 0);
    imx_log_set_level(keep);
    if (e) break;
    if ((size_t)rows[r].K * rows[r].K > maxKK) maxKK = (size_t)rows[r].K * rows[r].K;
    table_row(ctx, &rows[r]);
    if (csv) {
      csv_row(csv, &rows[r], o.evals);
      fflush(csv);
    }
  }
  imx_data_free(&d);
  if (!e && o.allreduce) {
    if (ctx->rank == 0 && a->out) {
      char path[IMX_PATH_LEN + 32];
      snprintf(path, sizeof path, "%s.allreduce.csv", a->out);
      arcsv = fopen(path, "w");
      if (!arcsv) e = imx_fail(ctx, IMX_ERR_IO, "cannot write %s", path);
    }
    e = imx_agree(ctx, e);
    /* Up to three bins of the largest K x K sum. */
    if (!e) e = allreduce_table(ctx, 3 * maxKK, arcsv);
  }
  if (!e && !csv && ctx->rank == 0) {
    printf("\n%s\n", csv_header);
    for (int r = 0; r < total; r++) csv_row(stdout, &rows[r], o.evals);
  }
  if (csv) fclose(csv);
  if (arcsv) fclose(arcsv);
  if (e) imx_report(ctx);
  else if (a->out)
    imx_log(ctx, IMX_INFO, "\nCSV in %s%s", a->out, o.allreduce ? " (and .allreduce.csv)" : "");
  free(set), free(asg), free(rows);
  return e;
}
