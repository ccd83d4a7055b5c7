/* config: the validated run configuration (see include/imx/config.h).
 *
 * Everything here is driven by one table, `keys`: one row per YAML key with
 * its type, place in imx_config, default (as YAML text), range and meaning.
 * Defaults are produced by parsing the default text, so the table is the only
 * place a default is written down, and the reference page and the resolved
 * config file cannot drift from what the parser accepts.
 */
#include "imx/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

const char *const imx_term_names[IMX_NTERMS] = {
    "logdet", "offdiag", "variance", "gaussian_tc", "decorrelation", "weight_redundancy", "lse",
    "supervised", "entropy", "hsic"};

/* Enum keys are stored through an int pointer: make sure the enums are int-sized. */
_Static_assert(sizeof(imx_source) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_activation) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_preprocess) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_reduction) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_linalg_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_path_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(imx_feed) == sizeof(int), "enum size");

/* ---- the schema ---------------------------------------------------------- */

/* Sections, in the order they are written. */
enum { SEC_DATA, SEC_MODEL, SEC_OBJECTIVE, SEC_OPTIMIZER, SEC_PARALLEL, SEC_EVAL, SEC_OUTPUT, NSECTIONS };
static const char *const section_names[NSECTIONS + 1] = {
    "data", "model", "objective", "optimizer", "parallel", "eval", "output", NULL};

typedef enum {
  K_INT,    /* int */
  K_INT64,  /* long long */
  K_DOUBLE, /* double, always finite (or NAN with F_NULLABLE) */
  K_BOOL,   /* int, 0 or 1 */
  K_STRING, /* char[size] */
  K_ENUM,   /* int-sized enum, value = index into names */
  K_NAME,   /* char[size] holding one of names (an enum whose users compare by name) */
  K_SEED    /* unsigned long long */
} kind;

/* Range and constraint flags. */
enum {
  F_MIN = 1u << 0,       /* value >= min (or > min with F_MIN_EXCL) */
  F_MIN_EXCL = 1u << 1,
  F_MAX = 1u << 2,       /* value <= max */
  F_NONZERO = 1u << 3,   /* value != 0 */
  F_NULLABLE = 1u << 4,  /* null (~) is allowed and stored as NAN */
  F_IDENT = 1u << 5,     /* string must match [a-z0-9_]+ */
  F_NONEMPTY = 1u << 6   /* string must not be empty */
};

typedef struct {
  int section;                /* SEC_* */
  const char *key;            /* name inside the section */
  kind type;
  size_t offset;              /* offsetof(imx_config, ...) */
  size_t size;                /* sizeof the field (string capacity including NUL) */
  const char *def;            /* default, as YAML scalar text ("" and "~" are null) */
  double min, max;            /* bounds, used as flagged */
  unsigned flags;             /* F_* */
  const char *const *names;   /* allowed values of K_ENUM / K_NAME, NULL-terminated */
  const char *meaning;        /* one line for the reference page */
} key_row;

#define FIELD(f) offsetof(imx_config, f), sizeof(((imx_config *)0)->f)

static const char *const source_names[] = {"synthetic-ica", "gmm", "npy", "idx", NULL};
static const char *const preprocess_names[] = {"none", "center", "standardize", "whiten", NULL};
static const char *const activation_names[] = {"identity", "relu", "softmax", "topk", "sparsemax",
                                               NULL};
const char *const imx_preset_names[] = {"none", "gaussian", "gaussian-tc", "decorrelation",
                                        "implicit-em", "ica", "hsic", NULL};
static const char *const reduction_names[] = {"reproducible", "fast", NULL};
static const char *const linalg_names[] = {"auto", "replicated", "scalapack", NULL};
static const char *const features_names[] = {"activation", "z", "input", NULL};
static const char *const path_names[] = {"auto", "data", "moments", NULL};
static const char *const precondition_names[] = {"none", "ica", NULL};
static const char *const feed_names[] = {"activation", "z", "r", NULL};

/* A term weight: NAN (null) means "whatever the preset says". The key text
 * must equal imx_term_names[term]; test_config checks that. */
#define WEIGHT(term, name, what)                                                          \
  {SEC_OBJECTIVE, name, K_DOUBLE, FIELD(objective.weight[term]), "~", 0, 0, F_MIN | F_NULLABLE, \
   NULL, "weight of the " what " term (~ = from the preset)"}

static const key_row keys[] = {
    {SEC_DATA, "source", K_ENUM, FIELD(data.source), "synthetic-ica", 0, 0, 0, source_names,
     "where the samples come from: a generator or a file"},
    {SEC_DATA, "path", K_STRING, FIELD(data.path), "", 0, 0, 0, NULL,
     "the .npy or IDX images file (npy, idx)"},
    {SEC_DATA, "labels", K_STRING, FIELD(data.labels), "", 0, 0, 0, NULL,
     "IDX labels file or .npy vector (\"\" = none)"},
    {SEC_DATA, "samples", K_INT64, FIELD(data.samples), "0", 0, 0, F_MIN, NULL,
     "rows: for files the first N (0 = all); for generators N (0 = 10000)"},
    {SEC_DATA, "dim", K_INT, FIELD(data.dim), "8", 1, 100000, F_MIN | F_MAX, NULL,
     "input dimension n of the generators"},
    {SEC_DATA, "components", K_INT, FIELD(data.components), "4", 1, 100000, F_MIN | F_MAX, NULL,
     "mixture components (gmm)"},
    {SEC_DATA, "separation", K_DOUBLE, FIELD(data.separation), "4.0", 0, 0, F_MIN, NULL,
     "distance between mixture means in units of their std (gmm)"},
    {SEC_DATA, "seed", K_SEED, FIELD(data.seed), "1", 0, 0, 0, NULL, "seed of the generators"},
    {SEC_DATA, "scale", K_DOUBLE, FIELD(data.scale), "1.0", 0, 0, F_NONZERO, NULL,
     "multiply raw values by this (IDX bytes: 1/255 = 0.00392156862745098)"},
    {SEC_DATA, "preprocess", K_ENUM, FIELD(data.preprocess), "center", 0, 0, 0, preprocess_names,
     "transform applied to the inputs before training"},
    {SEC_DATA, "whiten_eps", K_DOUBLE, FIELD(data.whiten_eps), "1e-6", 0, 0, F_MIN, NULL,
     "added to the eigenvalues before whitening"},

    {SEC_MODEL, "units", K_INT, FIELD(model.units), "8", 1, 1000000, F_MIN | F_MAX, NULL,
     "K, the number of units"},
    {SEC_MODEL, "activation", K_ENUM, FIELD(model.activation), "identity", 0, 0, 0,
     activation_names, "phi applied to z = W x + b"},
    {SEC_MODEL, "temperature", K_DOUBLE, FIELD(model.temperature), "1.0", 0, 0, F_MIN | F_MIN_EXCL,
     NULL, "tau in softmax(-z/tau) (and in topk, sparsemax(-z/tau))"},
    {SEC_MODEL, "topk", K_INT, FIELD(model.topk), "0", 0, 1000000, F_MIN | F_MAX, NULL,
     "k of activation topk: the k largest responsibilities of a row are kept (1..K)"},
    {SEC_MODEL, "weight_norm", K_BOOL, FIELD(model.weight_norm), "true", 0, 0, 0, NULL,
     "train w_j = v_j / ||v_j|| instead of w_j"},
    {SEC_MODEL, "init", K_STRING, FIELD(model.init), "random", 0, 0, F_NONEMPTY, NULL,
     "\"random\" or a .npy file with K x n initial weights"},
    {SEC_MODEL, "seed", K_SEED, FIELD(model.seed), "2", 0, 0, 0, NULL,
     "seed of the random initial weights"},
    {SEC_MODEL, "init_bias", K_DOUBLE, FIELD(model.init_bias), "0.0", 0, 0, F_MIN, NULL,
     "std of the random initial biases (0 = zeros)"},
    {SEC_MODEL, "bias_bound", K_DOUBLE, FIELD(model.bias_bound), "0.0", 0, 0, F_MIN, NULL,
     "keep |b_j| <= this (0 = unbounded); needs a bounded TAO type: blmvm, bncg, bqnls"},
    {SEC_MODEL, "feed", K_ENUM, FIELD(model.feed), "activation", 0, 0, 0, feed_names,
     "what this layer passes to the next of model.layers: phi(z), z, or r = softmax(-z/tau)"},

    {SEC_OBJECTIVE, "preset", K_NAME, FIELD(objective.preset), "gaussian", 0, 0, 0,
     imx_preset_names, "named combination of terms; explicit weights below override it"},
    {SEC_OBJECTIVE, "lambda", K_DOUBLE, FIELD(objective.lambda), "0.1", 0, 0, F_MIN, NULL,
     "the preset's redundancy weight"},
    {SEC_OBJECTIVE, "eps", K_DOUBLE, FIELD(objective.eps), "0.0", 0, 0, F_MIN, NULL,
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
     F_MIN | F_MIN_EXCL | F_MAX, NULL,
     "share of the rows whose labels the supervised term uses (chosen from data.seed, any P)"},
    WEIGHT(IMX_TERM_ENTROPY, "entropy", "log-cosh marginal entropy"),
    WEIGHT(IMX_TERM_HSIC, "hsic", "pairwise HSIC (random Fourier features)"),
    {SEC_OBJECTIVE, "hsic_features", K_INT, FIELD(objective.hsic_features), "16", 2, 4096,
     F_MIN | F_MAX, NULL,
     "D, random Fourier features per unit of the hsic term (even: D/2 frequencies, a cos and a "
     "sin each)"},
    {SEC_OBJECTIVE, "hsic_bandwidth", K_DOUBLE, FIELD(objective.hsic_bandwidth), "1.0", 0, 0,
     F_NONZERO, NULL,
     "hsic kernel bandwidth: this times the median |a_i - a_i'| of each unit on a fixed "
     "subsample (< 0: the bandwidth -value itself)"},

    {SEC_OPTIMIZER, "type", K_STRING, FIELD(optimizer.type), "lmvm", 0, 0, F_IDENT, NULL,
     "TAO solver type (lmvm, bncg, cg, nm, ...)"},
    {SEC_OPTIMIZER, "max_it", K_INT, FIELD(optimizer.max_it), "200", 0, 0, F_MIN, NULL,
     "maximum number of iterations"},
    {SEC_OPTIMIZER, "gatol", K_DOUBLE, FIELD(optimizer.gatol), "1e-8", 0, 0, F_MIN, NULL,
     "stop when the gradient norm is below this"},
    {SEC_OPTIMIZER, "grtol", K_DOUBLE, FIELD(optimizer.grtol), "1e-8", 0, 0, F_MIN, NULL,
     "stop when the gradient norm relative to the objective is below this"},
    {SEC_OPTIMIZER, "options", K_STRING, FIELD(optimizer.options), "", 0, 0, 0, NULL,
     "extra PETSc options, e.g. \"-tao_ls_type armijo\""},
    {SEC_OPTIMIZER, "precondition", K_ENUM, FIELD(optimizer.precondition), "none", 0, 0, 0,
     precondition_names,
     "ica: L-BFGS (TAO lmvm) starts each step from the ICA Hessian approximation (entropy + "
     "logdet on K = n identity units, the ica preset; 2-4x fewer evaluations on ICA data, "
     "fewer is not promised elsewhere); none: plain L-BFGS"},

    {SEC_PARALLEL, "reduction", K_ENUM, FIELD(parallel.reduction), "reproducible", 0, 0, 0,
     reduction_names, "reproducible: same bits for any rank count; fast: MPI_Allreduce"},
    {SEC_PARALLEL, "block", K_INT, FIELD(parallel.block), "256", 1, 1048576, F_MIN | F_MAX, NULL,
     "B, rows per reduction block"},
    {SEC_PARALLEL, "linalg", K_ENUM, FIELD(parallel.linalg), "auto", 0, 0, 0, linalg_names,
     "dense K x K linear algebra backend"},
    {SEC_PARALLEL, "path", K_ENUM, FIELD(parallel.path), "auto", 0, 0, 0, path_names,
     "data: pass over the samples each iteration; moments: input-moment fast path"},

    {SEC_PARALLEL, "grid_rows", K_INT, FIELD(parallel.grid_rows), "0", 0, 0, F_MIN, NULL,
     "rows of the BLACS process grid (scalapack; 0 = auto)"},
    {SEC_PARALLEL, "grid_cols", K_INT, FIELD(parallel.grid_cols), "0", 0, 0, F_MIN, NULL,
     "columns of the BLACS process grid (scalapack; 0 = auto)"},
    {SEC_PARALLEL, "scalapack_block", K_INT, FIELD(parallel.scalapack_block), "64", 1, 4096,
     F_MIN | F_MAX, NULL, "block size nb of the block-cyclic layout (scalapack)"},
    {SEC_PARALLEL, "memory_mib", K_DOUBLE, FIELD(parallel.memory_mib), "0", 0, 0, F_MIN, NULL,
     "memory per rank that linalg: auto may plan with, MiB (0 = detect)"},
    {SEC_PARALLEL, "sparse", K_BOOL, FIELD(parallel.sparse), "true", 0, 0, 0, NULL,
     "topk, sparsemax: form dL/dW = dZ^T X from the nonzeros of dZ where a block has <= 1/8"},

    {SEC_EVAL, "test_path", K_STRING, FIELD(eval.test_path), "", 0, 0, 0, NULL,
     "test split, same format as data.path (\"\" = none)"},
    {SEC_EVAL, "test_labels", K_STRING, FIELD(eval.test_labels), "", 0, 0, 0, NULL,
     "labels of the test split"},
    {SEC_EVAL, "features", K_ENUM, FIELD(eval.features), "activation", 0, 0, 0, features_names,
     "what the linear probe sees: phi(z), z, or the raw input"},
    {SEC_EVAL, "probe", K_BOOL, FIELD(eval.probe), "true", 0, 0, 0, NULL,
     "train a linear probe when labels exist"},
    {SEC_EVAL, "probe_max_it", K_INT, FIELD(eval.probe_max_it), "200", 0, 0, F_MIN, NULL,
     "iterations of the probe's optimizer"},
    {SEC_EVAL, "probe_l2", K_DOUBLE, FIELD(eval.probe_l2), "1e-4", 0, 0, F_MIN, NULL,
     "L2 penalty of the probe's weights"},
    {SEC_EVAL, "baselines", K_BOOL, FIELD(eval.baselines), "false", 0, 0, 0, NULL,
     "also score raw input, PCA with K components and random hyperplanes"},
    {SEC_EVAL, "layer", K_INT, FIELD(eval.layer), "1", 1, IMX_MAX_LAYERS, F_MIN | F_MAX, NULL,
     "the layer of model.layers to judge, on the features of the layers below it"},

    {SEC_OUTPUT, "dir", K_STRING, FIELD(output.dir), "", 0, 0, 0, NULL,
     "run directory (\"\" = runs/ and the config file's base name)"},
    {SEC_OUTPUT, "every", K_INT, FIELD(output.every), "1", 1, 0, F_MIN, NULL,
     "print a progress line every this many iterations"},
    {SEC_OUTPUT, "checkpoint_every", K_INT, FIELD(output.checkpoint_every), "10", 0, 0, F_MIN,
     NULL, "write a checkpoint every N iterations (0 = at the end only)"},
    {SEC_OUTPUT, "optimizer_log", K_BOOL, FIELD(output.optimizer_log), "true", 0, 0, 0, NULL,
     "log every evaluation (nparams + 3 doubles) so --resume continues exactly"},
};
#define NKEYS ((int)(sizeof keys / sizeof keys[0]))

static int count_names(const char *const *names) {
  int n = 0;
  while (names[n]) n++;
  return n;
}

/* names[i], or "?" for a value outside the enum. */
static const char *name_of(const char *const *names, int i) {
  return (i >= 0 && i < count_names(names)) ? names[i] : "?";
}

/* Names of enum values, from the same lists the parser accepts. Local. */
const char *imx_activation_name(imx_activation a) { return name_of(activation_names, (int)a); }
const char *imx_source_name(imx_source s) { return name_of(source_names, (int)s); }
const char *imx_preprocess_name(imx_preprocess p) { return name_of(preprocess_names, (int)p); }
const char *imx_reduction_name(imx_reduction r) { return name_of(reduction_names, (int)r); }
const char *imx_linalg_name(imx_linalg_kind k) { return name_of(linalg_names, (int)k); }
const char *imx_features_name(imx_features f) { return name_of(features_names, (int)f); }
const char *imx_feed_name(imx_feed f) { return name_of(feed_names, (int)f); }

/* ---- small helpers ------------------------------------------------------- */

static void *field(imx_config *cfg, const key_row *r) { return (char *)cfg + r->offset; }
static const void *cfield(const imx_config *cfg, const key_row *r) {
  return (const char *)cfg + r->offset;
}

/* Edit distance, for "did you mean". Names are short; longer input gets no
 * suggestion rather than a bigger buffer. */
static int levenshtein(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return INT_MAX;
  int row[64];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

/* Is d close enough to count as a typo of a word of length len? */
static int close_enough(int d, size_t len) { return d <= 2 || (size_t)d * 3 <= len; }

/* Write ` (did you mean "X"?)` into buf if some candidate is close to word,
 * else "". Candidates come from a NULL-terminated list, or, with section >= 0,
 * from the keys of that section. Ties go to the earlier candidate. */
static void suggest(char *buf, size_t n, const char *word, const char *const *list, int section) {
  const char *best = NULL;
  int bestd = INT_MAX;
  if (list) {
    for (int i = 0; list[i]; i++) {
      int d = levenshtein(word, list[i]);
      if (d < bestd) bestd = d, best = list[i];
    }
  } else {
    for (int i = 0; i < NKEYS; i++) {
      if (keys[i].section != section) continue;
      int d = levenshtein(word, keys[i].key);
      if (d < bestd) bestd = d, best = keys[i].key;
    }
  }
  if (best && bestd > 0 && close_enough(bestd, strlen(word)))
    snprintf(buf, n, " (did you mean \"%s\"?)", best);
  else
    buf[0] = '\0';
}

/* "a, b, c" from a NULL-terminated list. */
static void join_names(char *buf, size_t n, const char *const *names, const char *quote) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; names[i] && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%s%s%s", i ? ", " : "", quote, names[i], quote);
}

static int find_section(const char *name) {
  for (int s = 0; s < NSECTIONS; s++)
    if (strcmp(section_names[s], name) == 0) return s;
  return -1;
}

static int find_key(int section, const char *key) {
  for (int i = 0; i < NKEYS; i++)
    if (keys[i].section == section && strcmp(keys[i].key, key) == 0) return i;
  return -1;
}

/* The forms of YAML's null. Only plain (unquoted) scalars can be null. */
static int is_null(const char *s) {
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* YAML 1.2 core schema float syntax, which is what strtod should be allowed to
 * see: this keeps out strtod's own "inf", "nan", hex floats and leading space.
 * Returns 1 for a number, 2 for YAML's .inf and .nan (never valid here, but
 * worth a precise message), 0 for anything else. */
static int number_syntax(const char *s) {
  const char *p = s;
  if (*p == '-' || *p == '+') p++;
  if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) return 2;
  if (p == s && (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN"))) return 2;
  int digits = 0;
  while (isdigit((unsigned char)*p)) p++, digits++;
  if (*p == '.') {
    p++;
    while (isdigit((unsigned char)*p)) p++, digits++;
  }
  if (!digits) return 0;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '-' || *p == '+') p++;
    if (!isdigit((unsigned char)*p)) return 0;
    while (isdigit((unsigned char)*p)) p++;
  }
  return *p == '\0';
}

static int integer_syntax(const char *s, int allow_sign) {
  const char *p = s;
  if (*p == '+' || (allow_sign && *p == '-')) p++;
  if (!isdigit((unsigned char)*p)) return 0;
  while (isdigit((unsigned char)*p)) p++;
  return *p == '\0';
}

/* A parsed scalar, before range checks and before it is stored. */
typedef struct {
  long long i;           /* K_INT, K_INT64, K_BOOL, K_ENUM */
  unsigned long long u;  /* K_SEED */
  double d;              /* K_DOUBLE */
  const char *s;         /* K_STRING, K_NAME: borrowed from the caller's text */
} value;

/* "section.key" for messages. */
static const char *full_name(const key_row *r, char *buf, size_t n) {
  snprintf(buf, n, "%s.%s", section_names[r->section], r->key);
  return buf;
}

/* The text of a value, for messages: long strings (options) are cut. */
#define SHOWN_FMT "\"%.80s%s\""
#define SHOWN(s) (s), (strlen(s) > 80 ? "..." : "")

/* The full range of a number, as ">= 1 and <= 100000", for the reference page
 * (an int's implicit INT_MAX bound is left out as noise). */
static void range_text(const key_row *r, char *buf, size_t n) {
  int integral = (r->type == K_INT || r->type == K_INT64);
  size_t used = 0;
  const char *sep = "";
  buf[0] = '\0';
  if (r->type == K_DOUBLE) used += (size_t)snprintf(buf + used, n - used, "finite"), sep = " and ";
  if (r->flags & F_MIN)
    used += (size_t)snprintf(buf + used, n - used, integral ? "%s%s %.0f" : "%s%s %g", sep,
                             (r->flags & F_MIN_EXCL) ? ">" : ">=", r->min),
        sep = " and ";
  if (r->flags & F_MAX)
    used += (size_t)snprintf(buf + used, n - used, integral ? "%s<= %.0f" : "%s<= %g", sep, r->max),
        sep = " and ";
  if (r->flags & F_NONZERO) snprintf(buf + used, n - used, "%s!= 0", sep);
}

/* Check a number against the row's range. Returns NULL if it is in range,
 * else the violated bound as text (">= 1"), in buf. Integers are compared as
 * integers so that large int64 values are not rounded. */
static const char *violated(const key_row *r, const value *v, char *buf, size_t n) {
  int lo_bad, hi_bad = 0, zero_bad;
  if (r->type == K_DOUBLE) {
    double x = v->d;
    if (isnan(x) && (r->flags & F_NULLABLE)) return NULL;
    lo_bad = (r->flags & F_MIN) && ((r->flags & F_MIN_EXCL) ? !(x > r->min) : !(x >= r->min));
    hi_bad = (r->flags & F_MAX) && !(x <= r->max);
    zero_bad = (r->flags & F_NONZERO) && x == 0;
  } else {
    long long x = v->i, lo = (long long)r->min, hi = (long long)r->max;
    lo_bad = (r->flags & F_MIN) && ((r->flags & F_MIN_EXCL) ? x <= lo : x < lo);
    hi_bad = (r->flags & F_MAX) && x > hi;
    if (r->type == K_INT && !(r->flags & F_MAX) && x > INT_MAX) {
      snprintf(buf, n, "<= %d", INT_MAX);
      return buf;
    }
    if (r->type == K_INT && !(r->flags & F_MIN) && x < INT_MIN) {
      snprintf(buf, n, ">= %d", INT_MIN);
      return buf;
    }
    zero_bad = (r->flags & F_NONZERO) && x == 0;
  }
  int integral = (r->type != K_DOUBLE);
  if (lo_bad)
    snprintf(buf, n, integral ? "%s %.0f" : "%s %g", (r->flags & F_MIN_EXCL) ? ">" : ">=", r->min);
  else if (hi_bad)
    snprintf(buf, n, integral ? "<= %.0f" : "<= %g", r->max);
  else if (zero_bad)
    snprintf(buf, n, "!= 0");
  else
    return NULL;
  return buf;
}

/* Every check a value of row r must pass, on an already parsed value. text is
 * what the user wrote (for the message). On failure writes "why" (without the
 * key name) into err and returns 1. Shared by parsing and by validate. */
static int check_value(const key_row *r, const value *v, const char *text, char *err, size_t n) {
  char buf[256];
  switch (r->type) {
    case K_INT:
    case K_INT64:
    case K_DOUBLE:
      /* NAN only ever means "from the preset", and only where that exists. */
      if (r->type == K_DOUBLE && !isfinite(v->d) && !(isnan(v->d) && (r->flags & F_NULLABLE))) {
        snprintf(err, n, "expected a finite number, got " SHOWN_FMT, SHOWN(text));
        return 1;
      }
      if (violated(r, v, buf, sizeof buf)) {
        snprintf(err, n, "%.80s is out of range (must be %s)", text, buf);
        return 1;
      }
      return 0;
    case K_BOOL:
      if (v->i != 0 && v->i != 1) {
        snprintf(err, n, "expected true or false (1 or 0), got %lld", v->i);
        return 1;
      }
      return 0;
    case K_SEED:
      return 0;
    case K_ENUM:
      if (v->i < 0 || v->i >= count_names(r->names)) {
        snprintf(err, n, "%lld is not a valid choice", v->i);
        return 1;
      }
      return 0;
    case K_NAME:
      for (int i = 0; r->names[i]; i++)
        if (!strcmp(r->names[i], v->s)) return 0;
      {
        char list[256], hint[96];
        join_names(list, sizeof list, r->names, "");
        suggest(hint, sizeof hint, v->s, r->names, -1);
        snprintf(err, n, SHOWN_FMT " is not one of %s%s", SHOWN(v->s), list, hint);
      }
      return 1;
    case K_STRING:
      if (strlen(v->s) >= r->size) {
        snprintf(err, n, "too long (%zu characters, at most %zu)", strlen(v->s), r->size - 1);
        return 1;
      }
      if ((r->flags & F_NONEMPTY) && !*v->s) {
        snprintf(err, n, "must not be empty");
        return 1;
      }
      if (r->flags & F_IDENT) {
        const char *p = v->s;
        while (*p && (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_')) p++;
        if (!*v->s || *p) {
          snprintf(err, n, "expected a name of [a-z0-9_], got " SHOWN_FMT, SHOWN(v->s));
          return 1;
        }
      }
      return 0;
  }
  return 0;
}

/* Parse scalar text for row r into *v. quoted: the scalar was quoted or a
 * block scalar in YAML, so it is a string, never a number, bool or null.
 * Returns 1 with the reason in err on failure. */
static int parse_value(const key_row *r, const char *text, int quoted, value *v, char *err,
                       size_t n) {
  const char *what = NULL;
  memset(v, 0, sizeof *v);
  switch (r->type) {
    case K_INT:
    case K_INT64:
      what = "an integer";
      if (quoted || !integer_syntax(text, 1)) break;
      errno = 0;
      v->i = strtoll(text, NULL, 10);
      if (errno == ERANGE) {
        /* Beyond long long: name the bound it crossed. */
        if (text[0] == '-')
          snprintf(err, n, "%.80s is out of range (must be >= %lld)", text, LLONG_MIN);
        else
          snprintf(err, n, "%.80s is out of range (must be <= %lld)", text, LLONG_MAX);
        return 1;
      }
      return check_value(r, v, text, err, n);
    case K_SEED:
      what = "a non-negative integer";
      if (quoted || !integer_syntax(text, 0)) break;
      errno = 0;
      v->u = strtoull(text, NULL, 10);
      if (errno == ERANGE) {
        snprintf(err, n, "%.80s is out of range (must be <= %llu)", text, ULLONG_MAX);
        return 1;
      }
      return 0;
    case K_DOUBLE: {
      what = (r->flags & F_NULLABLE) ? "a number or ~" : "a number";
      if (quoted) break;
      if ((r->flags & F_NULLABLE) && is_null(text)) {
        v->d = NAN;
        return 0;
      }
      int syn = number_syntax(text);
      if (!syn) break;
      if (syn == 2) {
        snprintf(err, n, "expected a finite number, got " SHOWN_FMT, SHOWN(text));
        return 1;
      }
      /* ERANGE on underflow gives a denormal or 0, the nearest double, which
       * is fine; overflow gives inf, which check_value refuses. */
      v->d = strtod(text, NULL);
      return check_value(r, v, text, err, n);
    }
    case K_BOOL: {
      static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
      what = "true or false";
      if (quoted) break;
      for (int i = 0; i < 3; i++) {
        if (!strcasecmp(text, yes[i])) {
          v->i = 1;
          return 0;
        }
        if (!strcasecmp(text, no[i])) {
          v->i = 0;
          return 0;
        }
      }
      break;
    }
    case K_ENUM: {
      for (int i = 0; r->names[i]; i++)
        if (!strcmp(r->names[i], text)) {
          v->i = i;
          return 0;
        }
      char list[256], hint[96];
      join_names(list, sizeof list, r->names, "");
      suggest(hint, sizeof hint, text, r->names, -1);
      snprintf(err, n, SHOWN_FMT " is not one of %s%s", SHOWN(text), list, hint);
      return 1;
    }
    case K_NAME:
    case K_STRING:
      v->s = (!quoted && is_null(text)) ? "" : text;
      return check_value(r, v, text, err, n);
  }
  if (quoted)
    snprintf(err, n, "expected %s, got the quoted string " SHOWN_FMT, what, SHOWN(text));
  else
    snprintf(err, n, "expected %s, got " SHOWN_FMT, what, SHOWN(text));
  return 1;
}

/* Store a checked value into its field. memcpy keeps us clear of aliasing
 * rules for the enum fields. Strings are zero-filled to their full size so that
 * equal configurations are equal bytes (the struct is broadcast and compared as
 * bytes). */
static void store(const key_row *r, const value *v, imx_config *cfg) {
  void *p = field(cfg, r);
  switch (r->type) {
    case K_INT:
    case K_BOOL:
    case K_ENUM: {
      int x = (int)v->i;
      memcpy(p, &x, sizeof x);
      break;
    }
    case K_INT64:
      memcpy(p, &v->i, sizeof v->i);
      break;
    case K_SEED:
      memcpy(p, &v->u, sizeof v->u);
      break;
    case K_DOUBLE:
      memcpy(p, &v->d, sizeof v->d);
      break;
    case K_STRING:
    case K_NAME:
      memset(p, 0, r->size);
      memcpy(p, v->s, strlen(v->s));
      break;
  }
}

/* Read a field back into a value. Returns 1 if a string field is not
 * NUL-terminated (a struct filled by hand), which nothing else may read. */
static int fetch(const key_row *r, const imx_config *cfg, value *v) {
  const void *p = cfield(cfg, r);
  memset(v, 0, sizeof *v);
  switch (r->type) {
    case K_INT:
    case K_BOOL:
    case K_ENUM: {
      int x;
      memcpy(&x, p, sizeof x);
      v->i = x;
      break;
    }
    case K_INT64:
      memcpy(&v->i, p, sizeof v->i);
      break;
    case K_SEED:
      memcpy(&v->u, p, sizeof v->u);
      break;
    case K_DOUBLE:
      memcpy(&v->d, p, sizeof v->d);
      break;
    case K_STRING:
    case K_NAME:
      if (!memchr(p, '\0', r->size)) return 1;
      v->s = p;
      break;
  }
  return 0;
}

/* The shortest "%.Ng" that reads back as the same double (at most 17 digits,
 * which always does): exact round trip, but 0.1 stays "0.1". */
static void format_double(double x, char *buf, size_t n) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) return;
  }
}

/* A value as YAML scalar text, as parse_value reads it back. Strings are
 * returned as they are (borrowed); buf holds the others. */
static const char *format_value(const key_row *r, const value *v, char *buf, size_t n) {
  switch (r->type) {
    case K_INT:
    case K_INT64:
      snprintf(buf, n, "%lld", v->i);
      return buf;
    case K_SEED:
      snprintf(buf, n, "%llu", v->u);
      return buf;
    case K_DOUBLE:
      if (isnan(v->d) && (r->flags & F_NULLABLE)) return "~";
      format_double(v->d, buf, n);
      return buf;
    case K_BOOL:
      return v->i ? "true" : "false";
    case K_ENUM:
      return name_of(r->names, (int)v->i);
    case K_STRING:
    case K_NAME:
      return v->s;
  }
  return "?";
}

/* ---- defaults ------------------------------------------------------------ */

/* Fill every field with its default by parsing the table's default text.
 * Local. A default the parser rejects is a bug in the table (test_config
 * would catch it), so it aborts rather than return a half-made struct. */
void imx_config_defaults(imx_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < NKEYS; i++) {
    value v;
    char err[512];
    if (parse_value(&keys[i], keys[i].def, 0, &v, err, sizeof err)) {
      fprintf(stderr, "infomax: bug: default of %s.%s: %s\n", section_names[keys[i].section],
              keys[i].key, err);
      abort();
    }
    store(&keys[i], &v, cfg);
  }
}

/* ---- YAML loading -------------------------------------------------------- */

/* The parser state of one file; errors are recorded in ctx with file:line:col. */
typedef struct {
  imx_ctx *ctx;
  const char *file;
  FILE *fp;
  yaml_parser_t parser;
  yaml_event_t ev;     /* the current event, valid while have_ev */
  int have_ev;
  int key_line[NKEYS]; /* line where each key was set (0 = not yet), for duplicates */
  int section_line[NSECTIONS];
  int layers_line;     /* line of model.layers (0 = not yet) */
} reader;

/* Record IMX_ERR_CONFIG at a parser mark (0-based in libyaml, 1-based for people). */
static imx_err fail_mark(reader *rd, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static imx_err fail_mark(reader *rd, yaml_mark_t m, const char *fmt, ...) {
  char what[IMX_MSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return imx_fail(rd->ctx, IMX_ERR_CONFIG, "%s:%zu:%zu: %s", rd->file, m.line + 1, m.column + 1,
                  what);
}

/* Turn the parser's error record into ours. */
static imx_err syntax_error(reader *rd) {
  int read_errno = errno; /* from the failed read, if that is what happened */
  const yaml_parser_t *p = &rd->parser;
  if (p->error == YAML_MEMORY_ERROR)
    return imx_fail(rd->ctx, IMX_ERR_NOMEM, "%s: out of memory while parsing", rd->file);
  if (p->error == YAML_READER_ERROR) {
    /* Reader errors (bad UTF-8, read failure) have a byte offset, no mark. */
    if (ferror(rd->fp))
      return imx_fail(rd->ctx, IMX_ERR_IO, "cannot read config %s: %s", rd->file,
                      strerror(read_errno));
    return imx_fail(rd->ctx, IMX_ERR_CONFIG, "%s: byte %zu: %s", rd->file, p->problem_offset,
                    p->problem ? p->problem : "cannot decode");
  }
  const char *problem = p->problem ? p->problem : "YAML syntax error";
  if (p->context)
    return fail_mark(rd, p->problem_mark, "%s (%s, started at %zu:%zu)", problem, p->context,
                     p->context_mark.line + 1, p->context_mark.column + 1);
  return fail_mark(rd, p->problem_mark, "%s", problem);
}

/* Advance to the next event. Anchors, aliases and tags are refused here, once,
 * for every node: a config is plain data and they would only hide what it says. */
static imx_err next_event(reader *rd) {
  if (rd->have_ev) yaml_event_delete(&rd->ev);
  rd->have_ev = 0;
  if (!yaml_parser_parse(&rd->parser, &rd->ev)) return syntax_error(rd);
  rd->have_ev = 1;
  const yaml_event_t *e = &rd->ev;
  const yaml_char_t *anchor = NULL, *tag = NULL;
  switch (e->type) {
    case YAML_ALIAS_EVENT:
      return fail_mark(rd, e->start_mark, "aliases (*%s) are not supported",
                       (const char *)e->data.alias.anchor);
    case YAML_SCALAR_EVENT:
      anchor = e->data.scalar.anchor, tag = e->data.scalar.tag;
      break;
    case YAML_MAPPING_START_EVENT:
      anchor = e->data.mapping_start.anchor, tag = e->data.mapping_start.tag;
      break;
    case YAML_SEQUENCE_START_EVENT:
      anchor = e->data.sequence_start.anchor, tag = e->data.sequence_start.tag;
      break;
    default:
      break;
  }
  if (anchor)
    return fail_mark(rd, e->start_mark, "anchors (&%s) are not supported", (const char *)anchor);
  if (tag) {
    /* Show "!!int" as written, not libyaml's expanded "tag:yaml.org,2002:int". */
    const char *t = (const char *)tag, *std = "tag:yaml.org,2002:";
    int is_std = !strncmp(t, std, strlen(std));
    return fail_mark(rd, e->start_mark, "tags (%s%s) are not supported", is_std ? "!!" : "",
                     is_std ? t + strlen(std) : t);
  }
  return IMX_OK;
}

static const char *node_kind(yaml_event_type_t t) {
  switch (t) {
    case YAML_MAPPING_START_EVENT:
      return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
      return "a sequence";
    case YAML_SCALAR_EVENT:
      return "a scalar";
    default:
      return "something else";
  }
}

/* The current event is a plain null scalar ("model:" with nothing after it). */
static int event_is_null(const yaml_event_t *e) {
  return e->type == YAML_SCALAR_EVENT && e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
         is_null((const char *)e->data.scalar.value);
}

/* The text of the current scalar event; refuses embedded NULs, which a C
 * string would silently cut. */
static imx_err scalar_text(reader *rd, const char **text) {
  const yaml_event_t *e = &rd->ev;
  *text = (const char *)e->data.scalar.value;
  if (strlen(*text) != e->data.scalar.length)
    return fail_mark(rd, e->start_mark, "a NUL character is not allowed here");
  return IMX_OK;
}

static imx_err validate_one(imx_ctx *ctx, const imx_config *cfg);

/* ---- model.layers ---------------------------------------------------------
 * A list of mappings, one per layer, of settings that differ from the rest of
 * the file for that layer: `section.key: value` for the model, objective and
 * optimizer sections, or a bare model key (`units: 32`). Stored as the
 * assignment lines of imx_config_set, which checks each value. */

/* The sections an entry of model.layers may set. */
static int layer_section_ok(int s) { return s == SEC_MODEL || s == SEC_OBJECTIVE || s == SEC_OPTIMIZER; }

/* One assignment "section.key=value" of entry i into cfg, checked like --set
 * (the error names model.layers[i+1] at mark). */
static imx_err layer_assign(reader *rd, yaml_mark_t key_mark, yaml_mark_t mark, int i,
                            const char *name, const char *text, imx_config *cfg) {
  char full[96];
  const char *dot = strchr(name, '.');
  snprintf(full, sizeof full, "%s%.80s", dot ? "" : "model.", name);
  int s = -1;
  if (strchr(full, '.')) {
    char sec[96];
    snprintf(sec, sizeof sec, "%.*s", (int)(strchr(full, '.') - full), full);
    s = find_section(sec);
  }
  if (s < 0 || !layer_section_ok(s) || !strcmp(full, "model.layers"))
    return fail_mark(rd, key_mark, "model.layers[%d]: \"%.80s\": a layer sets keys of model, "
                     "objective and optimizer only (data, parallel, eval and output are the run's)",
                     i + 1, name);
  char line[IMX_OPTS_LEN];
  int len = snprintf(line, sizeof line, "%s=%s\n", full, text);
  size_t used = strlen(cfg->model.layer_set[i]);
  if (len >= (int)sizeof line || used + (size_t)len >= IMX_OPTS_LEN)
    return fail_mark(rd, mark, "model.layers[%d]: more than %d characters of settings", i + 1,
                     IMX_OPTS_LEN - 1);
  imx_config scratch = *cfg;
  line[len - 1] = '\0';
  if (imx_config_set(rd->ctx, &scratch, line)) {
    const char *why = rd->ctx->msg + strlen("--set ") + strlen(line);
    return fail_mark(rd, mark, "model.layers[%d]: %s", i + 1, *why == ':' ? why + 2 : rd->ctx->msg);
  }
  line[len - 1] = '\n';
  memcpy(cfg->model.layer_set[i] + used, line, (size_t)len + 1);
  return IMX_OK;
}

/* model.layers: the key has been read. */
static imx_err parse_layers(reader *rd, imx_config *cfg) {
  yaml_mark_t key_mark = rd->ev.start_mark;
  if (rd->layers_line)
    return fail_mark(rd, key_mark, "duplicate key model.layers (first given at line %d)",
                     rd->layers_line);
  rd->layers_line = (int)key_mark.line + 1;
  IMX_TRY(next_event(rd));
  cfg->model.nlayers = 0;
  memset(cfg->model.layer_set, 0, sizeof cfg->model.layer_set);
  if (event_is_null(&rd->ev)) return IMX_OK;
  if (rd->ev.type != YAML_SEQUENCE_START_EVENT)
    return fail_mark(rd, rd->ev.start_mark, "model.layers: expected a list of layers (- {...}), "
                     "got %s", node_kind(rd->ev.type));
  for (int i = 0;; i++) {
    IMX_TRY(next_event(rd));
    if (rd->ev.type == YAML_SEQUENCE_END_EVENT) return IMX_OK;
    if (i == IMX_MAX_LAYERS)
      return fail_mark(rd, rd->ev.start_mark, "model.layers: at most %d layers", IMX_MAX_LAYERS);
    cfg->model.nlayers = i + 1;
    if (event_is_null(&rd->ev)) continue; /* "- ~": the file's settings */
    if (rd->ev.type != YAML_MAPPING_START_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "model.layers[%d]: expected a mapping of key: "
                       "value, got %s", i + 1, node_kind(rd->ev.type));
    for (;;) {
      IMX_TRY(next_event(rd));
      if (rd->ev.type == YAML_MAPPING_END_EVENT) break;
      yaml_mark_t mark = rd->ev.start_mark;
      if (rd->ev.type != YAML_SCALAR_EVENT)
        return fail_mark(rd, mark, "model.layers[%d]: keys must be names, got %s", i + 1,
                         node_kind(rd->ev.type));
      const char *name;
      IMX_TRY(scalar_text(rd, &name));
      char key[96];
      snprintf(key, sizeof key, "%s", name);
      IMX_TRY(next_event(rd));
      if (rd->ev.type != YAML_SCALAR_EVENT)
        return fail_mark(rd, rd->ev.start_mark, "model.layers[%d].%s: expected a single value, "
                         "got %s", i + 1, key, node_kind(rd->ev.type));
      const char *text;
      IMX_TRY(scalar_text(rd, &text));
      IMX_TRY(layer_assign(rd, mark, rd->ev.start_mark, i, key, text, cfg));
    }
  }
}

imx_err imx_config_layer(imx_ctx *ctx, const imx_config *base, int index, imx_config *out) {
  *out = *base;
  if (index >= base->model.nlayers) {
    if (index == 0) return IMX_OK;
    return imx_fail(ctx, IMX_ERR_INTERNAL, "model.layers has %d entries, asked for %d",
                    base->model.nlayers, index + 1);
  }
  char lines[IMX_OPTS_LEN];
  snprintf(lines, sizeof lines, "%s", base->model.layer_set[index]);
  for (char *p = lines, *nl; *p; p = nl + 1) {
    nl = strchr(p, '\n');
    if (!nl) break;
    *nl = '\0';
    if (imx_config_set(ctx, out, p)) {
      char msg[IMX_MSG_LEN];
      snprintf(msg, sizeof msg, "%s", ctx->msg);
      return imx_fail(ctx, IMX_ERR_CONFIG, "model.layers[%d]: %s", index + 1, msg);
    }
  }
  /* the entry, not the file, is what failed: no file name in the message */
  out->file[0] = '\0';
  imx_err e = validate_one(ctx, out);
  memcpy(out->file, base->file, sizeof out->file);
  if (e) {
    char msg[IMX_MSG_LEN];
    snprintf(msg, sizeof msg, "%s", ctx->msg);
    return imx_fail(ctx, e, "model.layers[%d]: %s", index + 1, msg);
  }
  return IMX_OK;
}

/* One section's mapping: the MAPPING_START has been read. */
static imx_err parse_section(reader *rd, int s, imx_config *cfg) {
  for (;;) {
    IMX_TRY(next_event(rd));
    if (rd->ev.type == YAML_MAPPING_END_EVENT) return IMX_OK;
    if (rd->ev.type != YAML_SCALAR_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "keys in %s must be names, got %s", section_names[s],
                       node_kind(rd->ev.type));
    const char *name;
    IMX_TRY(scalar_text(rd, &name));
    if (s == SEC_MODEL && !strcmp(name, "layers")) {
      IMX_TRY(parse_layers(rd, cfg));
      continue;
    }
    int k = find_key(s, name);
    yaml_mark_t key_mark = rd->ev.start_mark;
    if (k < 0) {
      char hint[96];
      suggest(hint, sizeof hint, name, NULL, s);
      return fail_mark(rd, key_mark, "unknown key \"%.80s\" in %s%s", name, section_names[s], hint);
    }
    if (rd->key_line[k])
      return fail_mark(rd, key_mark, "duplicate key %s.%s (first given at line %d)",
                       section_names[s], keys[k].key, rd->key_line[k]);
    rd->key_line[k] = (int)key_mark.line + 1;

    IMX_TRY(next_event(rd));
    char full[96];
    full_name(&keys[k], full, sizeof full);
    if (rd->ev.type != YAML_SCALAR_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "%s: expected a single value, got %s", full,
                       node_kind(rd->ev.type));
    const char *text;
    IMX_TRY(scalar_text(rd, &text));
    value v;
    char err[512];
    int quoted = rd->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (parse_value(&keys[k], text, quoted, &v, err, sizeof err))
      return fail_mark(rd, rd->ev.start_mark, "%s: %s", full, err);
    store(&keys[k], &v, cfg);
  }
}

/* The top-level mapping of sections: the MAPPING_START has been read. */
static imx_err parse_sections(reader *rd, imx_config *cfg) {
  for (;;) {
    IMX_TRY(next_event(rd));
    if (rd->ev.type == YAML_MAPPING_END_EVENT) return IMX_OK;
    if (rd->ev.type != YAML_SCALAR_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "section names must be names, got %s",
                       node_kind(rd->ev.type));
    const char *name;
    IMX_TRY(scalar_text(rd, &name));
    int s = find_section(name);
    yaml_mark_t mark = rd->ev.start_mark;
    if (s < 0) {
      char hint[192], list[128];
      suggest(hint, sizeof hint, name, section_names, -1);
      if (!hint[0]) {
        join_names(list, sizeof list, section_names, "");
        snprintf(hint, sizeof hint, " (sections are %s)", list);
      }
      return fail_mark(rd, mark, "unknown section \"%.80s\"%s", name, hint);
    }
    if (rd->section_line[s])
      return fail_mark(rd, mark, "duplicate section %s (first given at line %d)", section_names[s],
                       rd->section_line[s]);
    rd->section_line[s] = (int)mark.line + 1;

    IMX_TRY(next_event(rd));
    if (event_is_null(&rd->ev)) continue; /* "model:" alone: an empty section */
    if (rd->ev.type != YAML_MAPPING_START_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "section %s must be a mapping of key: value, got %s",
                       section_names[s], node_kind(rd->ev.type));
    IMX_TRY(parse_section(rd, s, cfg));
  }
}

/* The whole stream: nothing (an empty file or only comments), or one document
 * that is empty or a mapping of sections. */
static imx_err parse_stream(reader *rd, imx_config *cfg) {
  IMX_TRY(next_event(rd)); /* STREAM-START */
  IMX_TRY(next_event(rd));
  if (rd->ev.type == YAML_STREAM_END_EVENT) return IMX_OK;
  IMX_TRY(next_event(rd)); /* after DOCUMENT-START: the root node */
  if (rd->ev.type == YAML_MAPPING_START_EVENT) {
    IMX_TRY(parse_sections(rd, cfg));
  } else if (!event_is_null(&rd->ev)) {
    return fail_mark(rd, rd->ev.start_mark,
                     "the top level must be a mapping of sections (data, model, ...), got %s",
                     node_kind(rd->ev.type));
  }
  IMX_TRY(next_event(rd)); /* DOCUMENT-END */
  IMX_TRY(next_event(rd));
  if (rd->ev.type != YAML_STREAM_END_EVENT)
    return fail_mark(rd, rd->ev.start_mark, "a config file holds one YAML document, found a second");
  return IMX_OK;
}

/* Read a YAML file into cfg. Local. cfg is changed only on success; on success
 * cfg->file = path. Errors: IMX_ERR_IO (cannot open or read), IMX_ERR_CONFIG
 * (syntax, unknown or duplicate key, bad value; message starts with
 * path:line:col), IMX_ERR_NOMEM. Cross-field checks are left to
 * imx_config_validate, since overrides may still complete the config. */
imx_err imx_config_load(imx_ctx *ctx, imx_config *cfg, const char *path) {
  if (!path) return imx_fail(ctx, IMX_ERR_INTERNAL, "imx_config_load: no path given");
  if (strlen(path) >= IMX_PATH_LEN)
    return imx_fail(ctx, IMX_ERR_CONFIG, "config path too long (%zu characters, at most %d)",
                    strlen(path), IMX_PATH_LEN - 1);
  reader *rd = calloc(1, sizeof *rd);
  if (!rd) return imx_fail(ctx, IMX_ERR_NOMEM, "config reader for %s", path);
  imx_err err;
  rd->ctx = ctx;
  rd->file = path;
  rd->fp = fopen(path, "rb");
  if (!rd->fp) {
    err = imx_fail(ctx, IMX_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
    goto out_free_rd;
  }
  if (!yaml_parser_initialize(&rd->parser)) {
    err = imx_fail(ctx, IMX_ERR_NOMEM, "YAML parser for %s", path);
    goto out_close;
  }
  yaml_parser_set_input_file(&rd->parser, rd->fp);

  /* Parse into a copy so that a failed load leaves cfg as it was. */
  imx_config next = *cfg;
  err = parse_stream(rd, &next);
  if (!err) {
    memset(next.file, 0, sizeof next.file);
    memcpy(next.file, path, strlen(path));
    *cfg = next;
  }

  if (rd->have_ev) yaml_event_delete(&rd->ev);
  yaml_parser_delete(&rd->parser);
out_close:
  fclose(rd->fp);
out_free_rd:
  free(rd);
  return err;
}

/* ---- overrides ----------------------------------------------------------- */

/* Copy s[0..n) without surrounding blanks into a new string (caller frees). */
static char *trimmed(const char *s, size_t n) {
  while (n && isspace((unsigned char)*s)) s++, n--;
  while (n && isspace((unsigned char)s[n - 1])) n--;
  char *t = malloc(n + 1);
  if (t) {
    memcpy(t, s, n);
    t[n] = '\0';
  }
  return t;
}

/* Apply "section.key=value" to cfg. Local. The value is plain YAML scalar
 * text taken literally (no quotes needed, none removed); it gets the same
 * checks as in a file. Errors: IMX_ERR_CONFIG with "--set ASSIGNMENT: ...",
 * IMX_ERR_NOMEM. */
imx_err imx_config_set(imx_ctx *ctx, imx_config *cfg, const char *assignment) {
  const char *eq = strchr(assignment, '=');
  if (!eq)
    return imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: expected section.key=value", assignment);
  char *name = trimmed(assignment, (size_t)(eq - assignment));
  char *text = trimmed(eq + 1, strlen(eq + 1));
  imx_err err = IMX_OK;
  if (!name || !text) {
    err = imx_fail(ctx, IMX_ERR_NOMEM, "--set %.200s", assignment);
    goto out_free;
  }

  char *dot = strchr(name, '.');
  if (!dot) {
    /* "lambda=0.5": point at the section if the key name is unique. */
    int found = -1, nfound = 0;
    for (int i = 0; i < NKEYS; i++)
      if (!strcmp(keys[i].key, name)) found = i, nfound++;
    char hint[128] = "";
    if (nfound == 1)
      snprintf(hint, sizeof hint, " (did you mean \"%s.%s\"?)", section_names[keys[found].section],
               keys[found].key);
    err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: expected section.key=value%s", assignment,
                   hint);
    goto out_free;
  }
  *dot = '\0';
  const char *key = dot + 1;
  int s = find_section(name);
  if (s < 0) {
    char hint[96];
    suggest(hint, sizeof hint, name, section_names, -1);
    err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: unknown section \"%.80s\"%s", assignment,
                   name, hint);
    goto out_free;
  }
  if (s == SEC_MODEL && !strcmp(key, "layers")) {
    /* A list is set in the file; --set can only remove it (back to one layer). */
    if (is_null(text) || !strcmp(text, "[]")) {
      cfg->model.nlayers = 0;
      memset(cfg->model.layer_set, 0, sizeof cfg->model.layer_set);
    } else {
      err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: model.layers is a list: give it in the "
                     "config file (--set model.layers=[] removes it)", assignment);
    }
    goto out_free;
  }
  int k = find_key(s, key);
  if (k < 0) {
    char hint[96];
    suggest(hint, sizeof hint, key, NULL, s);
    err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: unknown key \"%.80s\" in %s%s", assignment,
                   key, section_names[s], hint);
    goto out_free;
  }
  value v;
  char why[512], full[96];
  if (parse_value(&keys[k], text, 0, &v, why, sizeof why)) {
    err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: %s: %s", assignment,
                   full_name(&keys[k], full, sizeof full), why);
    goto out_free;
  }
  store(&keys[k], &v, cfg);

out_free:
  free(name);
  free(text);
  return err;
}

/* ---- validation ---------------------------------------------------------- */

/* The per-key checks of parsing, applied to the values in cfg; messages
 * start with prefix. */
static imx_err check_fields(imx_ctx *ctx, const imx_config *cfg, const char *prefix) {
  for (int i = 0; i < NKEYS; i++) {
    const key_row *r = &keys[i];
    value v;
    char full[96], buf[64], why[512];
    full_name(r, full, sizeof full);
    if (fetch(r, cfg, &v))
      return imx_fail(ctx, IMX_ERR_CONFIG, "%s%s: string is not terminated", prefix, full);
    if (check_value(r, &v, format_value(r, &v, buf, sizeof buf), why, sizeof why))
      return imx_fail(ctx, IMX_ERR_CONFIG, "%s%s: %s", prefix, full, why);
  }
  return IMX_OK;
}

/* Check every field against the table, then the rules that join fields.
 * Local. Messages start with the config file, if any, and name the keys.
 * Errors: IMX_ERR_CONFIG. */
imx_err imx_config_validate(imx_ctx *ctx, const imx_config *cfg) {
  IMX_TRY(validate_one(ctx, cfg));
  for (int i = 0; i < cfg->model.nlayers; i++) {
    imx_config c;
    IMX_TRY(imx_config_layer(ctx, cfg, i, &c));
  }
  return IMX_OK;
}

/* The checks of one layer's configuration (imx_config_validate without the
 * list of layers). */
static imx_err validate_one(imx_ctx *ctx, const imx_config *cfg) {
  /* "FILE: " or "" (defaults and overrides only). */
  char where[IMX_PATH_LEN + 2] = "";
  if (memchr(cfg->file, '\0', sizeof cfg->file) && cfg->file[0])
    snprintf(where, sizeof where, "%s: ", cfg->file);

  /* Per key: a struct may have been filled or edited in code, not parsed. */
  IMX_TRY(check_fields(ctx, cfg, where));

  const char *src = imx_source_name(cfg->data.source);
  int from_file = (cfg->data.source == IMX_SRC_NPY || cfg->data.source == IMX_SRC_IDX);
  if (from_file && !cfg->data.path[0])
    return imx_fail(ctx, IMX_ERR_CONFIG, "%sdata.source is %s but data.path is empty (which file?)",
                    where, src);
  if (cfg->model.activation == IMX_ACT_TOPK &&
      (cfg->model.topk < 1 || cfg->model.topk > cfg->model.units))
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%smodel.activation is topk but model.topk is %d: it needs 1 <= k <= "
                    "model.units = %d",
                    where, cfg->model.topk, cfg->model.units);
  if (cfg->objective.hsic_features % 2)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%sobjective.hsic_features is %d but the hsic features come in (cos, sin) "
                    "pairs: it needs an even number",
                    where, cfg->objective.hsic_features);
  if (cfg->data.source == IMX_SRC_GMM && cfg->data.components < 1)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%sdata.components is %d but data.source gmm needs at least 1", where,
                    cfg->data.components);
  return IMX_OK;
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
  err = (rc == MPI_SUCCESS) ? IMX_OK
                            : imx_fail_mpi(ctx, rc, "MPI_Bcast(config)", __func__, __FILE__, __LINE__);
  return imx_agree(ctx, err);
}

/* ---- writing ------------------------------------------------------------- */

static int emit_scalar(yaml_emitter_t *em, const char *text, yaml_scalar_style_t style) {
  yaml_event_t ev;
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1,
                                    style))
    return 0;
  return yaml_emitter_emit(em, &ev); /* takes the event, also on failure */
}

static int emit_mapping_start(yaml_emitter_t *em) {
  yaml_event_t ev;
  if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE)) return 0;
  return yaml_emitter_emit(em, &ev);
}

static int emit_mapping_end(yaml_emitter_t *em) {
  yaml_event_t ev;
  if (!yaml_mapping_end_event_initialize(&ev)) return 0;
  return yaml_emitter_emit(em, &ev);
}

/* All events of the resolved config; 0 on the first failure. */
/* model.layers, when given: one flow mapping per layer of its assignments. */
static int emit_layers(yaml_emitter_t *em, const imx_config *cfg) {
  yaml_event_t ev;
  if (!cfg->model.nlayers) return 1;
  if (!emit_scalar(em, "layers", YAML_PLAIN_SCALAR_STYLE) ||
      !yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
      !yaml_emitter_emit(em, &ev))
    return 0;
  for (int i = 0; i < cfg->model.nlayers; i++) {
    if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_MAPPING_STYLE) ||
        !yaml_emitter_emit(em, &ev))
      return 0;
    char lines[IMX_OPTS_LEN];
    snprintf(lines, sizeof lines, "%s", cfg->model.layer_set[i]);
    for (char *p = lines, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
      *nl = '\0';
      char *eq = strchr(p, '=');
      if (!eq) return 0;
      *eq = '\0';
      if (!emit_scalar(em, p, YAML_PLAIN_SCALAR_STYLE) ||
          !emit_scalar(em, eq + 1, is_null(eq + 1) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                                   : YAML_ANY_SCALAR_STYLE))
        return 0;
    }
    if (!emit_mapping_end(em)) return 0;
  }
  return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
}

static int emit_config(yaml_emitter_t *em, const imx_config *cfg) {
  yaml_event_t ev;
  if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || !yaml_emitter_emit(em, &ev))
    return 0;
  if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
      !yaml_emitter_emit(em, &ev))
    return 0;
  if (!emit_mapping_start(em)) return 0;
  for (int s = 0; s < NSECTIONS; s++) {
    if (!emit_scalar(em, section_names[s], YAML_PLAIN_SCALAR_STYLE) || !emit_mapping_start(em))
      return 0;
    for (int i = 0; i < NKEYS; i++) {
      const key_row *r = &keys[i];
      if (r->section != s) continue;
      value v;
      char buf[64];
      fetch(r, cfg, &v);
      const char *text = format_value(r, &v, buf, sizeof buf);
      /* Let the emitter choose (plain where it can), except that a string
       * which would read back as null ("", "~", "null") must be quoted. */
      int is_string = (r->type == K_STRING || r->type == K_NAME);
      yaml_scalar_style_t style = (is_string && is_null(text)) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                  : is_string                  ? YAML_ANY_SCALAR_STYLE
                                                               : YAML_PLAIN_SCALAR_STYLE;
      if (!emit_scalar(em, r->key, YAML_PLAIN_SCALAR_STYLE) || !emit_scalar(em, text, style))
        return 0;
    }
    if (s == SEC_MODEL && !emit_layers(em, cfg)) return 0;
    if (!emit_mapping_end(em)) return 0;
  }
  if (!emit_mapping_end(em)) return 0;
  if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(em, &ev)) return 0;
  if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev)) return 0;
  return yaml_emitter_flush(em);
}

/* Write the resolved configuration as YAML, every key, in table order; it
 * loads back to the same bytes (except cfg->file). Local. Errors: IMX_ERR_IO
 * (write failed), IMX_ERR_CONFIG (a field fails its per-key check),
 * IMX_ERR_INTERNAL (the emitter refused our events). */
imx_err imx_config_write(imx_ctx *ctx, const imx_config *cfg, FILE *f) {
  /* Refuse what would not load back (only a struct edited in code can hold it). */
  IMX_TRY(check_fields(ctx, cfg, ""));
  yaml_emitter_t em;
  if (!yaml_emitter_initialize(&em)) return imx_fail(ctx, IMX_ERR_NOMEM, "YAML emitter");
  yaml_emitter_set_output_file(&em, f);
  yaml_emitter_set_unicode(&em, 1);
  yaml_emitter_set_width(&em, -1); /* never fold long strings (optimizer.options) */
  imx_err err = IMX_OK;
  if (!emit_config(&em, cfg)) {
    if (em.error == YAML_WRITER_ERROR) /* errno is from the failed fwrite */
      err = imx_fail(ctx, IMX_ERR_IO, "cannot write the configuration: %s", strerror(errno));
    else if (em.error == YAML_MEMORY_ERROR)
      err = imx_fail(ctx, IMX_ERR_NOMEM, "YAML emitter");
    else
      err = imx_fail(ctx, IMX_ERR_INTERNAL, "YAML emitter: %s", em.problem ? em.problem : "?");
  }
  yaml_emitter_delete(&em);
  if (!err && (fflush(f) != 0 || ferror(f)))
    err = imx_fail(ctx, IMX_ERR_IO, "cannot write the configuration: %s", strerror(errno));
  return err;
}

/* ---- reference page ------------------------------------------------------ */

/* Text for a markdown table cell: '|' would end the cell. */
static void put_cell(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputc('\\', f);
    fputc(*s, f);
  }
}

static const char *type_text(const key_row *r) {
  switch (r->type) {
    case K_INT:
    case K_INT64:
      return "integer";
    case K_DOUBLE:
      return (r->flags & F_NULLABLE) ? "number or ~" : "number";
    case K_BOOL:
      return "bool";
    case K_STRING:
      return "string";
    case K_ENUM:
    case K_NAME:
      return "choice";
    case K_SEED:
      return "seed";
  }
  return "?";
}

/* Print every key of the table as a markdown page (docs/config.md). Local.
 * Deterministic: the same bytes on every call. */
void imx_config_reference(FILE *f) {
  fprintf(f, "# Configuration reference\n\n");
  fprintf(f,
          "Generated by `infomax config --reference` from the schema in src/config/config.c; do not "
          "edit by hand.\nA config file is YAML with the sections below, each a mapping of "
          "`key: value`; every key is optional and\nunknown keys are errors. "
          "`--set section.key=value` overrides one key after the file is read.\n");
  for (int s = 0; s < NSECTIONS; s++) {
    fprintf(f, "\n## %s\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n",
            section_names[s]);
    for (int i = 0; i < NKEYS; i++) {
      const key_row *r = &keys[i];
      if (r->section != s) continue;
      char allowed[512];
      switch (r->type) {
        case K_INT:
        case K_INT64:
        case K_DOUBLE:
          range_text(r, allowed, sizeof allowed);
          break;
        case K_BOOL:
          snprintf(allowed, sizeof allowed, "true, false (also yes/no, on/off)");
          break;
        case K_SEED:
          snprintf(allowed, sizeof allowed, "0 to %llu", ULLONG_MAX);
          break;
        case K_ENUM:
        case K_NAME:
          join_names(allowed, sizeof allowed, r->names, "`");
          break;
        case K_STRING:
          snprintf(allowed, sizeof allowed, "%s",
                   (r->flags & F_IDENT) ? "a name of a-z, 0-9, _"
                   : (r->flags & F_NONEMPTY) ? "non-empty text"
                                             : "any text");
          break;
      }
      fprintf(f, "| `%s` | %s | ", r->key, type_text(r));
      if (r->flags & F_NULLABLE)
        fputs("preset", f);
      else if (!r->def[0])
        fputs("`\"\"`", f);
      else
        fprintf(f, "`%s`", r->def);
      fputs(" | ", f);
      put_cell(f, allowed);
      fputs(" | ", f);
      put_cell(f, r->meaning);
      fputs(" |\n", f);
    }
    if (s == SEC_MODEL)
      fprintf(f, "| `layers` | list | `[]` | up to %d mappings of `key: value` | stacked layers, "
              "trained greedily: one entry per layer, each the settings of model, objective and "
              "optimizer that differ from the rest of the file (`units: 32`, `objective.preset: "
              "decorrelation`, `optimizer.max_it: 50`); [] = one layer |\n", IMX_MAX_LAYERS);
  }
}
