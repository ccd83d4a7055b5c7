/* bench_linalg: time per evaluation (loss and gradient) and memory per rank
 * of the two linear-algebra backends on a synthetic data set.
 *
 *   mpiexec -n P build/bench/bench_linalg --K 4096 --linalg scalapack [options]
 *
 * Options: --K units, --N samples (8192), --n inputs (64), --linalg
 * replicated|scalapack|auto, --evals timed evaluations after one warm-up
 * (2; 0 = time the warm-up alone), --activation softmax|relu|identity,
 * --preset gaussian|..., --eps (1e-3), --nb tile size (64), --grid RxC
 * (0x0 = automatic), --reduction reproducible|fast, --path data|moments|auto,
 * --dgemm S (the size of the square DGEMM rate probe run after the timed
 * evaluations, best of 3 on every rank at once; 2000; 0 = none).
 *
 * Prints one JSON line on rank 0: the configuration, the backend and grid,
 * the seconds of the warm-up and of each timed evaluation, the phases of
 * the timed evaluations (mean over them, max over ranks), the layer's own
 * buffers and the peak resident set (getrusage) of every rank, the load
 * average before and after, and "foreign_cpu": CPU-seconds per second of
 * wall time used by other processes during the timed evaluations (from
 * /proc/stat minus our ranks' own CPU time), the measure of noise on a
 * shared machine, and "cpu_s": the CPU-seconds of all our ranks per timed
 * evaluation, less sensitive than wall time to other processes. On the data
 * path also "gflop": the flops of one evaluation per phase (global, counted
 * for the algorithm the layer runs: M^-1 formed or logdet's triangular
 * solves), "gflops": each phase's rate per rank (its flops / P / its time),
 * and with --dgemm "dgemm_gflops" (the slowest rank's probe) and
 * "frac_dgemm": the evaluation's rate per rank against it. The heap is set
 * up as in src/cli/main.c.
 */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "imx/blas.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/layer.h"
#include "imx/linalg.h"
#include "imx/log.h"
#include "imx/objective.h"
#include "imx/preprocess.h"
#include "imx/timer.h"

static double cpu_busy_seconds(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return 0;
  unsigned long long v[10] = {0};
  int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
  fclose(f);
  if (got < 8) return 0;
  /* user nice system (idle iowait) irq softirq steal */
  double busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
  return busy / (double)sysconf(_SC_CLK_TCK);
}

static double own_cpu_seconds(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + 1e-6 * r.ru_utime.tv_usec + r.ru_stime.tv_sec +
         1e-6 * r.ru_stime.tv_usec;
}

static void loadavg(char *buf, size_t len) {
  FILE *f = fopen("/proc/loadavg", "r");
  buf[0] = 0;
  if (f) {
    if (fgets(buf, (int)len, f)) buf[strcspn(buf, " ")] = 0; /* the 1-minute value */
    fclose(f);
  }
}

static int parse_enum(const char *v, const char *const *names) {
  for (int i = 0; names[i]; i++)
    if (!strcmp(v, names[i])) return i;
  return -1;
}

/* Flops of one data-path evaluation, global, per phase (forward, moments,
 * linalg, backward): the algorithm the layer runs (docs/performance.md). */
static void phase_flops(const imx_layer *l, double f[4]) {
  double K = imx_layer_units(l), n = imx_layer_inputs(l), N = (double)imx_layer_samples(l);
  const imx_objective *obj = imx_layer_objective(l);
  int cov = imx_objective_needs_cov(obj);
  int solves = cov && !strcmp(imx_layer_linalg(l), "scalapack") &&
               imx_objective_dist_solves(obj, imx_layer_samples(l), (int)K);
  f[0] = 2 * N * K * n;                                                /* Z = X W^T */
  f[1] = N * K * (K + 1);                                              /* the lower half of D^T D */
  f[2] = cov ? (solves ? K * K * K / 3 : K * K * K) : 0;               /* Cholesky (+ M^-1) */
  f[3] = 2 * N * K * n + (cov ? 2 * N * K * K : 0) +                   /* dW, D G or the solves */
         (solves && imx_objective_dist_rest(obj) ? 2 * N * K * K : 0); /* + D G beside them */
}

int main(int argc, char **argv) {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  MPI_Init(&argc, &argv);
  imx_ctx ctx;
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  imx_log_set_level(IMX_WARN);
  imx_config c;
  imx_config_defaults(&c);
  c.data.source = IMX_SRC_GMM;
  c.data.samples = 8192;
  c.data.dim = 64;
  c.data.components = 16;
  c.model.units = 1024;
  c.model.activation = IMX_ACT_SOFTMAX;
  c.model.init_bias = 0.1;
  c.objective.eps = 1e-3;
  c.parallel.scalapack_block = 64;
  int evals = 2, dgemm = 2000;
  const char *const linalgs[] = {"auto", "replicated", "scalapack", NULL};
  const char *const acts[] = {"identity", "relu", "softmax", NULL};
  const char *const reds[] = {"reproducible", "fast", NULL};
  const char *const paths[] = {"auto", "data", "moments", NULL};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    int bad = 0;
    if (!strcmp(k, "--K")) c.model.units = atoi(v);
    else if (!strcmp(k, "--N")) c.data.samples = atoll(v);
    else if (!strcmp(k, "--n")) c.data.dim = atoi(v);
    else if (!strcmp(k, "--evals")) evals = atoi(v);
    else if (!strcmp(k, "--eps")) c.objective.eps = atof(v);
    else if (!strcmp(k, "--dgemm")) dgemm = atoi(v);
    else if (!strcmp(k, "--nb")) c.parallel.scalapack_block = atoi(v);
    else if (!strcmp(k, "--preset"))
      snprintf(c.objective.preset, sizeof c.objective.preset, "%s", v);
    else if (!strcmp(k, "--grid"))
      bad = sscanf(v, "%dx%d", &c.parallel.grid_rows, &c.parallel.grid_cols) != 2;
    else if (!strcmp(k, "--linalg")) bad = (int)(c.parallel.linalg = parse_enum(v, linalgs)) < 0;
    else if (!strcmp(k, "--activation")) bad = (int)(c.model.activation = parse_enum(v, acts)) < 0;
    else if (!strcmp(k, "--reduction")) bad = (int)(c.parallel.reduction = parse_enum(v, reds)) < 0;
    else if (!strcmp(k, "--path")) bad = (int)(c.parallel.path = parse_enum(v, paths)) < 0;
    else bad = 1;
    if (bad) {
      if (ctx.rank == 0) fprintf(stderr, "bench_linalg: bad option %s %s\n", k, v);
      MPI_Finalize();
      return 2;
    }
  }
  imx_data *d = NULL;
  imx_layer *l = NULL;
  double *theta = NULL, *grad = NULL, f = 0;
  imx_err e = imx_data_load(&ctx, &c, &d);
  if (!e) e = imx_preprocess_apply(&ctx, &c, d, NULL, NULL);
  if (!e) e = imx_layer_create(&ctx, &c, d, &l);
  int np = l ? imx_layer_nparams(l) : 0;
  if (!e) {
    theta = malloc((size_t)np * sizeof *theta), grad = malloc((size_t)np * sizeof *grad);
    e = imx_layer_init_params(&ctx, l, &c, theta);
  }
  char la0[32], la1[32];
  double first = 0, *secs = calloc((size_t)evals, sizeof *secs), busy0 = 0, own0 = 0, t0 = 0;
  /* The measured window: the timed evaluations, or the warm-up if none. */
  loadavg(la0, sizeof la0);
  MPI_Barrier(ctx.comm);
  busy0 = cpu_busy_seconds(), own0 = own_cpu_seconds(), t0 = imx_now();
  if (!e) {
    e = imx_layer_eval(&ctx, l, theta, &f, grad, NULL);
    MPI_Barrier(ctx.comm);
    first = imx_now() - t0;
  }
  if (evals > 0) {
    imx_timer_reset();
    loadavg(la0, sizeof la0);
    busy0 = cpu_busy_seconds(), own0 = own_cpu_seconds(), t0 = imx_now();
  }
  for (int k = 0; !e && k < evals; k++) {
    MPI_Barrier(ctx.comm);
    double t = imx_now();
    e = imx_layer_eval(&ctx, l, theta, &f, grad, NULL);
    MPI_Barrier(ctx.comm);
    secs[k] = imx_now() - t;
  }
  double wall = imx_now() - t0, own = own_cpu_seconds() - own0, busy = cpu_busy_seconds() - busy0;
  loadavg(la1, sizeof la1);
  MPI_Allreduce(MPI_IN_PLACE, &own, 1, MPI_DOUBLE, MPI_SUM, ctx.comm);
  double phases[IMX_NTIMERS];
  for (int t = 0; t < IMX_NTIMERS; t++)
    phases[t] = imx_timer_get((imx_timer_id)t) / (evals > 0 ? evals : 1);
  MPI_Allreduce(MPI_IN_PLACE, phases, IMX_NTIMERS, MPI_DOUBLE, MPI_MAX, ctx.comm);
  double peak = NAN; /* after the measured window */
  if (!e) e = imx_linalg_dgemm_rate(&ctx, dgemm, &peak);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss = ru.ru_maxrss / 1024.0, lbytes = l ? imx_layer_bytes(l) / 1048576 : 0;
  double *rsss = malloc((size_t)ctx.size * sizeof *rsss),
         *lbs = malloc((size_t)ctx.size * sizeof *lbs);
  MPI_Gather(&rss, 1, MPI_DOUBLE, rsss, 1, MPI_DOUBLE, 0, ctx.comm);
  MPI_Gather(&lbytes, 1, MPI_DOUBLE, lbs, 1, MPI_DOUBLE, 0, ctx.comm);
  if (ctx.rank == 0) {
    int pr = 0, pc = 0, nb = 0;
    if (l) imx_layer_grid(l, &pr, &pc, &nb);
    printf(
        "{\"K\": %d, \"N\": %lld, \"n\": %d, \"P\": %d, \"activation\": \"%s\", \"preset\": \"%s\", "
        "\"reduction\": \"%s\", \"requested\": \"%s\"",
        c.model.units, c.data.samples, c.data.dim, ctx.size, acts[c.model.activation],
        c.objective.preset, reds[c.parallel.reduction], linalgs[c.parallel.linalg]);
    if (e) {
      char *q = ctx.msg;
      for (; *q; q++)
        if (*q == '"') *q = '\'';
      printf(", \"error\": \"%s\"}\n", ctx.msg);
    } else {
      printf(
          ", \"linalg\": \"%s\", \"path\": \"%s\", \"grid\": [%d, %d], \"nb\": %d, \"why\": \"%s\"",
          imx_layer_linalg(l), imx_layer_path(l), pr, pc, nb, imx_layer_linalg_reason(l));
      printf(", \"loss\": %.17g, \"first_s\": %.4f, \"eval_s\": [", f, first);
      for (int k = 0; k < evals; k++) printf("%s%.4f", k ? ", " : "", secs[k]);
      printf("], \"phases_s\": {");
      for (int t = IMX_T_FORWARD; t <= IMX_T_BACKWARD; t++)
        printf("%s\"%s\": %.4f", t > IMX_T_FORWARD ? ", " : "", imx_timer_names[t], phases[t]);
      printf("}");
      if (!strcmp(imx_layer_path(l), "data")) {
        const imx_timer_id ph[4] = {IMX_T_FORWARD, IMX_T_MOMENTS, IMX_T_LINALG, IMX_T_BACKWARD};
        double fl[4], tf = 0;
        phase_flops(l, fl);
        printf(", \"gflop\": {");
        for (int t = 0; t < 4; t++)
          printf("%s\"%s\": %.6g", t ? ", " : "", imx_timer_names[ph[t]], fl[t] / 1e9);
        printf("}, \"gflops\": {");
        for (int t = 0; t < 4; t++) {
          double sec = phases[ph[t]];
          tf += fl[t];
          printf("%s\"%s\": %.1f", t ? ", " : "", imx_timer_names[ph[t]],
                 fl[t] / ctx.size / sec / 1e9);
        }
        double whole = evals > 0 ? 0 : first; /* as the phases: the mean of the timed */
        for (int k = 0; k < evals; k++) whole += secs[k] / evals;
        double rate = tf / ctx.size / whole / 1e9;
        printf("}, \"eval_gflops\": %.6g", rate);
        if (peak > 0) printf(", \"dgemm_gflops\": %.6g, \"frac_dgemm\": %.6g", peak, rate / peak);
        else printf(", \"dgemm_gflops\": null, \"frac_dgemm\": null");
      }
      printf(", \"layer_mib\": [");
      for (int r = 0; r < ctx.size; r++) printf("%s%.1f", r ? ", " : "", lbs[r]);
      printf("], \"peak_rss_mib\": [");
      for (int r = 0; r < ctx.size; r++) printf("%s%.1f", r ? ", " : "", rsss[r]);
      printf("], \"cpu_s\": %.4f, \"loadavg\": [%s, %s], \"foreign_cpu\": %.2f}\n",
             own / (evals > 0 ? evals : 1), la0, la1, wall > 0 ? (busy - own) / wall : 0);
    }
    fflush(stdout);
  }
  free(rsss), free(lbs), free(secs), free(theta), free(grad);
  imx_layer_free(&l);
  imx_data_free(&d);
  imx_ctx_finalize(&ctx);
  MPI_Finalize();
  return e ? (int)e : 0;
}
