/* cmd_train: `infomax train CONFIG.yaml` from configuration to a run directory. */
#include <math.h>
#include <petscsys.h>
#include <stdlib.h>
#include <string.h>

#include "imx/cli.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/layer.h"
#include "imx/log.h"
#include "imx/preprocess.h"
#include "imx/rundir.h"
#include "imx/summary.h"
#include "imx/timer.h"
#include "imx/train.h"

/* One screen of what will run, before any compute. */
static void echo_config(imx_ctx *ctx, const imx_config *c) {
  imx_log(ctx, IMX_INFO, "infomax %s: train %s on %d rank%s", IMX_VERSION,
          c->file[0] ? c->file : "(defaults)", ctx->size, ctx->size > 1 ? "s" : "");
  if (c->data.source == IMX_SRC_NPY || c->data.source == IMX_SRC_IDX)
    imx_log(ctx, IMX_INFO, "  data       %s %s (scale %g, preprocess %s)",
            imx_source_name(c->data.source), c->data.path, c->data.scale,
            imx_preprocess_name(c->data.preprocess));
  else
    imx_log(ctx, IMX_INFO, "  data       %s: N=%lld, n=%d, seed %llu (preprocess %s)",
            imx_source_name(c->data.source), c->data.samples, c->data.dim, c->data.seed,
            imx_preprocess_name(c->data.preprocess));
  imx_log(ctx, IMX_INFO, "  model      K=%d units, activation %s%s, weight_norm %s",
          c->model.units, imx_activation_name(c->model.activation),
          c->model.activation == IMX_ACT_SOFTMAX ? " (softmax(-z/tau))" : "",
          c->model.weight_norm ? "on" : "off");
  imx_log(ctx, IMX_INFO, "  objective  preset %s, lambda %g, eps %g", c->objective.preset,
          c->objective.lambda, c->objective.eps);
  imx_log(ctx, IMX_INFO, "  parallel   reduction %s, block %d", imx_reduction_name(c->parallel.reduction),
          c->parallel.block);
}

static void log_objective(imx_ctx *ctx, const imx_layer *l) {
  const imx_objective *o = imx_layer_objective(l);
  char buf[512];
  size_t off = 0;
  for (int t = 0; t < IMX_NTERMS; t++)
    if (o->w[t] != 0)
      off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%g*%s", off ? " + " : "", o->w[t],
                              imx_term_names[t]);
  imx_log(ctx, IMX_INFO, "  loss       %s%s", buf,
          o->null_vector ? "   (log det uses C + 1 1^T/K: softmax rows sum to 1)" : "");
  imx_log(ctx, IMX_INFO, "  path       %s%s", imx_layer_path(l),
          !strcmp(imx_layer_path(l), "moments")
              ? " (identity activation, moment terms: C = W S_x W^T, an iteration never touches the data)"
              : " (forward, block moments, reduction, backward over the local rows)");
}

/* Write W, b (rank 0). */
static imx_err write_layer(imx_ctx *ctx, const imx_layer *l, const double *theta, const char *dir) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    int K = imx_layer_units(l), n = imx_layer_inputs(l);
    double *W = malloc((size_t)K * n * sizeof *W), *b = malloc((size_t)K * sizeof *b);
    char path[2 * IMX_PATH_LEN];
    if (!W || !b) e = imx_fail(ctx, IMX_ERR_NOMEM, "weights for output");
    if (!e) {
      imx_layer_weights(l, theta, W, b);
      snprintf(path, sizeof path, "%s/layer1_W.npy", dir);
      e = imx_npy_write(ctx, path, W, K, n);
    }
    if (!e) {
      snprintf(path, sizeof path, "%s/layer1_b.npy", dir);
      e = imx_npy_write(ctx, path, b, K, 1);
    }
    free(W), free(b);
  }
  return imx_agree(ctx, e);
}

/* Ground truth of synthetic data beside the run (rank 0). */
static imx_err write_truth(imx_ctx *ctx, const imx_data *d, const imx_config *cfg, const char *dir) {
  imx_err e = IMX_OK;
  char path[2 * IMX_PATH_LEN];
  if (ctx->rank == 0 && d->truth) {
    snprintf(path, sizeof path, "%s/truth_mixing.npy", dir);
    e = imx_npy_write(ctx, path, d->truth, d->n, d->n);
  }
  if (ctx->rank == 0 && !e && d->means) {
    snprintf(path, sizeof path, "%s/truth_means.npy", dir);
    e = imx_npy_write(ctx, path, d->means, cfg->data.components, d->n);
  }
  return imx_agree(ctx, e);
}

int imx_cmd_train(imx_ctx *ctx, const imx_args *a) {
  if (a->npos != 1) {
    if (ctx->rank == 0) fputs("usage: infomax train CONFIG.yaml [--set K=V]... (see --help)\n", stderr);
    return IMX_ERR_USAGE;
  }
  imx_config cfg;
  imx_data *d = NULL;
  imx_layer *l = NULL;
  double *theta = NULL;
  FILE *metrics = NULL;
  char dir[IMX_PATH_LEN] = "";
  imx_train_result res;
  memset(&res, 0, sizeof res);
  int trained = 0;

  /* Prolog: configuration (validated before any compute), data, layer. */
  int nset = a->nset;
  char **set = malloc((size_t)(nset + 1) * sizeof *set);
  char outset[IMX_PATH_LEN + 16];
  for (int i = 0; set && i < nset; i++) set[i] = a->set[i];
  if (set && a->out) {
    snprintf(outset, sizeof outset, "output.dir=%s", a->out);
    set[nset++] = outset;
  }
  imx_err e = set ? imx_config_setup(ctx, &cfg, a->pos[0], nset, set)
                  : imx_fail(ctx, IMX_ERR_NOMEM, "arguments");
  free(set);
  if (!e) e = imx_agree(ctx, imx_train_options(ctx, &cfg));
  if (e) goto out;
  echo_config(ctx, &cfg);

  imx_timer_start(IMX_T_LOAD);
  e = imx_data_load(ctx, &cfg, &d);
  imx_timer_stop(IMX_T_LOAD);
  if (e) goto out;
  imx_log(ctx, IMX_INFO, "  loaded     N=%lld rows x n=%d in %.2f s (%lld..%lld rows per rank, "
          "%lld blocks of %d)", (long long)d->N, d->n, imx_timer_get(IMX_T_LOAD),
          (long long)(d->N / ctx->size), (long long)((d->N + ctx->size - 1) / ctx->size),
          (long long)((d->N + d->block - 1) / d->block), d->block);
  if ((e = imx_preprocess_apply(ctx, &cfg, d, NULL, NULL))) goto out;
  if ((e = imx_layer_create(ctx, &cfg, d, &l))) goto out;
  log_objective(ctx, l);
  theta = malloc((size_t)imx_layer_nparams(l) * sizeof *theta);
  if ((e = imx_agree(ctx, theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "parameters")))) goto out;
  if ((e = imx_layer_init_params(ctx, l, &cfg, theta))) goto out;
  if ((e = imx_rundir_create(ctx, &cfg, dir))) goto out;
  if ((e = write_truth(ctx, d, &cfg, dir))) goto out;
  imx_log(ctx, IMX_INFO, "  run dir    %s", dir);
  if (ctx->rank == 0) {
    char path[2 * IMX_PATH_LEN];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    metrics = fopen(path, "w");
    if (!metrics) e = imx_fail(ctx, IMX_ERR_IO, "cannot write %s", path);
  }
  if ((e = imx_agree(ctx, e))) goto out;

  /* Training. */
  e = imx_train(ctx, &cfg, l, theta, metrics, &res);
  trained = 1;

out:
  /* Epilog: whatever happened, keep what was computed and say where it is. */
  if (metrics) fclose(metrics);
  if (e) imx_report(ctx);
  if (dir[0]) {
    imx_timer_start(IMX_T_OUTPUT);
    imx_err we = trained ? write_layer(ctx, l, theta, dir) : IMX_OK;
    imx_timer_stop(IMX_T_OUTPUT);
    imx_timer_stop(IMX_T_TOTAL);
    imx_summary s = {.cfg = &cfg, .data = d, .layer = l, .train = trained ? &res : NULL,
                     .status = e ? e : we, .message = e || we ? ctx->msg : ""};
    imx_err se = imx_summary_write(ctx, &s, dir);
    if (!e && !we && !se) {
      imx_log(ctx, IMX_INFO, "\ntrained K=%d %s units on N=%lld x n=%d with TAO %s: %s after %d "
              "iterations (%d evaluations, %.2f s)", imx_layer_units(l),
              imx_activation_name(cfg.model.activation), (long long)d->N, d->n, res.tao_type,
              res.reason, res.iterations, res.evaluations, res.seconds);
      char terms[512];
      size_t off = 0;
      for (int t = 0; t < IMX_NTERMS; t++)
        if (!isnan(res.final.terms[t]))
          off += (size_t)snprintf(terms + off, sizeof terms - off, "  %s %.6g", imx_term_names[t],
                                  res.final.terms[t]);
      imx_log(ctx, IMX_INFO, "final loss %.10g  |grad| %.3e%s  dead units %d", res.final.loss,
              res.grad_norm, terms, res.final.dead_units);
      imx_log(ctx, IMX_INFO, "results in %s/ (layer1_W.npy, layer1_b.npy, metrics.jsonl, "
              "summary.json)", dir);
    } else if (e) {
      imx_log(ctx, IMX_ERROR, "run directory %s keeps what was done: %s", dir,
              trained ? "the last accepted weights and summary.json (status: failed)"
                      : "config.yaml and summary.json (status: failed)");
    } else {
      imx_report(ctx);
      e = we ? we : se;
    }
  }
  free(theta);
  imx_layer_free(&l);
  imx_data_free(&d);
  return e;
}
