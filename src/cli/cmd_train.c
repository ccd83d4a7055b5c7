/* cmd_train: `infomax train CONFIG.yaml` from configuration to a run directory. */
#include <math.h>
#include <petscsys.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imx/checkpoint.h"
#include "imx/cli.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/layer.h"
#include "imx/linalg.h"
#include "imx/log.h"
#include "imx/metrics.h"
#include "imx/optlog.h"
#include "imx/preprocess.h"
#include "imx/rundir.h"
#include "imx/signals.h"
#include "imx/stack.h"
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
  char what[64] = "";
  if (c->model.activation == IMX_ACT_SOFTMAX) snprintf(what, sizeof what, " (softmax(-z/tau))");
  if (c->model.activation == IMX_ACT_TOPK)
    snprintf(what, sizeof what, " (softmax(-z/tau) over the %d smallest z)", c->model.topk);
  if (c->model.activation == IMX_ACT_SPARSEMAX) snprintf(what, sizeof what, " (sparsemax(-z/tau))");
  imx_log(ctx, IMX_INFO, "  model      K=%d units, activation %s%s, weight_norm %s",
          c->model.units, imx_activation_name(c->model.activation), what,
          c->model.weight_norm ? "on" : "off");
  imx_log(ctx, IMX_INFO, "  objective  preset %s, lambda %g, eps %g", c->objective.preset,
          c->objective.lambda, c->objective.eps);
  imx_log(ctx, IMX_INFO, "  parallel   reduction %s, block %d", imx_reduction_name(c->parallel.reduction),
          c->parallel.block);
}

/* The measures at the end of training work on replicated K x K matrices:
 * skip them, with a note, when those would not fit beside the layer (very
 * wide layers on the scalapack backend). Collective. */
static imx_err measures_fit(imx_ctx *ctx, const imx_config *c, const imx_layer *l, int *fit) {
  double avail = 0, need = imx_metrics_bytes(imx_layer_units(l)) + imx_layer_bytes(l);
  IMX_TRY(imx_linalg_memory_per_rank(ctx, c->parallel.memory_mib, &avail));
  *fit = !(avail > 0 && need > 0.75 * avail);
  if (!*fit)
    imx_log(ctx, IMX_WARN, "measures skipped: they need replicated K x K matrices (%.1f GiB per rank "
            "with the layer), more than 3/4 of the %.1f GiB available; the weights are saved, "
            "run `infomax eval` where more memory is available", need / 1073741824,
            avail / 1073741824);
  return IMX_OK;
}

static void log_objective(imx_ctx *ctx, const imx_config *c, const imx_layer *l) {
  const imx_objective *o = imx_layer_objective(l);
  char buf[512];
  size_t off = 0;
  for (int t = 0; t < IMX_NTERMS; t++)
    if (o->w[t] != 0)
      off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%g*%s", off ? " + " : "", o->w[t],
                              imx_term_names[t]);
  imx_log(ctx, IMX_INFO, "  loss       %s%s", buf,
          o->null_vector ? "   (log det uses C + 1 1^T/K: softmax rows sum to 1)" : "");
  /* entropy + 1/2 logdet is ML ICA only for whitened inputs and K = n. */
  if (o->w[IMX_TERM_ENTROPY] != 0 && o->w[IMX_TERM_LOGDET] != 0 &&
      (c->data.preprocess != IMX_PRE_WHITEN || imx_layer_units(l) != imx_layer_inputs(l)))
    imx_log(ctx, IMX_WARN, "entropy + logdet is maximum-likelihood ICA for whitened inputs and "
            "K = n; here data.preprocess is %s and K = %d, n = %d: set data.preprocess: whiten "
            "and model.units: %d", imx_preprocess_name(c->data.preprocess), imx_layer_units(l),
            imx_layer_inputs(l), imx_layer_inputs(l));
  if (imx_layer_head_classes(l))
    imx_log(ctx, IMX_INFO, "  head       supervised: linear softmax head, %d classes x %d outputs, "
            "trained jointly (theta = [V, b, U, c], %d parameters)", imx_layer_head_classes(l),
            imx_layer_units(l), imx_layer_nparams(l));
  if (o->w[IMX_TERM_HSIC] != 0)
    imx_log(ctx, IMX_INFO,
            "  hsic       K D = %d x %d random Fourier features: (K D)^2 matrices and feature "
            "blocks %.1f MiB per rank (objective.hsic_features sets D)",
            imx_layer_units(l), c->objective.hsic_features, imx_layer_hsic_bytes(l) / 1048576);
  imx_log(ctx, IMX_INFO, "  path       %s%s", imx_layer_path(l),
          !strcmp(imx_layer_path(l), "moments")
              ? " (identity activation, moment terms: C = W S_x W^T, an iteration never touches the data)"
              : " (forward, block moments, reduction, backward over the local rows)");
  char la[1024];
  imx_layer_describe_linalg(l, la, sizeof la);
  imx_log(ctx, IMX_INFO, "  linalg     %s", la);
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

/* The final lines: what was trained, how it converged, where it is. */
static void report_success(imx_ctx *ctx, const imx_config *cfg, const imx_layer *l,
                           const imx_data *d, const imx_train_result *res, const char *dir) {
  imx_log(ctx, IMX_INFO, "\ntrained K=%d %s units on N=%lld x n=%d with TAO %s: %s after %d "
          "iterations (%d evaluations, %.2f s)", imx_layer_units(l),
          imx_activation_name(cfg->model.activation), (long long)d->N, d->n, res->tao_type,
          res->reason, res->iterations, res->evaluations, res->seconds);
  char terms[512];
  size_t off = 0;
  terms[0] = 0;
  for (int t = 0; t < IMX_NTERMS; t++)
    if (!isnan(res->final.terms[t]))
      off += (size_t)snprintf(terms + off, sizeof terms - off, "  %s %.6g", imx_term_names[t],
                              res->final.terms[t]);
  imx_log(ctx, IMX_INFO, "final loss %.10g  |grad| %.3e%s  dead units %d", res->final.loss,
          res->grad_norm, terms, res->final.dead_units);
  imx_log(ctx, IMX_INFO, "results in %s/ (layer1_W.npy, layer1_b.npy, metrics.jsonl, "
          "summary.json, checkpoint.bin)", dir);
}

/* Parameters from the run directory's checkpoint (resume). Collective. */
static imx_err resume_params(imx_ctx *ctx, const imx_config *cfg, const imx_layer *l,
                             const imx_data *d, const char *dir, double *theta,
                             imx_checkpoint *ck) {
  double *x = NULL;
  IMX_TRY(imx_checkpoint_read(ctx, dir, ck, &x));
  imx_err e = IMX_OK;
  if (ck->K != imx_layer_units(l) || ck->n != imx_layer_inputs(l) ||
      ck->nparams != imx_layer_nparams(l))
    e = imx_fail(ctx, IMX_ERR_DATA, "%s/checkpoint.bin holds a layer of K=%d x n=%d (%lld "
                 "parameters), but the configuration and data give K=%d x n=%d (%d parameters, "
                 "with the supervised head's)", dir, ck->K, ck->n, (long long)ck->nparams,
                 imx_layer_units(l), imx_layer_inputs(l), imx_layer_nparams(l));
  if (!e) {
    memcpy(theta, x, (size_t)ck->nparams * sizeof *theta);
    imx_log(ctx, IMX_INFO, "  resume     %s/checkpoint.bin: iteration %d, loss %.10g (TAO %s)",
            dir, ck->iteration, ck->loss, ck->tao_type);
    if (ck->reduction != (int)cfg->parallel.reduction || ck->block != cfg->parallel.block ||
        ck->data_rows != d->N)
      imx_log(ctx, IMX_WARN, "the checkpoint was written with reduction %s, block %d, N=%lld; "
              "this run uses %s, %d, N=%lld: it continues, but not bit for bit",
              ck->reduction == IMX_RED_FAST ? "fast" : "reproducible", ck->block,
              (long long)ck->data_rows, imx_reduction_name(cfg->parallel.reduction),
              cfg->parallel.block, (long long)d->N);
  }
  free(x);
  return e;
}

/* How the optimizer continues: by retracing the logged run from the initial
 * parameters (exact), or from the checkpoint's weights with a fresh TAO
 * state when there is no usable log. Collective. */
static imx_err resume_optimizer(imx_ctx *ctx, const imx_config *cfg, const imx_layer *l,
                                const char *dir, const imx_checkpoint *ck, double *theta,
                                imx_train_io *io, imx_optlog **log) {
  int have = 0;
  if (ctx->rank == 0) {
    char path[IMX_PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/optimizer_log.bin", dir);
    have = access(path, R_OK) == 0;
  }
  IMX_MPI(ctx, MPI_Bcast(&have, 1, MPI_INT, 0, ctx->comm));
  if (have && cfg->output.optimizer_log && !strcmp(ck->tao_type, cfg->optimizer.type)) {
    IMX_TRY(imx_optlog_open(ctx, dir, imx_layer_nparams(l), imx_train_precond_aux(cfg, l),
                                    ck->evaluations, log));
    IMX_TRY(imx_layer_init_params(ctx, l, cfg, theta));
    io->log = *log;
    io->replay_evaluations = ck->evaluations;
    io->replay_iterations = ck->iteration;
    imx_log(ctx, IMX_INFO, "  resume     exact: TAO retraces %d logged evaluations to iteration %d",
            ck->evaluations, ck->iteration);
    return IMX_OK;
  }
  imx_log(ctx, IMX_WARN, "resume: %s; continuing from the checkpoint's weights with a fresh %s "
          "state (L-BFGS history and line search start over), so the path differs from an "
          "uninterrupted run",
          !have ? "no optimizer_log.bin in the run directory"
          : !cfg->output.optimizer_log ? "output.optimizer_log is false"
                                       : "the optimizer type changed",
          cfg->optimizer.type);
  io->start_iteration = ck->iteration;
  io->start_evaluations = ck->evaluations;
  return IMX_OK;
}

int imx_cmd_train(imx_ctx *ctx, const imx_args *a) {
  const char *resume = a->resume;
  if (resume ? (a->npos != 0 || a->out) : a->npos != 1) {
    if (ctx->rank == 0)
      fputs(resume ? "usage: infomax train --resume RUN_DIR [--set K=V]... (no CONFIG, no --out)\n"
                   : "usage: infomax train CONFIG.yaml [--set K=V]... (see --help)\n", stderr);
    return IMX_ERR_USAGE;
  }
  imx_config cfg, top; /* layer 1's configuration; the file's (with model.layers) */
  imx_data *d = NULL;
  imx_layer *l = NULL;
  double *theta = NULL;
  FILE *metrics = NULL;
  imx_optlog *log = NULL;
  double *transform = NULL; /* preprocessing matrix, for the measures */
  imx_metrics measures;
  imx_metrics_init(&measures);
  int measured = 0;
  char dir[IMX_PATH_LEN] = "", cfgpath[IMX_PATH_LEN + 16];
  imx_train_result res;
  imx_checkpoint ck;
  memset(&res, 0, sizeof res);
  memset(&ck, 0, sizeof ck);
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
  snprintf(cfgpath, sizeof cfgpath, resume ? "%s/config.yaml" : "%s", resume ? resume : a->pos[0]);
  imx_err e = set ? imx_config_setup(ctx, &cfg, cfgpath, nset, set)
                  : imx_fail(ctx, IMX_ERR_NOMEM, "arguments");
  free(set);
  /* With model.layers, layer 1 is trained with its entry's settings. */
  top = cfg;
  if (!e) e = imx_agree(ctx, imx_config_layer(ctx, &top, 0, &cfg));
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
  transform = malloc((size_t)d->n * d->n * sizeof *transform);
  if ((e = imx_agree(ctx, transform ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "transform"))))
    goto out;
  if ((e = imx_preprocess_apply(ctx, &cfg, d, NULL, transform))) goto out;
  if ((e = imx_layer_create(ctx, &cfg, d, &l))) goto out;
  log_objective(ctx, &cfg, l);
  theta = malloc((size_t)imx_layer_nparams(l) * sizeof *theta);
  if ((e = imx_agree(ctx, theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "parameters")))) goto out;
  imx_train_io io = {.dir = dir};
  if (resume) {
    if ((e = resume_params(ctx, &cfg, l, d, resume, theta, &ck))) goto out;
    if ((e = imx_rundir_reuse(ctx, &cfg, resume, dir))) goto out;
    if ((e = resume_optimizer(ctx, &cfg, l, dir, &ck, theta, &io, &log))) goto out;
  } else {
    if ((e = imx_layer_init_params(ctx, l, &cfg, theta))) goto out;
    if ((e = imx_rundir_create(ctx, &top, dir))) goto out;
    if ((e = write_truth(ctx, d, &cfg, dir))) goto out;
    if (cfg.output.optimizer_log &&
        (e = imx_optlog_open(ctx, dir, imx_layer_nparams(l), imx_train_precond_aux(&cfg, l), -1,
                             &log)))
      goto out;
    io.log = log;
  }
  imx_log(ctx, IMX_INFO, "  run dir    %s", dir);
  if (ctx->rank == 0) {
    char path[2 * IMX_PATH_LEN];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    metrics = fopen(path, resume ? "a" : "w");
    if (!metrics) e = imx_fail(ctx, IMX_ERR_IO, "cannot write %s", path);
  }
  if ((e = imx_agree(ctx, e))) goto out;

  /* Training. */
  io.metrics = metrics;
  e = imx_train(ctx, &cfg, l, theta, &io, &res);
  trained = 1;
  /* Measures of the trained layer (docs/results-fashion-mnist.md explains them). */
  int fit = 0;
  if (!e) e = measures_fit(ctx, &cfg, l, &fit);
  if (!e && fit) {
    imx_timer_start(IMX_T_OUTPUT);
    e = imx_metrics_compute(ctx, &cfg, l, theta, d, transform, &measures);
    imx_timer_stop(IMX_T_OUTPUT);
    measured = !e;
  }

out:
  /* Epilog: whatever happened, keep what was computed and say where it is. */
  if (metrics) fclose(metrics);
  if (e && e != IMX_STOPPED) imx_report(ctx);
  if (dir[0]) {
    imx_timer_start(IMX_T_OUTPUT);
    imx_err we = trained ? imx_stack_write_layer(ctx, l, theta, dir, 1) : IMX_OK;
    imx_timer_stop(IMX_T_OUTPUT);
    imx_timer_stop(IMX_T_TOTAL);
    imx_summary s = {.cfg = &cfg, .data = d, .layer = l, .train = trained ? &res : NULL,
                     .measures = measured ? &measures : NULL,
                     .status = e ? e : we, .message = (e && e != IMX_STOPPED) || we ? ctx->msg : ""};
    imx_err se = imx_summary_write(ctx, &s, dir);
    if (we || se) {
      imx_report(ctx);
      e = e && e != IMX_STOPPED ? e : we ? we : se;
    } else if (!e) {
      if (ctx->rank == 0) fputc('\n', stdout);
      if (measured) imx_metrics_print(ctx, stdout, &measures);
      report_success(ctx, &cfg, l, d, &res, dir);
      if (top.model.nlayers > 1) e = imx_stack_train(ctx, &top, d, l, theta, dir);
    } else if (e == IMX_STOPPED) {
      imx_log(ctx, IMX_INFO, "\nstopped by %s after %d iterations; checkpoint in %s/checkpoint.bin."
              "\ncontinue with: mpiexec -n P infomax train --resume %s", imx_signal_name(res.stopped_by),
              res.iterations, dir, dir);
    } else {
      imx_log(ctx, IMX_ERROR, "run directory %s keeps what was done: %s", dir,
              trained && res.evaluations > 0
                  ? "the last accepted weights and summary.json (status: failed)"
                  : "config.yaml and summary.json (status: failed); no iteration was done");
    }
  }
  imx_optlog_close(&log);
  imx_metrics_clear(&measures);
  free(transform);
  free(theta);
  imx_layer_free(&l);
  imx_data_free(&d);
  return e;
}
