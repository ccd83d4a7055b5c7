/* cmd_train: `infomax train CONFIG.yaml` from configuration to a run directory.
 *
 * imx_cmd_train reads as prolog (configuration, data, preprocessing), the
 * layers (include/imx/run_layer.h: layer 1, then 2..L of model.layers on the
 * features of the layer below), epilog (the run's summary.json and how the
 * run ended). */
#include <math.h>
#include <petscsys.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imx/cli.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/log.h"
#include "imx/preprocess.h"
#include "imx/run_layer.h"
#include "imx/rundir.h"
#include "imx/signals.h"
#include "imx/stack.h"
#include "imx/timer.h"
#include "imx/train.h"
#include "imx/version.h"

/* One screen of what will run, before any compute. */
static void echo_config(imx_ctx *ctx, const imx_config *c) {
  imx_log(ctx, IMX_INFO, "infomax %s: train %s on %d rank%s", imx_version(),
          c->file[0] ? c->file : "(defaults)", ctx->size, ctx->size > 1 ? "s" : "");
  if (imx_sources[c->data.source].file)
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
  imx_log(ctx, IMX_INFO, "  model      K=%d units, activation %s%s, weight_norm %s", c->model.units,
          imx_activation_name(c->model.activation), what, c->model.weight_norm ? "on" : "off");
  imx_log(ctx, IMX_INFO, "  objective  preset %s, lambda %g, eps %g", c->objective.preset,
          c->objective.lambda, c->objective.eps);
  imx_log(ctx, IMX_INFO, "  parallel   reduction %s, block %d",
          imx_reduction_name(c->parallel.reduction), c->parallel.block);
}

/* Ground truth of synthetic data beside the run (rank 0). */
static imx_err write_truth(imx_ctx *ctx, const imx_data *d, const imx_config *cfg,
                           const char *dir) {
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

/* p made absolute against the current directory (rank 0), so that a resume
 * from another directory reads the same files; "" and model.init's "random"
 * stay. Returns 1 if it does not fit. */
static int absolute(char p[IMX_PATH_LEN]) {
  char cwd[IMX_PATH_LEN], buf[2 * IMX_PATH_LEN];
  if (!p[0] || p[0] == '/' || !strcmp(p, "random")) return 0;
  if (!getcwd(cwd, sizeof cwd)) return 1;
  const char *rel = !strncmp(p, "./", 2) ? p + 2 : p;
  snprintf(buf, sizeof buf, "%s/%s", cwd, rel);
  if (strlen(buf) >= IMX_PATH_LEN) return 1;
  memcpy(p, buf, strlen(buf) + 1);
  return 0;
}

/* The run's file paths (data.path, data.labels, eval.test_path,
 * eval.test_labels, model.init) resolved once, on rank 0, and broadcast: the
 * run directory's config.yaml records them absolute. Collective. */
static imx_err resolve_paths(imx_ctx *ctx, imx_config *c) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    char *paths[] = {c->data.path, c->data.labels, c->eval.test_path, c->eval.test_labels,
                     c->model.init};
    for (size_t i = 0; !e && i < sizeof paths / sizeof *paths; i++)
      if (absolute(paths[i]))
        e = imx_fail(ctx, IMX_ERR_CONFIG, "%s: cannot make it absolute within %d bytes", paths[i],
                     IMX_PATH_LEN - 1);
  }
  IMX_TRY(imx_agree(ctx, e));
  IMX_MPI(ctx, MPI_Bcast(c, (int)sizeof *c, MPI_BYTE, 0, ctx->comm));
  return IMX_OK;
}

/* Configuration (validated before any compute): top is the file's, with
 * model.layers and the --set overrides; cfg is layer 1's. Collective. */
static imx_err load_config(imx_ctx *ctx, const imx_args *a, imx_config *top, imx_config *cfg) {
  int nset = a->nset;
  char **set = malloc((size_t)(nset + 1) * sizeof *set);
  char outset[IMX_PATH_LEN + 16], cfgpath[IMX_PATH_LEN + 16];
  for (int i = 0; set && i < nset; i++) set[i] = a->set[i];
  if (set && a->out) {
    snprintf(outset, sizeof outset, "output.dir=%s", a->out);
    set[nset++] = outset;
  }
  snprintf(cfgpath, sizeof cfgpath, a->resume ? "%s/config.yaml" : "%s",
           a->resume ? a->resume : a->pos[0]);
  imx_err e = set ? imx_config_setup(ctx, top, cfgpath, nset, set)
                  : imx_fail(ctx, IMX_ERR_NOMEM, "arguments");
  free(set);
  IMX_TRY(e);
  IMX_TRY(resolve_paths(ctx, top));
  IMX_TRY(imx_agree(ctx, imx_config_layer(ctx, top, 0, cfg)));
  return imx_agree(ctx, imx_train_options(ctx, cfg));
}

/* The data, preprocessed (mean: n, transform: the n x n preprocessing matrix,
 * for the measures and model.h5; allocated here), and the fingerprint of its
 * rows as loaded.
 * Collective. */
static imx_err load_data(imx_ctx *ctx, const imx_config *cfg, imx_data **d, double **mean,
                         double **transform, uint64_t *fp) {
  imx_timer_start(IMX_T_LOAD);
  imx_err e = imx_data_load(ctx, cfg, d);
  if (!e) e = imx_data_fingerprint(ctx, *d, fp);
  imx_timer_stop(IMX_T_LOAD);
  IMX_TRY(e);
  const imx_data *x = *d;
  imx_log(ctx, IMX_INFO,
          "  loaded     N=%lld rows x n=%d in %.2f s (%lld..%lld rows per rank, "
          "%lld blocks of %d)",
          (long long)x->N, x->n, imx_timer_get(IMX_T_LOAD), (long long)(x->N / ctx->size),
          (long long)((x->N + ctx->size - 1) / ctx->size),
          (long long)((x->N + x->block - 1) / x->block), x->block);
  *transform = malloc((size_t)x->n * x->n * sizeof **transform);
  *mean = malloc((size_t)x->n * sizeof **mean);
  IMX_TRY(imx_agree(ctx, *transform && *mean ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "transform")));
  return imx_preprocess_apply(ctx, cfg, *d, *mean, *transform);
}

/* A new run directory with config.yaml (and the ground truth of synthetic
 * data), or the one being resumed. Collective. */
static imx_err open_run_dir(imx_ctx *ctx, const imx_args *a, const imx_config *top,
                            const imx_config *cfg, const imx_data *d, char dir[IMX_PATH_LEN],
                            int *lock) {
  if (a->resume) {
    IMX_TRY(imx_rundir_reuse(ctx, a->resume, dir));
  } else {
    IMX_TRY(imx_rundir_create(ctx, top, dir, lock));
    IMX_TRY(write_truth(ctx, d, cfg, dir));
  }
  imx_log(ctx, IMX_INFO, "  run dir    %s", dir);
  return IMX_OK;
}

/* Set up layer i >= 2 of the run in cur: its configuration and its rows,
 * the features of the layer below. Collective. */
static imx_err next_layer(imx_ctx *ctx, const imx_config *top, int i, const imx_run_layer *below,
                          imx_run_layer *cur) {
  memset(cur, 0, sizeof *cur);
  cur->cfg = below->cfg;
  cur->dir = below->dir, cur->index = i, cur->layers = below->layers;
  cur->fed = below->cfg.model.feed;
  cur->data_fingerprint = below->data_fingerprint, cur->allow_changes = below->allow_changes;
  cur->model = below->model;
  IMX_TRY(imx_agree(ctx, imx_config_layer(ctx, top, i - 1, &cur->cfg)));
  return imx_stack_data(ctx, below->layer, below->theta, below->data, below->cfg.model.feed,
                        below->cfg.model.temperature, &cur->features);
}

/* Layer 1 (created: r->layer and r->theta of stage s - 1, or none) in stage
 * s of optimizer.stages: the stage's configuration, a new layer (its
 * objective may differ) whose initial parameters are the previous stage's
 * final ones. *prev takes the previous stage's parameters (freed by the
 * caller). Collective. */
static imx_err next_stage(imx_ctx *ctx, const imx_config *top, int s, imx_run_layer *r,
                          double **prev) {
  free(*prev);
  *prev = r->theta;
  r->theta = NULL;
  imx_layer_free(&r->layer);
  imx_metrics_clear(&r->measures);
  imx_metrics_init(&r->measures);
  r->stage = s, r->stages = top->optimizer.nstages, r->start = *prev;
  IMX_TRY(imx_agree(ctx, imx_config_stage(ctx, top, s - 1, &r->cfg)));
  IMX_TRY(imx_agree(ctx, imx_train_options(ctx, &r->cfg))); /* the stage's optimizer.type */
  char set[IMX_OPTS_LEN];
  snprintf(set, sizeof set, "%s", top->optimizer.stage_set[s - 1]);
  for (char *p = set; (p = strchr(p, '\n'));) *p = p[1] ? ';' : '\0';
  imx_log(ctx, IMX_INFO, "%sstage %d/%d: %s", s > 1 ? "\n" : "", s, r->stages,
          set[0] ? set : "the file's settings");
  return imx_run_layer_create(ctx, r);
}

/* A stage before the one a resume continues: its checkpoint's parameters
 * (its final ones), checked against its settings, and its record for
 * summary.json (without its TAO reason and time, which were another
 * process's). Collective. */
static imx_err finished_stage(imx_ctx *ctx, imx_run_layer *r) {
  IMX_TRY(imx_run_layer_check(ctx, r));
  if (r->absent)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: stage %d has no checkpoint although a later stage has one: the run "
                    "directory is incomplete",
                    r->dir, r->stage);
  r->records[r->stage - 1] = (imx_stage_record){.ran = 1,
                                                .status = IMX_OK,
                                                .iterations = r->ck.iteration,
                                                .evaluations = r->ck.evaluations,
                                                .loss = r->ck.loss,
                                                .seconds = NAN};
  r->done = 0;
  return IMX_OK;
}

/* A safe point before training: a stop signal that arrived since the start
 * (on any rank) ends the run here, before anything is written. Collective. */
static imx_err stop_point(imx_ctx *ctx, int *sig) {
  IMX_TRY(imx_signals_agree(ctx, sig));
  return *sig ? IMX_STOPPED : IMX_OK;
}

/* How the run ended, after its summary.json: where the checkpoint to resume
 * from is, or what the run directory keeps. */
static void report_end(imx_ctx *ctx, const imx_run_layer *r, imx_err e, const char *dir) {
  if (e == IMX_DIVERGED) {
    char above[64] = "";
    if (r->index < r->layers)
      snprintf(above, sizeof above, "; layers %d..%d were not trained", r->index + 1, r->layers);
    imx_log(ctx, IMX_WARN,
            "%s (exit code %d). Run directory %s keeps the last accepted weights, their "
            "measures, a checkpoint and summary.json (status: diverged)%s",
            ctx->msg, IMX_DIVERGED, dir, above);
  } else if (e == IMX_STOPPED) {
    char ck[64], in[32] = "";
    imx_run_layer_stage_file(ck, sizeof ck, r->index, r->stage, "checkpoint.bin");
    if (r->layers > 1) snprintf(in, sizeof in, " of layer %d", r->index);
    if (r->stages) snprintf(in, sizeof in, " of stage %d/%d", r->stage, r->stages);
    imx_log(ctx, IMX_INFO,
            "\nstopped by %s after %d iterations%s; checkpoint in %s/%s."
            "\ncontinue with: mpiexec -n P infomax train --resume %s",
            imx_signal_name(r->res.stopped_by), r->res.iterations, in, dir, ck, dir);
  } else if (e) {
    imx_log(ctx, IMX_ERROR, "run directory %s keeps what was done: %s", dir,
            r->trained && r->res.evaluations > 0
                ? "the last accepted weights and summary.json (status: failed)"
                : "config.yaml and summary.json (status: failed); no iteration was done");
  }
}

int imx_cmd_train(imx_ctx *ctx, const imx_args *a) {
  if (a->resume ? (a->npos != 0 || a->out) : a->npos != 1) {
    if (ctx->rank == 0)
      fputs(a->resume
                ? "usage: infomax train --resume RUN_DIR [--set K=V]... (no CONFIG, no --out)\n"
                : "usage: infomax train CONFIG.yaml [--set K=V]... (see --help)\n",
            stderr);
    return IMX_ERR_USAGE;
  }
  imx_config top;
  imx_data *d = NULL;
  double *transform = NULL; /* preprocessing matrix, for layer 1's measures and model.h5 */
  double *mean = NULL;      /* the train split's mean, for model.h5 */
  imx_model *model = NULL;  /* model.h5: every layer as it trains */
  char dir[IMX_PATH_LEN] = "";
  int lock = -1; /* rank 0's lock on the run directory, held to the end */
  /* Layer 1 (kept to the end: summary.json is its summary), and for i >= 2
   * the layer below (lo, freed once layer i has its rows) and layer i (hi). */
  imx_run_layer l1, lo, hi, *last = &l1;
  memset(&l1, 0, sizeof l1), memset(&lo, 0, sizeof lo), memset(&hi, 0, sizeof hi);

  /* Prolog: configuration, data, preprocessing. */
  uint64_t fp = 0;
  int early = 0; /* a stop signal before training */
  imx_err e = load_config(ctx, a, &top, &l1.cfg);
  if (!e) e = a->resume ? imx_rundir_lock(ctx, a->resume, &lock) : imx_rundir_check(ctx, &top);
  if (!e) echo_config(ctx, &l1.cfg);
  if (!e) e = stop_point(ctx, &early);
  if (!e) e = load_data(ctx, &l1.cfg, &d, &mean, &transform, &fp);
  if (!e) e = imx_agree(ctx, imx_model_create(ctx, &top, d->n, mean, transform, &model));
  if (!e) e = stop_point(ctx, &early);
  int layers = !e && top.model.nlayers > 1 ? top.model.nlayers : 1;
  l1 = (imx_run_layer){.cfg = l1.cfg,
                       .data = d,
                       .transform = transform,
                       .dir = dir,
                       .index = 1,
                       .layers = layers,
                       .data_fingerprint = fp,
                       .allow_changes = a->allow_changes,
                       .model = model};

  /* The layers, greedily. On resume the layer in progress continues from its
   * checkpoint, and the finished ones below it are rebuilt from theirs. */
  int first = 1, reported = 0, advanced = 0, done = 0;
  if (!e && a->resume) e = imx_run_layer_find(ctx, a->resume, layers, &first);
  /* Stages (optimizer.stages, one layer): each a new layer of the stage's
   * settings from the previous stage's final parameters; a resume continues
   * the stage in progress, from the final parameters of the one before. */
  int stages = !e ? top.optimizer.nstages : 0, first_stage = 1, resumed = -1;
  double *prev = NULL;
  char changes[sizeof l1.changes] = "";
  if (!e && stages && a->resume) e = imx_run_layer_find_stage(ctx, a->resume, stages, &first_stage);
  for (int s = 1; !e && !done && s <= stages; s++) {
    e = next_stage(ctx, &top, s, &l1, &prev);
    if (!e && s == 1) e = open_run_dir(ctx, a, &top, &l1.cfg, d, dir, &lock);
    if (!e && a->resume && s < first_stage) {
      e = finished_stage(ctx, &l1);
      resumed = l1.resume, memcpy(changes, l1.changes, sizeof changes);
      continue;
    }
    if (!e && a->resume && s == first_stage) {
      e = imx_run_layer_check(ctx, &l1);
      done = !e && l1.done;
      if (!e && !done) e = imx_rundir_write_config(ctx, &top, dir);
      resumed = l1.resume, memcpy(changes, l1.changes, sizeof changes);
    }
    if (!e && !done) {
      e = imx_run_layer_train(ctx, &l1,
                              s == first_stage && a->resume ? IMX_LAYER_RESUME : IMX_LAYER_FRESH);
      /* the resume may find it cannot continue exactly (no optimizer state) */
      if (a->resume && s == first_stage) resumed = l1.resume;
      reported = e != 0;
      advanced |= l1.advanced;
    }
  }
  if (stages) {
    l1.resume = resumed, memcpy(l1.changes, changes, sizeof changes);
    free(prev);
    l1.start = NULL;
    done = 1; /* the one layer is done (or failed) */
  }
  for (int i = 1; !e && !done && i <= layers; i++) {
    if (i > 1) {
      lo = hi;
      e = next_layer(ctx, &top, i, i == 2 ? &l1 : &lo, &hi);
      imx_run_layer_clear(&lo);
      last = &hi;
    }
    if (!e) e = imx_run_layer_create(ctx, last);
    if (!e && i == 1) e = open_run_dir(ctx, a, &top, &l1.cfg, d, dir, &lock);
    /* On resume the layer in progress first checks its checkpoint against
     * this run; config.yaml takes the new settings only once it is accepted. */
    if (!e && i == first && a->resume) {
      e = imx_run_layer_check(ctx, last);
      done = !e && last->done;
      if (!e && !done) e = imx_rundir_write_config(ctx, &top, dir);
      if (last != &l1)
        l1.resume = last->resume, memcpy(l1.changes, last->changes, sizeof l1.changes);
    }
    if (!e && !done) {
      imx_layer_start start = i < first                 ? IMX_LAYER_REBUILD
                              : i == first && a->resume ? IMX_LAYER_RESUME
                                                        : IMX_LAYER_FRESH;
      e = imx_run_layer_train(ctx, last, start);
      if (start == IMX_LAYER_RESUME && last != &l1) l1.resume = last->resume; /* as above */
      reported = e != 0;
      advanced |= last->advanced;
    }
  }

  /* Epilog: summary.json (layer 1's, with the status of the whole run) and
   * how the run ended. */
  if (imx_failed(e) && !reported) imx_report(ctx);
  imx_timer_stop(IMX_T_TOTAL);
  /* A resume that ended before any new iteration (refused, nothing to do,
   * or failed while retracing) leaves the run directory as it was. */
  int untouched = a->resume && !advanced && (done || (e && e != IMX_STOPPED));
  if (untouched && dir[0] && e)
    imx_log(ctx, IMX_ERROR, "run directory %s is unchanged: this resume did no new iteration", dir);
  if (dir[0] && !untouched) {
    imx_err se = imx_run_layer_summary(ctx, &l1, e, "summary.json");
    if (se) {
      imx_report(ctx);
      e = imx_failed(e) ? e : se;
    } else {
      report_end(ctx, last, e, dir);
    }
  } else if (early) {
    if (a->resume)
      imx_log(ctx, IMX_INFO,
              "\nstopped by %s before training resumed; %s is unchanged.\ncontinue with: "
              "mpiexec -n P infomax train --resume %s",
              imx_signal_name(early), a->resume, a->resume);
    else
      imx_log(ctx, IMX_INFO,
              "\nstopped by %s before training started; no run directory was created: run the "
              "same command again",
              imx_signal_name(early));
  }
  imx_rundir_unlock(&lock);
  imx_run_layer_clear(&hi);
  imx_run_layer_clear(&l1);
  free(transform), free(mean);
  imx_model_free(&model);
  imx_data_free(&d);
  return e;
}
