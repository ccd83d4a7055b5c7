/* config: the validated run configuration.
 *
 * One schema table (src/config/keys.c) drives defaults, YAML parsing, validation,
 * the resolved-config writer and the reference page (docs/config.md). Rank 0
 * parses; the plain struct is broadcast as bytes, so it holds no pointers.
 * The enums of its fields, and their names, belong to the modules that use
 * them (imx_activation in activation.h, imx_source in data.h, ...).
 */
#ifndef IMX_CONFIG_H
#define IMX_CONFIG_H

#include <stdio.h>

#include "imx/activation.h"
#include "imx/batch.h"
#include "imx/ctx.h"
#include "imx/data.h"
#include "imx/layer.h"
#include "imx/linalg.h"
#include "imx/precond.h"
#include "imx/preprocess.h"
#include "imx/rsum.h"
#include "imx/stack.h"
#include "imx/term.h"

#define IMX_PATH_LEN 512
#define IMX_NAME_LEN 32
#define IMX_OPTS_LEN 1024
#define IMX_MAX_LAYERS 8 /* entries of model.layers */
#define IMX_MAX_STAGES 8 /* entries of optimizer.stages */

typedef struct imx_config {
  char file[IMX_PATH_LEN]; /* the YAML file it came from ("" for defaults only) */

  struct {
    imx_source source;         /* data.source: synthetic-ica | gmm | npy | idx */
    char path[IMX_PATH_LEN];   /* data.path: .npy or IDX images file */
    char labels[IMX_PATH_LEN]; /* data.labels: IDX labels file or .npy vector ("" = none) */
    long long samples; /* data.samples: rows; files: first N (0 = all); generators: N (0 = 10000) */
    int dim;           /* data.dim: n for synthetic sources */
    int components;    /* data.components: mixture components (gmm) */
    double
        separation; /* data.separation: distance between mixture means, in units of their std (gmm) */
    unsigned long long seed;   /* data.seed: generator seed (synthetic) */
    double scale;              /* data.scale: multiply raw values by this (IDX bytes: 1/255) */
    imx_preprocess preprocess; /* data.preprocess: none | center | standardize | whiten */
    double whiten_eps;         /* data.whiten_eps: added to eigenvalues before whitening */
  } data;

  struct {
    int units;                 /* model.units: K */
    imx_activation activation; /* model.activation: identity | relu | softmax | topk | sparsemax */
    double temperature;      /* model.temperature: tau in softmax(-z/tau) (also topk, sparsemax) */
    int topk;                /* model.topk: k, responsibilities kept per row (activation topk) */
    int weight_norm;         /* model.weight_norm: w_j = v_j / ||v_j|| (bool) */
    char init[IMX_PATH_LEN]; /* model.init: "random" or a .npy file with K x n weights */
    unsigned long long seed; /* model.seed: seed of the random initial weights */
    double init_bias;        /* model.init_bias: std of random initial biases (0 = zeros) */
    double
        bias_bound; /* model.bias_bound: |b_j| <= this (0 = unbounded; needs a bounded TAO type) */
    imx_feed
        feed; /* model.feed: what a layer passes to the next of model.layers: activation | z | r */
    int nlayers; /* model.layers: entries (0 = one layer, the classic form) */
    char layer_set
        [IMX_MAX_LAYERS]
        [IMX_OPTS_LEN]; /* per entry: "section.key=value" lines (model, objective, optimizer) */
  } model;

  struct {
    char preset
        [IMX_NAME_LEN]; /* objective.preset: none | gaussian | gaussian-tc | decorrelation | implicit-em | ica | hsic */
    double lambda;       /* objective.lambda: the preset's redundancy weight */
    imx_objective_on on; /* objective.on: activation | z (what the InfoMax terms read) */
    double eps;          /* objective.eps: ridge added to C (and to diag C in variance terms) */
    double
        weight[IMX_NTERMS]; /* objective.<term>: explicit weight; NAN = take it from the preset */
    double
        label_fraction; /* objective.label_fraction: share of rows whose labels the supervised term uses */
    int extended_every; /* objective.extended_every: Extended Infomax sign update period (0 = off) */
    int hsic_features;  /* objective.hsic_features: D random Fourier features per unit */
    double
        hsic_bandwidth; /* objective.hsic_bandwidth: times the median heuristic (< 0: -sigma itself) */
    int hsic_seed_offset; /* objective.hsic_seed_offset: features from model.seed + this */
  } objective;

  struct {
    char type[IMX_NAME_LEN]; /* optimizer.type: a TAO type (lmvm, bncg, cg, nm, ...) */
    int max_it;              /* optimizer.max_it */
    double gatol, grtol;     /* optimizer.gatol, optimizer.grtol */
    char options
        [IMX_OPTS_LEN]; /* optimizer.options: extra PETSc options, "-tao_ls_type armijo ..." */
    imx_precondition precondition; /* optimizer.precondition: none | ica */
    int nstages;                   /* optimizer.stages: entries (0 = one stage, the classic form) */
    char stage_set[IMX_MAX_STAGES]
                  [IMX_OPTS_LEN]; /* per stage: "section.key=value" lines (imx_config_stage_keys) */
    /* Mini-batch training (optimizer.type adam or sgd; include/imx/batch.h). */
    double lr;             /* optimizer.lr: learning rate */
    int batch;             /* optimizer.batch: rows per step, a multiple of parallel.block */
    double momentum;       /* optimizer.momentum (sgd) */
    double beta1, beta2;   /* optimizer.beta1, optimizer.beta2 (adam) */
    double epsilon;        /* optimizer.epsilon (adam) */
    imx_schedule schedule; /* optimizer.schedule: constant | cosine | step */
    double decay;          /* optimizer.decay: the step schedule's factor */
    int decay_every;       /* optimizer.decay_every: epochs between the step schedule's decays */
    int eval_every; /* optimizer.eval_every: full-data loss every this many epochs (0 = never) */
    unsigned long long seed; /* optimizer.seed: the batch shuffle's seed */
    double cov_blend;        /* optimizer.cov_blend: a step's C = a C_prev + (1 - a) C_batch */
  } optimizer;

  struct {
    imx_reduction reduction;  /* parallel.reduction: reproducible | fast */
    int block;                /* parallel.block: B, rows per reduction block */
    imx_linalg_kind linalg;   /* parallel.linalg: auto | replicated */
    imx_path_kind path;       /* parallel.path: auto | data | moments (input-moment fast path) */
    int grid_rows, grid_cols; /* parallel.grid_rows/grid_cols: BLACS process grid (0 = auto) */
    int scalapack_block;      /* parallel.scalapack_block: block-cyclic block size nb */
    double memory_mib; /* parallel.memory_mib: memory per rank for linalg: auto (0 = detect) */
    int sparse; /* parallel.sparse: skip the zeros of topk/sparsemax outputs in dL/dW (bool) */
    imx_precision precision; /* parallel.precision: double | single (the data path's products) */
  } parallel;

  struct {
    char test_path
        [IMX_PATH_LEN]; /* eval.test_path: test split (same format as data.path; "" = none) */
    char test_labels[IMX_PATH_LEN]; /* eval.test_labels: its labels */
    imx_features features; /* eval.features: activation | z | input (what the probe sees) */
    int probe;             /* eval.probe: train a linear probe when labels exist (bool) */
    int probe_max_it;      /* eval.probe_max_it */
    double probe_l2;       /* eval.probe_l2: L2 penalty of the probe */
    int baselines; /* eval.baselines: also score raw input, PCA-K, random hyperplanes (bool) */
    int layer;     /* eval.layer: which layer of model.layers to judge (1 = the first) */
  } eval;

  struct {
    char dir[IMX_PATH_LEN]; /* output.dir: run directory ("" = runs/<config name>) */
    int every;              /* output.every: progress line every this many iterations */
    int checkpoint_every; /* output.checkpoint_every: checkpoint every N iterations (0 = at the end only) */
    int optimizer_log; /* output.optimizer_log: log every evaluation for exact resume (bool) */
    double optimizer_log_max_mib; /* output.optimizer_log_max_mib: size limit, 0 = none */
  } output;
} imx_config;

/* Fill every field with its default. Local. */
void imx_config_defaults(imx_config *cfg);

/* Read a YAML file into cfg (which must hold defaults or earlier values) with
 * per-key type and range checks; cross-field checks are imx_config_validate's
 * (after overrides). Errors name file:line:column. Local (call on rank 0). */
imx_err imx_config_load(imx_ctx *ctx, imx_config *cfg, const char *path);

/* Read YAML text (a configuration as imx_config_write writes it; empty text
 * gives cfg unchanged) into cfg, as imx_config_load a file; messages and
 * cfg->file name it `name`. Local. */
imx_err imx_config_load_text(imx_ctx *ctx, imx_config *cfg, const char *name, const char *text);

/* Apply one override "section.key=value" (the value is parsed as YAML scalar
 * text, with the same type and range checks). Local. */
imx_err imx_config_set(imx_ctx *ctx, imx_config *cfg, const char *assignment);

/* Cross-field validation after all overrides (e.g. path given for npy). Local. */
imx_err imx_config_validate(imx_ctx *ctx, const imx_config *cfg);

/* Rank 0 loads cfg_path (may be NULL for defaults) and applies the overrides,
 * then broadcasts; all ranks return the same status. Collective. */
imx_err imx_config_setup(imx_ctx *ctx, imx_config *cfg, const char *cfg_path, int noverrides,
                         char **overrides);

/* Write the resolved configuration as YAML (loadable by imx_config_load). Local. */
imx_err imx_config_write(imx_ctx *ctx, const imx_config *cfg, FILE *f);

/* "section.key: value" lines, one per key of the table whose full name starts
 * with one of prefixes (NULL-terminated) and is none of skip (NULL-terminated,
 * or NULL), in table order, into buf (n bytes, NUL-terminated, cut when full).
 * Returns the length the whole text needs. Local. */
size_t imx_config_lines(const imx_config *cfg, const char *const *prefixes, const char *const *skip,
                        char *buf, size_t n);

/* Print the reference of every key (markdown table: key, type, default, range,
 * meaning), generated from the schema table. Local. */
void imx_config_reference(FILE *f);

/* The configuration of layer `index` (0-based) of model.layers: base with
 * that entry's settings applied, validated (messages name model.layers[i]).
 * out keeps base's list. With no list, index 0 gives base. Local. */
imx_err imx_config_layer(imx_ctx *ctx, const imx_config *base, int index, imx_config *out);

/* The configuration of stage `index` (0-based) of optimizer.stages: base with
 * that entry's settings applied, validated (messages name
 * optimizer.stages[i]). out keeps base's list. With no list, index 0 gives
 * base. Local. */
imx_err imx_config_stage(imx_ctx *ctx, const imx_config *base, int index, imx_config *out);

/* May an entry of optimizer.stages set the key "section.key"? The keys that
 * keep the parameter vector as it is: the objective's weights and settings
 * (not the supervised head's) and the optimizer's stopping rules. Local. */
int imx_config_stage_key_ok(const char *full);

#endif
