/* train: TAO glue, progress line and metrics (see include/imx/train.h). */
#include "imx/config.h"
#include "imx/train.h"

#include <float.h>
#include <math.h>
#include <petsctao.h>
#include <stdlib.h>
#include <string.h>

#include "imx/batch.h"
#include "imx/checkpoint.h"
#include "imx/json.h"
#include "imx/log.h"
#include "imx/signals.h"
#include "imx/timer.h"

typedef struct state {
  imx_ctx *ctx;
  const imx_config *cfg;
  imx_layer *layer;
  const imx_train_io *io;
  char tao_type[32];
  int n;            /* parameters */
  double *accepted; /* last accepted iterate (what we keep on error) */
  imx_eval last;    /* indicators of the last evaluation */
  double *last_x;   /* point of the last evaluation */
  int evals;
  int rejected; /* trial points where the objective is not defined (+Inf to TAO) */
  char rejected_why[IMX_MSG_LEN]; /* the last one's message */
  double t0, t_eval;              /* start, seconds spent inside evaluations */
  int max_it;                     /* TAO's limit, over all resumes (the progress line) */
  int eta_it;                     /* the first iteration this session reported (-1: none yet) */
  double eta_t;                   /* when it was reported (seconds since t0) */
  int warned_dead, warned_bias;
  int stopped_by;      /* stop signal agreed by all ranks */
  int64_t replayed;    /* evaluations served from the optimizer log */
  int checkpoints;     /* checkpoints written */
  int last_checkpoint; /* iteration of the last checkpoint written */
  imx_err err;         /* error that stopped TAO */
  /* The ICA preconditioner (include/imx/precond.h), when it applies. */
  int use_pc;
  imx_precond pc;
  double *pc_x;   /* point of the last evaluation (real or replayed) */
  int naux;       /* imx_train_precond_aux: statistics per evaluation (logged) */
  double *pc_aux; /* those of the last evaluation */
  double *pc_work;
  Mat H0; /* L-BFGS's initial Hessian: a shell whose MatSolve applies it */
  /* Extended Infomax (objective.extended_every > 0): TAO runs in segments
   * that end at multiples of ext_every (or converge); the densities change
   * only between segments, each segment is a fresh TAO (L-BFGS) state. */
  int ext_every; /* 0: one TaoSolve */
  int seg_start; /* global iteration at which the current TaoSolve started */
  int segment;   /* segments before the current one */
  int sub;       /* units with the sub-Gaussian density (metrics.jsonl) */
  /* Mini-batch training (optimizer.type adam or sgd, include/imx/batch.h). */
  imx_stochastic stoch; /* IMX_STOCH_NONE: a TAO of PETSc's */
  imx_batch_plan plan;
  double *mv;         /* adam: m and v (2 n); sgd: the velocity (n) and n unused */
  int64_t *perm;      /* the permutation of the blocks of epoch perm_epoch */
  int64_t perm_epoch; /* -1: none yet */
  double lr;          /* the learning rate of the last step */
  double full_loss;   /* the loss on all rows at this iteration (NAN: not measured) */
  Vec g;              /* the batch gradient */
  Vec accepted_vec;   /* the solution Vec (a template for g) */
} state;

/* Epochs done at global step t of a mini-batch run. Local. */
static double epochs_at(const state *s, int t) { return (double)t / s->plan.steps; }

/* Write a checkpoint of x at global iteration it. Collective. */
static imx_err checkpoint(state *s, const double *x, int it, double loss) {
  if (!s->io->dir) return IMX_OK;
  imx_checkpoint h = {.K = imx_layer_units(s->layer),
                      .n = imx_layer_inputs(s->layer),
                      .nparams = s->n,
                      .iteration = it,
                      .evaluations = s->io->start_evaluations + s->evals,
                      .reduction = (int)s->cfg->parallel.reduction,
                      .block = s->cfg->parallel.block,
                      .loss = loss,
                      .data_rows = imx_layer_samples(s->layer)};
  snprintf(h.tao_type, sizeof h.tao_type, "%s", s->tao_type);
  if (s->io->stamp) {
    h.data_fingerprint = s->io->stamp->data_fingerprint;
    h.linalg = s->io->stamp->linalg, h.altered = s->io->stamp->altered;
    memcpy(h.settings, s->io->stamp->settings, sizeof h.settings);
  }
  imx_timer_start(IMX_T_OUTPUT);
  imx_err e = s->io->log ? imx_optlog_sync(s->ctx, s->io->log) : IMX_OK;
  if (!e && s->stoch) { /* the moments first: the checkpoint names the iteration they are at */
    imx_checkpoint m = h;
    m.nparams = 2 * (int64_t)s->n + (int64_t)imx_layer_blend_count(s->layer);
    imx_layer_blend_save(s->layer, s->mv + 2 * (size_t)s->n); /* C_run of the step before */
    e = imx_checkpoint_write(s->ctx, s->io->dir, s->io->state, &m, s->mv);
  }
  if (!e)
    e = imx_checkpoint_write(s->ctx, s->io->dir,
                             s->io->checkpoint ? s->io->checkpoint : "checkpoint.bin", &h, x);
  if (!e && s->io->checkpointed) e = s->io->checkpointed(s->ctx, s->io->arg, x);
  imx_timer_stop(IMX_T_OUTPUT);
  if (!e) s->checkpoints++, s->last_checkpoint = it;
  return e;
}

/* Objective and gradient for TAO. Collective: every rank's TAO calls it at the
 * same point, in the same order. */
static PetscErrorCode form_fg(Tao tao, Vec x, PetscReal *f, Vec g, void *p) {
  state *s = p;
  const PetscScalar *xa;
  PetscScalar *ga;
  (void)tao;
  PetscFunctionBeginUser;
  double t = imx_now();
  imx_timer_stop(IMX_T_OPTIMIZER); /* the optimizer phase is TAO's own work */
  PetscCall(VecGetArrayRead(x, &xa));
  PetscCall(VecGetArray(g, &ga));
  imx_err e;
  if (s->replayed < s->io->replay_evaluations) { /* retracing the logged run */
    e = imx_optlog_replay(s->ctx, s->io->log, s->replayed++, xa, f, ga, s->pc_aux);
    if (!e && s->use_pc && isfinite(*f)) memcpy(s->pc_x, xa, (size_t)s->n * sizeof *xa);
  } else {
    e = imx_layer_eval(s->ctx, s->layer, xa, f, ga, &s->last);
    if (e == IMX_ERR_NUMERIC && s->evals > 0 && !s->stoch) {
      /* A trial point of a line search where the objective is not defined
       * (C + eps I not positive definite; agreed by all ranks): +Inf makes
       * TAO's More-Thuente line search shorten the step. */
      imx_log(s->ctx, IMX_DEBUG, "trial point rejected: %s", s->ctx->msg);
      snprintf(s->rejected_why, sizeof s->rejected_why, "%s", s->ctx->msg);
      s->ctx->code = IMX_OK, e = IMX_OK, *f = PETSC_INFINITY;
      memset(ga, 0, (size_t)s->n * sizeof *ga);
      s->rejected++;
    } else if (!e) {
      memcpy(s->last_x, xa, (size_t)s->n * sizeof *xa);
      if (s->naux) imx_layer_precond_aux(s->layer, s->pc_aux);
      if (s->use_pc) memcpy(s->pc_x, xa, (size_t)s->n * sizeof *xa);
    }
    if (!e && s->io->log)
      e = imx_agree(s->ctx, imx_optlog_append(s->ctx, s->io->log, xa, *f, ga, s->pc_aux));
  }
  PetscCall(VecRestoreArray(g, &ga));
  PetscCall(VecRestoreArrayRead(x, &xa));
  s->evals++;
  s->t_eval += imx_now() - t;
  imx_timer_start(IMX_T_OPTIMIZER);
  if (e) {
    s->err = e;
    /* All ranks agreed on e inside imx_layer_eval, so all stop here together. */
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "objective evaluation failed");
  }
  PetscFunctionReturn(0);
}

int imx_train_precond_aux(const imx_config *cfg, const imx_layer *l) {
  imx_precond p;
  char why[160];
  if (cfg->optimizer.precondition != IMX_PRECONDITION_ICA ||
      !imx_layer_precond(l, &p, why, sizeof why))
    return 0;
  return IMX_PRECOND_AUX(imx_layer_units(l));
}

/* J0^-1 of TAO's L-BFGS (the MatSolve of its H0): the ICA preconditioner at
 * the last evaluated point. */
static PetscErrorCode precond_solve(Mat H0, Vec g, Vec out) {
  state *s;
  const PetscScalar *ga;
  PetscScalar *oa;
  PetscFunctionBeginUser;
  PetscCall(MatShellGetContext(H0, &s));
  PetscCall(VecGetArrayRead(g, &ga));
  PetscCall(VecGetArray(out, &oa));
  imx_precond_apply(&s->pc, s->pc_x, s->pc_aux, ga, oa, s->n, s->pc_work);
  PetscCall(VecRestoreArray(out, &oa));
  PetscCall(VecRestoreArrayRead(g, &ga));
  PetscFunctionReturn(0);
}

/* Set up the preconditioner (optimizer.precondition: ica), or say that it
 * could be used. Local. */
static imx_err precond_setup(imx_ctx *ctx, Tao tao, state *s, const char *type) {
  char why[160];
  int fits = imx_layer_precond(s->layer, &s->pc, why, sizeof why);
  if (s->cfg->optimizer.precondition != IMX_PRECONDITION_ICA) {
    if (fits && !strcmp(type, "lmvm"))
      imx_log(ctx, IMX_INFO,
              "  precond    none (optimizer.precondition: ica starts L-BFGS from "
              "the ICA Hessian approximation: 2-4x fewer evaluations on ICA data, "
              "docs/objectives.md)");
    return IMX_OK;
  }
  if (!fits)
    return imx_fail(ctx, IMX_ERR_CONFIG, "optimizer.precondition: ica does not apply: %s", why);
  if (s->H0) { /* a later segment: the same H0 and damping */
    PetscErrorCode pe = TaoLMVMSetH0(tao, s->H0);
    return pe ? imx_fail(ctx, IMX_ERR_PETSC, "setting the ICA preconditioner: PETSc error %d",
                         (int)pe)
              : IMX_OK;
  }
  if (strcmp(type, "lmvm"))
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "optimizer.precondition: ica is for TAO lmvm, not %s "
                    "(set optimizer.type: lmvm or optimizer.precondition: none)",
                    type);
  s->pc.damp = IMX_PRECOND_DAMP_MAX;
  int K = imx_layer_units(s->layer);
  s->pc_x = calloc((size_t)s->n, sizeof *s->pc_x);
  s->pc_work = malloc(IMX_PRECOND_WORK(K) * sizeof *s->pc_work);
  if (!s->pc_x || !s->pc_work) return imx_fail(ctx, IMX_ERR_NOMEM, "ICA preconditioner (K=%d)", K);
  /* TAO's lmvm installs H0 as its L-BFGS J0 before every step and applies
   * J0^-1 by MatSolve(H0). */
  PetscErrorCode pe = MatCreateShell(PETSC_COMM_SELF, s->n, s->n, s->n, s->n, s, &s->H0);
  if (!pe) pe = MatShellSetOperation(s->H0, MATOP_SOLVE, (void (*)(void))precond_solve);
  if (!pe) pe = MatSetOption(s->H0, MAT_SYMMETRIC, PETSC_TRUE);
  if (!pe) pe = MatSetOption(s->H0, MAT_SPD, PETSC_TRUE);
  if (!pe) pe = TaoLMVMSetH0(tao, s->H0);
  if (pe)
    return imx_fail(ctx, IMX_ERR_PETSC, "setting up the ICA preconditioner: PETSc error %d",
                    (int)pe);
  s->use_pc = 1;
  imx_log(ctx, IMX_INFO,
          "  precond    ICA Hessian approximation (optimizer.precondition: ica; "
          "2 x 2 blocks per unit pair, adaptive damping, one L-BFGS pair)");
  return IMX_OK;
}

/* Extended Infomax between two segments (and before the first): every unit
 * of the entropy term takes the density its stability criterion picks at x,
 * the accepted point (*flips: how many changed; NULL before the first).
 * The criterion is a function of x alone, so a resume that retraces the
 * logged run finds the same densities at the same iterations. Collective. */
static imx_err switch_densities(state *s, Vec x, int git, int *flips) {
  const PetscScalar *xa;
  int nf = 0, sub = 0;
  VecGetArrayRead(x, &xa);
  imx_err e = imx_layer_switch(s->ctx, s->layer, xa, &nf, &sub);
  VecRestoreArrayRead(x, &xa);
  if (e) return e;
  if (flips) *flips = nf;
  s->sub = sub;
  int retraced = s->io->replay_evaluations > 0 && git < s->io->replay_iterations;
  if (!retraced && (!flips || nf))
    imx_log(s->ctx, IMX_INFO,
            "  extended   iteration %d: %d of %d units sub-Gaussian (%d changed)%s", git, sub,
            imx_layer_units(s->layer), nf, flips ? "; L-BFGS starts over" : "");
  return IMX_OK;
}

/* The progress line's ETA: iterations left to max_it at the mean time per
 * iteration since the first one this session reported (on a resume, since the
 * resume). An upper bound: TAO may converge before max_it. Local. */
static void print_eta(char *buf, size_t len, const state *s, int git, double now, int done) {
  int left = done ? 0 : s->max_it - git;
  if (git <= s->eta_it && left > 0) {
    snprintf(buf, len, "ETA ?");
    return;
  }
  double sec = left > 0 ? left * (now - s->eta_t) / (git - s->eta_it) : 0;
  if (sec < 10) snprintf(buf, len, "ETA %.1f s", sec);
  else if (sec < 60) snprintf(buf, len, "ETA %.0f s", sec);
  else if (sec < 3600) snprintf(buf, len, "ETA %dm%02ds", (int)(sec / 60), (int)fmod(sec, 60));
  else snprintf(buf, len, "ETA %.0fh%02dm", floor(sec / 3600), (int)fmod(sec / 60, 60));
}

static void print_terms(char *buf, size_t len, const imx_eval *ev) {
  size_t off = 0;
  buf[0] = 0;
  for (int t = 0; t < IMX_NTERMS && off < len; t++)
    if (!isnan(ev->terms[t]))
      off += (size_t)snprintf(buf + off, len - off, "  %s %.6g", imx_term_names[t], ev->terms[t]);
}

/* The remedy the collapse warnings name first. */
#define BIAS_BOUND "model.bias_bound with optimizer.type blmvm"

/* After every accepted step: progress line, metrics line, collapse checks. */
static PetscErrorCode monitor(Tao tao, void *p) {
  state *s = p;
  PetscInt its;
  PetscReal f, gnorm, cnorm, step;
  TaoConvergedReason reason;
  Vec x;
  const PetscScalar *xa;
  PetscFunctionBeginUser;
  PetscCall(TaoGetSolutionStatus(tao, &its, &f, &gnorm, &cnorm, &step, &reason));
  PetscCall(TaoGetSolution(tao, &x));
  PetscCall(VecGetArrayRead(x, &xa));
  memcpy(s->accepted, xa, (size_t)s->n * sizeof *xa);
  int git = s->seg_start + (int)its; /* iteration over all resumes and segments */
  /* Also while retracing a logged run: the same steps give the same damping. */
  if (s->use_pc && its > 0) imx_precond_adapt(&s->pc, step);
  if (s->io->replay_evaluations > 0 && git <= s->io->replay_iterations) {
    /* Retraced iterations were reported by the original run. */
    if (git == s->io->replay_iterations && s->replayed == s->io->replay_evaluations) {
      char st[32] = "";
      if (s->io->stages) snprintf(st, sizeof st, "stage %d/%d  ", s->io->stage, s->io->stages);
      imx_log(s->ctx, IMX_INFO,
              "%sresumed at iteration %d/%d  loss %- .10g  |grad| %.3e  (TAO state "
              "rebuilt from %lld logged evaluations)",
              st, git, s->max_it, (double)f, (double)gnorm, (long long)s->replayed);
      s->eta_it = git, s->eta_t = imx_now() - s->t0;
    }
    PetscCall(VecRestoreArrayRead(x, &xa));
    PetscFunctionReturn(0);
  }
  if (its == 0 && s->segment > 0) { /* a new segment's start: the last one's end, reported */
    PetscCall(VecRestoreArrayRead(x, &xa));
    PetscFunctionReturn(0);
  }
  /* The indicators belong to the accepted point if it was the last one
   * evaluated (the usual case); otherwise evaluate it (collective; all ranks
   * see the same x). */
  imx_eval ev = s->last;
  if (memcmp(s->last_x, xa, (size_t)s->n * sizeof *xa)) {
    double fx;
    imx_err e = imx_layer_eval(s->ctx, s->layer, xa, &fx, NULL, &ev);
    if (e) {
      PetscCall(VecRestoreArrayRead(x, &xa));
      s->err = e;
      SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "objective evaluation failed");
    }
  }
  double now = imx_now() - s->t0;
  if (s->eta_it < 0) s->eta_it = git, s->eta_t = now;
  char terms[512], eta[32];
  print_terms(terms, sizeof terms, &ev);
  print_eta(eta, sizeof eta, s, git, now, reason != TAO_CONTINUE_ITERATING);
  int resumed_start = its == 0 && s->io->start_iteration > 0;
  char st[32] = "";
  if (s->io->stages) snprintf(st, sizeof st, "stage %d/%d  ", s->io->stage, s->io->stages);
  if (resumed_start)
    imx_log(s->ctx, IMX_INFO, "%sresumed at iteration %d/%d  loss %- .10g  |grad| %.3e", st, git,
            s->max_it, (double)f, (double)gnorm);
  else if (s->stoch && (git % s->cfg->output.every == 0 || !isnan(s->full_loss))) {
    char full[64] = "";
    if (!isnan(s->full_loss)) snprintf(full, sizeof full, "  full loss %- .10g", s->full_loss);
    imx_log(s->ctx, IMX_INFO,
            "iter %5d/%d  epoch %.2f  batch loss %- .10g%s  |grad| %.3e  lr %.2e%s  dead %d  "
            "%.2f s  %s",
            git, s->max_it, epochs_at(s, git), (double)f, full, (double)gnorm, s->lr, terms,
            ev.dead_units, now, eta);
  } else if (!s->stoch && (git % s->cfg->output.every == 0 || reason != TAO_CONTINUE_ITERATING))
    imx_log(s->ctx, IMX_INFO,
            "%siter %5d/%d  loss %- .10g  |grad| %.3e  step %.2e%s  dead %d  %.2f s  %s", st, git,
            s->max_it, (double)f, (double)gnorm, (double)step, terms, ev.dead_units, now, eta);
  FILE *mf = resumed_start ? NULL : s->io->metrics; /* the checkpoint's line is there already */
  if (mf) {
    imx_json j;
    imx_json_init(&j, mf, 0);
    imx_json_object(&j, NULL);
    imx_json_int(&j, "iter", git);
    if (s->io->stages) imx_json_int(&j, "stage", s->io->stage);
    imx_json_num(&j, "loss", f);
    imx_json_object(&j, "terms");
    for (int t = 0; t < IMX_NTERMS; t++)
      if (!isnan(ev.terms[t])) imx_json_num(&j, imx_term_names[t], ev.terms[t]);
    imx_json_end(&j);
    imx_json_num(&j, "grad_norm", gnorm);
    imx_json_num(&j, "step", step);
    imx_json_int(&j, "evaluations", s->io->start_evaluations + s->evals);
    imx_json_int(&j, "dead_units", ev.dead_units);
    imx_json_num(&j, "max_abs_bias", ev.max_abs_bias);
    if (s->ext_every) imx_json_int(&j, "sub_gaussian", s->sub);
    if (s->stoch) {
      imx_json_num(&j, "epoch", epochs_at(s, git));
      imx_json_num(&j, "lr", s->lr);
      if (!isnan(s->full_loss)) imx_json_num(&j, "full_loss", s->full_loss);
    }
    imx_json_num(&j, "time", now);
    imx_json_object(&j, "phase_seconds");
    for (int t = IMX_T_FORWARD; t <= IMX_T_BACKWARD; t++)
      imx_json_num(&j, imx_timer_names[t], imx_timer_get((imx_timer_id)t));
    imx_json_end(&j);
    imx_json_end(&j);
    fputc('\n', mf);
    fflush(mf);
  }
  /* Checkpoints: every checkpoint_every iterations, and when any rank got a
   * stop signal (all ranks agree here, at the same iteration). */
  int sig;
  if ((s->err = imx_signals_agree(s->ctx, &sig))) {
    PetscCall(VecRestoreArrayRead(x, &xa));
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "MPI failure");
  }
  int every = s->cfg->output.checkpoint_every;
  int due = !resumed_start && ((every > 0 && its > 0 && git % every == 0) || sig);
  imx_err ce = due && git != s->last_checkpoint ? checkpoint(s, xa, git, f) : IMX_OK;
  PetscCall(VecRestoreArrayRead(x, &xa));
  if (ce) {
    s->err = ce;
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "checkpoint failed");
  }
  if (sig && !s->stopped_by) {
    s->stopped_by = sig;
    imx_log(s->ctx, IMX_INFO, "%s: stopping at iteration %d; checkpoint written",
            imx_signal_name(sig), git);
    PetscCall(TaoSetConvergedReason(tao, TAO_CONVERGED_USER));
  }
  /* Collapse: units whose output variance vanishes (dead units), or biases that
   * run away because statistics taken after the softmax do not pin their common
   * level. Warn once per kind; the messages name the remedies. */
  if (ev.dead_units > 0 && !s->warned_dead) {
    s->warned_dead = 1;
    imx_log(
        s->ctx, IMX_WARN,
        "iteration %d: %d of %d units are dead (variance <= 1e-12 of the mean). Remedies: " BIAS_BOUND
        " (a softmax unit dies by its bias running away), a higher "
        "model.temperature, or a variance/decorrelation preset",
        (int)its, ev.dead_units, imx_layer_units(s->layer));
  }
  if (ev.max_abs_bias > 1e3 && !s->warned_bias) {
    s->warned_bias = 1;
    imx_log(s->ctx, IMX_WARN,
            "iteration %d: max |b| = %.3g: the biases are running away (nothing bounds them "
            "with statistics taken after the softmax). Remedies: " BIAS_BOUND
            ", objective.eps > 0, or a higher model.temperature",
            (int)its, ev.max_abs_bias);
  }
  PetscFunctionReturn(0);
}

/* ---- mini-batch training: the TAO types adam and sgd -------------------- */

/* The blocks of global step t into the layer (the epoch's permutation is
 * drawn when the epoch changes). Collective (agreed). */
static imx_err use_batch(state *s, int64_t t) {
  int64_t epoch = t / s->plan.steps, first, count;
  if (epoch != s->perm_epoch) {
    imx_batch_permutation(&s->plan, epoch, s->perm);
    s->perm_epoch = epoch;
  }
  imx_batch_of_step(&s->plan, t, &first, &count);
  return imx_agree(s->ctx, imx_layer_use_blocks(s->ctx, s->layer, s->perm + first, count));
}

/* The loss on all rows at x into s->full_loss. Collective. */
static imx_err measure_full(state *s, Vec x) {
  const PetscScalar *xa;
  double f;
  imx_err e = imx_layer_use_blocks(s->ctx, s->layer, NULL, 0);
  VecGetArrayRead(x, &xa);
  if (!e) e = imx_layer_eval(s->ctx, s->layer, xa, &f, NULL, NULL);
  VecRestoreArrayRead(x, &xa);
  if (!e) s->full_loss = f;
  return e;
}

/* TAO's solve of the types adam and sgd (a TAOSHELL underneath): step t
 * evaluates the objective and its gradient on step t's batch at x_t (through
 * form_fg, so evaluations count as TAO's), reports iteration t to TAO's
 * monitors and convergence test, then updates x and the moments. The loss on
 * all rows is measured first every optimizer.eval_every epochs and at
 * max_it. Collective. */
static PetscErrorCode stochastic_solve(Tao tao) {
  state *s;
  Vec x;
  PetscFunctionBeginUser;
  PetscCall(TaoGetApplicationContext(tao, &s));
  PetscCall(TaoGetSolution(tao, &x));
  PetscCall(TaoSetConvergedReason(tao, TAO_CONTINUE_ITERATING)); /* TAOSHELL says USER */
  const imx_config *c = s->cfg;
  int64_t every = (int64_t)c->optimizer.eval_every * s->plan.steps;
  for (PetscInt its = 0;; its++) {
    int64_t t = s->seg_start + its;
    PetscReal f, gnorm;
    TaoConvergedReason reason;
    s->full_loss = NAN;
    s->lr = imx_batch_lr(&s->plan, c->optimizer.schedule, c->optimizer.lr, c->optimizer.decay,
                         c->optimizer.decay_every, t, s->max_it);
    imx_err e = IMX_OK;
    int resumed = its == 0 && s->io->start_iteration > 0; /* measured before the stop */
    if (!resumed && ((every > 0 && t % every == 0) || t >= s->max_it)) e = measure_full(s, x);
    if (!e) e = use_batch(s, t);
    if (e) {
      s->err = e;
      SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "objective evaluation failed");
    }
    PetscCall(TaoComputeObjectiveAndGradient(tao, x, &f, s->g));
    PetscCall(VecNorm(s->g, NORM_2, &gnorm));
    PetscCall(TaoSetIterationNumber(tao, its));
    PetscCall(TaoMonitor(tao, its, f, gnorm, 0.0, s->lr));
    PetscCall(TaoGetConvergedReason(tao, &reason));
    if (reason == TAO_CONTINUE_ITERATING) {
      PetscCall(TaoDefaultConvergenceTest(tao, NULL));
      PetscCall(TaoGetConvergedReason(tao, &reason));
    }
    if (reason != TAO_CONTINUE_ITERATING) break;
    PetscScalar *xa;
    const PetscScalar *ga;
    PetscCall(VecGetArray(x, &xa));
    PetscCall(VecGetArrayRead(s->g, &ga));
    imx_batch_update(s->stoch, s->n, xa, ga, s->mv, s->mv + s->n, s->lr, c->optimizer.beta1,
                     c->optimizer.beta2, c->optimizer.epsilon, c->optimizer.momentum, t);
    imx_layer_blend_commit(s->layer); /* the step was taken: its C is the next C_run */
    PetscCall(VecRestoreArrayRead(s->g, &ga));
    PetscCall(VecRestoreArray(x, &xa));
  }
  PetscFunctionReturn(0);
}

/* PETSc's TAOSHELL, whose solve is stochastic_solve. */
PETSC_EXTERN PetscErrorCode TaoCreate_Shell(Tao tao);
static PetscErrorCode create_stochastic(Tao tao) {
  PetscFunctionBeginUser;
  PetscCall(TaoCreate_Shell(tao));
  PetscCall(TaoShellSetSolve(tao, stochastic_solve));
  PetscFunctionReturn(0);
}

/* Register adam and sgd as TAO types (once). Local. */
static imx_err register_types(imx_ctx *ctx) {
  static int done;
  if (done) return IMX_OK;
  if (TaoRegister("adam", create_stochastic) || TaoRegister("sgd", create_stochastic))
    return imx_fail(ctx, IMX_ERR_PETSC, "cannot register the TAO types adam and sgd");
  done = 1;
  return IMX_OK;
}

/* The batches, the moments (zeros, or io->moments on a resume) and the log
 * lines of a mini-batch run; refusals name the numbers. Local. */
static imx_err stochastic_setup(imx_ctx *ctx, state *s, Tao tao, const char *type) {
  const imx_config *c = s->cfg;
  char why[200];
  if (!imx_layer_batchable(s->layer, why, sizeof why))
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "optimizer.type %s (mini-batch) cannot evaluate this layer on a batch: %s; "
                    "use optimizer.type lmvm",
                    type, why);
  int K = imx_layer_units(s->layer);
  long long N = imx_layer_samples(s->layer);
  imx_batch_plan_init(&s->plan, N, c->parallel.block, c->optimizer.batch, c->optimizer.seed);
  if ((long long)c->optimizer.batch > s->plan.nb * c->parallel.block)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "optimizer.batch is %d rows but the data have %lld (%lld blocks of %d): "
                    "use a smaller batch, or optimizer.type lmvm for full-batch training",
                    c->optimizer.batch, N, (long long)s->plan.nb, c->parallel.block);
  long long least = imx_batch_min_rows(&s->plan);
  if (least <= K)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "optimizer.batch: the batch that holds the short last block has %lld rows, "
                    "not more than model.units = %d (C would be singular): raise optimizer.batch",
                    least, K);
  s->n = imx_layer_nparams(s->layer);
  if (c->optimizer.cov_blend > 0)
    IMX_TRY(imx_layer_set_blend(ctx, s->layer, c->optimizer.cov_blend));
  size_t extra = imx_layer_blend_count(s->layer); /* C_run after the moments */
  s->mv = calloc(2 * (size_t)s->n + extra, sizeof *s->mv);
  s->perm = malloc((size_t)s->plan.nb * sizeof *s->perm);
  if (!s->mv || !s->perm || VecDuplicate(s->accepted_vec, &s->g))
    return imx_fail(ctx, IMX_ERR_NOMEM, "%s state (%d parameters, %lld blocks)", type, s->n,
                    (long long)s->plan.nb);
  if (s->io->moments) {
    memcpy(s->mv, s->io->moments, (2 * (size_t)s->n + extra) * sizeof *s->mv);
    imx_layer_blend_load(s->layer, s->mv + 2 * (size_t)s->n);
  }
  s->perm_epoch = -1;
  s->stoch = imx_batch_kind(type);
  TaoSetApplicationContext(tao, s); /* TaoShellSetContext needs the type name "shell" */
  /* E log det C_b - log det C for the covariance C_b of b Gaussian rows:
   * about -K (K + 3) / (2 b) (docs/objectives.md, "Mini-batch estimates"). */
  double b = (double)c->optimizer.batch, bias = K * (K + 3.0) / (2 * b);
  imx_log(ctx, IMX_INFO,
          "  batches    %d rows (%d blocks of %d), %d steps per epoch (%.4g epochs in "
          "max_it %d), shuffle seed %llu; lr %g, schedule %s",
          c->optimizer.batch, s->plan.per_batch, c->parallel.block, s->plan.steps,
          (double)s->max_it / s->plan.steps, s->max_it, (unsigned long long)c->optimizer.seed,
          c->optimizer.lr, imx_schedule_name(c->optimizer.schedule));
  if (imx_objective_needs_cov(imx_layer_objective(s->layer)))
    imx_log(ctx, b < 4.0 * K ? IMX_WARN : IMX_INFO,
            "%s log det of a batch's C is biased low by about K(K+3)/(2 batch) = %.3g nats "
            "for Gaussian outputs (K = %d, batch %d rows)%s",
            b < 4.0 * K ? "mini-batch:" : "  bias      ", bias, K, c->optimizer.batch,
            b < 4.0 * K ? "; a batch of at least 4 K rows keeps it below (K+3)/8" : "");
  if (extra) {
    double a = c->optimizer.cov_blend;
    imx_log(ctx, IMX_INFO,
            "  blend      a step's C = %g C_prev + %g C_batch (optimizer.cov_blend): the "
            "variance of about %.0f rows while the weights stand still",
            a, 1 - a, b * (1 + a) / (1 - a));
  }
  return IMX_OK;
}

char *imx_train_options_in_use(void) {
  char *all = NULL, *copy = NULL;
  if (PetscOptionsGetAll(NULL, &all) || !all) return NULL;
  copy = strdup(all);
  PetscFree(all);
  if (copy) { /* PETSc ends the list with a space */
    size_t len = strlen(copy);
    while (len && copy[len - 1] == ' ') copy[--len] = 0;
  }
  return copy;
}

/* Options PETSc reads only in PetscFinalize, after the question is asked. */
static int read_at_finalize(const char *name) {
  static const char *const late[] = {"options_left", "options_view", "malloc_dump",
                                     "malloc_view",  "memory_view",  "objects_dump",
                                     "log_view",     "log_all",      NULL};
  for (int i = 0; late[i]; i++)
    if (!strcmp(name, late[i])) return 1;
  return 0;
}

char *imx_train_options_unused(void) {
  PetscInt n = 0;
  char **names = NULL, **values = NULL;
  if (PetscOptionsLeftGet(NULL, &n, &names, &values)) return NULL;
  size_t len = 1;
  for (PetscInt i = 0; i < n; i++)
    len += strlen(names[i]) + 3 + (values[i] ? strlen(values[i]) + 1 : 0);
  char *out = malloc(len);
  if (out) out[0] = 0;
  for (PetscInt i = 0; out && i < n; i++) {
    if (read_at_finalize(names[i])) continue;
    strcat(strcat(out, out[0] ? " -" : "-"), names[i]);
    if (values[i]) strcat(strcat(out, " "), values[i]);
  }
  PetscOptionsLeftRestore(NULL, &n, &names, &values);
  return out;
}

static int needs_hessian(const char *type);
static int bounded_type(const char *type);

/* The TAO type the run will use (-tao_type, given or from optimizer.type):
 * registered, not one that needs a Hessian, bound-constrained if
 * model.bias_bound asks for bounds. Local. */
static imx_err check_type(imx_ctx *ctx, const imx_config *cfg) {
  char type[64] = "";
  PetscBool set = PETSC_FALSE;
  void (*create)(void) = NULL;
  if (PetscOptionsGetString(NULL, NULL, "-tao_type", type, sizeof type, &set) || !set ||
      TaoInitializePackage() || PetscFunctionListFind(TaoList, type, &create))
    return imx_fail(ctx, IMX_ERR_PETSC, "cannot read the TAO type from the options");
  const char *from = strcmp(type, cfg->optimizer.type) ? "-tao_type" : "optimizer.type";
  if (!create)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%s: \"%s\" is not a TAO type (try lmvm, blmvm, bncg, cg, nm, owlqn, bqnls)",
                    from, type);
  if (imx_batch_kind(type) != imx_batch_kind(cfg->optimizer.type))
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "-tao_type %s: the mini-batch types adam and sgd are chosen with "
                    "optimizer.type (--set optimizer.type=%s), whose checks, files and resume "
                    "follow it; optimizer.type is %s",
                    type, imx_batch_kind(type) ? type : "lmvm", cfg->optimizer.type);
  if (needs_hessian(type))
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%s: TAO type %s needs a Hessian, which infomax does not provide; use a "
                    "first-order or quasi-Newton type (lmvm, blmvm, bncg, cg, bqnls, owlqn) or nm",
                    from, type);
  if (cfg->model.bias_bound > 0 && !bounded_type(type))
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "model.bias_bound = %g needs a bound-constrained TAO "
                    "type (blmvm, bncg, bqnls); %s is %s",
                    cfg->model.bias_bound, from, type);
  return IMX_OK;
}

/* Was -tao_type put into the options database by imx_train_options (from
 * optimizer.type) rather than given on the command line? Then a stage's
 * optimizer.type replaces it. */
static int type_from_config;

/* Split "-opt value -flag ..." and set each option not already given; then
 * check the TAO type. */
imx_err imx_train_options(imx_ctx *ctx, const imx_config *cfg) {
  char buf[IMX_OPTS_LEN + IMX_NAME_LEN + 16];
  snprintf(buf, sizeof buf, "-tao_type %s %s", cfg->optimizer.type, cfg->optimizer.options);
  if (type_from_config && PetscOptionsClearValue(NULL, "-tao_type"))
    return imx_fail(ctx, IMX_ERR_PETSC, "PetscOptionsClearValue(-tao_type) failed");
  char *save = NULL, *tok = strtok_r(buf, " \t\n", &save);
  while (tok) {
    if (tok[0] != '-' || tok[1] == 0 || (tok[1] >= '0' && tok[1] <= '9'))
      return imx_fail(ctx, IMX_ERR_CONFIG,
                      "optimizer.options: expected an option name starting "
                      "with '-', got \"%s\"",
                      tok);
    if (!strcmp(tok, "-tao_type") && tok != buf)
      return imx_fail(ctx, IMX_ERR_CONFIG,
                      "optimizer.options: -tao_type is not an option here; set optimizer.type "
                      "(or -tao_type on the command line)");
    char *val = strtok_r(NULL, " \t\n", &save);
    char *next = val;
    /* A following token that is not an option (or is a negative number) is the value. */
    if (val && val[0] == '-' && !(val[1] >= '0' && val[1] <= '9') && val[1] != '.') val = NULL;
    else next = strtok_r(NULL, " \t\n", &save);
    PetscBool set;
    if (PetscOptionsHasName(NULL, NULL, tok, &set))
      return imx_fail(ctx, IMX_ERR_PETSC, "PetscOptionsHasName(%s) failed", tok);
    if (!set && PetscOptionsSetValue(NULL, tok, val))
      return imx_fail(ctx, IMX_ERR_CONFIG, "optimizer.options: PETSc rejected %s %s", tok,
                      val ? val : "");
    if (tok == buf) type_from_config = !set;
    tok = next;
  }
  IMX_TRY(register_types(ctx));
  return check_type(ctx, cfg);
}

/* TAO types that need a Hessian, which we do not provide. */
static int needs_hessian(const char *type) {
  static const char *const h[] = {"nls",   "ntr", "ntl",   "bnls", "bntr", "bntl", "tron", "gpcg",
                                  "bqpip", "ipm", "pdipm", "brgn", "lcl",  "almm", "admm", NULL};
  for (int i = 0; h[i]; i++)
    if (!strcmp(type, h[i])) return 1;
  return 0;
}

/* model.bias_bound: -B <= b_j <= B, the weights free. Statistics taken after
 * the softmax do not bound the biases (softmax is invariant to adding one
 * constant to every z_j, so they can drift without limit); this bound is one
 * of the remedies. Only TAO's bound-constrained types honour bounds. Local. */
static int bounded_type(const char *type) {
  static const char *const bounded[] = {"blmvm",  "bncg",   "bqnls", "bqnkls",
                                        "bqnktr", "bqnktl", NULL};
  for (int i = 0; bounded[i]; i++)
    if (!strcmp(type, bounded[i])) return 1;
  return 0;
}

static imx_err bound_biases(imx_ctx *ctx, Tao tao, const imx_layer *l, double B, const char *type,
                            Vec *xl, Vec *xu) {
  if (!bounded_type(type))
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "model.bias_bound = %g needs a bound-constrained TAO "
                    "type (blmvm, bncg, bqnls); optimizer.type is %s",
                    B, type);
  if (*xl) { /* a later segment: the same bounds */
    TaoSetVariableBounds(tao, *xl, *xu);
    return IMX_OK;
  }
  int n = imx_layer_nparams(l), kn = imx_layer_units(l) * imx_layer_inputs(l);
  PetscScalar *lo, *hi;
  if (VecCreateSeq(PETSC_COMM_SELF, n, xl) || VecDuplicate(*xl, xu))
    return imx_fail(ctx, IMX_ERR_PETSC, "bound vectors (%d)", n);
  VecGetArray(*xl, &lo);
  VecGetArray(*xu, &hi);
  for (int i = 0; i < n; i++) {
    int bias = i >= kn && i < kn + imx_layer_units(l); /* not the supervised head */
    lo[i] = bias ? -B : PETSC_NINFINITY;
    hi[i] = bias ? B : PETSC_INFINITY;
  }
  VecRestoreArray(*xl, &lo);
  VecRestoreArray(*xu, &hi);
  TaoSetVariableBounds(tao, *xl, *xu);
  imx_log(ctx, IMX_INFO, "  bounds     |b_j| <= %g (model.bias_bound)", B);
  return IMX_OK;
}

/* What to try when TAO's line search gives up (measured on Fashion-MNIST:
 * docs/operations.md, "When the optimizer gives up"). */
static const char *remedy(const char *type) {
  return strcmp(type, "lmvm")
             ? "set objective.eps (e.g. 1e-6), or use TAO lmvm, whose line search shortens the step"
             : "Try a small objective.eps (e.g. 1e-8; larger values let units die) or "
               "-tao_ls_type armijo (docs/operations.md, \"When the optimizer gives up\")";
}

static imx_err petsc_fail(imx_ctx *ctx, PetscErrorCode pe, const char *what) {
  const char *text = NULL;
  PetscErrorMessage(pe, &text, NULL);
  return imx_fail(ctx, IMX_ERR_PETSC, "%s failed: PETSc error %d (%s)", what, (int)pe,
                  text ? text : "?");
}

/* TAO on PETSC_COMM_SELF for x: its type, tolerances, limits, monitor, the
 * options database, the bounds and the ICA preconditioner; res receives what
 * TAO will do after the options. Local (not agreed). */
static imx_err tao_setup(imx_ctx *ctx, const imx_config *cfg, const imx_train_io *io, state *s,
                         imx_layer *layer, Vec x, Tao *tao, Vec *xl, Vec *xu,
                         imx_train_result *res) {
  imx_err e = IMX_OK;
  PetscErrorCode pe;
  if ((pe = TaoCreate(PETSC_COMM_SELF, tao))) e = petsc_fail(ctx, pe, "TaoCreate");
  if (!e && (pe = TaoSetType(*tao, cfg->optimizer.type)))
    e = imx_fail(ctx, IMX_ERR_CONFIG,
                 "optimizer.type: \"%s\" is not a TAO type (try lmvm, "
                 "blmvm, bncg, cg, nm, owlqn, bqnls)",
                 cfg->optimizer.type);
  if (!e) {
    TaoSetSolution(*tao, x);
    TaoSetObjectiveAndGradient(*tao, NULL, form_fg, s);
    TaoSetTolerances(*tao, cfg->optimizer.gatol, cfg->optimizer.grtol, 0);
    int remaining = cfg->optimizer.max_it - s->seg_start;
    TaoSetMaximumIterations(*tao, remaining > 0 ? remaining : 0);
    TaoSetMaximumFunctionEvaluations(*tao, 100 * (cfg->optimizer.max_it + 10));
    TaoSetMonitor(*tao, monitor, s, NULL);
    /* With the ICA preconditioner, L-BFGS does best with one (s, y) pair
     * (docs/study-approximation.md): older pairs belong to an older J0. */
    const char *hist = "-tao_lmvm_mat_lmvm_hist_size";
    PetscBool have_hist = PETSC_TRUE;
    if (s->naux && !strcmp(cfg->optimizer.type, "lmvm"))
      PetscOptionsHasName(NULL, NULL, hist, &have_hist);
    if (!have_hist) PetscOptionsSetValue(NULL, hist, "1");
    if ((pe = TaoSetFromOptions(*tao))) e = petsc_fail(ctx, pe, "TaoSetFromOptions");
    if (!have_hist) PetscOptionsClearValue(NULL, hist);
  }
  if (!e && s->segment == 0) { /* what TAO will do, after the options */
    PetscInt max_it, max_funcs;
    PetscReal gatol, grtol, gttol;
    TaoGetMaximumIterations(*tao, &max_it);
    TaoGetMaximumFunctionEvaluations(*tao, &max_funcs);
    TaoGetTolerances(*tao, &gatol, &grtol, &gttol);
    res->tao = (imx_tao_settings){.max_it = io->start_iteration + (int)max_it,
                                  .max_funcs = (long long)max_funcs,
                                  .gatol = gatol,
                                  .grtol = grtol,
                                  .gttol = gttol};
    s->max_it = res->tao.max_it;
  }
  if (!e && s->ext_every > 0) { /* this segment ends at the next multiple of ext_every */
    int end = (s->seg_start / s->ext_every + 1) * s->ext_every;
    TaoSetMaximumIterations(*tao, (end < s->max_it ? end : s->max_it) - s->seg_start);
  }
  if (!e) {
    TaoType type;
    TaoGetType(*tao, &type);
    snprintf(res->tao_type, sizeof res->tao_type, "%s", type);
    snprintf(s->tao_type, sizeof s->tao_type, "%s", type);
    if (needs_hessian(type))
      e = imx_fail(ctx, IMX_ERR_CONFIG,
                   "TAO type %s needs a Hessian, which infomax does not "
                   "provide; use a first-order or quasi-Newton type (lmvm, blmvm, bncg, cg, "
                   "bqnls, owlqn) or nm",
                   type);
  }
  if (!e && imx_batch_kind(res->tao_type) && s->segment == 0)
    e = stochastic_setup(ctx, s, *tao, res->tao_type);
  if (!e && cfg->model.bias_bound > 0)
    e = bound_biases(ctx, *tao, layer, cfg->model.bias_bound, res->tao_type, xl, xu);
  if (!e) e = precond_setup(ctx, *tao, s, res->tao_type);
  return e;
}

/* After TaoSolve: iterations, |grad| and the reason into res; a run without
 * one step, a line search that gave up (*diverged, with the warning and its
 * remedy) or one at the rounding level (converged); the final checkpoint.
 * e: the solve's agreed status. Collective (the checkpoint). */
static imx_err tao_outcome(imx_ctx *ctx, Tao tao, state *s, imx_train_result *res, imx_err e,
                           int *diverged) {
  PetscInt its;
  PetscReal f, gnorm;
  TaoConvergedReason reason;
  TaoGetSolutionStatus(tao, &its, &f, &gnorm, NULL, NULL, &reason);
  res->iterations = s->seg_start + (int)its;
  res->grad_norm = gnorm;
  if (!e && s->rejected && its == 0 && reason == TAO_DIVERGED_LS_FAILURE)
    /* Not one step: the same outcome as before trial points got +Inf. */
    e = imx_agree(ctx, imx_fail(ctx, IMX_ERR_NUMERIC,
                                "TAO %s made no iteration: its line search found no trial point "
                                "where the objective is defined (last: %s); %s",
                                res->tao_type, s->rejected_why, remedy(res->tao_type)));
  snprintf(res->reason, sizeof res->reason, "%s",
           e               ? "ERROR"
           : s->stopped_by ? "STOPPED_BY_SIGNAL"
                           : TaoConvergedReasons[reason]);
  /* Converged, or the iteration or evaluation limit: success-> Any other
   * ending (no acceptable step, NaN, ...) is not, though the weights are
   * the last accepted iterate as always; except a line search that fails
   * where the gradient is at the rounding level of the objective, which
   * has converged as far as double precision allows-> */
  int rounding = reason == TAO_DIVERGED_LS_FAILURE &&
                 gnorm <= sqrt(DBL_EPSILON) * fmax(1, fabs((double)f));
  *diverged = !e && !s->stopped_by && reason < 0 && reason != TAO_DIVERGED_MAXITS &&
              reason != TAO_DIVERGED_MAXFCN && !rounding;
  if (!e && !s->stopped_by && rounding)
    imx_log(ctx, IMX_INFO,
            "  converged  TAO's line search found no further decrease at |grad| %.3e <= "
            "sqrt(machine eps) max(1, |loss|): the rounding level of the loss",
            (double)gnorm);
  char rejected[IMX_MSG_LEN + 96] = "";
  if (!e && s->rejected)
    snprintf(rejected, sizeof rejected,
             "%d trial point%s of TAO's line search had no objective (last: %s)", s->rejected,
             s->rejected > 1 ? "s" : "", s->rejected_why);
  if (*diverged)
    imx_log(ctx, IMX_WARN,
            "TAO %s gave up at iteration %d with %s, not converged (status \"diverged\", "
            "exit code %d); the weights are its last accepted iterate%s%s. %s",
            res->tao_type, res->iterations, res->reason, IMX_DIVERGED, rejected[0] ? "; " : "",
            rejected, remedy(res->tao_type));
  else if (rejected[0]) imx_log(ctx, IMX_WARN, "%s; TAO took shorter steps instead", rejected);
  /* The final state is a checkpoint too (unless the last iteration wrote one). */
  if (!e && res->iterations != s->last_checkpoint) {
    Vec xs;
    const PetscScalar *xa;
    TaoGetSolution(tao, &xs);
    VecGetArrayRead(xs, &xa);
    e = checkpoint(s, xa, res->iterations, f);
    VecRestoreArrayRead(xs, &xa);
  }
  return e;
}

imx_err imx_train(imx_ctx *ctx, const imx_config *cfg, imx_layer *layer, double *theta,
                  const imx_train_io *io, imx_train_result *res) {
  memset(res, 0, sizeof *res);
  state s = {
      .ctx = ctx,
      .cfg = cfg,
      .layer = layer,
      .io = io,
      .eta_it = -1,
      /* A fresh run has none yet: a stop at iteration 0 writes one. */
      .last_checkpoint = io->start_iteration || io->replay_evaluations ? io->start_iteration : -1};
  s.n = imx_layer_nparams(layer);
  s.seg_start = io->start_iteration;
  s.ext_every = imx_layer_switch_applies(layer) ? cfg->objective.extended_every : 0;
  s.naux = imx_train_precond_aux(cfg, layer);
  s.accepted = malloc((size_t)s.n * sizeof *s.accepted);
  s.last_x = malloc((size_t)s.n * sizeof *s.last_x);
  s.pc_aux = calloc((size_t)s.naux + 1, sizeof *s.pc_aux);
  if (!s.accepted || !s.last_x || !s.pc_aux) {
    free(s.accepted), free(s.last_x), free(s.pc_aux);
    return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "optimizer state (%d parameters)", s.n));
  }
  memcpy(s.accepted, theta, (size_t)s.n * sizeof *theta);
  snprintf(res->precondition, sizeof res->precondition, "none");
  memset(s.last_x, 0xff, (size_t)s.n * sizeof *s.last_x);

  Vec x = NULL, xl = NULL, xu = NULL;
  Tao tao = NULL;
  imx_err e = IMX_OK;
  int diverged = 0;
  PetscErrorCode pe;
  /* Errors inside TAO are ours (already agreed); keep PETSc from printing a
   * traceback for them. */
  PetscPushErrorHandler(PetscReturnErrorHandler, NULL);
  if ((pe = VecCreateSeq(PETSC_COMM_SELF, s.n, &x))) e = petsc_fail(ctx, pe, "VecCreateSeq");
  if (!e) {
    PetscScalar *xa;
    VecGetArray(x, &xa);
    memcpy(xa, theta, (size_t)s.n * sizeof *xa);
    VecRestoreArray(x, &xa);
  }
  s.accepted_vec = x;
  if (!e) e = tao_setup(ctx, cfg, io, &s, layer, x, &tao, &xl, &xu, res);
  if (!e && s.use_pc) snprintf(res->precondition, sizeof res->precondition, "ica");
  e = imx_agree(ctx, e);
  if (!e) {
    imx_log(ctx, IMX_INFO, "  optimizer  TAO %s, max_it %d, gatol %g, grtol %g", res->tao_type,
            res->tao.max_it, res->tao.gatol, res->tao.grtol);
    s.t0 = imx_now();
    if (s.ext_every) e = switch_densities(&s, x, s.seg_start, NULL);
    while (!e) {
      imx_timer_start(IMX_T_OPTIMIZER);
      pe = TaoSolve(tao);
      imx_timer_stop(IMX_T_OPTIMIZER);
      if (s.err) e = s.err; /* our own error, already agreed and recorded */
      else if (pe) e = petsc_fail(ctx, pe, "TaoSolve");
      e = imx_agree(ctx, e);
      if (e || !s.ext_every || s.stopped_by) break;
      /* The segment's end: its iteration limit below max_it, or converged
       * (then only a change of density goes on). */
      PetscInt its;
      TaoConvergedReason reason;
      TaoGetSolutionStatus(tao, &its, NULL, NULL, NULL, NULL, &reason);
      int git = s.seg_start + (int)its, flips = 0;
      if (reason == TAO_DIVERGED_MAXITS ? git >= s.max_it : reason <= 0) break;
      if ((e = switch_densities(&s, x, git, &flips)) || (reason > 0 && flips == 0)) break;
      TaoDestroy(&tao);
      s.seg_start = git, s.segment++;
      e = imx_agree(ctx, tao_setup(ctx, cfg, io, &s, layer, x, &tao, &xl, &xu, res));
    }
    res->seconds = imx_now() - s.t0;
  }
  if (s.stoch) imx_layer_use_blocks(ctx, layer, NULL, 0); /* all rows again */
  if (tao) e = tao_outcome(ctx, tao, &s, res, e, &diverged);
  res->evaluations = io->start_evaluations + s.evals;
  res->stopped_by = s.stopped_by;
  res->checkpoints = s.checkpoints;
  PetscPopErrorHandler();
  if (!e) {
    const PetscScalar *xa;
    VecGetArrayRead(x, &xa);
    memcpy(theta, xa, (size_t)s.n * sizeof *xa);
    VecRestoreArrayRead(x, &xa);
    double f;
    e = imx_layer_eval(ctx, layer, theta, &f, NULL, &res->final);
  } else {
    memcpy(theta, s.accepted, (size_t)s.n * sizeof *theta);
  }
  TaoDestroy(&tao);
  MatDestroy(&s.H0);
  free(s.pc_x), free(s.pc_work), free(s.pc_aux);
  VecDestroy(&x);
  VecDestroy(&xl);
  VecDestroy(&xu);
  free(s.accepted), free(s.last_x), free(s.mv), free(s.perm);
  VecDestroy(&s.g);
  return e ? e : s.stopped_by ? IMX_STOPPED : diverged ? IMX_DIVERGED : IMX_OK;
}
