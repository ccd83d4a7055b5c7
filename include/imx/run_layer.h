/* run_layer: one layer of `infomax train`, from its creation to its files.
 *
 * `infomax train` runs imx_run_layer_train for layer 1 and then, in a loop,
 * for layers 2..L of model.layers (include/imx/stack.h makes their rows):
 * create the layer, initialize its parameters (model.seed) or continue from
 * its checkpoint, train with checkpoints and the optimizer log, measure, write
 * its weights and (layers >= 2) its summary. Every layer checkpoints, stops and
 * resumes the same way; its files in the run directory are
 *
 *   layer 1        checkpoint.bin  optimizer_log.bin  metrics.jsonl
 *   layer L >= 2   layerL_checkpoint.bin  layerL_optimizer_log.bin  layerL_metrics.jsonl
 *   stage S >= 2   stageS_checkpoint.bin  stageS_optimizer_log.bin  (optimizer.stages: layer 1
 *                  in stages, each from the previous one's final parameters; one metrics.jsonl
 *                  whose lines name their stage)
 *
 * and layerL_W.npy, layerL_b.npy (layerL_head_*.npy) for every L, and
 * layerL_summary.json for L >= 2. summary.json is written by the command at
 * the end: layer 1's summary with the status of the whole run.
 */
#ifndef IMX_RUN_LAYER_H
#define IMX_RUN_LAYER_H

#include "imx/checkpoint.h"
#include "imx/config.h"
#include "imx/ctx.h"
#include "imx/data.h"
#include "imx/layer.h"
#include "imx/metrics.h"
#include "imx/model_file.h"
#include "imx/summary.h"
#include "imx/train.h"

/* How a layer starts. */
typedef enum {
  IMX_LAYER_FRESH,  /* initial parameters (model.seed), new checkpoint and optimizer log */
  IMX_LAYER_RESUME, /* continue from its checkpoint (exactly, by replaying its optimizer log) */
  IMX_LAYER_REBUILD /* a finished layer below the one in progress: its checkpoint's
                      * parameters, fixed (no training, no measures) */
} imx_layer_start;

typedef struct imx_run_layer {
  /* In: set by the caller. */
  imx_config cfg;            /* the layer's configuration (imx_config_layer) */
  const imx_data *data;      /* its rows (layer 1: the preprocessed data; borrowed) */
  imx_data *features;        /* layer L >= 2: its rows, the features of layer L-1 (owned) */
  const double *transform;   /* layer 1: the preprocessing matrix, for the measures; else NULL */
  const char *dir;           /* the run directory */
  int index;                 /* 1-based */
  int layers;                /* layers of the run (> 1: a stack) */
  imx_feed fed;              /* index >= 2: what layer L-1 passes on */
  uint64_t data_fingerprint; /* imx_data_fingerprint of the run's rows as loaded (layer 1's) */
  int allow_changes;         /* resume: continue although settings or data differ (not exact) */
  imx_model *model;          /* the run's model.h5 (include/imx/model_file.h; borrowed, NULL:
                              * none): this layer is set in it and it is written with every
                              * checkpoint and at the end of the layer */
  /* Out. */
  imx_layer *layer;     /* NULL if creation failed */
  double *theta;        /* its parameters (trained, resumed or rebuilt) */
  imx_train_result res; /* valid if trained */
  imx_metrics measures; /* valid if measured */
  int trained, measured;
  imx_err status; /* how the layer ended: IMX_OK, IMX_STOPPED, IMX_DIVERGED or the error */
  /* Resume (imx_run_layer_check). */
  imx_checkpoint ck;  /* the header of the checkpoint it continues from */
  int checked;        /* ck is read and accepted; theta holds its parameters */
  int absent;         /* resumed, but no checkpoint yet (stopped before its first): start afresh */
  int done;           /* optimizer.max_it is below ck.iteration: nothing to continue */
  int resume;         /* -1: not resumed; 0: resumed, not exact; 1: resumed exactly */
  char changes[1024]; /* what differs from the checkpoint ("key: old -> new; ...") */
  int advanced;       /* trained past where it started (fresh: any training) */
  /* Stages (optimizer.stages; layer 1 of a run without model.layers). */
  int stage, stages;   /* this stage (1-based) of how many; 0: a run without stages */
  const double *start; /* stage >= 2: the previous stage's final parameters (borrowed), which
                        * imx_layer_start_params turns into this stage's initial ones */
  imx_stage_record records[IMX_MAX_STAGES]; /* per stage, for summary.json (the caller fills
                                             * those of stages before a resume) */
  double *moments; /* a mini-batch resume: the optimizer's moments (owned, while training) */
} imx_run_layer;

/* The file NAME of layer `index` (checkpoint.bin, optimizer_log.bin,
 * metrics.jsonl: layer 1 keeps the one-layer names, layer L >= 2 gets
 * layerL_NAME) into out. Local. */
void imx_run_layer_file(char *out, size_t len, int index, const char *name);

/* The file NAME (checkpoint.bin, optimizer_log.bin) of stage `stage` of
 * layer `index`: as imx_run_layer_file, with stageS_NAME for a stage S >= 2
 * (stage 0 or 1: the layer's own name). Local. */
void imx_run_layer_stage_file(char *out, size_t len, int index, int stage, const char *name);

/* The layer a run directory was training when it stopped: the highest of
 * 1..layers that has a checkpoint (1 if none has). Collective. */
imx_err imx_run_layer_find(imx_ctx *ctx, const char *dir, int layers, int *index);

/* The stage of layer 1 a run directory was training when it stopped: the
 * highest of 1..stages that has a checkpoint (1 if none has). Collective. */
imx_err imx_run_layer_find_stage(imx_ctx *ctx, const char *dir, int stages, int *stage);

/* Before resuming layer r (created): read its checkpoint into r->ck and
 * r->theta and check that it was trained on the same data (fingerprint) and
 * settings (every key that shapes the result, and the linear-algebra backend,
 * which an auto choice takes from the checkpoint); differences are refused
 * (IMX_ERR_CONFIG, listed) unless r->allow_changes, and then the resume is not
 * exact (r->resume = 0). Sets r->done when optimizer.max_it is below the
 * checkpoint's iteration (nothing to continue; the run directory stays as it
 * is). Collective. */
imx_err imx_run_layer_check(imx_ctx *ctx, imx_run_layer *r);

/* Create layer r->index on r->data (or r->features, which then become
 * r->data) and its parameter vector, and say what it is. Collective. */
imx_err imx_run_layer_create(imx_ctx *ctx, imx_run_layer *r);

/* Start the created layer as `start` says (IMX_LAYER_RESUME: after
 * imx_run_layer_check; a layer without a checkpoint yet starts afresh), train,
 * measure and write its files (also after a stop or an error: the last
 * accepted weights and, for L >= 2, its layerL_summary.json; but a resume that
 * fails before any new iteration writes nothing, so earlier results stay).
 * Errors are reported on rank 0 here; on success (and IMX_DIVERGED: TAO gave
 * up, the last accepted iterate is kept, measured and written) the measures and
 * a closing report are printed. Returns r->status.
 * Collective. */
imx_err imx_run_layer_train(imx_ctx *ctx, imx_run_layer *r, imx_layer_start start);

/* Write the summary of r's layer to DIR/file with status (the layer's, or the
 * run's: a stack's summary.json describes layer 1 with the run's status).
 * Collective. */
imx_err imx_run_layer_summary(imx_ctx *ctx, const imx_run_layer *r, imx_err status,
                              const char *file);

/* Free the layer, its parameters, measures and owned features; r keeps its
 * inputs. Accepts a cleared r. Local. */
void imx_run_layer_clear(imx_run_layer *r);

#endif
