/* test_scalapack: the scalapack backend (C, G block-cyclic on a BLACS grid)
 * against the replicated backend: loss and gradient agree to 1e-10 relative
 * for K not a multiple of the tile size, every grid shape of P ranks, every
 * activation and every objective term, both evaluation paths and both
 * reduction modes; a matrix that is not SPD fails with the same message;
 * in reproducible mode the scalapack backend gives the same bits on 1..P
 * ranks; auto picks scalapack when the replicated matrices do not fit; the
 * buffers stay within a constant of K^2/P + N_p (n + K) + K n. Collective. */
#include "imx/dmat.h"
#include "imx/layer.h"
#include "imx/linalg.h"
#include "imx/log.h"
#include "imx/preprocess.h"

#include "testing.h"

static imx_ctx ctx;

static imx_data *load(imx_ctx *c, const imx_config *cfg) {
  imx_data *d = NULL;
  if (imx_data_load(c, cfg, &d) || imx_preprocess_apply(c, cfg, d, NULL, NULL)) {
    t_check(0, "load data: %s", c->msg);
    imx_data_free(&d);
    return NULL;
  }
  return d;
}

/* Loss and gradient at the configuration's initial point. */
static int evaluate(imx_ctx *c, const imx_config *cfg, const imx_data *d, int moments, int panel,
                    int group, double *f, double **g, int *np, char *backend) {
  imx_layer *l = NULL;
  *g = NULL;
  if (imx_layer_create(c, cfg, d, &l)) return -1;
  imx_err e = imx_layer_set_path(c, l, moments);
  if (!e) e = imx_layer_set_panels(c, l, panel, group);
  *np = imx_layer_nparams(l);
  double *theta = malloc((size_t)*np * sizeof *theta);
  *g = malloc((size_t)*np * sizeof **g);
  if (!e) e = imx_layer_init_params(c, l, cfg, theta);
  if (!e) e = imx_layer_eval(c, l, theta, f, *g, NULL);
  if (backend) snprintf(backend, 16, "%s", imx_layer_linalg(l));
  free(theta);
  imx_layer_free(&l);
  return e ? -1 : 0;
}

static double grad_err(const double *a, const double *b, int np) {
  double e = 0, m = 0;
  for (int i = 0; i < np; i++) e = fmax(e, fabs(a[i] - b[i])), m = fmax(m, fabs(b[i]));
  return m > 0 ? e / m : e;
}

/* Weights of an objective: one moment term alone, or "all" (every term that
 * applies to the activation). */
static void set_terms(imx_config *c, int which) {
  snprintf(c->objective.preset, sizeof c->objective.preset, "none");
  for (int t = 0; t < IMX_NTERMS; t++) c->objective.weight[t] = 0;
  c->objective.hsic_features = 2; /* (K D)^2 work stays small at K = 100 */
  if (which < IMX_NTERMS) {
    c->objective.weight[which] = 1.3;
    return;
  }
  /* entropy and hsic stay 0 here: "all" is also checked on the moments path */
  const double w[IMX_NTERMS] = {1.0, 0.3, 0.7, 0.5, 0.4, 0.2, 0.6, 0, 0};
  for (int t = 0; t < IMX_NTERMS; t++) c->objective.weight[t] = w[t];
  if (c->model.activation == IMX_ACT_IDENTITY) c->objective.weight[IMX_TERM_LSE] = 0;
}

static const char *terms_name(int which) {
  return which < IMX_NTERMS ? imx_term_names[which] : "all terms";
}

/* 1. Both backends agree, over shapes, grids, activations, terms, paths. */
static void agreement(void) {
  const int Ks[] = {5, 37, 64, 100}, nbs[] = {8, 16};
  const imx_activation acts[] = {IMX_ACT_IDENTITY, IMX_ACT_RELU, IMX_ACT_SOFTMAX, IMX_ACT_TOPK,
                                 IMX_ACT_SPARSEMAX};
  const int sets[] = {
      IMX_TERM_LOGDET,        IMX_TERM_OFFDIAG, IMX_TERM_VARIANCE, IMX_TERM_GAUSSIAN_TC,
      IMX_TERM_DECORRELATION, IMX_TERM_ENTROPY, IMX_TERM_HSIC,     IMX_NTERMS};
  const int nsets = (int)(sizeof sets / sizeof *sets);
  int P = ctx.size, grids[8][2], ngrids = 0;
  for (int r = 1; r <= P; r++)
    if (P % r == 0) grids[ngrids][0] = r, grids[ngrids][1] = P / r, ngrids++;
  double worst_f = 0, worst_g = 0;
  int cases = 0, failures = 0, grid_diffs = 0;
  for (int ki = 0; ki < 4; ki++)
    for (int ai = 0; ai < 5; ai++)
      for (int si = 0; si < nsets; si++)
        /* the moments path needs identity outputs and no per-sample term */
        for (int path = 0; path < (acts[ai] == IMX_ACT_IDENTITY && sets[si] != IMX_TERM_ENTROPY &&
                                           sets[si] != IMX_TERM_HSIC
                                       ? 2
                                       : 1);
             path++)
          for (int mode = 0; mode < 2; mode++) {
            /* fast mode on a subset: every term set once per activation at K = 37 */
            if (mode == 1 && Ks[ki] != 37) continue;
            /* topk and sparsemax share the data path with softmax: K = 37 and 64 */
            if (acts[ai] >= IMX_ACT_TOPK && Ks[ki] != 37 && Ks[ki] != 64) continue;
            imx_config c;
            t_small_config(&c, 400, 6, Ks[ki], 16);
            c.model.activation = acts[ai];
            c.model.topk = Ks[ki] / 8;
            c.model.temperature = 0.7;
            c.model.init_bias = 0.3;
            /* Identity outputs with K > n have a rank-n C: with eps = 1e-3 the
             * replicated backend's own data and moments paths already differ by
             * 6e-10 in the logdet gradient (conditioning ~ 1/eps^2), so these
             * cases use a ridge that keeps M well conditioned. */
            c.objective.eps = acts[ai] == IMX_ACT_IDENTITY ? 0.1 : 1e-3;
            c.parallel.reduction = mode ? IMX_RED_FAST : IMX_RED_REPRODUCIBLE;
            set_terms(&c, sets[si]);
            imx_data *d = load(&ctx, &c);
            if (!d) return;
            c.parallel.linalg = IMX_LINALG_REPLICATED;
            double fr, *gr = NULL, fs, *gs = NULL;
            int np = 0, moments = path == 1;
            if (evaluate(&ctx, &c, d, moments, 0, 0, &fr, &gr, &np, NULL)) {
              t_check(0, "replicated K=%d %s %s: %s", Ks[ki], imx_activation_name(acts[ai]),
                      terms_name(sets[si]), ctx.msg);
              ctx.code = IMX_OK;
              free(gr);
              imx_data_free(&d);
              continue;
            }
            double fref[2] = {0, 0},
                   *gref[2] = {NULL, NULL}; /* per nb, first grid: the bits every grid must give */
            for (int ni = 0; ni < 2; ni++)
              for (int gi = 0; gi < ngrids; gi++) {
                c.parallel.linalg = IMX_LINALG_SCALAPACK;
                c.parallel.scalapack_block = nbs[ni];
                c.parallel.grid_rows = grids[gi][0], c.parallel.grid_cols = grids[gi][1];
                /* one-tile panels and two-tile groups (many exchanges, the Cholesky's
                 * trailing updates) for nb = 8, automatic for 16 */
                int panel = nbs[ni] == 8 ? 1 : 0, group = nbs[ni] == 8 ? 2 : 0;
                char be[16] = "";
                int bad = evaluate(&ctx, &c, d, moments, panel, group, &fs, &gs, &np, be);
                double ef = bad ? INFINITY : t_relerr(fs, fr, 1e-300);
                double eg = bad ? INFINITY : grad_err(gs, gr, np);
                worst_f = fmax(worst_f, ef), worst_g = fmax(worst_g, eg);
                cases++;
                int ok = !bad && ef <= 1e-10 && eg <= 1e-10 && !strcmp(be, "scalapack");
                if (!ok && failures++ < 10)
                  t_check(0, "K=%d nb=%d grid %dx%d %s %s %s path %s: loss %.3e grad %.3e%s%s",
                          Ks[ki], nbs[ni], grids[gi][0], grids[gi][1],
                          imx_activation_name(acts[ai]), terms_name(sets[si]),
                          moments ? "moments" : "data", mode ? "fast" : "reproducible", ef, eg,
                          bad ? ": " : "", bad ? ctx.msg : "");
                ctx.code = IMX_OK;
                /* Reproducible mode with the same tiles and panels: the same bits on every grid. */
                if (!bad && mode == 0) {
                  if (!gref[ni]) {
                    fref[ni] = fs, gref[ni] = gs, gs = NULL;
                  } else if (memcmp(&fref[ni], &fs, sizeof fs) ||
                             memcmp(gref[ni], gs, (size_t)np * sizeof *gs)) {
                    grid_diffs++;
                    if (failures++ < 10)
                      t_check(0, "K=%d nb=%d grid %dx%d %s %s: bits differ from grid %dx%d", Ks[ki],
                              nbs[ni], grids[gi][0], grids[gi][1], imx_activation_name(acts[ai]),
                              terms_name(sets[si]), grids[0][0], grids[0][1]);
                  }
                }
                free(gs);
                gs = NULL;
              }
            free(gref[0]), free(gref[1]);
            free(gr);
            imx_data_free(&d);
          }
  t_check(failures == 0 && cases > 0,
          "scalapack vs replicated, %d cases (K 5/37/64/100, nb 8/16, every %d-rank grid, "
          "5 activations, 8 term sets (entropy and hsic on the data path), both paths, both "
          "reductions): max rel err loss %.2e, "
          "gradient %.2e (tol 1e-10)",
          cases, P, worst_f, worst_g);
  t_check(grid_diffs == 0 && ngrids > 0,
          "scalapack, reproducible: loss and gradient bitwise identical on all %d grids of %d "
          "ranks (every case, nb 8 and 16)",
          ngrids, P);
}

/* 2. Not SPD: the same message from both backends (fast mode: naming
 * ScaLAPACK's pdpotrf). */
/* 1b. objective.on: z, where the data path keeps z for the terms and phi(z)
 * for lse: both backends agree on relu, softmax and topk, on both paths
 * (the moments path with moment terms alone). */
static void on_z(void) {
  const imx_activation acts[] = {IMX_ACT_RELU, IMX_ACT_SOFTMAX, IMX_ACT_TOPK};
  double worst_f = 0, worst_g = 0;
  int cases = 0, bad_cases = 0;
  for (int ai = 0; ai < 3; ai++)
    for (int moments = 0; moments < 2; moments++) {
      imx_config c;
      t_small_config(&c, 400, 6, 37, 16);
      c.model.activation = acts[ai], c.model.topk = 4, c.model.temperature = 0.7;
      c.model.init_bias = 0.3, c.objective.eps = 0.1, c.objective.on = IMX_ON_Z;
      set_terms(&c, IMX_NTERMS);
      if (!moments) c.objective.weight[IMX_TERM_ENTROPY] = 0.4;
      else c.objective.weight[IMX_TERM_LSE] = 0;
      imx_data *d = load(&ctx, &c);
      if (!d) return;
      double fr, fs, *gr = NULL, *gs = NULL;
      int np = 0;
      c.parallel.linalg = IMX_LINALG_REPLICATED;
      int bad = evaluate(&ctx, &c, d, moments, 0, 0, &fr, &gr, &np, NULL);
      c.parallel.linalg = IMX_LINALG_SCALAPACK, c.parallel.scalapack_block = 8;
      bad = bad || evaluate(&ctx, &c, d, moments, 0, 0, &fs, &gs, &np, NULL);
      double ef = bad ? INFINITY : t_relerr(fs, fr, 1e-300),
             eg = bad ? INFINITY : grad_err(gs, gr, np);
      worst_f = fmax(worst_f, ef), worst_g = fmax(worst_g, eg);
      cases++;
      if (!(ef <= 1e-10 && eg <= 1e-10) && bad_cases++ < 5)
        t_check(0, "on z, K=37 %s %s path: loss %.3e grad %.3e%s%s", imx_activation_name(acts[ai]),
                moments ? "moments" : "data", ef, eg, bad ? ": " : "", bad ? ctx.msg : "");
      ctx.code = IMX_OK;
      free(gr), free(gs);
      imx_data_free(&d);
    }
  t_check(bad_cases == 0,
          "objective.on: z, scalapack vs replicated, %d cases (relu/softmax/topk, data path with "
          "lse on phi(z) and entropy, moments path): worst loss rel err %.2e, gradient %.2e (tol "
          "1e-10)",
          cases, worst_f, worst_g);
}

static void not_spd(void) {
  char msg[2][IMX_MSG_LEN];
  /* A dead relu unit (bias far below every z) has a zero row and column in C:
   * the Cholesky stops exactly at its pivot in both backends. */
  for (int mode = 0; mode < 2; mode++) {
    imx_config c;
    t_small_config(&c, 400, 6, 37, 16);
    c.model.activation = IMX_ACT_RELU;
    c.model.init_bias = 0.3;
    c.parallel.reduction = mode ? IMX_RED_FAST : IMX_RED_REPRODUCIBLE;
    snprintf(c.objective.preset, sizeof c.objective.preset, "gaussian");
    imx_data *d = load(&ctx, &c);
    if (!d) return;
    imx_err codes[2];
    for (int b = 0; b < 2; b++) {
      c.parallel.linalg = b ? IMX_LINALG_SCALAPACK : IMX_LINALG_REPLICATED;
      c.parallel.scalapack_block = 8;
      imx_layer *l = NULL;
      double f, *g = NULL;
      codes[b] = imx_layer_create(&ctx, &c, d, &l);
      if (!codes[b]) {
        int np = imx_layer_nparams(l);
        double *theta = malloc((size_t)np * sizeof *theta);
        g = malloc((size_t)np * sizeof *g);
        imx_layer_init_params(&ctx, l, &c, theta);
        theta[(size_t)37 * 6 + 20] = -1e6; /* b_20: unit 20 is never active */
        codes[b] = imx_layer_eval(&ctx, l, theta, &f, g, NULL);
        free(theta);
      }
      snprintf(msg[b], sizeof msg[b], "%s", ctx.msg);
      ctx.code = IMX_OK;
      free(g);
      imx_layer_free(&l);
    }
    char norm[IMX_MSG_LEN]; /* fast: "pdpotrf" -> "dpotrf" */
    const char *p = strstr(msg[1], "pdpotrf");
    if (p && mode) snprintf(norm, sizeof norm, "%.*s%s", (int)(p - msg[1]), msg[1], p + 1);
    else snprintf(norm, sizeof norm, "%s", msg[1]);
    t_check(
        codes[0] == IMX_ERR_NUMERIC && codes[1] == IMX_ERR_NUMERIC && !strcmp(norm, msg[0]) &&
            strstr(msg[0], "INFO=21") && (!mode || strstr(msg[1], "pdpotrf INFO=21")),
        "dead unit 20 of K=37, %s: %s error from both backends:\n  replicated: %s\n  scalapack:  %s",
        mode ? "fast" : "reproducible", mode ? "the same (routine aside)" : "the same", msg[0],
        msg[1]);
    imx_data_free(&d);
  }

  /* The linear algebra directly: M = I except M[29][29] = -1. */
  imx_grid *g = NULL;
  imx_dmat *M = NULL;
  int K = 37;
  double *R = calloc((size_t)K * K, sizeof *R), ld = 0, work[37];
  for (int i = 0; i < K; i++) R[(size_t)i * K + i] = i == 29 ? -1 : 1;
  imx_err er = imx_linalg_logdet_inverse(&ctx, K, R, "M", &ld);
  snprintf(msg[0], sizeof msg[0], "%s", ctx.msg);
  imx_dinv *inv = NULL;
  imx_err es = imx_grid_create(&ctx, 0, 0, &g);
  if (!es) es = imx_dmat_create(&ctx, g, K, 8, &M);
  if (!es) es = imx_dinv_create(&ctx, M, 1, 2, &inv);
  if (!es) {
    for (int J = 0; J < M->kt; J++)
      for (int I = 0; I < M->kt; I++) {
        if (!imx_dmat_mine(M, I, J)) continue;
        double *t = imx_dmat_tile(M, I, J);
        for (int j = 0; j < imx_dmat_tile_rows(M, J); j++)
          for (int i = 0; i < imx_dmat_tile_rows(M, I); i++) {
            int gi = I * 8 + i, gj = J * 8 + j;
            t[i + (size_t)j * M->lld] = gi == gj ? (gi == 29 ? -1 : 1) : 0;
          }
      }
    es = imx_linalg_dist_logdet_inverse(&ctx, M, "M", &ld, work, inv);
  }
  t_check(er == IMX_ERR_NUMERIC && es == IMX_ERR_NUMERIC && !strcmp(msg[0], ctx.msg) &&
              strstr(msg[0], "dpotrf INFO=30") && strstr(ctx.msg, "objective.eps"),
          "M[29][29] = -1: replicated \"%.40s...\", scalapack \"%.40s...\"", msg[0], ctx.msg);
  ctx.code = IMX_OK;
  imx_dinv_free(&inv);
  imx_dmat_free(&M);
  imx_grid_free(&g);
  free(R);
}

/* 3. Reproducible mode: the scalapack backend's loss and gradient have the
 * same bits on p = 1..P ranks (sub-communicators, automatic grids). */
static void invariance(void) {
  int P = ctx.size, wrank = ctx.rank;
  struct {
    const char *name;
    imx_activation act;
    const char *preset;
    int moments;
    int N, K;      /* 0: 1000 rows, 45 units */
    double lambda; /* the preset's lambda (< 0: the default) */
  } cases[] = {
      {"softmax, gaussian (logdet + offdiag), data path", IMX_ACT_SOFTMAX, "gaussian", 0, 0, 0, -1},
      {"softmax, gaussian-tc, data path", IMX_ACT_SOFTMAX, "gaussian-tc", 0, 0, 0, -1},
      {"relu, implicit-em, data path", IMX_ACT_RELU, "implicit-em", 0, 0, 0, -1},
      {"topk (k = 5), gaussian, data path", IMX_ACT_TOPK, "gaussian", 0, 0, 0, -1},
      {"sparsemax, gaussian-tc, data path", IMX_ACT_SPARSEMAX, "gaussian-tc", 0, 0, 0, -1},
      {"identity, decorrelation, moments path", IMX_ACT_IDENTITY, "decorrelation", 1, 0, 0, -1},
      {"identity, gaussian, moments path", IMX_ACT_IDENTITY, "gaussian", 1, 0, 0, -1},
      /* logdet's M^-1 applied by triangular solves (imx_objective_dist_solves) */
      {"softmax, logdet alone (solves), data path", IMX_ACT_SOFTMAX, "gaussian", 0, 0, 0, 0},
      {"softmax, gaussian, N = 40 < K/3 (solves + offdiag), data path", IMX_ACT_SOFTMAX, "gaussian",
       0, 40, 130, -1},
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    double f1 = 0, *g1 = NULL;
    int np = 0;
    for (int p = 1; p <= P; p++) {
      MPI_Comm sub;
      MPI_Comm_split(MPI_COMM_WORLD, wrank < p ? 0 : MPI_UNDEFINED, wrank, &sub);
      double f = 0, *g = NULL;
      int bad = 0;
      if (sub != MPI_COMM_NULL) {
        imx_ctx sc;
        imx_ctx_init(&sc, sub);
        imx_config c;
        t_small_config(&c, cases[ci].N ? cases[ci].N : 1000, 6, cases[ci].K ? cases[ci].K : 45,
                       cases[ci].N ? 8 : 32);
        if (cases[ci].lambda >= 0) c.objective.lambda = cases[ci].lambda;
        c.model.activation = cases[ci].act;
        c.model.topk = 5;
        c.model.init_bias = 0.2;
        c.objective.eps = 1e-3;
        snprintf(c.objective.preset, sizeof c.objective.preset, "%s", cases[ci].preset);
        c.parallel.linalg = IMX_LINALG_SCALAPACK;
        c.parallel.scalapack_block = 8;
        imx_data *d = load(&sc, &c);
        bad = !d || evaluate(&sc, &c, d, cases[ci].moments, 0, 0, &f, &g, &np, NULL);
        if (bad) t_check(0, "%s on %d ranks: %s", cases[ci].name, p, sc.msg);
        imx_data_free(&d);
        imx_ctx_finalize(&sc);
        MPI_Comm_free(&sub);
      }
      if (wrank == 0) {
        if (p == 1) {
          f1 = f, g1 = g;
          continue;
        }
        int same = !bad && !memcmp(&f, &f1, sizeof f) && !memcmp(g, g1, (size_t)np * sizeof *g);
        t_check(same,
                "scalapack, reproducible: %s: %d ranks vs 1: loss %.17g vs %.17g, gradient %s",
                cases[ci].name, p, f, f1, same ? "bitwise identical" : "DIFFERS");
      }
      free(g);
    }
    if (wrank == 0 && P == 1)
      t_check(g1 != NULL, "scalapack, reproducible: %s: 1 rank evaluated (run at P > 1 to compare)",
              cases[ci].name);
    free(g1);
  }
}

/* 3b. The solves beside other terms (3 N < K): scalapack against
 * replicated (which forms M^{-1}), both reductions, two tile sizes; the
 * rule's choice at the boundary. */
static void solves(void) {
  imx_config c;
  t_small_config(&c, 40, 6, 130, 8);
  c.model.activation = IMX_ACT_SOFTMAX;
  c.model.temperature = 0.7;
  c.objective.eps = 0.05;
  snprintf(c.objective.preset, sizeof c.objective.preset, "gaussian");
  imx_data *d = load(&ctx, &c);
  if (!d) return;
  imx_objective o = {0};
  o.w[IMX_TERM_LOGDET] = 1, o.w[IMX_TERM_OFFDIAG] = 0.1;
  int rule = imx_objective_dist_solves(&o, 40, 130) && !imx_objective_dist_solves(&o, 44, 130) &&
             imx_objective_dist_solves(&o, 43, 130);
  o.w[IMX_TERM_OFFDIAG] = 0;
  rule = rule && imx_objective_dist_solves(&o, 100000, 130);
  o.w[IMX_TERM_GAUSSIAN_TC] = 1;
  rule = rule && !imx_objective_dist_solves(&o, 1, 130);
  t_check(rule,
          "solves rule: logdet + offdiag solves iff 3 N < K (N = 43 yes, 44 no at K = 130); "
          "logdet alone always; never with gaussian_tc");
  c.parallel.linalg = IMX_LINALG_REPLICATED;
  double fr, *gr = NULL, worst_f = 0, worst_g = 0;
  int np = 0, bad = evaluate(&ctx, &c, d, 0, 0, 0, &fr, &gr, &np, NULL), cases = 0;
  for (int mode = 0; !bad && mode < 2; mode++)
    for (int nb = 8; nb <= 32; nb *= 4) {
      c.parallel.linalg = IMX_LINALG_SCALAPACK;
      c.parallel.scalapack_block = nb;
      c.parallel.reduction = mode ? IMX_RED_FAST : IMX_RED_REPRODUCIBLE;
      double fs, *gs = NULL;
      char be[16] = "";
      int b = evaluate(&ctx, &c, d, 0, nb == 8 ? 1 : 0, nb == 8 ? 2 : 0, &fs, &gs, &np, be);
      worst_f = fmax(worst_f, b ? INFINITY : t_relerr(fs, fr, 1e-300));
      worst_g = fmax(worst_g, b ? INFINITY : grad_err(gs, gr, np));
      bad |= b || strcmp(be, "scalapack");
      cases++;
      free(gs);
    }
  t_check(
      !bad && worst_f <= 1e-10 && worst_g <= 1e-10,
      "solves beside offdiag (softmax, gaussian, N = 40, K = 130), scalapack vs replicated, %d "
      "cases (nb 8 and 32, both reductions): max rel err loss %.2e, gradient %.2e (tol 1e-10)%s",
      cases, worst_f, worst_g, bad ? ctx.msg : "");
  ctx.code = IMX_OK;
  free(gr);
  imx_data_free(&d);
}

/* 3c. Bytes sent per rank in one evaluation (imx_comm_sent): 0 on one rank,
 * (P-1)/P of a P-independent payload B on P ranks, and B = 8 (a Ltot + 2 K
 * n' + c K) for the scalapack backend with a = 6 lower triangles (gram's 3
 * bins, the Cholesky's panels, two solves) with the solves, a = 8 with the
 * inverse (+2 for the inverse, +1 for G), docs/performance.md's formula
 * (Ltot the elements of the lower tiles, n' = 3 (K n + K) for the exact
 * sums of dL/dW and dL/db, (kt-1) nb^2 the diagonal tiles' broadcasts,
 * about 16 K for the O(K) vectors; within 2 %). */
static void comm_bytes(void) {
  int P = ctx.size, wrank = ctx.rank;
  for (int solve = 1; solve >= 0; solve--) {
    double B[5] = {0}, L = 0;
    for (int p = 1; p <= P; p++) {
      MPI_Comm sub;
      MPI_Comm_split(MPI_COMM_WORLD, wrank < p ? 0 : MPI_UNDEFINED, wrank, &sub);
      double sent = 0;
      if (sub != MPI_COMM_NULL) {
        imx_ctx sc;
        imx_ctx_init(&sc, sub);
        imx_config c;
        t_small_config(&c, 1000, 6, 96, 32);
        c.model.activation = IMX_ACT_SOFTMAX;
        c.objective.eps = 1e-3;
        c.objective.lambda = solve
                                 ? 0
                                 : 0.1; /* logdet alone: solves; with offdiag at N > 3K: inverse */
        c.parallel.linalg = IMX_LINALG_SCALAPACK;
        c.parallel.scalapack_block = 16;
        imx_data *d = load(&sc, &c);
        imx_layer *l = NULL;
        int bad = !d || imx_layer_create(&sc, &c, d, &l) || imx_layer_set_path(&sc, l, 0);
        int np = l ? imx_layer_nparams(l) : 1;
        double *th = malloc((size_t)np * sizeof *th), *g = malloc((size_t)np * sizeof *g), f;
        if (!bad) bad = imx_layer_init_params(&sc, l, &c, th) != IMX_OK;
        sc.sent_bytes = 0;
        if (!bad) bad = imx_layer_eval(&sc, l, th, &f, g, NULL) != IMX_OK;
        MPI_Allreduce(&sc.sent_bytes, &sent, 1, MPI_DOUBLE, MPI_MAX, sub);
        if (bad) t_check(0, "bytes on %d ranks: %s", p, sc.msg);
        free(th), free(g);
        imx_layer_free(&l);
        imx_data_free(&d);
        imx_ctx_finalize(&sc);
        MPI_Comm_free(&sub);
      }
      if (p <= 4) B[p] = p > 1 ? sent * p / (p - 1) : sent;
    }
    int K = 96, nb = 16, kt = K / nb, n = 6;
    for (int J = 0; J < kt; J++) L += (double)(kt - J) * nb * nb;
    double model = 8 * ((solve ? 6 : 8) * L + 2 * 3.0 * (K * n + K) + (kt - 1) * nb * nb + 16 * K);
    if (wrank != 0) continue;
    int same = 1;
    for (int p = 3; p <= P && p <= 4; p++) same &= fabs(B[p] - B[2]) <= 1e-12 * B[2];
    double ratio = P > 1 ? B[2] / model : 1;
    t_check(
        B[1] == 0 && same && fabs(ratio - 1) < 0.02,
        "bytes per rank per evaluation (%s, K = 96, nb = 16, n = 6): P = 1: %.0f; "
        "sent x P/(P-1) = %.0f / %.0f / %.0f at P = 2 / 3 / 4; model 8 (%d Ltot + 6 (K n + K) + (kt-1) nb^2 + 16 K) "
        "= %.0f, ratio %.4f (tol 2 %%)",
        solve ? "logdet alone, solves" : "gaussian, inverse", B[1], B[2], B[3], B[4], solve ? 6 : 8,
        model, ratio);
  }
}

/* 4. auto: the choice and its reason; the grid must fit the ranks. */
static void choice(void) {
  imx_config c;
  t_small_config(&c, 400, 6, 37, 16);
  c.model.activation = IMX_ACT_SOFTMAX;
  imx_data *d = load(&ctx, &c);
  if (!d) return;
  imx_layer *l = NULL;
  imx_layer_create(&ctx, &c, d, &l);
  t_check(l && !strcmp(imx_layer_linalg(l), "replicated"),
          "auto with K=37 and memory to spare: %s (%s)", l ? imx_layer_linalg(l) : "error",
          l ? imx_layer_linalg_reason(l) : ctx.msg);
  imx_layer_free(&l);
  c.parallel.memory_mib = 0.05; /* replicated needs more than 3/4 of this */
  imx_layer_create(&ctx, &c, d, &l);
  t_check(l && !strcmp(imx_layer_linalg(l), "scalapack") &&
              strstr(imx_layer_linalg_reason(l), "more than 3/4"),
          "auto with parallel.memory_mib = 0.05: %s (%s)", l ? imx_layer_linalg(l) : "error",
          l ? imx_layer_linalg_reason(l) : ctx.msg);
  imx_layer_free(&l);
  char why[400];
  imx_linalg_kind k = imx_linalg_choose(IMX_LINALG_AUTO, 20000, 2, 1e9, 1e8, 1e12, why, sizeof why);
  t_check(k == IMX_LINALG_SCALAPACK && strstr(why, "faster"),
          "auto, K=20000 on 2 ranks with memory to spare: scalapack (%s)", why);
  k = imx_linalg_choose(IMX_LINALG_AUTO, 2000, 1, 1e8, 1e8, 1e12, why, sizeof why);
  t_check(k == IMX_LINALG_REPLICATED,
          "auto, K=2000 on 1 rank with memory to spare: replicated (%s)", why);
  k = imx_linalg_choose(IMX_LINALG_AUTO, 2000, 4, 1e8, 1e8, 1e8, why, sizeof why);
  t_check(k == IMX_LINALG_SCALAPACK && strstr(why, "3/4"),
          "auto, K=2000 on 4 ranks with 1e8 bytes per rank: scalapack (%s)", why);
  k = imx_linalg_choose(IMX_LINALG_REPLICATED, 20000, 2, 1e9, 1e8, 1e8, why, sizeof why);
  t_check(k == IMX_LINALG_REPLICATED && strstr(why, "MORE"),
          "parallel.linalg: replicated is obeyed, with a warning in the reason (%s)", why);

  c.parallel.memory_mib = 0;
  c.parallel.linalg = IMX_LINALG_SCALAPACK;
  c.parallel.grid_rows = ctx.size + 1;
  imx_err e = imx_layer_create(&ctx, &c, d, &l);
  t_check(e == IMX_ERR_CONFIG && strstr(ctx.msg, "grid"), "grid %d x 0 on %d ranks refused: \"%s\"",
          ctx.size + 1, ctx.size, ctx.msg);
  ctx.code = IMX_OK;
  imx_layer_free(&l);

  /* Memory: the layer's buffers within a small constant of K^2/P + N_p (n + K) + K n. */
  c.parallel.grid_rows = 0;
  c.model.units = 100;
  c.objective.eps = 1e-3;
  imx_layer_create(&ctx, &c, d, &l);
  if (l) {
    double K = 100, n = 6, Np = (double)d->nloc, P = ctx.size;
    double unit = (K * K / P + Np * (n + K) + K * n) * 8, bytes = imx_layer_bytes(l), ratio = 0;
    ratio = bytes / unit;
    MPI_Allreduce(MPI_IN_PLACE, &ratio, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    t_check(
        ratio < 12,
        "scalapack layer buffers K=100: at most %.1f x (K^2/P + N_p (n+K) + K n) doubles per rank (tol 12)",
        ratio);
  }
  imx_layer_free(&l);
  imx_data_free(&d);
}

/* The distributed eigenvalues: a tridiagonal Toeplitz matrix (a on the
 * diagonal, b beside it) has a + 2 b cos(k pi / (K + 1)), k = 1..K, on every
 * grid of P ranks and with tiles that do not divide K; and the real
 * workspace stays near K nb doubles: with the size pdsyevr's query returns,
 * PDSYNTRD copied the whole matrix onto one rank for P < 4 and exited from
 * K = 16384 ("xxmr2d:out of memory", its buffer size a C int). */
static void eigvalsh_work(void) {
  const int K = 300, nb = 16;
  const double a = 2.5, b = -0.75;
  int shapes[3][2] = {{0, 0}, {1, 0}, {0, 1}};
  for (int s = 0; s < 3; s++) {
    imx_grid *g = NULL;
    imx_dmat *M = NULL;
    double *w = malloc(K * sizeof *w), worst = 0;
    imx_err e = imx_grid_create(&ctx, shapes[s][0], shapes[s][1], &g);
    if (!e) e = imx_dmat_create(&ctx, g, K, nb, &M);
    for (int lj = 0; !e && lj < M->nloc; lj++)
      for (int li = 0; li < M->mloc; li++) {
        int gi = (li / nb * g->pr + g->myrow) * nb + li % nb;
        int gj = (lj / nb * g->pc + g->mycol) * nb + lj % nb;
        M->a[li + (size_t)lj * M->lld] = gi == gj ? a : abs(gi - gj) == 1 ? b : 0;
      }
    if (!e) e = imx_linalg_dist_eigvalsh(&ctx, M, "Toeplitz", w);
    /* Ascending: k = K..1 (b < 0 reverses the cosines' order). */
    for (int k = 1; !e && k <= K; k++) {
      double exact = a + 2 * b * cos(k * acos(-1.0) / (K + 1));
      worst = fmax(worst, fabs(w[k - 1] - exact) / (fabs(a) + 2 * fabs(b)));
    }
    t_check(!e && worst <= 1e-13,
            "eigenvalues of a %d x %d Toeplitz tridiagonal on a %d x %d grid, %d x %d tiles: max "
            "err %.1e relative to the largest (tol 1e-13)%s%s",
            K, K, g ? g->pr : 0, g ? g->pc : 0, nb, nb, worst, e ? ": " : "", e ? ctx.msg : "");
    ctx.code = IMX_OK;
    imx_dmat_free(&M);
    imx_grid_free(&g);
    free(w);
  }
  for (int pr = 1; pr <= 2; pr++) {
    double d = (double)imx_linalg_dist_eigvalsh_work(16384, 64, pr);
    t_check(d * 8 < 1.1 * 16384.0 * 64 * 8 / pr + 17 * 16384.0 * 8,
            "eigenvalue workspace at K=16384, 64 x 64 tiles, %d grid row(s): %.1f MiB per rank "
            "(K^2 would be %.0f MiB)",
            pr, d * 8 / 1048576, 16384.0 * 16384 * 8 / 1048576);
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  imx_log_set_level(IMX_WARN);
  agreement();
  eigvalsh_work();
  on_z();
  not_spd();
  invariance();
  solves();
  comm_bytes();
  choice();
  imx_ctx_finalize(&ctx);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
