/* summary: summary.json of a run: status and error message, the resolved
 * config, the data, TAO's convergence reason, the objective and its terms, the
 * measures of the trained layer, timers (min/max/mean across ranks) and peak
 * memory. Written at the end of every run, also of a failed or stopped one. */
#ifndef IMX_SUMMARY_H
#define IMX_SUMMARY_H

#include "imx/ctx.h"
#include "imx/data.h"
#include "imx/layer.h"
#include "imx/metrics.h"
#include "imx/train.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* One stage of optimizer.stages, as summary.json lists it. */
typedef struct imx_stage_record {
  int ran;                     /* 0: not reached (the run ended before it) */
  imx_err status;              /* how it ended: IMX_OK, IMX_STOPPED, IMX_DIVERGED or an error */
  char reason[64];             /* TAO's reason ("" if unknown: finished before a resume) */
  int iterations, evaluations; /* in the stage */
  double loss;                 /* at its last accepted iterate */
  double seconds;              /* TaoSolve's wall time; NAN: finished before a resume */
} imx_stage_record;

typedef struct imx_summary {
  const imx_config *cfg;
  const imx_data *data;           /* NULL if loading failed */
  const imx_layer *layer;         /* NULL if not created */
  const imx_train_result *train;  /* NULL if training did not run */
  const imx_metrics *measures;    /* measures of the trained layer, NULL if not computed */
  imx_err status;                 /* IMX_OK, IMX_STOPPED, IMX_DIVERGED or the error that ended
                                * the run */
  imx_err layer_status;           /* the described layer's own ending: its final terms are
                                * written if IMX_OK or IMX_DIVERGED (a stack's summary.json
                                * describes layer 1 with the status of the whole run) */
  const char *message;            /* the error message ("" if none) */
  const char *file;               /* file name in dir (NULL: summary.json) */
  int resume;                     /* -1: not resumed; 0: resumed, not exact; 1: resumed exactly */
  const char *changes;            /* resume: what differs from the checkpoint ("" if nothing) */
  const imx_stage_record *stages; /* optimizer.stages: one record per stage (NULL: none) */
  int nstages;
} imx_summary;

/* Gather timers (min/max/mean across ranks) and peak memory per rank and write
 * DIR/summary.json (or DIR/s->file) atomically (rank 0). Collective. */
imx_err imx_summary_write(imx_ctx *ctx, const imx_summary *s, const char *dir);

#endif
