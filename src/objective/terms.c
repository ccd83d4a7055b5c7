/* terms: the table of objective terms and the table of presets (see
 * include/imx/objective.h and docs/objectives.md).
 *
 * A term is one row of imx_objective_terms, in the order of imx_term: its
 * kind decides which entry point evaluates it (moment terms in
 * imx_objective_moments and imx_objective_moments_dist, their formulas in
 * src/objective/terms_impl.h), and the predicates of objective.h read the
 * kinds and needs instead of listing terms. A preset is one row of
 * imx_objective_presets. imx_term_names and imx_preset_names (term.h, for
 * the config key table, which cannot read a struct table at compile time)
 * list the same names in the same order; test_terms checks it.
 */
#include <string.h>

#include "imx/objective.h"

const char *const imx_term_names[IMX_NTERMS] = {
    "logdet", "offdiag",    "variance", "gaussian_tc", "decorrelation", "weight_redundancy",
    "lse",    "supervised", "entropy",  "hsic"};
const char *const imx_preset_names[] = {"none",        "gaussian", "gaussian-tc", "decorrelation",
                                        "implicit-em", "ica",      "hsic",        NULL};

/* The doc lines are the config reference's ("weight of the <doc> term"). */
const imx_term_info imx_objective_terms[IMX_NTERMS] = {
    [IMX_TERM_LOGDET] = {"logdet", IMX_KIND_MOMENT, IMX_NEEDS_C | IMX_NEEDS_FACTOR,
                         "-log det(C + eps I)"},
    [IMX_TERM_OFFDIAG] = {"offdiag", IMX_KIND_MOMENT, IMX_NEEDS_C,
                          "sum of squared off-diagonal covariances"},
    [IMX_TERM_VARIANCE] = {"variance", IMX_KIND_MOMENT, IMX_NEEDS_DIAG, "-sum log(C_jj + eps)"},
    [IMX_TERM_GAUSSIAN_TC] = {"gaussian_tc", IMX_KIND_MOMENT,
                              IMX_NEEDS_C | IMX_NEEDS_DIAG | IMX_NEEDS_FACTOR,
                              "Gaussian total correlation"},
    [IMX_TERM_DECORRELATION] = {"decorrelation", IMX_KIND_MOMENT, IMX_NEEDS_C | IMX_NEEDS_DIAG,
                                "sum of squared off-diagonal correlations"},
    [IMX_TERM_WEIGHT_REDUNDANCY] = {"weight_redundancy", IMX_KIND_WEIGHTS, 0, "weight redundancy"},
    [IMX_TERM_LSE] = {"lse", IMX_KIND_PER_ROW, 0, "log-sum-exp"},
    [IMX_TERM_SUPERVISED] = {"supervised", IMX_KIND_PER_ROW, 0,
                             "cross-entropy of a linear softmax head on the outputs (alpha; needs "
                             "data.labels)"},
    [IMX_TERM_ENTROPY] = {"entropy", IMX_KIND_PER_ROW, 0, "log-cosh marginal entropy"},
    [IMX_TERM_HSIC] = {"hsic", IMX_KIND_PER_ROW, 0, "pairwise HSIC (random Fourier features)"},
};

#define LAMBDA IMX_PRESET_LAMBDA

const imx_preset imx_objective_presets[] = {
    {"none", "all weights 0 (set them explicitly)", {0}},
    {"gaussian",
     "-log det C + lambda sum_{j!=k} C_jk^2",
     {[IMX_TERM_LOGDET] = 1, [IMX_TERM_OFFDIAG] = LAMBDA}},
    {"gaussian-tc", "Gaussian total correlation -1/2 log det R", {[IMX_TERM_GAUSSIAN_TC] = 1}},
    {"decorrelation",
     "-sum log d_j + lambda sum_{j!=k} R_jk^2",
     {[IMX_TERM_VARIANCE] = 1, [IMX_TERM_DECORRELATION] = LAMBDA}},
    {"implicit-em",
     "lse + the decorrelation preset",
     {[IMX_TERM_LSE] = 1, [IMX_TERM_VARIANCE] = 1, [IMX_TERM_DECORRELATION] = LAMBDA}},
    {"ica",
     "sum_j H(a_j) - 1/2 log det C: ML ICA on whitened data (K = n)",
     {[IMX_TERM_ENTROPY] = 1, [IMX_TERM_LOGDET] = 0.5}},
    {"hsic",
     "-sum log C_jj + lambda sum_{j<k} HSIC(a_j, a_k)",
     {[IMX_TERM_VARIANCE] = 1, [IMX_TERM_HSIC] = LAMBDA}},
    {NULL, NULL, {0}},
};

const imx_preset *imx_objective_preset(const char *name) {
  for (const imx_preset *p = imx_objective_presets; p->name; p++)
    if (!strcmp(p->name, name)) return p;
  return NULL;
}
