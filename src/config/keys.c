/* config keys: the schema table (one row per YAML key: its type, place in
 * imx_config, default as YAML text, range and meaning), the defaults, the
 * checks of a whole configuration and of each entry of model.layers, and the
 * collective setup.
 *
 * Defaults are produced by parsing the default text, so the table is the only
 * place a default is written down, and the reference page and the resolved
 * config file cannot drift from what the parser accepts.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

/* Enum keys are stored through an int pointer: make sure the enums are int-sized. */
_Static_assert(sizeof(imx_source) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_activation) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_preprocess) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_reduction) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_linalg_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_path_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_precision) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_feed) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_features) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_precondition) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_objective_on) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_schedule) == sizeof(int), "enum size");

/* Declared in imx/term.h, the objective module's; defined here until the
 * objective module keeps its terms and presets as tables of its own. */

/* A term weight: NAN (null) means "whatever the preset says". The key text
 * must equal imx_term_names[term]; test_config checks that. */
#define WEIGHT(term, name, what)                                                                 \
  {                                                                                              \
    SEC_OBJECTIVE, name, K_DOUBLE, FIELD(objective.weight[term]), "~", 0, 0, F_MIN | F_NULLABLE, \
        NO_CHOICES, "weight of the " what " term (~ = from the preset)"                          \
  }

/* The choices of a K_ENUM / K_NAME key: a table whose rows start with the
 * name (a list of names, or a table of kinds such as imx_sources), ended by
 * a NULL name. */
#define CHOICES(t) (const void *)(t), sizeof(t)[0]
#define NO_CHOICES NULL, 0

/* A field of imx_config: its offset and size, for a key_row. */
#define FIELD(f) offsetof(imx_config, f), sizeof(((imx_config *)0)->f)

const char *const imx_config_sections[NSECTIONS + 1] = {
    "data", "model", "objective", "optimizer", "parallel", "eval", "output", NULL};

const key_row imx_config_keys[] = {
    {SEC_DATA, "source", K_ENUM, FIELD(data.source), "synthetic-ica", 0, 0, 0, CHOICES(imx_sources),
     "where the samples come from: a generator or a file"},
    {SEC_DATA, "path", K_STRING, FIELD(data.path), "", 0, 0, 0, NO_CHOICES,
     "the data file: .npy, IDX images, or FILE.h5:/DATASET (hdf5; the dataset may be left out "
     "if it is the file's only one at its root)"},
    {SEC_DATA, "labels", K_STRING, FIELD(data.labels), "", 0, 0, 0, NO_CHOICES,
     "class numbers 0..65535, in data.path's format: IDX labels file, .npy vector or "
     "FILE.h5:/DATASET (\"\" = none)"},
    {SEC_DATA, "samples", K_INT64, FIELD(data.samples), "0", 0, 0, F_MIN, NO_CHOICES,
     "rows: for files the first N (0 = all); for generators N (0 = 10000)"},
    {SEC_DATA, "dim", K_INT, FIELD(data.dim), "8", 1, 100000, F_MIN | F_MAX, NO_CHOICES,
     "input dimension n of the generators"},
    {SEC_DATA, "components", K_INT, FIELD(data.components), "4", 1, 100000, F_MIN | F_MAX,
     NO_CHOICES, "mixture components (gmm)"},
    {SEC_DATA, "separation", K_DOUBLE, FIELD(data.separation), "4.0", 0, 0, F_MIN, NO_CHOICES,
     "distance between mixture means in units of their std (gmm)"},
    {SEC_DATA, "seed", K_SEED, FIELD(data.seed), "1", 0, 0, 0, NO_CHOICES,
     "seed of the generators"},
    {SEC_DATA, "scale", K_DOUBLE, FIELD(data.scale), "1.0", 0, 0, F_NONZERO, NO_CHOICES,
     "multiply raw values by this (IDX bytes: 1/255 = 0.00392156862745098)"},
    {SEC_DATA, "preprocess", K_ENUM, FIELD(data.preprocess), "center", 0, 0, 0,
     CHOICES(imx_preprocess_names), "transform applied to the inputs before training"},
    {SEC_DATA, "whiten_eps", K_DOUBLE, FIELD(data.whiten_eps), "1e-6", 0, 0, F_MIN, NO_CHOICES,
     "added to the eigenvalues before whitening"},

    {SEC_MODEL, "units", K_INT, FIELD(model.units), "8", 1, 1000000, F_MIN | F_MAX, NO_CHOICES,
     "K, the number of units"},
    {SEC_MODEL, "activation", K_ENUM, FIELD(model.activation), "identity", 0, 0, 0,
     CHOICES(imx_activation_names), "phi applied to z = W x + b"},
    {SEC_MODEL, "temperature", K_DOUBLE, FIELD(model.temperature), "1.0", 0, 0, F_MIN | F_MIN_EXCL,
     NO_CHOICES, "tau in softmax(-z/tau) (and in topk, sparsemax(-z/tau))"},
    {SEC_MODEL, "topk", K_INT, FIELD(model.topk), "0", 0, 1000000, F_MIN | F_MAX, NO_CHOICES,
     "k of activation topk: the k largest responsibilities of a row are kept (1..K)"},
    {SEC_MODEL, "weight_norm", K_BOOL, FIELD(model.weight_norm), "true", 0, 0, 0, NO_CHOICES,
     "train w_j = v_j / ||v_j|| instead of w_j"},
    {SEC_MODEL, "init", K_STRING, FIELD(model.init), "random", 0, 0, F_NONEMPTY, NO_CHOICES,
     "\"random\" or a .npy file with K x n initial weights"},
    {SEC_MODEL, "seed", K_SEED, FIELD(model.seed), "2", 0, 0, 0, NO_CHOICES,
     "seed of the random initial weights"},
    {SEC_MODEL, "init_bias", K_DOUBLE, FIELD(model.init_bias), "0.0", 0, 0, F_MIN, NO_CHOICES,
     "std of the random initial biases (0 = zeros)"},
    {SEC_MODEL, "bias_bound", K_DOUBLE, FIELD(model.bias_bound), "0.0", 0, 0, F_MIN, NO_CHOICES,
     "keep |b_j| <= this (0 = unbounded); needs a bounded TAO type: blmvm, bncg, bqnls"},
    {SEC_MODEL, "feed", K_ENUM, FIELD(model.feed), "activation", 0, 0, 0, CHOICES(imx_feed_names),
     "what this layer passes to the next of model.layers: phi(z), z, or r = softmax(-z/tau)"},

    {SEC_OBJECTIVE, "preset", K_NAME, FIELD(objective.preset), "gaussian", 0, 0, 0,
     CHOICES(imx_preset_names), "named combination of terms; explicit weights below override it"},
    {SEC_OBJECTIVE, "lambda", K_DOUBLE, FIELD(objective.lambda), "0.1", 0, 0, F_MIN, NO_CHOICES,
     "the preset's redundancy weight"},
    {SEC_OBJECTIVE, "on", K_ENUM, FIELD(objective.on), "activation", 0, 0, 0,
     CHOICES(imx_objective_on_names),
     "what the moment terms, entropy and hsic read: phi(z) or z = W x + b (lse and supervised "
     "read phi(z) either way)"},
    {SEC_OBJECTIVE, "eps", K_DOUBLE, FIELD(objective.eps), "0.0", 0, 0, F_MIN, NO_CHOICES,
     "ridge added to C (and to diag C in the variance terms)"},
    WEIGHT(IMX_TERM_LOGDET, "logdet", "-log det(C + eps I)"),
    WEIGHT(IMX_TERM_OFFDIAG, "offdiag", "sum of squared off-diagonal covariances"),
    WEIGHT(IMX_TERM_VARIANCE, "variance", "-sum log(C_jj + eps)"),
    WEIGHT(IMX_TERM_GAUSSIAN_TC, "gaussian_tc", "Gaussian total correlation"),
    WEIGHT(IMX_TERM_DECORRELATION, "decorrelation", "sum of squared off-diagonal correlations"),
    WEIGHT(IMX_TERM_WEIGHT_REDUNDANCY, "weight_redundancy", "weight redundancy"),
    WEIGHT(IMX_TERM_LSE, "lse", "log-sum-exp"),
    WEIGHT(IMX_TERM_SUPERVISED, "supervised",
           "cross-entropy of a linear softmax head on the outputs (alpha; needs data.labels)"),
    {SEC_OBJECTIVE, "label_fraction", K_DOUBLE, FIELD(objective.label_fraction), "1.0", 0, 1,
     F_MIN | F_MIN_EXCL | F_MAX, NO_CHOICES,
     "share of the rows whose labels the supervised term uses (chosen from data.seed, any P)"},
    WEIGHT(IMX_TERM_ENTROPY, "entropy", "log-cosh marginal entropy"),
    {SEC_OBJECTIVE, "extended_every", K_INT, FIELD(objective.extended_every), "0", 0, 0, F_MIN,
     NO_CHOICES,
     "Extended Infomax: every this many iterations each entropy unit picks the super- or "
     "sub-Gaussian density by the stability criterion and L-BFGS restarts (0 = off: "
     "super-Gaussian only)"},
    WEIGHT(IMX_TERM_HSIC, "hsic", "pairwise HSIC (random Fourier features)"),
    {SEC_OBJECTIVE, "hsic_features", K_INT, FIELD(objective.hsic_features), "16", 2, 4096,
     F_MIN | F_MAX, NO_CHOICES,
     "D, random Fourier features per unit of the hsic term (even: D/2 frequencies, a cos and a "
     "sin each)"},
    {SEC_OBJECTIVE, "hsic_bandwidth", K_DOUBLE, FIELD(objective.hsic_bandwidth), "1.0", 0, 0,
     F_NONZERO, NO_CHOICES,
     "hsic kernel bandwidth: this times the median |a_i - a_i'| of each unit on a fixed "
     "subsample (< 0: the bandwidth -value itself)"},
    {SEC_OBJECTIVE, "hsic_seed_offset", K_INT, FIELD(objective.hsic_seed_offset), "0", 0, 0, F_MIN,
     NO_CHOICES,
     "the hsic term's random features are drawn from model.seed + this: new features without "
     "new initial weights (a stage of optimizer.stages)"},

    {SEC_OPTIMIZER, "type", K_STRING, FIELD(optimizer.type), "lmvm", 0, 0, F_IDENT, NO_CHOICES,
     "TAO solver type (lmvm, bncg, cg, nm, ...), or adam, sgd: mini-batch training (docs/guide.md)"},
    {SEC_OPTIMIZER, "max_it", K_INT, FIELD(optimizer.max_it), "200", 0, 0, F_MIN, NO_CHOICES,
     "maximum number of iterations"},
    {SEC_OPTIMIZER, "gatol", K_DOUBLE, FIELD(optimizer.gatol), "1e-8", 0, 0, F_MIN, NO_CHOICES,
     "stop when the gradient norm is below this"},
    {SEC_OPTIMIZER, "grtol", K_DOUBLE, FIELD(optimizer.grtol), "1e-8", 0, 0, F_MIN, NO_CHOICES,
     "stop when the gradient norm relative to the objective is below this"},
    {SEC_OPTIMIZER, "options", K_STRING, FIELD(optimizer.options), "", 0, 0, 0, NO_CHOICES,
     "extra PETSc options, e.g. \"-tao_ls_type armijo\""},
    {SEC_OPTIMIZER, "precondition", K_ENUM, FIELD(optimizer.precondition), "none", 0, 0, 0,
     CHOICES(imx_precondition_names),
     "ica: L-BFGS (TAO lmvm) starts each step from the ICA Hessian approximation (entropy + "
     "logdet on K = n identity units, the ica preset; 2-4x fewer evaluations on ICA data, "
     "fewer is not promised elsewhere); none: plain L-BFGS"},
    {SEC_OPTIMIZER, "lr", K_DOUBLE, FIELD(optimizer.lr), "0.01", 0, 0, F_NONZERO | F_MIN,
     NO_CHOICES, "adam, sgd: the learning rate (its start, under optimizer.schedule)"},
    {SEC_OPTIMIZER, "batch", K_INT, FIELD(optimizer.batch), "4096", 1, 0, F_MIN, NO_CHOICES,
     "adam, sgd: rows per step, a multiple of parallel.block and more than model.units (whole "
     "blocks drawn by a shuffle that is the same for any rank count)"},
    {SEC_OPTIMIZER, "momentum", K_DOUBLE, FIELD(optimizer.momentum), "0.9", 0, 1, F_MIN | F_MAX,
     NO_CHOICES, "sgd: momentum mu (v = mu v + g, theta -= lr v; 0 = plain SGD)"},
    {SEC_OPTIMIZER, "beta1", K_DOUBLE, FIELD(optimizer.beta1), "0.9", 0, 1, F_MIN | F_MAX,
     NO_CHOICES, "adam: decay of the first moment"},
    {SEC_OPTIMIZER, "beta2", K_DOUBLE, FIELD(optimizer.beta2), "0.999", 0, 1, F_MIN | F_MAX,
     NO_CHOICES, "adam: decay of the second moment"},
    {SEC_OPTIMIZER, "epsilon", K_DOUBLE, FIELD(optimizer.epsilon), "1e-8", 0, 0, F_MIN, NO_CHOICES,
     "adam: added to the root of the second moment"},
    {SEC_OPTIMIZER, "schedule", K_ENUM, FIELD(optimizer.schedule), "constant", 0, 0, 0,
     CHOICES(imx_schedule_names),
     "adam, sgd: learning rate over the steps: constant, cosine (to 0 at optimizer.max_it) or "
     "step (times optimizer.decay every optimizer.decay_every epochs)"},
    {SEC_OPTIMIZER, "decay", K_DOUBLE, FIELD(optimizer.decay), "0.1", 0, 1, F_MIN | F_MAX,
     NO_CHOICES, "step schedule: the factor"},
    {SEC_OPTIMIZER, "decay_every", K_INT, FIELD(optimizer.decay_every), "10", 1, 0, F_MIN,
     NO_CHOICES, "step schedule: epochs between decays"},
    {SEC_OPTIMIZER, "eval_every", K_INT, FIELD(optimizer.eval_every), "1", 0, 0, F_MIN, NO_CHOICES,
     "adam, sgd: the loss on all rows every this many epochs, in the progress line and "
     "metrics.jsonl as full_loss (0 = only at the end)"},
    {SEC_OPTIMIZER, "cov_blend", K_DOUBLE, FIELD(optimizer.cov_blend), "0", 0, 1, F_MIN | F_MAX,
     NO_CHOICES,
     "adam, sgd: a step's C = a C_prev + (1 - a) C_batch, C_prev the C of the step before (a "
     "running estimate; 0 = the batch's own C, below 1); the gradient flows through the batch's "
     "part"},
    {SEC_OPTIMIZER, "seed", K_SEED, FIELD(optimizer.seed), "3", 0, 0, 0, NO_CHOICES,
     "adam, sgd: seed of the batch shuffle"},

    {SEC_PARALLEL, "reduction", K_ENUM, FIELD(parallel.reduction), "reproducible", 0, 0, 0,
     CHOICES(imx_reduction_names),
     "reproducible: same bits for any rank count; fast: MPI_Allreduce"},
    {SEC_PARALLEL, "block", K_INT, FIELD(parallel.block), "256", 1, 1048576, F_MIN | F_MAX,
     NO_CHOICES, "B, rows per reduction block"},
    {SEC_PARALLEL, "linalg", K_ENUM, FIELD(parallel.linalg), "auto", 0, 0, 0,
     CHOICES(imx_linalg_names), "dense K x K linear algebra backend"},
    {SEC_PARALLEL, "path", K_ENUM, FIELD(parallel.path), "auto", 0, 0, 0, CHOICES(imx_path_names),
     "data: pass over the samples each iteration; moments: input-moment fast path"},

    {SEC_PARALLEL, "grid_rows", K_INT, FIELD(parallel.grid_rows), "0", 0, 0, F_MIN, NO_CHOICES,
     "rows of the BLACS process grid (scalapack; 0 = auto)"},
    {SEC_PARALLEL, "grid_cols", K_INT, FIELD(parallel.grid_cols), "0", 0, 0, F_MIN, NO_CHOICES,
     "columns of the BLACS process grid (scalapack; 0 = auto)"},
    {SEC_PARALLEL, "scalapack_block", K_INT, FIELD(parallel.scalapack_block), "64", 1, 4096,
     F_MIN | F_MAX, NO_CHOICES, "block size nb of the block-cyclic layout (scalapack)"},
    {SEC_PARALLEL, "memory_mib", K_DOUBLE, FIELD(parallel.memory_mib), "0", 0, 0, F_MIN, NO_CHOICES,
     "memory per rank that linalg: auto may plan with, MiB (0 = detect)"},
    {SEC_PARALLEL, "sparse", K_BOOL, FIELD(parallel.sparse), "true", 0, 0, 0, NO_CHOICES,
     "topk, sparsemax: form dL/dW = dZ^T X from the nonzeros of dZ where a block has <= 1/8"},
    {SEC_PARALLEL, "precision", K_ENUM, FIELD(parallel.precision), "double", 0, 0, 0,
     CHOICES(imx_precision_names),
     "single: the data path's row-block products (SGEMM) and activation in float32, block sums "
     "reduced in double (same bits for any rank count); C, log det and the parameters stay "
     "double (replicated backend, data path)"},

    {SEC_EVAL, "test_path", K_STRING, FIELD(eval.test_path), "", 0, 0, 0, NO_CHOICES,
     "test split: a file of the format its suffix names (.npy, .h5/.hdf5 as FILE.h5:/DATASET), "
     "else data.path's format (\"\" = none)"},
    {SEC_EVAL, "test_labels", K_STRING, FIELD(eval.test_labels), "", 0, 0, 0, NO_CHOICES,
     "labels of the test split, in eval.test_path's format"},
    {SEC_EVAL, "features", K_ENUM, FIELD(eval.features), "activation", 0, 0, 0,
     CHOICES(imx_features_names), "what the linear probe sees: phi(z), z, or the raw input"},
    {SEC_EVAL, "probe", K_BOOL, FIELD(eval.probe), "true", 0, 0, 0, NO_CHOICES,
     "train a linear probe when labels exist"},
    {SEC_EVAL, "probe_max_it", K_INT, FIELD(eval.probe_max_it), "200", 0, 0, F_MIN, NO_CHOICES,
     "iterations of the probe's optimizer"},
    {SEC_EVAL, "probe_l2", K_DOUBLE, FIELD(eval.probe_l2), "1e-4", 0, 0, F_MIN, NO_CHOICES,
     "L2 penalty of the probe's weights"},
    {SEC_EVAL, "baselines", K_BOOL, FIELD(eval.baselines), "false", 0, 0, 0, NO_CHOICES,
     "also score raw input, PCA-K, K random hyperplanes, k-means (soft, triangle) and GMM-EM"},
    {SEC_EVAL, "layer", K_INT, FIELD(eval.layer), "1", 1, IMX_MAX_LAYERS, F_MIN | F_MAX, NO_CHOICES,
     "the layer of model.layers to judge, on the features of the layers below it"},

    {SEC_OUTPUT, "dir", K_STRING, FIELD(output.dir), "", 0, 0, 0, NO_CHOICES,
     "run directory (\"\" = runs/ and the config file's base name)"},
    {SEC_OUTPUT, "every", K_INT, FIELD(output.every), "1", 1, 0, F_MIN, NO_CHOICES,
     "print a progress line every this many iterations"},
    {SEC_OUTPUT, "checkpoint_every", K_INT, FIELD(output.checkpoint_every), "10", 0, 0, F_MIN,
     NO_CHOICES, "write a checkpoint every N iterations (0 = at the end only)"},
    {SEC_OUTPUT, "optimizer_log", K_BOOL, FIELD(output.optimizer_log), "true", 0, 0, 0, NO_CHOICES,
     "log every evaluation (nparams + 3 doubles) so --resume continues exactly"},
    {SEC_OUTPUT, "optimizer_log_max_mib", K_DOUBLE, FIELD(output.optimizer_log_max_mib), "0", 0, 0,
     F_MIN, NO_CHOICES,
     "stop the optimizer log at this size (0 = no limit); resumes past it are not exact"},
};
const int imx_config_nkeys = (int)(sizeof imx_config_keys / sizeof imx_config_keys[0]);
_Static_assert(sizeof imx_config_keys / sizeof imx_config_keys[0] <= IMX_CONFIG_MAX_KEYS,
               "raise IMX_CONFIG_MAX_KEYS (config_impl.h)");

/* ---- defaults ------------------------------------------------------------ */

/* Fill every field with its default by parsing the table's default text.
 * Local. A default the parser rejects is a bug in the table (test_config
 * would catch it), so it aborts rather than return a half-made struct. */
void imx_config_defaults(imx_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < imx_config_nkeys; i++) {
    key_value v;
    char err[512];
    if (imx_key_parse(&imx_config_keys[i], imx_config_keys[i].def, 0, &v, err, sizeof err)) {
      fprintf(stderr, "infomax: bug: default of %s.%s: %s\n",
              imx_config_sections[imx_config_keys[i].section], imx_config_keys[i].key, err);
      abort();
    }
    imx_key_store(&imx_config_keys[i], &v, cfg);
  }
}

/* ---- validation ---------------------------------------------------------- */

/* The per-key checks of parsing, applied to the values in cfg; messages
 * start with prefix. */
imx_err imx_config_check_fields(imx_ctx *ctx, const imx_config *cfg, const char *prefix) {
  for (int i = 0; i < imx_config_nkeys; i++) {
    const key_row *r = &imx_config_keys[i];
    key_value v;
    char full[96], buf[64], why[512];
    imx_key_full_name(r, full, sizeof full);
    if (imx_key_fetch(r, cfg, &v))
      return imx_fail(ctx, IMX_ERR_CONFIG, "%s%s: string is not terminated", prefix, full);
    if (imx_key_check(r, &v, imx_key_format(r, &v, buf, sizeof buf), why, sizeof why))
      return imx_fail(ctx, IMX_ERR_CONFIG, "%s%s: %s", prefix, full, why);
  }
  return IMX_OK;
}

/* Check every field against the table, then the rules that join fields.
 * Local. Messages start with the config file, if any, and name the keys.
 * Errors: IMX_ERR_CONFIG. */
imx_err imx_config_validate(imx_ctx *ctx, const imx_config *cfg) {
  IMX_TRY(imx_config_validate_one(ctx, cfg));
  for (int i = 0; i < cfg->model.nlayers; i++) {
    imx_config c;
    IMX_TRY(imx_config_layer(ctx, cfg, i, &c));
  }
  if (cfg->optimizer.nstages && cfg->model.nlayers > 1)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%s%soptimizer.stages and model.layers (%d layers) together: stages are for "
                    "one layer (train a stack's layers with their own optimizer.max_it, or one "
                    "layer in stages)",
                    cfg->file[0] ? cfg->file : "", cfg->file[0] ? ": " : "", cfg->model.nlayers);
  for (int i = 0; i < cfg->optimizer.nstages; i++) {
    imx_config c;
    IMX_TRY(imx_config_stage(ctx, cfg, i, &c));
  }
  return IMX_OK;
}

/* optimizer.type adam or sgd: the batch against parallel.block and
 * model.units, and what mini-batch training cannot do. Local. */
static imx_err check_batch(imx_ctx *ctx, const imx_config *cfg, const char *where) {
  const char *t = cfg->optimizer.type;
  int B = cfg->parallel.block, b = cfg->optimizer.batch, K = cfg->model.units;
  if (b % B)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%soptimizer.batch is %d rows but a batch is made of whole blocks of "
                    "parallel.block = %d rows: use a multiple of %d (e.g. %d)",
                    where, b, B, B, (b / B + 1) * B);
  if (b <= K)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%soptimizer.batch is %d rows, not more than model.units = %d: the batch's "
                    "K x K covariance C would be singular (rank <= %d) and log det C undefined; "
                    "use at least %d rows (a few times K keeps the bias of log det C small, "
                    "docs/objectives.md)",
                    where, b, K, b - 1, ((K / B) + 1) * B);
  if (cfg->optimizer.beta1 >= 1 || cfg->optimizer.beta2 >= 1)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%soptimizer.beta1 = %g, optimizer.beta2 = %g: adam needs both below 1 (its "
                    "bias correction divides by 1 - beta^t)",
                    where, cfg->optimizer.beta1, cfg->optimizer.beta2);
  if (cfg->model.bias_bound > 0)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%smodel.bias_bound needs a bound-constrained TAO type; optimizer.type %s "
                    "has no bounds",
                    where, t);
  if (cfg->optimizer.precondition != IMX_PRECONDITION_NONE)
    return imx_fail(ctx, IMX_ERR_CONFIG, "%soptimizer.precondition: ica is for TAO lmvm, not %s",
                    where, t);
  if (cfg->objective.extended_every > 0)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%sobjective.extended_every needs L-BFGS segments (optimizer.type lmvm); "
                    "%s does not have them",
                    where, t);
  if (cfg->parallel.precision == IMX_PRECISION_SINGLE)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%sparallel.precision: single with optimizer.type %s: the float copy of the "
                    "rows is of all rows, not of a batch's; use parallel.precision: double",
                    where, t);
  if (cfg->optimizer.cov_blend >= 1)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%soptimizer.cov_blend = %g: it needs to be below 1 (at 1 the batches would "
                    "never enter C and the moment terms would have no gradient)",
                    where, cfg->optimizer.cov_blend);
  return IMX_OK;
}

/* The checks of one layer's configuration (imx_config_validate without the
 * list of layers). */
imx_err imx_config_validate_one(imx_ctx *ctx, const imx_config *cfg) {
  /* "FILE: " or "" (defaults and overrides only). */
  char where[IMX_PATH_LEN + 2] = "";
  if (memchr(cfg->file, '\0', sizeof cfg->file) && cfg->file[0])
    snprintf(where, sizeof where, "%s: ", cfg->file);

  /* Per key: a struct may have been filled or edited in code, not parsed. */
  IMX_TRY(imx_config_check_fields(ctx, cfg, where));

  /* check_fields has checked data.source against the table */
  const imx_source_row *src = &imx_sources[cfg->data.source];
  if (src->file && !cfg->data.path[0])
    return imx_fail(ctx, IMX_ERR_CONFIG, "%sdata.source is %s but data.path is empty (which file?)",
                    where, src->name);
  if (cfg->model.activation == IMX_ACT_TOPK &&
      (cfg->model.topk < 1 || cfg->model.topk > cfg->model.units))
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%smodel.activation is topk but model.topk is %d: it needs 1 <= k <= "
                    "model.units = %d",
                    where, cfg->model.topk, cfg->model.units);
  if (imx_batch_kind(cfg->optimizer.type)) IMX_TRY(check_batch(ctx, cfg, where));
  else if (cfg->optimizer.cov_blend != 0)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%soptimizer.cov_blend = %g with optimizer.type %s: blending C across steps "
                    "is for the mini-batch types adam and sgd (a full-batch step's C is exact)",
                    where, cfg->optimizer.cov_blend, cfg->optimizer.type);
  if (cfg->objective.hsic_features % 2)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%sobjective.hsic_features is %d but the hsic features come in (cos, sin) "
                    "pairs: it needs an even number",
                    where, cfg->objective.hsic_features);
  return IMX_OK;
}

/* ---- entries of model.layers --------------------------------------------- */

/* The message of the failed check, prefixed with the entry it came from. */
static imx_err entry_fail(imx_ctx *ctx, imx_err e, const char *list, int index) {
  char msg[IMX_MSG_LEN];
  snprintf(msg, sizeof msg, "%s", ctx->msg);
  return imx_fail(ctx, e, "%s[%d]: %s", list, index + 1, msg);
}

/* out = base with one entry's assignment lines (set) applied as --set, each
 * key allowed by key_ok (NULL: any), then checked like one configuration;
 * messages name list[index + 1]. Local. */
static imx_err apply_entry(imx_ctx *ctx, const imx_config *base, const char *set, const char *list,
                           int index, int (*key_ok)(const char *), imx_config *out) {
  char lines[IMX_OPTS_LEN];
  snprintf(lines, sizeof lines, "%s", set);
  for (char *p = lines, *nl; *p; p = nl + 1) {
    nl = strchr(p, '\n');
    if (!nl) break;
    *nl = '\0';
    if (key_ok) {
      char *eq = strchr(p, '=');
      if (eq) *eq = '\0';
      int ok = eq && key_ok(p);
      if (eq) *eq = '=';
      if (!ok)
        return imx_fail(ctx, IMX_ERR_CONFIG, "%s[%d]: \"%.80s\": a stage may not set this key",
                        list, index + 1, p);
    }
    if (imx_config_set(ctx, out, p)) return entry_fail(ctx, IMX_ERR_CONFIG, list, index);
  }
  /* the entry, not the file, is what failed: no file name in the message */
  out->file[0] = '\0';
  imx_err e = imx_config_validate_one(ctx, out);
  memcpy(out->file, base->file, sizeof out->file);
  return e ? entry_fail(ctx, e, list, index) : IMX_OK;
}

/* The configuration of layer `index` of model.layers: base with the entry's
 * assignment lines applied (as --set), then checked like one configuration;
 * messages name model.layers[index + 1]. Local. Errors: IMX_ERR_CONFIG,
 * IMX_ERR_INTERNAL (index beyond the list). */
imx_err imx_config_layer(imx_ctx *ctx, const imx_config *base, int index, imx_config *out) {
  *out = *base;
  if (index >= base->model.nlayers) {
    if (index == 0) return IMX_OK;
    return imx_fail(ctx, IMX_ERR_INTERNAL, "model.layers has %d entries, asked for %d",
                    base->model.nlayers, index + 1);
  }
  return apply_entry(ctx, base, base->model.layer_set[index], "model.layers", index, NULL, out);
}

/* ---- entries of optimizer.stages ----------------------------------------- */

/* The keys a stage may set: none changes the parameter vector (the
 * supervised head's weight and label_fraction would add or change a head;
 * model.* is the layer and its initial weights; optimizer.options are the
 * run's PETSc options). A stage may change the optimizer (mini-batch adam,
 * then L-BFGS) and the precision of the data path. */
static const char *const STAGE_KEYS[] = {"objective.preset",
                                         "objective.lambda",
                                         "objective.on",
                                         "objective.eps",
                                         "objective.logdet",
                                         "objective.offdiag",
                                         "objective.variance",
                                         "objective.gaussian_tc",
                                         "objective.decorrelation",
                                         "objective.weight_redundancy",
                                         "objective.lse",
                                         "objective.entropy",
                                         "objective.extended_every",
                                         "objective.hsic",
                                         "objective.hsic_features",
                                         "objective.hsic_bandwidth",
                                         "objective.hsic_seed_offset",
                                         "optimizer.max_it",
                                         "optimizer.gatol",
                                         "optimizer.grtol",
                                         "optimizer.precondition",
                                         "optimizer.type",
                                         "optimizer.lr",
                                         "optimizer.batch",
                                         "optimizer.momentum",
                                         "optimizer.beta1",
                                         "optimizer.beta2",
                                         "optimizer.epsilon",
                                         "optimizer.schedule",
                                         "optimizer.decay",
                                         "optimizer.decay_every",
                                         "optimizer.eval_every",
                                         "optimizer.cov_blend",
                                         "optimizer.seed",
                                         "parallel.precision",
                                         NULL};

int imx_config_stage_key_ok(const char *full) {
  for (const char *const *k = STAGE_KEYS; *k; k++)
    if (!strcmp(*k, full)) return 1;
  return 0;
}

/* The configuration of stage `index`: base with the entry's assignment lines
 * applied (as --set), then checked like one configuration; messages name
 * optimizer.stages[index + 1]. Local. Errors: IMX_ERR_CONFIG,
 * IMX_ERR_INTERNAL (index beyond the list). */
imx_err imx_config_stage(imx_ctx *ctx, const imx_config *base, int index, imx_config *out) {
  *out = *base;
  if (index >= base->optimizer.nstages) {
    if (index == 0) return IMX_OK;
    return imx_fail(ctx, IMX_ERR_INTERNAL, "optimizer.stages has %d entries, asked for %d",
                    base->optimizer.nstages, index + 1);
  }
  return apply_entry(ctx, base, base->optimizer.stage_set[index], "optimizer.stages", index,
                     imx_config_stage_key_ok, out);
}

/* ---- setup (collective) -------------------------------------------------- */

/* Everything rank 0 does: defaults, file, overrides in order, validation. */
static imx_err resolve(imx_ctx *ctx, imx_config *cfg, const char *cfg_path, int noverrides,
                       char **overrides) {
  imx_config_defaults(cfg);
  if (cfg_path && cfg_path[0]) IMX_TRY(imx_config_load(ctx, cfg, cfg_path));
  for (int i = 0; i < noverrides; i++) IMX_TRY(imx_config_set(ctx, cfg, overrides[i]));
  return imx_config_validate(ctx, cfg);
}

/* Rank 0 resolves the configuration, all ranks agree on the outcome, then
 * rank 0 broadcasts the struct as bytes (it holds no pointers). Collective.
 * cfg (local, out); cfg_path (significant on rank 0; NULL or "" = defaults);
 * overrides (significant on rank 0). Only rank 0 opens the file. All ranks
 * return the same code, with rank 0's message in ctx. */
imx_err imx_config_setup(imx_ctx *ctx, imx_config *cfg, const char *cfg_path, int noverrides,
                         char **overrides) {
  imx_err err = IMX_OK;
  if (ctx->rank == 0) err = resolve(ctx, cfg, cfg_path, noverrides, overrides);
  IMX_TRY(imx_agree(ctx, err));
  int rc = MPI_Bcast(cfg, (int)sizeof *cfg, MPI_BYTE, 0, ctx->comm);
  err = IMX_MPI_ERR(ctx, rc, "MPI_Bcast(config)");
  return imx_agree(ctx, err);
}
