/* cmd_eval: `infomax eval`, judge a trained layer.
 *
 * For the layer of a run directory (or given weights) on the data of its
 * config (the train split, or --data PATH):
 *   1. every objective term alone and the weighted loss (for checks against
 *      an independent implementation);
 *   2. the measures of include/imx/metrics.h on the train split and, with
 *      eval.test_path, on the test split (preprocessed with the train split's
 *      statistics, see include/imx/split.h);
 *   3. with labels and eval.probe, a linear probe (include/imx/probe.h) on
 *      eval.features, trained on the train split and scored on the test split;
 *   4. with eval.baselines, the same measures and probe for the raw input,
 *      PCA with K components, K random hyperplanes, k-means with K centers
 *      (soft and triangle) and GMM-EM (include/imx/baseline.h); on gmm data
 *      the prototypes of each layer against the true means;
 *   5. the run's supervised head of the judged layer, if it has one: its
 *      accuracy on each split.
 * Standard output gets one JSON document; standard error gets progress notes
 * and the tables. --out DIR also writes DIR/eval.json, the model's
 * correlation matrix, winner counts and covariance eigenvalues (.npy) for
 * tools/plot_run.py, and what the model's probe saw and learned:
 * features.h5 (datasets train, test, train_labels, test_labels) and probe.h5
 * (mean, scale, V, c: include/imx/probe.h's imx_probe_model).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "imx/activation.h"
#include "imx/baseline.h"
#include "imx/cli.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/json.h"
#include "imx/layer.h"
#include "imx/metrics.h"
#include "imx/preprocess.h"
#include "imx/probe.h"
#include "imx/rowsout.h"
#include "imx/rundir.h"
#include "imx/split.h"
#include "imx/timer.h"

/* One column of the comparison: the trained layer or a baseline. */
/* The supervised head of the judged layer, as training wrote it
 * (src/train/stack.c): logits U a + c on the layer's outputs a = phi(z). */
typedef struct sup_head {
  int classes;                  /* C; 0: the run has no head (or other weights are judged) */
  double *U, *c;                /* C x K and C (owned) */
  char path[IMX_PATH_LEN + 32]; /* layerL_head_W.npy */
  double accuracy[2];           /* on the train and the test split (NaN: no labels) */
} sup_head;

typedef struct column {
  char name[32];   /* heading: "model", "raw", "pca-64", "random-64", "kmeans-64", "tri-64" */
  const char *key; /* JSON key: "model" or imx_baseline_names */
  imx_fixed layer; /* its parameters (the model's are borrowed, see free_column) */
  imx_metrics train, test; /* measures on the train split and on the test split */
  int has_test;
  int probed;
  const char *features; /* what the probe saw: "activation", "z" or "input" */
  imx_probe_result probe;
  double seconds;       /* wall time of the whole column */
  sup_head head;        /* the model's supervised head */
  const char *save_dir; /* --out DIR for the model's column: features.h5, probe.h5 (else NULL) */
  int corr_saved;       /* DIR/correlation.npy was written from the tiles (by measure) */
  imx_probe_model kept; /* the trained probe, when saved */
  int protos;           /* gmm data: the prototypes below were compared with the true means */
  int matched;          /* prototype-mean pairs of imx_baseline_match */
  double proto[3];      /* their mean and largest distance, the true means' mean separation */
} column;

/* A progress note on standard error (rank 0): standard output is the JSON. */
static void note(const imx_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const imx_ctx *ctx, const char *fmt, ...) {
  if (ctx->rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("eval: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  fflush(stderr);
  va_end(ap);
}

/* Evaluate one objective (cfg's) at [W, b] on d. */
static imx_err evaluate(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, const double *W,
                        const double *b, imx_eval *ev) {
  imx_layer *l = NULL;
  /* The supervised term needs the trained head; the probe judges the features. */
  imx_config c = *cfg;
  c.objective.weight[IMX_TERM_SUPERVISED] = 0;
  IMX_TRY(imx_layer_create(ctx, &c, d, &l));
  int K = cfg->model.units, n = d->n;
  double *theta = malloc((size_t)(K * n + K) * sizeof *theta), f;
  imx_err e = imx_agree(ctx, theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "parameters"));
  if (!e) {
    memcpy(theta, W, (size_t)K * n * sizeof *W);
    memcpy(theta + (size_t)K * n, b, (size_t)K * sizeof *b);
    /* Extended Infomax: each unit's entropy with the density the switch
     * picks at these weights, as training's last switch would. */
    int flips = 0, sub = 0;
    if (imx_layer_switch_applies(l)) e = imx_layer_switch(ctx, l, theta, &flips, &sub);
    if (!e) e = imx_layer_eval(ctx, l, theta, &f, NULL, ev);
  }
  free(theta);
  imx_layer_free(&l);
  return e;
}

static imx_err read_bcast(imx_ctx *ctx, const char *path, int rows, int cols, double *out);

/* The features layer j (1-based, config cj, weights W, b) passes on for the
 * rows of x, which become x's columns. */
static imx_err pass_on(imx_ctx *ctx, const imx_config *cj, double *W, double *b, int n,
                       imx_data *x) {
  imx_fixed f = {.K = cj->model.units,
                 .n = n,
                 .act = cj->model.activation,
                 .tau = cj->model.temperature,
                 .W = W,
                 .b = b};
  return imx_fixed_feed(ctx, cj, &f, x);
}

/* eval.layer L > 1: the train split d and the test split (loaded here) become
 * the features layer L-1 of the stack in dir passes on; cfg becomes layer
 * L's configuration and wpath/bpath its files (unless given). Collective. */
static imx_err descend(imx_ctx *ctx, const char *dir, imx_config *cfg, imx_data *d,
                       const double *mean, const double *transform, imx_data **dt, char *wpath,
                       char *bpath, size_t len, int own_w, int own_b) {
  int L = cfg->eval.layer;
  if (L > cfg->model.nlayers)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "eval.layer = %d but the run has %d layer%s (model.layers)", L,
                    cfg->model.nlayers ? cfg->model.nlayers : 1, cfg->model.nlayers > 1 ? "s" : "");
  if (cfg->eval.test_path[0]) IMX_TRY(imx_split_load_test(ctx, cfg, d->n, mean, transform, dt));
  imx_config top = *cfg;
  for (int j = 1; j < L; j++) {
    imx_config cj;
    IMX_TRY(imx_agree(ctx, imx_config_layer(ctx, &top, j - 1, &cj)));
    int K = cj.model.units, n = d->n;
    double *W = malloc((size_t)K * n * sizeof *W), *b = malloc((size_t)K * sizeof *b);
    char wp[IMX_PATH_LEN + 32], bp[IMX_PATH_LEN + 32];
    snprintf(wp, sizeof wp, "%s/layer%d_W.npy", dir, j);
    snprintf(bp, sizeof bp, "%s/layer%d_b.npy", dir, j);
    imx_err e = imx_agree(ctx,
                          W && b ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "weights of layer %d", j));
    if (!e) e = read_bcast(ctx, wp, K, n, W);
    if (!e) e = read_bcast(ctx, bp, K, 1, b);
    if (!e) e = pass_on(ctx, &cj, W, b, n, d);
    if (!e) e = pass_on(ctx, &cj, W, b, n, *dt);
    free(W), free(b);
    IMX_TRY(e);
    note(ctx, "layer %d: %d features (%s) for layer %d", j, K, imx_feed_name(cj.model.feed), j + 1);
  }
  IMX_TRY(imx_agree(ctx, imx_config_layer(ctx, &top, L - 1, cfg)));
  if (own_w) snprintf(wpath, len, "%s/layer%d_W.npy", dir, L);
  if (own_b) snprintf(bpath, len, "%s/layer%d_b.npy", dir, L);
  return IMX_OK;
}

/* Read a K x cols .npy on rank 0 and broadcast it. */
static imx_err read_bcast(imx_ctx *ctx, const char *path, int rows, int cols, double *out) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    double *a = NULL;
    int64_t r = 0, c = 0;
    e = imx_npy_read_all(ctx, path, &a, &r, &c);
    if (!e && (r * c != (int64_t)rows * cols || r != rows))
      e = imx_fail(ctx, IMX_ERR_DATA, "%s: shape %lld x %lld, expected %d x %d", path, (long long)r,
                   (long long)c, rows, cols);
    if (!e) memcpy(out, a, (size_t)rows * cols * sizeof *out);
    free(a);
  }
  IMX_TRY(imx_agree(ctx, e));
  IMX_MPI(ctx, MPI_Bcast(out, rows * cols, MPI_DOUBLE, 0, ctx->comm));
  return IMX_OK;
}

/* The head of layer L in dir (layerL_head_W.npy, C x K; layerL_head_b.npy,
 * C x 1) into h, if the files exist (else h->classes = 0). Collective
 * (read on rank 0, agreed, broadcast). */
static imx_err head_read(imx_ctx *ctx, const char *dir, int L, int K, sup_head *h) {
  char bpath[sizeof h->path];
  snprintf(h->path, sizeof h->path, "%s/layer%d_head_W.npy", dir, L);
  snprintf(bpath, sizeof bpath, "%s/layer%d_head_b.npy", dir, L);
  h->accuracy[0] = h->accuracy[1] = NAN;
  struct stat sb;
  int C = ctx->rank == 0 && stat(h->path, &sb) == 0 ? -1 : 0;
  imx_err e = IMX_OK;
  if (C) {
    int64_t r = 0, c = 0, rb = 0, cb = 0;
    e = imx_npy_read_all(ctx, h->path, &h->U, &r, &c);
    if (!e) e = imx_npy_read_all(ctx, bpath, &h->c, &rb, &cb);
    if (!e && (c != K || r < 1 || rb * cb != r))
      e = imx_fail(ctx, IMX_ERR_DATA,
                   "%s is %lld x %lld and %s %lld x %lld: a head on K = %d outputs needs C x %d "
                   "and C x 1",
                   h->path, (long long)r, (long long)c, bpath, (long long)rb, (long long)cb, K, K);
    C = e ? 0 : (int)r;
  }
  IMX_TRY(imx_agree(ctx, e));
  IMX_MPI(ctx, MPI_Bcast(&C, 1, MPI_INT, 0, ctx->comm));
  h->classes = C;
  if (!C) return IMX_OK;
  if (ctx->rank != 0) h->U = malloc((size_t)C * K * sizeof *h->U), h->c = malloc(C * sizeof *h->c);
  IMX_TRY(
      imx_agree(ctx, h->U && h->c ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "head %d x %d", C, K)));
  IMX_MPI(ctx, MPI_Bcast(h->U, C * K, MPI_DOUBLE, 0, ctx->comm));
  IMX_MPI(ctx, MPI_Bcast(h->c, C, MPI_DOUBLE, 0, ctx->comm));
  return IMX_OK;
}

/* The head's accuracy on the labeled rows of d from the outputs A (nloc x
 * K): argmax of U a + c (ties to the lower class) against the label; exact
 * integer counts. NaN without labels. Collective. */
static imx_err head_score(imx_ctx *ctx, const sup_head *h, int K, const imx_data *d,
                          const double *A, double *acc) {
  long long v[2] = {0, 0}; /* correct, labeled */
  for (int64_t i = 0; d->labels && i < d->nloc; i++) {
    int best = 0;
    double top = -INFINITY;
    for (int k = 0; k < h->classes; k++) {
      double s = h->c[k];
      for (int j = 0; j < K; j++) s += h->U[(size_t)k * K + j] * A[i * K + j];
      if (s > top) top = s, best = k;
    }
    v[0] += best == d->labels[i], v[1]++;
  }
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_LONG_LONG, MPI_SUM, ctx->comm));
  *acc = v[1] ? (double)v[0] / (double)v[1] : NAN;
  return IMX_OK;
}

/* DIR (--out) exists, made by rank 0 if needed. Collective. */
static imx_err make_dir(imx_ctx *ctx, const char *dir) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0 && mkdir(dir, 0777) && errno != EEXIST)
    e = imx_fail(ctx, IMX_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
  return imx_agree(ctx, e);
}

/* Measures of col's outputs (Z, A) on one split. On tiles, the model's
 * train split with --out writes DIR/correlation.npy from the tiles (no rank
 * holds the K x K matrix to write later). Collective. */
static imx_err measure(imx_ctx *ctx, const imx_config *cfg, column *col, const imx_data *d,
                       const double *Z, const double *A, const double *mixing, imx_metrics *m) {
  imx_outputs o = {.N = d->N,
                   .nloc = d->nloc,
                   .block = d->block,
                   .K = col->layer.K,
                   .act = col->layer.act,
                   .Z = Z,
                   .A = A,
                   /* random hyperplanes at the column's offsets (not for the raw input) */
                   .X = d->X,
                   .n = d->n,
                   .b = col->layer.b,
                   .seed = cfg->model.seed};
  IMX_TRY(imx_metrics_plan(ctx, cfg, col->layer.K, &o));
  char path[IMX_PATH_LEN + 32];
  if (o.tiles > 0 && col->save_dir && m == &col->train) {
    IMX_TRY(make_dir(ctx, col->save_dir));
    snprintf(path, sizeof path, "%s/correlation.npy", col->save_dir);
    o.corr_path = path;
  }
  IMX_TRY(imx_metrics_outputs(ctx, cfg->parallel.reduction, &o, m));
  if (o.corr_path) col->corr_saved = 1;
  if (!col->layer.W) return IMX_OK;
  /* On tiles W W^T is formed 64 rows at a time too. */
  return imx_agree(ctx, imx_metrics_weights(ctx, col->layer.K, col->layer.n, col->layer.W, mixing,
                                            o.tiles > 0 ? 64 : 0, m));
}

/* gmm data: the column's prototypes (k-means: its centers; a layer: the
 * means of the rows each unit wins on A) against the true means (C x n, in
 * the preprocessed coordinates). Collective. */
static imx_err prototypes(imx_ctx *ctx, const imx_config *cfg, column *col, const imx_data *d,
                          const double *A, const double *truth) {
  int K = col->layer.K, n = d->n;
  double *P = malloc((size_t)K * n * sizeof *P), *count = malloc((size_t)K * sizeof *count);
  imx_err e = imx_agree(ctx, P && count ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "prototypes"));
  if (!e && col->layer.centers) {
    memcpy(P, col->layer.centers, (size_t)K * n * sizeof *P);
    for (int k = 0; k < K; k++) count[k] = 1;
  } else if (!e) {
    e = imx_baseline_winner_means(ctx, cfg->parallel.reduction, K, col->layer.act, A, d, P, count);
  }
  if (!e)
    imx_baseline_match(K, n, P, count, cfg->data.components, truth, &col->matched, &col->proto[0],
                       &col->proto[1], &col->proto[2]);
  col->protos = !e;
  free(P), free(count);
  return e;
}

/* The features the probe of a column sees: the input, z or phi(z). */
static const char *probe_features(const imx_config *cfg, const column *col, int is_model) {
  if (!col->layer.W) return "input";
  if (is_model && cfg->eval.features == IMX_FEAT_INPUT) return "input";
  if (col->layer.act == IMX_ACT_IDENTITY) return "z";
  return cfg->eval.features == IMX_FEAT_Z ? "z" : "activation";
}

/* Pick the probe's features among the outputs and free the others: *keep
 * receives the buffer to use (X copy, Z or A). Collective only for the input copy. */
static imx_err choose(imx_ctx *ctx, const char *features, const imx_data *d, double **Z, double **A,
                      double **keep) {
  *keep = NULL;
  if (!strcmp(features, "input")) {
    free(*Z), free(*A);
    *Z = *A = NULL;
    *keep = malloc((size_t)(d->nloc ? d->nloc : 1) * d->n * sizeof **keep);
    IMX_TRY(imx_agree(ctx, *keep ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "probe: input copy")));
    memcpy(*keep, d->X, (size_t)d->nloc * d->n * sizeof **keep);
    return IMX_OK;
  }
  int use_z = !strcmp(features, "z") && *Z;
  *keep = use_z ? *Z : *A;
  free(use_z ? *A : *Z);
  *Z = *A = NULL;
  return IMX_OK;
}

/* DIR/features.h5: the features the probe sees (F: d's rows, Ft: dt's, dim
 * columns, before the probe standardizes them) and the labels, each rank
 * writing its rows. Collective. */
static imx_err save_features(imx_ctx *ctx, const column *col, int dim, const imx_data *d,
                             const imx_data *dt, const double *F, const double *Ft) {
  char path[IMX_PATH_LEN + 32];
  snprintf(path, sizeof path, "%s/features.h5", col->save_dir);
  imx_rows_file *f = NULL;
  IMX_TRY(make_dir(ctx, col->save_dir));
  IMX_TRY(imx_rows_open(ctx, path, &f));
  imx_err e = imx_rows_put(ctx, f, "train", IMX_ROWS_F64, 0, F, d->N, d->row0, d->nloc, dim);
  if (!e && d->labels)
    e = imx_rows_put(ctx, f, "train_labels", IMX_ROWS_I32, 1, d->labels, d->N, d->row0, d->nloc, 1);
  if (!e && Ft)
    e = imx_rows_put(ctx, f, "test", IMX_ROWS_F64, 0, Ft, dt->N, dt->row0, dt->nloc, dim);
  if (!e && Ft && dt->labels)
    e = imx_rows_put(ctx, f, "test_labels", IMX_ROWS_I32, 1, dt->labels, dt->N, dt->row0, dt->nloc,
                     1);
  IMX_TRY(imx_rows_close(ctx, &f, e == IMX_OK));
  return e;
}

/* DIR/probe.h5: the trained probe (replicated: rank 0 writes every row).
 * Collective. */
static imx_err save_probe(imx_ctx *ctx, const column *col) {
  const imx_probe_model *p = &col->kept;
  char path[IMX_PATH_LEN + 32];
  snprintf(path, sizeof path, "%s/probe.h5", col->save_dir);
  int64_t dim = p->dim, C = p->classes, all = ctx->rank == 0;
  imx_rows_file *f = NULL;
  IMX_TRY(imx_rows_open(ctx, path, &f));
  imx_err e = imx_rows_put(ctx, f, "mean", IMX_ROWS_F64, 1, p->mean, dim, all ? 0 : dim, all * dim,
                           1);
  if (!e)
    e = imx_rows_put(ctx, f, "scale", IMX_ROWS_F64, 1, p->scale, dim, all ? 0 : dim, all * dim, 1);
  if (!e) e = imx_rows_put(ctx, f, "V", IMX_ROWS_F64, 0, p->V, C, all ? 0 : C, all * C, dim);
  if (!e) e = imx_rows_put(ctx, f, "c", IMX_ROWS_F64, 1, p->c, C, all ? 0 : C, all * C, 1);
  IMX_TRY(imx_rows_close(ctx, &f, e == IMX_OK));
  return e;
}

/* Measures and probe of one column on the train split d and the test split
 * dt (may be NULL). Collective. */
static imx_err judge(imx_ctx *ctx, const imx_config *cfg, column *col, int is_model,
                     const imx_data *d, const imx_data *dt, const double *mixing,
                     const double *truth) {
  double t0 = imx_now();
  double *Z = NULL, *A = NULL, *Zt = NULL, *At = NULL, *F = NULL, *Ft = NULL;
  imx_err e = imx_fixed_outputs(ctx, cfg, &col->layer, d, &Z, &A);
  if (!e) e = measure(ctx, cfg, col, d, Z, A, mixing, &col->train);
  if (!e && truth && col->layer.W && !col->layer.triangle)
    e = prototypes(ctx, cfg, col, d, A, truth);
  if (!e && dt) {
    e = imx_fixed_outputs(ctx, cfg, &col->layer, dt, &Zt, &At);
    if (!e) e = measure(ctx, cfg, col, dt, Zt, At, mixing, &col->test);
    col->has_test = !e;
  }
  if (!e && col->head.classes)
    e = head_score(ctx, &col->head, col->layer.K, d, A, &col->head.accuracy[0]);
  if (!e && col->head.classes && dt)
    e = head_score(ctx, &col->head, col->layer.K, dt, At, &col->head.accuracy[1]);
  if (!e && col->head.classes)
    note(ctx, "%-10s supervised head (%d classes): train accuracy %.4f, test accuracy %.4f",
         col->name, col->head.classes, col->head.accuracy[0], col->head.accuracy[1]);
  if (!e)
    note(ctx,
         "%-10s measures done (%.2f s): dead %d, max |corr| %.4g, effective rank %.4g, "
         "regions %lld",
         col->name, imx_now() - t0, col->train.dead_units, col->train.max_abs_corr,
         col->train.effective_rank, col->train.regions);
  int test_classes = dt ? dt->nclasses : 0;
  int classes = d->nclasses > test_classes ? d->nclasses : test_classes;
  int probe = !e && cfg->eval.probe && d->labels && classes >= 2;
  int save = !e && col->save_dir;
  if (probe || save) {
    col->features = probe_features(cfg, col, is_model);
    e = choose(ctx, col->features, d, &Z, &A, &F);
    if (!e && dt && (dt->labels || save)) e = choose(ctx, col->features, dt, &Zt, &At, &Ft);
  }
  int dim = col->features && !strcmp(col->features, "input") ? d->n : col->layer.K;
  if (save && !e) e = save_features(ctx, col, dim, d, dt, F, Ft);
  if (probe && !e) {
    imx_probe_data tr = {.N = d->N,
                         .nloc = d->nloc,
                         .block = d->block,
                         .F = F,
                         .labels = d->labels};
    imx_probe_data te = {0};
    if (Ft && dt->labels)
      te = (imx_probe_data){.N = dt->N,
                            .nloc = dt->nloc,
                            .block = dt->block,
                            .F = Ft,
                            .labels = dt->labels};
    e = imx_probe_run(ctx, cfg, dim, classes, &tr, te.F ? &te : NULL, &col->probe,
                      save ? &col->kept : NULL);
    col->probed = !e;
    if (!e && save) e = save_probe(ctx, col);
    if (!e)
      note(ctx,
           "%-10s probe on %s (%d features, %d classes): train accuracy %.4f, test accuracy "
           "%.4f, TAO %s %s after %d iterations (%.2f s)",
           col->name, col->features, dim, classes, col->probe.train_accuracy,
           col->probe.test_accuracy, col->probe.tao_type, col->probe.reason, col->probe.iterations,
           col->probe.seconds);
  }
  free(Z), free(A), free(Zt), free(At), free(F), free(Ft);
  col->seconds = imx_now() - t0;
  return e;
}

static void probe_json(imx_json *j, const imx_config *cfg, const column *col) {
  const imx_probe_result *p = &col->probe;
  imx_json_object(j, "probe");
  imx_json_str(j, "features", col->features);
  imx_json_int(j, "dim", p->dim);
  imx_json_int(j, "classes", p->classes);
  imx_json_int(j, "n_train", p->n_train);
  imx_json_int(j, "n_test", p->n_test);
  imx_json_num(j, "train_accuracy", p->train_accuracy);
  imx_json_num(j, "test_accuracy", p->test_accuracy);
  imx_json_num(j, "loss", p->loss);
  imx_json_num(j, "l2", cfg->eval.probe_l2);
  imx_json_str(j, "tao_type", p->tao_type);
  imx_json_str(j, "reason", p->reason);
  imx_json_int(j, "iterations", p->iterations);
  imx_json_int(j, "evaluations", p->evaluations);
  imx_json_num(j, "seconds", p->seconds);
  imx_json_end(j);
}

/* Measures and probe of a column as members of the current JSON object. */
static void column_json(imx_json *j, const imx_config *cfg, const column *col) {
  imx_metrics_json(j, "measures", &col->train);
  if (col->has_test) imx_metrics_json(j, "measures_test", &col->test);
  if (col->probed) probe_json(j, cfg, col);
  if (col->protos) {
    imx_json_object(j, "prototypes");
    imx_json_str(j, "compared",
                 col->layer.gmm       ? "means"
                 : col->layer.centers ? "centers"
                                      : "winner means");
    imx_json_int(j, "components", cfg->data.components);
    imx_json_int(j, "matched", col->matched);
    imx_json_num(j, "mean_distance", col->proto[0]);
    imx_json_num(j, "max_distance", col->proto[1]);
    imx_json_num(j, "mean_separation", col->proto[2]);
    imx_json_end(j);
  }
  if (col->layer.gmm) {
    imx_json_object(j, "gmm");
    imx_json_int(j, "iterations", col->layer.gmm_it);
    imx_json_str(j, "covariances", "diagonal");
    imx_json_str(j, "start", "kmeans centers, variances s2 / n, equal weights");
    double s2 = col->layer.km.s2 > 0 ? col->layer.km.s2 / col->layer.n : 1; /* as gmm's start */
    imx_json_num(j, "variance_floor", IMX_GMM_VAR_FLOOR * s2);
    imx_json_end(j);
  }
  if (col->layer.centers && !col->layer.triangle && !col->layer.gmm) {
    const imx_kmeans_info *km = &col->layer.km;
    imx_json_object(j, "kmeans");
    imx_json_int(j, "iterations", km->iterations);
    imx_json_int(j, "max_iterations", IMX_KMEANS_MAX_IT);
    imx_json_bool(j, "converged", km->converged);
    imx_json_int(j, "empty_clusters", km->empty);
    imx_json_num(j, "inertia", km->inertia);
    imx_json_num(j, "s2", km->s2);
    imx_json_array(j, "seed_rows");
    for (int k = 0; k < col->layer.K; k++) imx_json_int(j, NULL, km->seeds[k]);
    imx_json_end(j);
    imx_json_end(j);
  }
  if (col->head.classes) {
    imx_json_object(j, "head");
    imx_json_str(j, "weights", col->head.path);
    imx_json_int(j, "classes", col->head.classes);
    imx_json_num(j, "train_accuracy", col->head.accuracy[0]);
    imx_json_num(j, "test_accuracy", col->head.accuracy[1]);
    imx_json_end(j);
  }
}

/* What the evaluation found, besides the terms. */
typedef struct report {
  const char *cfgpath, *wpath, *bpath;
  const imx_config *cfg;
  const imx_data *d, *dt;
  const imx_eval *total;
  const imx_eval *single;   /* IMX_NTERMS */
  char (*why)[IMX_MSG_LEN]; /* IMX_NTERMS reasons a term is unavailable */
  const column *cols;
  int ncols;
  double seconds;
} report;

static void write_json(FILE *f, const report *r) {
  const imx_config *cfg = r->cfg;
  imx_json j;
  imx_json_init(&j, f, 1);
  imx_json_object(&j, NULL);
  imx_json_str(&j, "config", r->cfgpath);
  imx_json_str(&j, "weights", r->wpath);
  imx_json_str(&j, "bias", r->bpath);
  imx_json_str(&j, "data", cfg->data.path[0] ? cfg->data.path : imx_source_name(cfg->data.source));
  imx_json_int(&j, "N", r->d->N);
  imx_json_int(&j, "n", r->d->n);
  imx_json_int(&j, "K", cfg->model.units);
  imx_json_str(&j, "activation", imx_activation_name(cfg->model.activation));
  imx_json_num(&j, "loss", r->total->loss);
  imx_json_object(&j, "terms");
  for (int t = 0; t < IMX_NTERMS; t++) imx_json_num(&j, imx_term_names[t], r->single[t].terms[t]);
  imx_json_end(&j);
  imx_json_object(&j, "unavailable");
  for (int t = 0; t < IMX_NTERMS; t++)
    if (r->why[t][0]) imx_json_str(&j, imx_term_names[t], r->why[t]);
  imx_json_end(&j);
  imx_json_int(&j, "dead_units", r->total->dead_units);
  imx_json_num(&j, "max_abs_bias", r->total->max_abs_bias);
  imx_json_num(&j, "min_variance", r->total->min_var);
  imx_json_num(&j, "max_variance", r->total->max_var);
  imx_json_num(&j, "max_abs_corr", r->total->max_abs_corr);
  if (r->dt) {
    imx_json_str(&j, "test_data", cfg->eval.test_path);
    imx_json_int(&j, "N_test", r->dt->N);
  }
  column_json(&j, cfg, &r->cols[0]);
  if (r->ncols > 1) {
    imx_json_object(&j, "baselines");
    for (int c = 1; c < r->ncols; c++) {
      imx_json_object(&j, r->cols[c].key);
      imx_json_str(&j, "name", r->cols[c].name);
      imx_json_int(&j, "K", r->cols[c].layer.K);
      imx_json_str(&j, "activation", imx_activation_name(r->cols[c].layer.act));
      column_json(&j, cfg, &r->cols[c]);
      imx_json_num(&j, "seconds", r->cols[c].seconds);
      imx_json_end(&j);
    }
    imx_json_end(&j);
  }
  imx_json_num(&j, "seconds", r->seconds);
  imx_json_end(&j);
  fflush(f);
}

/* The tables on standard error (rank 0): measures per split, then the probe. */
static void print_tables(const imx_ctx *ctx, const report *r) {
  if (ctx->rank != 0) return;
  const char *names[1 + IMX_NBASELINES];
  const imx_metrics *m[1 + IMX_NBASELINES];
  int n = r->ncols;
  for (int c = 0; c < n; c++) names[c] = r->cols[c].name, m[c] = &r->cols[c].train;
  fprintf(stderr, "\nmeasures on the train split (%s, N=%lld):\n",
          r->cfg->data.path[0] ? r->cfg->data.path : imx_source_name(r->cfg->data.source),
          (long long)r->d->N);
  imx_metrics_table(ctx, stderr, n, names, m);
  int probed = 0;
  for (int c = 0; c < n; c++) probed |= r->cols[c].probed;
  if (probed) {
    const char *row[2] = {"probe train accuracy", "probe test accuracy"};
    for (int k = 0; k < 2; k++) {
      fprintf(stderr, "%-*s", IMX_METRICS_LABEL_WIDTH, row[k]);
      for (int c = 0; c < n; c++) {
        double v = k ? r->cols[c].probe.test_accuracy : r->cols[c].probe.train_accuracy;
        if (r->cols[c].probed && !isnan(v)) fprintf(stderr, "%*.4f", IMX_METRICS_COL_WIDTH, v);
        else fprintf(stderr, "%*s", IMX_METRICS_COL_WIDTH, "-");
      }
      fputc('\n', stderr);
    }
  }
  for (int k = 0; r->cols[0].head.classes && k < 2; k++) {
    fprintf(stderr, "%-*s", IMX_METRICS_LABEL_WIDTH,
            k ? "head test accuracy" : "head train accuracy");
    for (int c = 0; c < n; c++) {
      double v = r->cols[c].head.accuracy[k];
      if (r->cols[c].head.classes && !isnan(v)) fprintf(stderr, "%*.4f", IMX_METRICS_COL_WIDTH, v);
      else fprintf(stderr, "%*s", IMX_METRICS_COL_WIDTH, "-");
    }
    fputc('\n', stderr);
  }
  if (r->dt) {
    for (int c = 0; c < n; c++) m[c] = &r->cols[c].test;
    fprintf(stderr, "\nmeasures on the test split (%s, N=%lld):\n", r->cfg->eval.test_path,
            (long long)r->dt->N);
    imx_metrics_table(ctx, stderr, n, names, m);
  }
  fputc('\n', stderr);
  fflush(stderr);
}

/* --out DIR: eval.json and the model's arrays for tools/plot_run.py. Rank 0
 * writes; the result is agreed. Collective. */
static imx_err save(imx_ctx *ctx, const char *dir, const report *r) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    if (mkdir(dir, 0777) && errno != EEXIST)
      e = imx_fail(ctx, IMX_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    FILE *f = NULL;
    if (!e) e = imx_file_begin(ctx, dir, "eval.json", &f);
    if (!e) {
      write_json(f, r);
      e = imx_file_commit(ctx, dir, "eval.json", f);
    }
    const imx_metrics *m = &r->cols[0].train;
    int K = m->K;
    char path[IMX_PATH_LEN + 32];
    double *w = malloc((size_t)K * sizeof *w);
    if (!e && !w) e = imx_fail(ctx, IMX_ERR_NOMEM, "winner counts");
    /* Measured on tiles, correlation.npy was written from them (measure). */
    if (!e && m->corr) {
      snprintf(path, sizeof path, "%s/correlation.npy", dir);
      e = imx_npy_write(ctx, path, m->corr, K, K);
    }
    if (!e) {
      for (int k = 0; k < K; k++) w[k] = (double)m->winners[k];
      snprintf(path, sizeof path, "%s/winners.npy", dir);
      e = imx_npy_write(ctx, path, w, K, 1);
    }
    if (!e && m->eigenvalues) {
      snprintf(path, sizeof path, "%s/eigenvalues.npy", dir);
      e = imx_npy_write(ctx, path, m->eigenvalues, K, 1);
    }
    free(w);
    for (int c = 1; !e && c < r->ncols; c++) { /* k-means centers, gmm means */
      const imx_fixed *f = &r->cols[c].layer;
      if (!f->centers || f->triangle) continue; /* the triangle column shares kmeans' centers */
      snprintf(path, sizeof path, "%s/%s", dir, f->gmm ? "gmm_means.npy" : "kmeans_centers.npy");
      e = imx_npy_write(ctx, path, f->centers, f->K, r->d->n);
    }
  }
  return imx_agree(ctx, e);
}

/* Does the directory out (--out; it may not exist yet) lie in the run
 * directory run: run itself or a directory in it? Local. */
static int writes_into(const char *out, const char *run) {
  char r[PATH_MAX], o[PATH_MAX], buf[PATH_MAX];
  if (!realpath(run, r)) return 0;
  if (realpath(out, o) && !strcmp(o, r)) return 1;
  snprintf(buf, sizeof buf, "%s", out);
  size_t len = strlen(buf);
  while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
  return realpath(dirname(buf), o) && !strcmp(o, r);
}

static void free_column(column *col, int is_model) {
  free(col->head.U), free(col->head.c);
  if (is_model) memset(&col->layer, 0, sizeof col->layer); /* W, b belong to the caller */
  else imx_fixed_clear(&col->layer);
  imx_metrics_clear(&col->train);
  imx_metrics_clear(&col->test);
  imx_probe_model_clear(&col->kept);
}

int imx_cmd_eval(imx_ctx *ctx, const imx_args *a) {
  if (a->npos != 1) {
    if (ctx->rank == 0)
      fputs("usage: infomax eval RUN_DIR [--weights W.npy] ... (see --help)\n", stderr);
    return IMX_ERR_USAGE;
  }
  double t0 = imx_now();
  struct stat sb;
  int isdir = stat(a->pos[0], &sb) == 0 && S_ISDIR(sb.st_mode);
  char cfgpath[IMX_PATH_LEN + 16], wpath[IMX_PATH_LEN + 16], bpath[IMX_PATH_LEN + 16];
  snprintf(cfgpath, sizeof cfgpath, isdir ? "%s/config.yaml" : "%s", a->pos[0]);
  snprintf(wpath, sizeof wpath, "%s", a->weights ? a->weights : "");
  snprintf(bpath, sizeof bpath, "%s", a->bias ? a->bias : "");
  if (isdir && !a->weights) snprintf(wpath, sizeof wpath, "%s/layer1_W.npy", a->pos[0]);
  if (isdir && !a->bias) snprintf(bpath, sizeof bpath, "%s/layer1_b.npy", a->pos[0]);
  if (!wpath[0]) {
    if (ctx->rank == 0) fputs("infomax eval: a config file needs --weights W.npy\n", stderr);
    return IMX_ERR_USAGE;
  }
  /* --data PATH: the source follows the file's suffix (imx_source_of_path). */
  char **set = malloc((size_t)(a->nset + 2) * sizeof *set);
  char dpath[IMX_PATH_LEN + 16], dsrc[64];
  int nset = 0;
  if (set && a->data) {
    snprintf(dsrc, sizeof dsrc, "data.source=%s", imx_source_name(imx_source_of_path(a->data)));
    snprintf(dpath, sizeof dpath, "data.path=%s", a->data);
    set[nset++] = dsrc, set[nset++] = dpath;
  }
  for (int i = 0; set && i < a->nset; i++) set[nset++] = a->set[i];
  imx_config cfg;
  imx_data *d = NULL, *dt = NULL;
  double *W = NULL, *b = NULL, *mean = NULL, *transform = NULL, *mixing = NULL, *truth = NULL;
  column cols[1 + IMX_NBASELINES];
  int ncols = 0;
  memset(cols, 0, sizeof cols);
  imx_err e = set ? imx_config_setup(ctx, &cfg, cfgpath, nset, set)
                  : imx_fail(ctx, IMX_ERR_NOMEM, "arguments");
  free(set);
  /* Writing into a run directory: one process at a time, as train. */
  int lock = -1;
  if (!e && isdir && a->out && writes_into(a->out, a->pos[0]))
    e = imx_rundir_lock(ctx, a->pos[0], &lock);
  if (!e) e = imx_data_load(ctx, &cfg, &d);
  if (!e) {
    size_t n = (size_t)d->n;
    mean = malloc(n * sizeof *mean), transform = malloc(n * n * sizeof *transform);
    e = imx_agree(
        ctx, mean && transform ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "preprocessing statistics"));
  }
  if (!e) e = imx_preprocess_apply(ctx, &cfg, d, mean, transform);
  if (!e && cfg.eval.layer > 1) {
    e = isdir ? IMX_OK : imx_fail(ctx, IMX_ERR_USAGE, "eval.layer > 1 needs a run directory");
    if (!e)
      e = descend(ctx, a->pos[0], &cfg, d, mean, transform, &dt, wpath, bpath, sizeof wpath,
                  !a->weights, !a->bias);
    e = imx_agree(ctx, e);
  }
  int K = cfg.model.units;
  if (!e) {
    W = malloc((size_t)K * d->n * sizeof *W), b = calloc((size_t)K, sizeof *b);
    e = imx_agree(ctx, W && b ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "weights"));
  }
  if (!e) e = read_bcast(ctx, wpath, K, d->n, W);
  if (!e && bpath[0]) e = read_bcast(ctx, bpath, K, 1, b);
  imx_eval total, single[IMX_NTERMS];
  char why[IMX_NTERMS][IMX_MSG_LEN];
  if (!e) e = evaluate(ctx, &cfg, d, W, b, &total);
  /* Every term alone with weight 1, whatever its weight in the config. A term
   * that cannot be evaluated here (e.g. log det of a singular C) is null with
   * the reason. */
  imx_objective run_obj;
  int hsic_on = !e && !imx_objective_resolve(ctx, &cfg, d->n, (long long)d->N, &run_obj) &&
                run_obj.w[IMX_TERM_HSIC] != 0;
  if (!e) ctx->code = IMX_OK; /* a failed resolve only means: no hsic */
  for (int t = 0; !e && t < IMX_NTERMS; t++) {
    imx_config one = cfg;
    snprintf(one.objective.preset, sizeof one.objective.preset, "none");
    for (int u = 0; u < IMX_NTERMS; u++) one.objective.weight[u] = u == t;
    if (t != IMX_TERM_ENTROPY) one.objective.extended_every = 0; /* the switch is the entropy's */
    why[t][0] = 0;
    if (t == IMX_TERM_SUPERVISED) {
      single[t].terms[t] = NAN;
      snprintf(why[t], sizeof why[t],
               "not evaluated (the head's accuracy is under \"head\" when the run has one; "
               "the linear probe judges the layer's features)");
      continue;
    }
    if (t == IMX_TERM_HSIC && !hsic_on) { /* N (K D)^2 flops: only when the run used it */
      single[t] = total;
      single[t].terms[t] = NAN;
      snprintf(why[t], sizeof why[t],
               "hsic is evaluated only for runs whose objective has it (it costs about 3 N "
               "(K D)^2 = %.3g flops here); set objective.hsic to evaluate it",
               3.0 * (double)d->N * ((double)K * cfg.objective.hsic_features) *
                   ((double)K * cfg.objective.hsic_features));
      continue;
    }
    if (evaluate(ctx, &one, d, W, b, &single[t])) {
      single[t].terms[t] = NAN;
      snprintf(why[t], sizeof why[t], "%s", ctx->msg);
      ctx->code = IMX_OK;
    }
  }

  /* The test split, seen through the train split's preprocessing. */
  if (!e && cfg.eval.test_path[0] && !dt) {
    e = imx_split_load_test(ctx, &cfg, d->n, mean, transform, &dt);
    if (!e)
      note(ctx, "test split %s: N=%lld%s", cfg.eval.test_path, (long long)dt->N,
           dt->labels ? " with labels" : "");
  }
  /* The true mixing in the coordinates the layer sees (synthetic ICA). */
  if (!e && d->truth) {
    mixing = malloc((size_t)d->n * d->n * sizeof *mixing);
    e = imx_agree(ctx, mixing ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "mixing matrix"));
    if (!e) imx_metrics_mixing(d->n, transform, d->truth, mixing);
  }
  /* The true gmm means in the same coordinates: (mu_c - mean) P. */
  if (!e && d->means && cfg.eval.layer <= 1) {
    int C = cfg.data.components, n = d->n;
    truth = calloc((size_t)C * n, sizeof *truth);
    e = imx_agree(ctx, truth ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "true means"));
    for (int c = 0; !e && c < C; c++)
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
          truth[(size_t)c * n + j] += (d->means[(size_t)c * n + i] - mean[i]) *
                                      transform[(size_t)i * n + j];
  }

  /* The model, then the baselines. */
  /* The run's own head (not with --weights: it was trained with other weights). */
  if (!e && isdir && !a->weights) e = head_read(ctx, a->pos[0], cfg.eval.layer, K, &cols[0].head);
  if (!e) {
    column *m = &cols[ncols++];
    snprintf(m->name, sizeof m->name, "model");
    m->key = "model";
    m->save_dir = a->out;
    m->layer = (imx_fixed){.K = K,
                           .n = d->n,
                           .act = cfg.model.activation,
                           .tau = cfg.model.temperature,
                           .W = W,
                           .b = b};
    e = judge(ctx, &cfg, m, 1, d, dt, mixing, truth);
  }
  for (int k = 0; !e && cfg.eval.baselines && k < IMX_NBASELINES; k++) {
    column *c = &cols[ncols++];
    c->key = imx_baseline_names[k];
    double fit = imx_now();            /* the column's seconds include making it (Lloyd, EM, PCA) */
    if (k == IMX_BASE_KMEANS_TRIANGLE) /* the kmeans column's centers */
      e = imx_baseline_triangle(ctx, &cols[ncols - 2].layer, &c->layer);
    else if (k == IMX_BASE_GMM) /* EM from the kmeans column's centers */
      e = imx_baseline_gmm(ctx, &cfg, &cols[ncols - 3].layer, d, &c->layer);
    else e = imx_baseline_make(ctx, &cfg, (imx_baseline_kind)k, d, &c->layer);
    if (k == IMX_BASE_RAW) snprintf(c->name, sizeof c->name, "raw input");
    else if (k == IMX_BASE_KMEANS_TRIANGLE) snprintf(c->name, sizeof c->name, "tri-%d", c->layer.K);
    else snprintf(c->name, sizeof c->name, "%s-%d", c->key, c->layer.K);
    fit = imx_now() - fit;
    if (!e && c->layer.centers && !c->layer.triangle)
      note(ctx, "%-10s fitted in %.2f s (%d steps)", c->name, fit,
           c->layer.gmm ? c->layer.gmm_it : c->layer.km.iterations);
    if (!e) e = judge(ctx, &cfg, c, 0, d, dt, mixing, truth);
    c->seconds += fit;
  }

  if (!e) {
    report r = {.cfgpath = cfgpath,
                .wpath = wpath,
                .bpath = bpath,
                .cfg = &cfg,
                .d = d,
                .dt = dt,
                .total = &total,
                .single = single,
                .why = why,
                .cols = cols,
                .ncols = ncols,
                .seconds = imx_now() - t0};
    if (ctx->rank == 0) write_json(stdout, &r);
    print_tables(ctx, &r);
    if (a->out) {
      e = save(ctx, a->out, &r);
      if (!e)
        note(ctx, "wrote %s/ (eval.json, %swinners.npy, %sfeatures.h5%s)", a->out,
             cols[0].train.corr || cols[0].corr_saved ? "correlation.npy, " : "",
             cols[0].train.eigenvalues ? "eigenvalues.npy, " : "",
             cols[0].probed ? ", probe.h5" : "");
    }
  }
  if (e) imx_report(ctx);
  imx_rundir_unlock(&lock);
  for (int c = 0; c < ncols; c++) free_column(&cols[c], c == 0);
  free(W), free(b), free(mean), free(transform), free(mixing), free(truth);
  imx_data_free(&dt);
  imx_data_free(&d);
  return e;
}
