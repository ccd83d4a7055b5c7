/* run_layer: one layer of `infomax train` (see include/imx/run_layer.h). */
#include "imx/config.h"
#include "imx/run_layer.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imx/batch.h"
#include "imx/checkpoint.h"
#include "imx/linalg.h"
#include "imx/log.h"
#include "imx/optlog.h"
#include "imx/stack.h"
#include "imx/summary.h"
#include "imx/timer.h"

#define NAME_LEN 64 /* "layer2147483647_optimizer_log.bin" fits */

void imx_run_layer_file(char *out, size_t len, int index, const char *name) {
  if (index == 1) snprintf(out, len, "%s", name);
  else snprintf(out, len, "layer%d_%s", index, name);
}

void imx_run_layer_stage_file(char *out, size_t len, int index, int stage, const char *name) {
  char staged[NAME_LEN];
  if (stage > 1) snprintf(staged, sizeof staged, "stage%d_%s", stage, name);
  imx_run_layer_file(out, len, index, stage > 1 ? staged : name);
}

/* 1 if DIR/NAME is readable (rank 0), broadcast. Collective. */
static imx_err file_exists(imx_ctx *ctx, const char *dir, const char *name, int *have) {
  *have = 0;
  if (ctx->rank == 0) {
    char path[IMX_PATH_LEN + NAME_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *have = access(path, R_OK) == 0;
  }
  IMX_MPI(ctx, MPI_Bcast(have, 1, MPI_INT, 0, ctx->comm));
  return IMX_OK;
}

imx_err imx_run_layer_find(imx_ctx *ctx, const char *dir, int layers, int *index) {
  *index = 1;
  for (int i = layers; i > 1; i--) {
    char name[NAME_LEN];
    int have;
    imx_run_layer_file(name, sizeof name, i, "checkpoint.bin");
    IMX_TRY(file_exists(ctx, dir, name, &have));
    if (have) {
      *index = i;
      break;
    }
  }
  return IMX_OK;
}

imx_err imx_run_layer_find_stage(imx_ctx *ctx, const char *dir, int stages, int *stage) {
  *stage = 1;
  for (int i = stages; i > 1; i--) {
    char name[NAME_LEN];
    int have;
    imx_run_layer_stage_file(name, sizeof name, 1, i, "checkpoint.bin");
    IMX_TRY(file_exists(ctx, dir, name, &have));
    if (have) {
      *stage = i;
      break;
    }
  }
  return IMX_OK;
}

/* What the layer is and how its loss is made, before training. */
static void log_layer(imx_ctx *ctx, const imx_run_layer *r) {
  const imx_config *c = &r->cfg;
  const imx_layer *l = r->layer;
  const imx_objective *o = imx_layer_objective(l);
  char buf[512];
  size_t off = 0;
  for (int t = 0; t < IMX_NTERMS; t++)
    if (o->w[t] != 0)
      off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%g*%s", off ? " + " : "", o->w[t],
                              imx_term_names[t]);
  imx_log(ctx, IMX_INFO, "  loss       %s%s", buf,
          o->null_vector ? "   (log det uses C + 1 1^T/K: softmax rows sum to 1)" : "");
  /* entropy + 1/2 logdet is ML ICA only for whitened inputs and K = n (layer 1
   * is the one data.preprocess applies to). */
  if (r->index == 1 && o->w[IMX_TERM_ENTROPY] != 0 && o->w[IMX_TERM_LOGDET] != 0 &&
      (c->data.preprocess != IMX_PRE_WHITEN || imx_layer_units(l) != imx_layer_inputs(l)))
    imx_log(ctx, IMX_WARN,
            "entropy + logdet is maximum-likelihood ICA for whitened inputs and "
            "K = n; here data.preprocess is %s and K = %d, n = %d: set data.preprocess: whiten "
            "and model.units: %d",
            imx_preprocess_name(c->data.preprocess), imx_layer_units(l), imx_layer_inputs(l),
            imx_layer_inputs(l));
  if (imx_layer_head_classes(l))
    imx_log(ctx, IMX_INFO,
            "  head       supervised: linear softmax head, %d classes x %d outputs, "
            "trained jointly (theta = [V, b, U, c], %d parameters)",
            imx_layer_head_classes(l), imx_layer_units(l), imx_layer_nparams(l));
  if (o->w[IMX_TERM_HSIC] != 0)
    imx_log(ctx, IMX_INFO,
            "  hsic       K D = %d x %d random Fourier features: (K D)^2 matrices and feature "
            "blocks %.1f MiB per rank (objective.hsic_features sets D)",
            imx_layer_units(l), c->objective.hsic_features, imx_layer_hsic_bytes(l) / 1048576);
  if (o->on == IMX_ON_Z)
    imx_log(
        ctx, IMX_INFO,
        "  on         z = W x + b (objective.on: z): the moment terms, entropy and hsic read z; "
        "%s reads phi(z)",
        imx_objective_reads_activation(o) ? "lse/supervised" : "nothing");
  imx_log(ctx, IMX_INFO, "  path       %s%s%s", imx_layer_path(l),
          !strcmp(imx_layer_path(l), "moments")
              ? (o->on == IMX_ON_Z ? " (moment terms on z" : " (identity activation, moment terms")
              : " (forward, block moments, reduction, backward over the local rows)",
          !strcmp(imx_layer_path(l), "moments")
              ? ": C = W S_x W^T, an iteration never touches the data)"
              : "");
  char la[1024];
  imx_layer_describe_linalg(l, la, sizeof la);
  imx_log(ctx, IMX_INFO, "  linalg     %s", la);
}

/* The checkpoint DIR/NAME into r->theta, after checking that it holds this
 * layer. Collective. */
static imx_err read_checkpoint(imx_ctx *ctx, imx_run_layer *r, const char *name,
                               imx_checkpoint *ck) {
  double *x = NULL;
  const imx_layer *l = r->layer;
  IMX_TRY(imx_checkpoint_read(ctx, r->dir, name, ck, &x));
  imx_err e = IMX_OK;
  if (ck->K != imx_layer_units(l) || ck->n != imx_layer_inputs(l) ||
      ck->nparams != imx_layer_nparams(l))
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "%s/%s holds a layer of K=%d x n=%d (%lld "
                 "parameters), but the configuration and data give K=%d x n=%d (%d parameters, "
                 "with the supervised head's)",
                 r->dir, name, ck->K, ck->n, (long long)ck->nparams, imx_layer_units(l),
                 imx_layer_inputs(l), imx_layer_nparams(l));
  if (!e) memcpy(r->theta, x, (size_t)ck->nparams * sizeof *r->theta);
  free(x);
  return e;
}

/* The keys whose values shape a layer's result: a resume compares them with
 * the checkpoint's. The data's paths are not among them (the rows' fingerprint
 * is: a moved file with the same rows resumes); the stopping rules
 * (optimizer.max_it, gatol, grtol), eval.* and output.* may change. Another
 * optimizer.type continues from the checkpoint's weights with a fresh TAO state
 * (not exact, said so); other optimizer.options are caught by the optimizer
 * log, which refuses a retrace that asks for other points. */
static const char *const SHAPING[] = {"data.",
                                      "model.",
                                      "objective.",
                                      "optimizer.precondition",
                                      "optimizer.lr",
                                      "optimizer.batch",
                                      "optimizer.momentum",
                                      "optimizer.beta",
                                      "optimizer.epsilon",
                                      "optimizer.schedule",
                                      "optimizer.decay",
                                      "optimizer.seed",
                                      "optimizer.cov_blend",
                                      "parallel.reduction",
                                      "parallel.block",
                                      "parallel.scalapack_block",
                                      "parallel.precision",
                                      NULL};
static const char *const UNSHAPING[] = {"data.path", "data.labels", NULL};

/* What layer r trains on, as stored in its checkpoints. Local. */
static void stamp(const imx_run_layer *r, int altered, imx_checkpoint *st) {
  memset(st, 0, sizeof *st);
  st->data_fingerprint = r->data_fingerprint;
  st->altered = altered;
  const char *used = imx_layer_linalg(r->layer);
  for (int k = 0; imx_linalg_names[k]; k++)
    if (!strcmp(imx_linalg_names[k], used)) st->linalg = k;
  size_t off = imx_config_lines(&r->cfg, SHAPING, UNSHAPING, st->settings, sizeof st->settings);
  if (off < sizeof st->settings)
    off += (size_t)snprintf(st->settings + off, sizeof st->settings - off,
                            "layer.path: %s\nlayer.linalg: %s\n", imx_layer_path(r->layer), used);
  if (r->stages && off < sizeof st->settings) {
    /* The stage, and the whole list as a hash: a resume with another list
     * (any stage's keys, max_it included) is a change. */
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < r->cfg.optimizer.nstages; i++)
      for (const char *p = r->cfg.optimizer.stage_set[i];; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
        if (!*p) break;
      }
    snprintf(st->settings + off, sizeof st->settings - off,
             "optimizer.stage: %d of %d\noptimizer.stages: %d entries, hash %016llx\n", r->stage,
             r->stages, r->cfg.optimizer.nstages, (unsigned long long)h);
  }
}

/* The value of "key: value" line `key` in text, into val ("(none)" if absent). */
static void setting(const char *text, const char *key, size_t klen, char *val, size_t n) {
  snprintf(val, n, "(none)");
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len > klen + 1 && !strncmp(p, key, klen) && p[klen] == ':') {
      snprintf(val, n, "%.*s", (int)(len - klen - 2), p + klen + 2);
      return;
    }
    p += len + (nl != NULL);
  }
}

/* printf into out + *off (n bytes in all), advancing *off. Local. */
static void append(char *out, size_t n, size_t *off, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (*off < n) *off += (size_t)vsnprintf(out + *off, n - *off, fmt, ap);
  va_end(ap);
}

/* "key: old -> new; ..." for every setting that differs between the texts
 * was and now, and the data when the fingerprints differ; the count. A key
 * the checkpoint does not have (added to the program after it was written)
 * at its default is no difference: the default keeps the old behaviour.
 * Local. */
static int differences(const imx_checkpoint *was, const imx_checkpoint *now, char *out, size_t n) {
  int count = 0;
  size_t off = 0;
  out[0] = 0;
  static imx_config dcfg;
  static char defaults[IMX_CHECKPOINT_SETTINGS];
  imx_config_defaults(&dcfg);
  imx_config_lines(&dcfg, SHAPING, UNSHAPING, defaults, sizeof defaults);
  if (was->data_fingerprint != now->data_fingerprint)
    count++, append(out, n, &off, "data: rows differ (fingerprint %016llx != %016llx)",
                    (unsigned long long)was->data_fingerprint,
                    (unsigned long long)now->data_fingerprint);
  for (int pass = 0; pass < 2; pass++) {
    /* pass 0: the checkpoint's keys; pass 1: keys only the new settings have */
    const char *text = pass ? now->settings : was->settings;
    for (const char *p = text; *p;) {
      const char *nl = strchr(p, '\n'), *colon = strchr(p, ':');
      size_t len = nl ? (size_t)(nl - p) : strlen(p);
      if (colon && colon < p + len) {
        size_t klen = (size_t)(colon - p);
        char a[256], b[256], def[256];
        setting(was->settings, p, klen, a, sizeof a);
        setting(now->settings, p, klen, b, sizeof b);
        setting(defaults, p, klen, def, sizeof def);
        int added = !strcmp(a, "(none)") && strcmp(def, "(none)") && !strcmp(b, def);
        if (strcmp(a, b) && (pass == 0 || !strcmp(a, "(none)")) && !added)
          count++,
              append(out, n, &off, "%s%.*s: %s -> %s", count > 1 ? "; " : "", (int)klen, p, a, b);
      }
      p += len + (nl != NULL);
    }
  }
  return count;
}

/* Read the layer's checkpoint NAME into r->ck and r->theta, take its
 * linear-algebra backend when parallel.linalg is auto, and compare what it was
 * trained on with this run: differences are refused unless r->allow_changes.
 * Collective. */
static imx_err verify(imx_ctx *ctx, imx_run_layer *r, const char *name) {
  IMX_TRY(read_checkpoint(ctx, r, name, &r->ck));
  const char *used = imx_layer_linalg(r->layer);
  if (r->ck.linalg > IMX_LINALG_AUTO && r->ck.linalg <= IMX_LINALG_SCALAPACK &&
      strcmp(used, imx_linalg_names[r->ck.linalg]) && r->cfg.parallel.linalg == IMX_LINALG_AUTO) {
    /* auto decides from the memory per rank and the rank count: the run keeps
     * the backend it started with, so that it stays bit for bit. */
    imx_log(ctx, IMX_INFO,
            "  linalg     %s, as the checkpoint (auto would choose %s on %d rank%s: %s)",
            imx_linalg_names[r->ck.linalg], used, ctx->size, ctx->size > 1 ? "s" : "",
            imx_layer_linalg_reason(r->layer));
    r->cfg.parallel.linalg = (imx_linalg_kind)r->ck.linalg;
    imx_layer_free(&r->layer);
    IMX_TRY(r->status = imx_layer_create(ctx, &r->cfg, r->data, &r->layer));
  }
  imx_checkpoint now;
  stamp(r, 0, &now);
  int n = differences(&r->ck, &now, r->changes, sizeof r->changes);
  if (n && !r->allow_changes)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "cannot resume %s/%s exactly: %d difference%s from what it was trained on: "
                    "%s. Resume with the run's own settings and data (drop the --set), or add "
                    "--allow-changes to continue with these (the run is then no longer exact)",
                    r->dir, name, n, n > 1 ? "s" : "", r->changes);
  if (n)
    imx_log(ctx, IMX_WARN,
            "resume of %s/%s with --allow-changes: %s; the run continues, but is no longer "
            "exact",
            r->dir, name, r->changes);
  else if (r->ck.altered)
    imx_log(ctx, IMX_WARN,
            "%s/%s: an earlier resume changed the settings or data of this run "
            "(--allow-changes): it is not exact",
            r->dir, name);
  r->resume = !n && !r->ck.altered;
  r->ck.altered = !r->resume; /* carried into its next checkpoints */
  return IMX_OK;
}

imx_err imx_run_layer_check(imx_ctx *ctx, imx_run_layer *r) {
  char ckname[NAME_LEN];
  imx_run_layer_stage_file(ckname, sizeof ckname, r->index, r->stage, "checkpoint.bin");
  int have = 1;
  IMX_TRY(file_exists(ctx, r->dir, ckname, &have));
  if (!have) { /* config.yaml but no checkpoint: nothing was done yet, so do it here */
    imx_log(ctx, IMX_INFO,
            "  resume     no %s in %s (stopped or killed before its first checkpoint): "
            "the run starts afresh in it",
            ckname, r->dir);
    r->absent = 1;
    return IMX_OK;
  }
  IMX_TRY(verify(ctx, r, ckname));
  imx_log(ctx, IMX_INFO, "  resume     %s/%s: iteration %d, loss %.10g (TAO %s)", r->dir, ckname,
          r->ck.iteration, r->ck.loss, r->ck.tao_type);
  r->checked = 1;
  r->done = r->cfg.optimizer.max_it < r->ck.iteration;
  if (r->done)
    imx_log(ctx, IMX_WARN,
            "%s/%s is at iteration %d, beyond optimizer.max_it %d: nothing to continue, and "
            "the run directory stays as it is (its later state is never replaced by an earlier "
            "one). To continue, raise optimizer.max_it above %d: --set optimizer.max_it=N",
            r->dir, ckname, r->ck.iteration, r->cfg.optimizer.max_it, r->ck.iteration);
  return IMX_OK;
}

/* The initial parameters into r->theta: model.init and model.seed's, or a
 * stage's from the previous stage's final ones. Collective. */
static imx_err initial(imx_ctx *ctx, imx_run_layer *r) {
  if (r->start) return imx_layer_start_params(ctx, r->layer, r->start, r->theta);
  return imx_layer_init_params(ctx, r->layer, &r->cfg, r->theta);
}

/* A mini-batch run (optimizer.type adam, sgd) continues from the
 * checkpoint's weights with the moments of its optimizer_state.bin, written
 * at the same iteration, and the step count is its place in the shuffle:
 * exact. Without that file (or another optimizer before) the moments start
 * at zero: not exact, said so. Collective. */
static imx_err resume_stochastic(imx_ctx *ctx, imx_run_layer *r, imx_train_io *io) {
  const imx_checkpoint ck = r->ck;
  const char *type = r->cfg.optimizer.type;
  char name[NAME_LEN], why[IMX_PATH_LEN + 160] = "";
  imx_run_layer_stage_file(name, sizeof name, r->index, r->stage, "optimizer_state.bin");
  int have = 0;
  IMX_TRY(file_exists(ctx, r->dir, name, &have));
  io->start_iteration = ck.iteration;
  /* The checkpoint counts the evaluation at its point, which the resume repeats. */
  io->start_evaluations = ck.evaluations > 0 ? ck.evaluations - 1 : 0;
  if (strcmp(ck.tao_type, type))
    snprintf(why, sizeof why, "the checkpoint was written by TAO %s", ck.tao_type);
  else if (!have) snprintf(why, sizeof why, "no %s in %s", name, r->dir);
  else {
    imx_checkpoint h;
    double *mv = NULL;
    IMX_TRY(imx_checkpoint_read(ctx, r->dir, name, &h, &mv));
    /* adam's m and v (sgd's velocity and a zero half), then optimizer.cov_blend's C_run. */
    int64_t K = r->cfg.model.units,
            want = 2 * ck.nparams + (r->cfg.optimizer.cov_blend > 0 ? 1 + K * K : 0);
    if (h.iteration != ck.iteration || h.nparams != want)
      snprintf(why, sizeof why,
               "%s is at iteration %d with %lld values, the checkpoint at iteration %d needs "
               "%lld",
               name, h.iteration, (long long)h.nparams, ck.iteration, (long long)want);
    if (!why[0]) {
      r->moments = mv;
      io->moments = mv;
      imx_log(ctx, IMX_INFO, "  resume     %s: %s continues at step %d with its moments from %s",
              r->resume == 1 ? "exact" : "NOT exact (settings or data changed)", type, ck.iteration,
              name);
      return IMX_OK;
    }
    free(mv);
  }
  imx_log(ctx, IMX_WARN,
          "resume: %s; continuing from the checkpoint's weights and step %d with the %s moments "
          "at zero, so the path differs from an uninterrupted run",
          why, ck.iteration, type);
  r->resume = 0, r->ck.altered = 1;
  return IMX_OK;
}

/* Parameters from the layer's checkpoint, and how the optimizer continues:
 * by retracing the logged run from the initial parameters (exact), or from
 * the checkpoint's weights with a fresh TAO state when there is no usable
 * log. Collective. */
static imx_err resume(imx_ctx *ctx, imx_run_layer *r, const char *logname, imx_train_io *io,
                      imx_optlog **log) {
  const imx_config *cfg = &r->cfg;
  const imx_checkpoint ck = r->ck; /* read and accepted by imx_run_layer_check */
  int have = 0;
  if (imx_batch_kind(cfg->optimizer.type)) return resume_stochastic(ctx, r, io);
  IMX_TRY(file_exists(ctx, r->dir, logname, &have));
  int64_t capped = -1; /* a log stopped by output.optimizer_log_max_mib: its length */
  char why[160] = "";
  if (have && ctx->rank == 0) {
    char path[IMX_PATH_LEN + NAME_LEN];
    snprintf(path, sizeof path, "%s/%s", r->dir, logname);
    capped = imx_optlog_capped_at(path);
  }
  IMX_MPI(ctx, MPI_Bcast(&capped, 1, MPI_INT64_T, 0, ctx->comm));
  if (capped >= 0 && capped < ck.evaluations)
    snprintf(why, sizeof why,
             "%s stops at %lld evaluations (output.optimizer_log_max_mib), the checkpoint is at %d",
             logname, (long long)capped, ck.evaluations);
  if (have && !why[0] && cfg->output.optimizer_log && !strcmp(ck.tao_type, cfg->optimizer.type)) {
    IMX_TRY(imx_optlog_open(ctx, r->dir, logname, imx_layer_nparams(r->layer),
                            imx_train_precond_aux(cfg, r->layer), ck.evaluations, log));
    IMX_TRY(imx_optlog_plan(ctx, *log, cfg->output.optimizer_log_max_mib, cfg->optimizer.max_it));
    IMX_TRY(initial(ctx, r));
    io->log = *log;
    io->replay_evaluations = ck.evaluations;
    io->replay_iterations = ck.iteration;
    imx_log(ctx, IMX_INFO, "  resume     %s: TAO retraces %d logged evaluations to iteration %d",
            r->resume == 1 ? "exact" : "NOT exact (settings or data changed)", ck.evaluations,
            ck.iteration);
    return IMX_OK;
  }
  imx_log(ctx, IMX_WARN,
          "resume: %s; continuing from the checkpoint's weights with a fresh %s "
          "state (L-BFGS history and line search start over), so the path differs from an "
          "uninterrupted run",
          !have    ? (r->index == 1 ? "no optimizer_log.bin in the run directory"
                                    : "no optimizer log of the layer in the run directory")
          : why[0] ? why
          : !cfg->output.optimizer_log ? "output.optimizer_log is false"
                                       : "the optimizer type changed",
          cfg->optimizer.type);
  r->resume = 0, r->ck.altered = 1;
  io->start_iteration = ck.iteration;
  io->start_evaluations = ck.evaluations;
  return IMX_OK;
}

/* Initial parameters and a new optimizer log. Collective. */
static imx_err fresh(imx_ctx *ctx, imx_run_layer *r, const char *logname, imx_train_io *io,
                     imx_optlog **log) {
  IMX_TRY(initial(ctx, r));
  /* Mini-batch types keep their moments instead (optimizer_state.bin). */
  if (r->cfg.output.optimizer_log && !imx_batch_kind(r->cfg.optimizer.type))
    IMX_TRY(imx_optlog_open(ctx, r->dir, logname, imx_layer_nparams(r->layer),
                            imx_train_precond_aux(&r->cfg, r->layer), -1, log));
  if (*log)
    IMX_TRY(
        imx_optlog_plan(ctx, *log, r->cfg.output.optimizer_log_max_mib, r->cfg.optimizer.max_it));
  io->log = *log;
  return IMX_OK;
}

/* The end of the lines of metrics.jsonl (open for reading) that the
 * checkpoint saw: whole lines of earlier stages and of this stage with
 * "iter" <= iteration, up to the first other (a line of an iteration after
 * the checkpoint, left by a kill or a failed write, or a partial line).
 * Local. */
static long seen_by_checkpoint(FILE *f, int stage, int iteration) {
  long keep = 0;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    const char *it = strstr(line, "\"iter\":"), *st = strstr(line, "\"stage\":");
    int ls = st ? atoi(st + 8) : 0; /* a line's stage (0: a run without stages) */
    if (!strchr(line, '\n') || !it || ls > stage || (ls == stage && atoi(it + 7) > iteration))
      break;
    keep = ftell(f);
  }
  return keep;
}

/* The layer's metrics.jsonl (rank 0): new, or on resume cut to the lines the
 * checkpoint saw and appended to, so that each iteration is there once; a
 * stage S >= 2 that starts afresh appends to the earlier stages' lines.
 * Collective. */
static imx_err open_metrics(imx_ctx *ctx, const imx_run_layer *r, int append, FILE **f) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    char name[NAME_LEN], path[IMX_PATH_LEN + NAME_LEN];
    imx_run_layer_file(name, sizeof name, r->index, "metrics.jsonl");
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    /* a later stage's fresh start adds to the earlier stages' lines */
    *f = fopen(path, append ? "a+" : r->stage > 1 ? "a" : "w");
    if (*f && append) {
      rewind(*f);
      long keep = seen_by_checkpoint(*f, r->stage, r->ck.iteration);
      if (fflush(*f) || ftruncate(fileno(*f), keep) || fseek(*f, 0, SEEK_END))
        e = imx_fail(ctx, IMX_ERR_IO, "cannot cut %s to iteration %d", path, r->ck.iteration);
    }
    if (!*f) e = imx_fail(ctx, IMX_ERR_IO, "cannot write %s", path);
  }
  return imx_agree(ctx, e);
}

/* The measures at the end of training (docs/results-fashion-mnist.md explains
 * them) work where the layer's K x K matrices do: replicated, or on the
 * scalapack backend's tiles (about two more local blocks). Skip them, with a
 * note, when they would not fit beside the layer (imx_metrics_fit). Collective. */
static imx_err measure(imx_ctx *ctx, imx_run_layer *r) {
  int pr = 0, pc = 0, nb = 0;
  imx_layer_grid(r->layer, &pr, &pc, &nb);
  double avail = 0, need = 0;
  int budget = r->cfg.parallel.memory_mib > 0; /* else read from the node */
  IMX_TRY(imx_linalg_memory_per_rank(ctx, r->cfg.parallel.memory_mib, &avail));
  if (!imx_metrics_fit(imx_metrics_bytes(imx_layer_units(r->layer), ctx->size, nb, r->data->nloc),
                       imx_layer_bytes(r->layer), avail, budget, &need)) {
    imx_log(ctx, IMX_WARN,
            "measures skipped: they need %.1f GiB per rank%s (%s), more than 3/4 of the %.1f GiB "
            "%s; the weights are saved, run `infomax eval` where more memory is available",
            need / 1073741824, budget ? " with the layer" : "",
            nb ? "K x K on block-cyclic tiles" : "replicated K x K matrices", avail / 1073741824,
            budget ? "of parallel.memory_mib" : "available beside the layer");
    return IMX_OK;
  }
  imx_timer_start(IMX_T_OUTPUT);
  imx_err e = imx_metrics_compute(ctx, &r->cfg, r->layer, r->theta, r->data, r->transform,
                                  &r->measures);
  imx_timer_stop(IMX_T_OUTPUT);
  r->measured = !e;
  return e;
}

/* The closing lines of a trained layer: what, how it converged, where it is. */
static void report(imx_ctx *ctx, const imx_run_layer *r) {
  const imx_train_result *res = &r->res;
  char lead[32] = "", names[5][NAME_LEN];
  if (r->index > 1) snprintf(lead, sizeof lead, "layer %d: ", r->index);
  if (ctx->rank == 0) fputc('\n', stdout);
  if (r->measured) imx_metrics_print(ctx, stdout, &r->measures);
  imx_log(ctx, IMX_INFO,
          "\n%strained K=%d %s units on N=%lld x n=%d with TAO %s: %s after %d "
          "iterations (%d evaluations, %.2f s)",
          lead, imx_layer_units(r->layer), imx_activation_name(r->cfg.model.activation),
          (long long)r->data->N, r->data->n, res->tao_type, res->reason, res->iterations,
          res->evaluations, res->seconds);
  char terms[512];
  size_t off = 0;
  terms[0] = 0;
  for (int t = 0; t < IMX_NTERMS; t++)
    if (!isnan(res->final.terms[t]))
      off += (size_t)snprintf(terms + off, sizeof terms - off, "  %s %.6g", imx_term_names[t],
                              res->final.terms[t]);
  imx_log(ctx, IMX_INFO, "%sfinal loss %.10g  |grad| %.3e%s  dead units %d", lead, res->final.loss,
          res->grad_norm, terms, res->final.dead_units);
  const char *base[5] = {"W.npy", "b.npy", "metrics.jsonl", "summary.json", "checkpoint.bin"};
  for (int i = 0; i < 5; i++) imx_run_layer_file(names[i], sizeof names[i], r->index, base[i]);
  imx_run_layer_stage_file(names[4], sizeof names[4], r->index, r->stage, base[4]);
  snprintf(names[0], sizeof names[0], "layer%d_W.npy", r->index);
  snprintf(names[1], sizeof names[1], "layer%d_b.npy", r->index);
  imx_log(ctx, IMX_INFO, "%sresults in %s/ (%s, %s, %s, %s, %s, model.h5)", lead, r->dir, names[0],
          names[1], names[2], names[3], names[4]);
}

imx_err imx_run_layer_summary(imx_ctx *ctx, const imx_run_layer *r, imx_err status,
                              const char *file) {
  imx_summary s = {.cfg = &r->cfg,
                   .data = r->data,
                   .layer = r->layer,
                   .train = r->trained ? &r->res : NULL,
                   .measures = r->measured ? &r->measures : NULL,
                   .status = status,
                   .layer_status = r->status,
                   .message = status && status != IMX_STOPPED ? ctx->msg : "",
                   .file = file,
                   .resume = r->resume,
                   .changes = r->changes,
                   .stages = r->stages ? r->records : NULL,
                   .nstages = r->stages};
  return imx_summary_write(ctx, &s, r->dir);
}

/* model.h5's status for a layer that ended with e: a stack's lower layer
 * that finished leaves the run "training"; else summary.json's status. */
static const char *model_status(const imx_run_layer *r, imx_err e) {
  return e == IMX_STOPPED       ? "stopped"
         : e == IMX_DIVERGED    ? "diverged"
         : e                    ? "failed"
         : r->index < r->layers ? "training"
                                : "finished";
}

/* The layer at theta into the run's model, and model.h5 written with
 * status (NULL: only set). Collective. */
static imx_err model_update(imx_ctx *ctx, imx_run_layer *r, const double *theta,
                            const char *status) {
  if (!r->model) return IMX_OK;
  IMX_TRY(imx_agree(ctx, imx_model_set_layer(ctx, r->model, r->index, &r->cfg, r->layer, theta)));
  return status ? imx_model_write(ctx, r->model, r->dir, status) : IMX_OK;
}

/* imx_train_io.checkpointed: model.h5 beside every checkpoint. Collective. */
static imx_err model_checkpointed(imx_ctx *ctx, void *arg, const double *theta) {
  return model_update(ctx, arg, theta, "training");
}

/* A finished layer below the one in progress: its checkpoint's parameters
 * (the last iterate: its trained weights, bit for bit) and its weight files.
 * Collective. */
static imx_err rebuild(imx_ctx *ctx, imx_run_layer *r) {
  char ckname[NAME_LEN];
  imx_run_layer_stage_file(ckname, sizeof ckname, r->index, r->stage, "checkpoint.bin");
  IMX_TRY(verify(ctx, r, ckname));
  imx_log(ctx, IMX_INFO, "  restored   %s/%s: iteration %d, loss %.10g; layer %d stays fixed",
          r->dir, ckname, r->ck.iteration, r->ck.loss, r->index);
  IMX_TRY(imx_stack_write_layer(ctx, r->layer, r->theta, r->dir, r->index));
  return model_update(ctx, r, r->theta, NULL);
}

imx_err imx_run_layer_create(imx_ctx *ctx, imx_run_layer *r) {
  const imx_config *c = &r->cfg;
  if (r->features) r->data = r->features;
  imx_metrics_init(&r->measures);
  memset(&r->res, 0, sizeof r->res);
  r->trained = r->measured = 0;
  r->checked = r->done = r->advanced = 0, r->resume = -1, r->changes[0] = 0;
  r->moments = NULL;
  memset(&r->ck, 0, sizeof r->ck);
  if (r->index > 1)
    imx_log(ctx, IMX_INFO,
            "\nlayer %d: K=%d %s units on the %s of layer %d (n=%d), preset %s, "
            "TAO %s, max_it %d",
            r->index, c->model.units, imx_activation_name(c->model.activation),
            imx_feed_name(r->fed), r->index - 1, r->data->n, c->objective.preset, c->optimizer.type,
            c->optimizer.max_it);
  IMX_TRY(r->status = imx_layer_create(ctx, c, r->data, &r->layer));
  r->theta = malloc((size_t)imx_layer_nparams(r->layer) * sizeof *r->theta);
  IMX_TRY(r->status = imx_agree(
              ctx, r->theta ? IMX_OK
                            : imx_fail(ctx, IMX_ERR_NOMEM, "parameters of layer %d", r->index)));
  log_layer(ctx, r);
  return IMX_OK;
}

imx_err imx_run_layer_train(imx_ctx *ctx, imx_run_layer *r, imx_layer_start start) {
  const imx_config *c = &r->cfg;
  if (start == IMX_LAYER_REBUILD) {
    r->status = rebuild(ctx, r);
    if (r->status) imx_report(ctx);
    return r->status;
  }

  /* Start, train with checkpoints and the optimizer log, measure. */
  char ckname[NAME_LEN], logname[NAME_LEN], statename[NAME_LEN];
  imx_run_layer_stage_file(ckname, sizeof ckname, r->index, r->stage, "checkpoint.bin");
  imx_run_layer_stage_file(logname, sizeof logname, r->index, r->stage, "optimizer_log.bin");
  imx_run_layer_stage_file(statename, sizeof statename, r->index, r->stage, "optimizer_state.bin");
  imx_checkpoint st;
  imx_train_io io = {.dir = r->dir,
                     .checkpoint = ckname,
                     .state = statename,
                     .stamp = &st,
                     .checkpointed = r->model ? model_checkpointed : NULL,
                     .arg = r,
                     .stage = r->stage,
                     .stages = r->stages};
  imx_optlog *log = NULL;
  FILE *metrics = NULL;
  if (start == IMX_LAYER_RESUME && r->absent) start = IMX_LAYER_FRESH; /* said by the check */
  imx_err e = start == IMX_LAYER_RESUME && !r->checked
                  ? imx_fail(ctx, IMX_ERR_INTERNAL, "layer %d resumed unchecked", r->index)
              : start == IMX_LAYER_RESUME ? resume(ctx, r, logname, &io, &log)
                                          : fresh(ctx, r, logname, &io, &log);
  stamp(r, r->ck.altered, &st);
  if (!e) e = open_metrics(ctx, r, start == IMX_LAYER_RESUME, &metrics);
  if (!e) {
    io.metrics = metrics;
    e = imx_train(ctx, c, r->layer, r->theta, &io, &r->res);
    r->trained = 1;
    if (r->stage >= 1 && r->stage <= IMX_MAX_STAGES) {
      imx_stage_record *g = &r->records[r->stage - 1];
      *g = (imx_stage_record){.ran = 1,
                              .status = e,
                              .iterations = r->res.iterations,
                              .evaluations = r->res.evaluations,
                              .loss = r->res.final.loss,
                              .seconds = r->res.seconds};
      snprintf(g->reason, sizeof g->reason, "%s", r->res.reason);
    }
  }
  if (metrics) fclose(metrics);
  imx_optlog_close(&log);
  free(r->moments);
  r->moments = NULL;
  if (!e && r->stage < r->stages) { /* a stage before the last: on to the next */
    r->advanced = r->trained && (start != IMX_LAYER_RESUME || r->res.iterations > r->ck.iteration);
    imx_log(ctx, IMX_INFO,
            "stage %d/%d: %s after %d iterations (%d evaluations, %.2f s), loss %.10g", r->stage,
            r->stages, r->res.reason, r->res.iterations, r->res.evaluations, r->res.seconds,
            r->res.final.loss);
    return r->status = IMX_OK;
  }
  if (!e || e == IMX_DIVERGED) {
    imx_err me = measure(ctx, r);
    if (me) e = me;
  }
  if (e == IMX_DIVERGED) { /* summary.json's message; not reported as an error */
    char lead[32] = "";
    if (r->layers > 1) snprintf(lead, sizeof lead, "layer %d: ", r->index);
    if (r->stages) snprintf(lead, sizeof lead, "stage %d/%d: ", r->stage, r->stages);
    imx_fail(ctx, e, "%sTAO %s gave up at iteration %d with %s: not converged", lead,
             r->res.tao_type, r->res.iterations, r->res.reason);
  }
  if (imx_failed(e)) imx_report(ctx);

  /* Whatever happened, keep what was computed; but a resume that failed
   * before any new iteration (while retracing) holds nothing newer than the
   * files there: leave them. */
  r->advanced = r->trained && (start != IMX_LAYER_RESUME || r->res.iterations > r->ck.iteration);
  int keep = r->trained && (!e || r->advanced);
  imx_timer_start(IMX_T_OUTPUT);
  imx_err we = keep ? imx_stack_write_layer(ctx, r->layer, r->theta, r->dir, r->index) : IMX_OK;
  if (keep && !we) we = model_update(ctx, r, r->theta, model_status(r, e));
  imx_timer_stop(IMX_T_OUTPUT);
  r->status = imx_failed(e) ? e : we ? we : e;
  if (r->index > 1 && keep && !we) {
    char name[NAME_LEN];
    snprintf(name, sizeof name, "layer%d_summary.json", r->index);
    we = imx_run_layer_summary(ctx, r, r->status, name);
    if (we && !r->status) r->status = we;
  }
  if (we) imx_report(ctx);
  else if (!r->status || r->status == IMX_DIVERGED) report(ctx, r);
  return r->status;
}

void imx_run_layer_clear(imx_run_layer *r) {
  imx_layer_free(&r->layer);
  free(r->theta);
  r->theta = NULL;
  imx_metrics_clear(&r->measures);
  imx_data_free(&r->features);
  r->data = NULL;
  r->trained = r->measured = 0;
}
