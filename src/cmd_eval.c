/* cmd_eval: `infomax eval`, every objective term for given weights on given
 * data, as JSON (for checks against an independent implementation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "imx/cli.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/json.h"
#include "imx/layer.h"
#include "imx/log.h"
#include "imx/preprocess.h"

/* Evaluate one objective (cfg's) at [W, b] on d. */
static imx_err evaluate(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, const double *W,
                        const double *b, imx_eval *ev) {
  imx_layer *l = NULL;
  IMX_TRY(imx_layer_create(ctx, cfg, d, &l));
  int K = cfg->model.units, n = d->n;
  double *theta = malloc((size_t)(K * n + K) * sizeof *theta), f;
  imx_err e = imx_agree(ctx, theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "parameters"));
  if (!e) {
    memcpy(theta, W, (size_t)K * n * sizeof *W);
    memcpy(theta + (size_t)K * n, b, (size_t)K * sizeof *b);
    e = imx_layer_eval(ctx, l, theta, &f, NULL, ev);
  }
  free(theta);
  imx_layer_free(&l);
  return e;
}

/* Read a K x cols .npy on rank 0 and broadcast it. */
static imx_err read_bcast(imx_ctx *ctx, const char *path, int rows, int cols, double *out) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    double *a = NULL;
    int64_t r = 0, c = 0;
    e = imx_npy_read_all(ctx, path, &a, &r, &c);
    if (!e && (r * c != (int64_t)rows * cols || r != rows))
      e = imx_fail(ctx, IMX_ERR_DATA, "%s: shape %lld x %lld, expected %d x %d", path,
                   (long long)r, (long long)c, rows, cols);
    if (!e) memcpy(out, a, (size_t)rows * cols * sizeof *out);
    free(a);
  }
  IMX_TRY(imx_agree(ctx, e));
  IMX_MPI(ctx, MPI_Bcast(out, rows * cols, MPI_DOUBLE, 0, ctx->comm));
  return IMX_OK;
}

int imx_cmd_eval(imx_ctx *ctx, const imx_args *a) {
  if (a->npos != 1) {
    if (ctx->rank == 0) fputs("usage: infomax eval RUN_DIR [--weights W.npy] ... (see --help)\n", stderr);
    return IMX_ERR_USAGE;
  }
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
  /* --data PATH: the source follows the file. */
  char **set = malloc((size_t)(a->nset + 2) * sizeof *set);
  char dpath[IMX_PATH_LEN + 16], dsrc[64];
  int nset = 0;
  if (set && a->data) {
    size_t L = strlen(a->data);
    snprintf(dsrc, sizeof dsrc, "data.source=%s",
             L > 4 && !strcmp(a->data + L - 4, ".npy") ? "npy" : "idx");
    snprintf(dpath, sizeof dpath, "data.path=%s", a->data);
    set[nset++] = dsrc, set[nset++] = dpath;
  }
  for (int i = 0; set && i < a->nset; i++) set[nset++] = a->set[i];
  imx_config cfg;
  imx_data *d = NULL;
  double *W = NULL, *b = NULL;
  imx_err e = set ? imx_config_setup(ctx, &cfg, cfgpath, nset, set)
                  : imx_fail(ctx, IMX_ERR_NOMEM, "arguments");
  free(set);
  if (!e) e = imx_data_load(ctx, &cfg, &d);
  if (!e) e = imx_preprocess_apply(ctx, &cfg, d, NULL, NULL);
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
  for (int t = 0; !e && t < IMX_NTERMS; t++) {
    imx_config one = cfg;
    snprintf(one.objective.preset, sizeof one.objective.preset, "none");
    for (int u = 0; u < IMX_NTERMS; u++) one.objective.weight[u] = u == t;
    why[t][0] = 0;
    if (evaluate(ctx, &one, d, W, b, &single[t])) {
      single[t].terms[t] = NAN;
      snprintf(why[t], sizeof why[t], "%s", ctx->msg);
      ctx->code = IMX_OK;
    }
  }
  if (!e && ctx->rank == 0) {
    imx_json j;
    imx_json_init(&j, stdout, 1);
    imx_json_object(&j, NULL);
    imx_json_str(&j, "config", cfgpath);
    imx_json_str(&j, "weights", wpath);
    imx_json_str(&j, "bias", bpath);
    imx_json_str(&j, "data", cfg.data.path[0] ? cfg.data.path : imx_source_name(cfg.data.source));
    imx_json_int(&j, "N", d->N);
    imx_json_int(&j, "n", d->n);
    imx_json_int(&j, "K", K);
    imx_json_str(&j, "activation", imx_activation_name(cfg.model.activation));
    imx_json_num(&j, "loss", total.loss);
    imx_json_object(&j, "terms");
    for (int t = 0; t < IMX_NTERMS; t++) imx_json_num(&j, imx_term_names[t], single[t].terms[t]);
    imx_json_end(&j);
    imx_json_object(&j, "unavailable");
    for (int t = 0; t < IMX_NTERMS; t++)
      if (why[t][0]) imx_json_str(&j, imx_term_names[t], why[t]);
    imx_json_end(&j);
    imx_json_int(&j, "dead_units", total.dead_units);
    imx_json_num(&j, "max_abs_bias", total.max_abs_bias);
    imx_json_num(&j, "min_variance", total.min_var);
    imx_json_num(&j, "max_variance", total.max_var);
    imx_json_num(&j, "max_abs_corr", total.max_abs_corr);
    imx_json_end(&j);
    fflush(stdout);
  }
  if (e) imx_report(ctx);
  free(W), free(b);
  imx_data_free(&d);
  return e;
}
