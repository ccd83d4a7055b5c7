/* summary: summary.json of a run (see include/imx/summary.h). */
#include "imx/config.h"
#include "imx/summary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/json.h"
#include "imx/objective.h"
#include "imx/optlog.h"
#include "imx/rundir.h"
#include "imx/timer.h"
#include "imx/version.h"

/* The optimizer log's limit and whether it was reached: then a resume from
 * a checkpoint after that point is not exact. The log of summary.json is
 * optimizer_log.bin, that of layerL_summary.json layerL_optimizer_log.bin. Local. */
static void optimizer_log(imx_json *j, const imx_config *c, const char *dir, const char *file) {
  char path[2 * IMX_PATH_LEN];
  int prefix = (int)(strlen(file) - strlen("summary.json"));
  snprintf(path, sizeof path, "%s/%.*soptimizer_log.bin", dir, prefix > 0 ? prefix : 0, file);
  int stochastic = imx_batch_kind(c->optimizer.type) != IMX_STOCH_NONE; /* no log: moments */
  int enabled = c->output.optimizer_log && !stochastic;
  int64_t capped = enabled ? imx_optlog_capped_at(path) : -1;
  imx_json_object(j, "optimizer_log");
  imx_json_bool(j, "enabled", enabled);
  imx_json_num(j, "max_mib", c->output.optimizer_log_max_mib);
  imx_json_int(j, "capped_at_evaluation", capped);
  imx_json_str(j, "next_resume",
               stochastic    ? "exact from the checkpoint and its moments in optimizer_state.bin"
               : !enabled    ? "from the checkpoint's weights, fresh optimizer state"
               : capped >= 0 ? "exact from checkpoints up to the cap; later ones from the "
                               "checkpoint's weights with a fresh optimizer state (not exact)"
                             : "exact");
  imx_json_end(j);
}

imx_err imx_summary_write(imx_ctx *ctx, const imx_summary *s, const char *dir) {
  imx_timer_stat st[IMX_NTIMERS];
  IMX_TRY(imx_timer_stats(ctx, st));
  /* Per rank: peak resident set, and the layer's own buffers. */
  /* Per rank: peak resident set, the layer's own buffers, bytes sent in
   * the counted collectives (imx_comm_sent). */
  double mem[3] = {imx_peak_rss_mib(), s->layer ? imx_layer_bytes(s->layer) / 1048576 : 0,
                   ctx->sent_bytes};
  double *mems = ctx->rank == 0 ? malloc(3 * (size_t)ctx->size * sizeof *mems) : NULL;
  IMX_MPI(ctx, MPI_Gather(mem, 3, MPI_DOUBLE, mems, 3, MPI_DOUBLE, 0, ctx->comm));
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    FILE *f = NULL;
    e = imx_file_begin(ctx, dir, s->file ? s->file : "summary.json", &f);
    if (!e) {
      const imx_config *c = s->cfg;
      imx_json j;
      imx_json_init(&j, f, 1);
      imx_json_object(&j, NULL);
      char program[160];
      snprintf(program, sizeof program, "infomax %s", imx_version());
      imx_json_str(&j, "program", program);
      imx_json_str(&j, "status",
                   s->status == IMX_STOPPED    ? "stopped"
                   : s->status == IMX_DIVERGED ? "diverged"
                   : s->status                 ? "failed"
                                               : "ok");
      imx_json_int(&j, "exit_code", s->status);
      imx_json_str(&j, "error", s->message);
      imx_json_str(&j, "config", c->file);
      imx_json_int(&j, "ranks", ctx->size);
      if (s->resume >= 0) {
        imx_json_object(&j, "resume");
        imx_json_bool(&j, "exact", s->resume == 1);
        imx_json_str(&j, "changes", s->changes ? s->changes : "");
        imx_json_end(&j);
      }
      imx_json_object(&j, "data");
      imx_json_str(&j, "source", imx_source_name(c->data.source));
      if (s->data) {
        imx_json_int(&j, "N", s->data->N);
        imx_json_int(&j, "n", s->data->n);
      }
      imx_json_str(&j, "preprocess", imx_preprocess_name(c->data.preprocess));
      imx_json_end(&j);
      imx_json_object(&j, "model");
      imx_json_int(&j, "K", c->model.units);
      imx_json_str(&j, "activation", imx_activation_name(c->model.activation));
      imx_json_num(&j, "temperature", c->model.temperature);
      imx_json_bool(&j, "weight_norm", c->model.weight_norm);
      imx_json_end(&j);
      if (s->layer) {
        const imx_objective *o = imx_layer_objective(s->layer);
        imx_json_object(&j, "objective");
        imx_json_str(&j, "preset", c->objective.preset);
        imx_json_num(&j, "eps", o->eps);
        imx_json_object(&j, "weights");
        for (int t = 0; t < IMX_NTERMS; t++) imx_json_num(&j, imx_term_names[t], o->w[t]);
        imx_json_end(&j);
        imx_json_str(&j, "path", imx_layer_path(s->layer));
        imx_json_end(&j);
        int pr, pc, nb;
        imx_layer_grid(s->layer, &pr, &pc, &nb);
        imx_json_object(&j, "linalg");
        imx_json_str(&j, "backend", imx_layer_linalg(s->layer));
        imx_json_str(&j, "reason", imx_layer_linalg_reason(s->layer));
        imx_json_int(&j, "grid_rows", pr);
        imx_json_int(&j, "grid_cols", pc);
        imx_json_int(&j, "tile", nb);
        imx_json_array(&j, "layer_buffers_mib");
        for (int r = 0; r < ctx->size; r++) imx_json_num(&j, NULL, mems[3 * r + 1]);
        imx_json_end(&j);
        imx_json_array(&j, "sent_bytes");
        double most = 0;
        for (int r = 0; r < ctx->size; r++) {
          imx_json_num(&j, NULL, mems[3 * r + 2]);
          most = mems[3 * r + 2] > most ? mems[3 * r + 2] : most;
        }
        imx_json_end(&j);
        int evals = s->train ? s->train->evaluations : 0;
        imx_json_num(&j, "sent_bytes_per_evaluation", evals > 0 ? most / evals : NAN);
        imx_json_end(&j);
      }
      imx_json_str(&j, "reduction", imx_reduction_name(c->parallel.reduction));
      imx_json_int(&j, "block", c->parallel.block);
      imx_json_str(&j, "precision", imx_precision_name(c->parallel.precision));
      if (s->train) {
        const imx_train_result *r = s->train;
        imx_json_object(&j, "optimizer");
        imx_json_str(&j, "type", r->tao_type);
        imx_json_int(&j, "max_it", r->tao.max_it);
        imx_json_int(&j, "max_funcs", r->tao.max_funcs);
        imx_json_num(&j, "gatol", r->tao.gatol);
        imx_json_num(&j, "grtol", r->tao.grtol);
        imx_json_num(&j, "gttol", r->tao.gttol);
        char *in_use = imx_train_options_in_use(), *unused = imx_train_options_unused();
        imx_json_str(&j, "petsc_options", in_use ? in_use : "");
        imx_json_str(&j, "petsc_options_unused", unused ? unused : "");
        free(in_use), free(unused);
        imx_json_str(&j, "precondition", r->precondition);
        imx_json_str(&j, "reason", r->reason);
        imx_json_int(&j, "iterations", r->iterations);
        imx_json_int(&j, "evaluations", r->evaluations);
        imx_json_num(&j, "grad_norm", r->grad_norm);
        imx_json_num(&j, "seconds", r->seconds);
        imx_json_end(&j);
        optimizer_log(&j, c, dir, s->file ? s->file : "summary.json");
        imx_json_int(&j, "stopped_by_signal", r->stopped_by);
        imx_json_int(&j, "checkpoints", r->checkpoints);
        if (!s->layer_status || s->layer_status == IMX_DIVERGED) {
          imx_json_object(&j, "final");
          imx_json_num(&j, "loss", r->final.loss);
          imx_json_object(&j, "terms");
          for (int t = 0; t < IMX_NTERMS; t++)
            imx_json_num(&j, imx_term_names[t], r->final.terms[t]);
          imx_json_end(&j);
          imx_json_int(&j, "dead_units", r->final.dead_units);
          imx_json_num(&j, "max_abs_bias", r->final.max_abs_bias);
          imx_json_num(&j, "min_variance", r->final.min_var);
          imx_json_num(&j, "max_variance", r->final.max_var);
          imx_json_num(&j, "max_abs_corr", r->final.max_abs_corr);
          imx_json_end(&j);
        }
      }
      if (s->stages) {
        imx_json_array(&j, "stages");
        for (int k = 0; k < s->nstages; k++) {
          const imx_stage_record *g = &s->stages[k];
          imx_json_object(&j, NULL);
          imx_json_int(&j, "stage", k + 1);
          imx_json_str(&j, "status",
                       !g->ran                     ? "not run"
                       : g->status == IMX_STOPPED  ? "stopped"
                       : g->status == IMX_DIVERGED ? "diverged"
                       : g->status                 ? "failed"
                                                   : "ok");
          if (g->ran) {
            imx_json_str(&j, "reason", g->reason);
            imx_json_int(&j, "iterations", g->iterations);
            imx_json_int(&j, "evaluations", g->evaluations);
            imx_json_num(&j, "loss", g->loss);
            imx_json_num(&j, "seconds", g->seconds);
          }
          imx_json_end(&j);
        }
        imx_json_end(&j);
      }
      if (s->measures) imx_metrics_json(&j, "measures", s->measures);
      imx_json_object(&j, "timers");
      for (int t = 0; t < IMX_NTIMERS; t++) {
        imx_json_object(&j, imx_timer_names[t]);
        imx_json_num(&j, "min", st[t].min);
        imx_json_int(&j, "min_rank", st[t].min_rank);
        imx_json_num(&j, "max", st[t].max);
        imx_json_int(&j, "max_rank", st[t].max_rank);
        imx_json_num(&j, "mean", st[t].mean);
        imx_json_end(&j);
      }
      imx_json_end(&j);
      imx_json_array(&j, "peak_memory_mib");
      for (int r = 0; r < ctx->size; r++) imx_json_num(&j, NULL, mems[3 * r]);
      imx_json_end(&j);
      imx_json_end(&j);
      e = imx_file_commit(ctx, dir, s->file ? s->file : "summary.json", f);
    }
  }
  free(mems);
  return imx_agree(ctx, e);
}
