/* objective: the InfoMax terms, their presets and their gradients.
 *
 * Moment terms are functions of the output covariance C (K x K); they return
 * their values and G = dL/dC (the weighted sum over terms, symmetric). The
 * per-sample term lse and the weight-only term weight_redundancy have their
 * own entry points. Everything here is Local and deterministic: replicated
 * inputs give the same bits on every rank.
 */
#ifndef IMX_OBJECTIVE_H
#define IMX_OBJECTIVE_H

#include "imx/ctx.h"
#include "imx/dmat.h"
#include "imx/linalg.h"
#include "imx/names.h"
#include "imx/rsum.h"
#include "imx/term.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* What a term is computed from: decides the path, the buffers and the backend's
 * entry point that evaluate it. */
typedef enum {
  IMX_KIND_MOMENT = 0, /* a function of the output covariance C: imx_objective_moments(_dist) */
  IMX_KIND_PER_ROW,    /* needs the outputs row by row (the data path) */
  IMX_KIND_WEIGHTS     /* a function of W alone */
} imx_term_kind;

/* What a moment term reads (bits of imx_term_info.needs). */
enum {
  IMX_NEEDS_C = 1u << 0,     /* off-diagonal entries of C */
  IMX_NEEDS_DIAG = 1u << 1,  /* d_j = C_jj + eps (refuses a dead unit) */
  IMX_NEEDS_FACTOR = 1u << 2 /* log det and inverse of a K x K matrix M */
};

/* One row of the terms table, in the order of imx_term. */
typedef struct imx_term_info {
  const char *name; /* the weight key objective.<name>; equals imx_term_names[t] */
  imx_term_kind kind;
  unsigned needs;  /* IMX_NEEDS_* (moment terms) */
  const char *doc; /* one line */
} imx_term_info;

/* The terms table (src/objective/terms.c): imx_objective_terms[t] describes term t. */
extern const imx_term_info imx_objective_terms[IMX_NTERMS];

/* A weight of a preset row that means "objective.lambda". */
#define IMX_PRESET_LAMBDA (-1.0)

/* One row of the presets table. */
typedef struct imx_preset {
  const char *name;     /* objective.preset; imx_preset_names lists the rows in order */
  const char *doc;      /* one line */
  double w[IMX_NTERMS]; /* default weight of each term (IMX_PRESET_LAMBDA: objective.lambda) */
} imx_preset;

/* The presets table (src/objective/terms.c), terminated by a row with name NULL. */
extern const imx_preset imx_objective_presets[];

/* The preset row called name, or NULL. Local. */
const imx_preset *imx_objective_preset(const char *name);

/* objective.on: what the InfoMax terms (the moment terms, entropy, hsic)
 * read: the activation a = phi(z) or the pre-activation z = W x + b. lse and
 * supervised read the activation either way. */
typedef enum { IMX_ON_ACTIVATION = 0, IMX_ON_Z } imx_objective_on;
/* The names of imx_objective_on, in its order (config accepts and writes these). */
static const char *const imx_objective_on_names[] = {"activation", "z", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_objective_on_name(imx_objective_on o) {
  return imx_name_of(imx_objective_on_names, (int)o);
}

typedef struct imx_objective {
  double w[IMX_NTERMS]; /* resolved weight of each term (0 = off) */
  double eps;           /* ridge added to C and to diag C */
  int null_vector;      /* add 1 1^T / K before log det (softmax responsibilities) */
  imx_objective_on on;  /* what the moment terms, entropy and hsic read */
} imx_objective;

/* Resolve the preset and the explicit weights of cfg->objective into obj and
 * check the combination against the model (e.g. log det of identity outputs
 * with K > n). n: input dimension, N: samples. Local. */
imx_err imx_objective_resolve(imx_ctx *ctx, const imx_config *cfg, int n, long long N,
                              imx_objective *obj);

/* Does any term need the outputs row by row (lse, entropy, hsic, supervised), so that the
 * moments path does not apply? Local. */
int imx_objective_per_sample(const imx_objective *obj);

/* Does any term read the activation phi(z) even with objective.on: z (lse,
 * supervised)? Local. */
int imx_objective_reads_activation(const imx_objective *obj);

/* Does any term need C (a moment term)? Local. */
int imx_objective_needs_cov(const imx_objective *obj);

/* Does any term factor a K x K matrix (IMX_NEEDS_FACTOR: logdet, gaussian_tc)? Local. */
int imx_objective_needs_factor(const imx_objective *obj);

/* Does any term with a nonzero weight have this kind? Local. */
int imx_objective_has_kind(const imx_objective *obj, imx_term_kind kind);

/* Moment terms: terms[t] receives the unweighted value of every moment term t
 * with a nonzero weight (others untouched); *value the weighted sum; G (K x K)
 * the weighted dL/dC. work: K^2 + 3 K doubles of scratch. Errors: not SPD
 * (IMX_ERR_NUMERIC, with pivot and hint), zero variance in decorrelation. */
imx_err imx_objective_moments(imx_ctx *ctx, const imx_objective *obj, int K, const double *C,
                              double *G, double *work, double terms[IMX_NTERMS], double *value);

/* The moment terms on a block-cyclic C (the scalapack backend;
 * src/objective/objective_dist.c): the same terms and errors as imx_objective_moments,
 * from C's lower tiles and its diagonal diagC (K, replicated, as from
 * imx_dmat_diag). G (lower tiles, same layout as C) receives the weighted
 * dL/dC. work: a third matrix of the same layout, needed (else NULL) only
 * when logdet and gaussian_tc are both on with softmax outputs (they factor
 * different matrices; imx_objective_dist_needs_work). inv: the scratch of
 * the reproducible factorization and inverse (imx_linalg_dist_logdet_inverse;
 * NULL: ScaLAPACK's pdpotrf and pdpotri). Scalar and per-unit
 * sums are exact in reproducible `mode` (one partial per tile), so *value
 * and terms are the same bits on every rank and for any grid. Collective;
 * all ranks return the same status. */
imx_err imx_objective_moments_dist(imx_ctx *ctx, const imx_objective *obj, imx_reduction mode,
                                   const imx_dmat *C, const double *diagC, imx_dmat *G,
                                   imx_dmat *work, imx_dinv *inv, double terms[IMX_NTERMS],
                                   double *value);

/* imx_objective_moments_dist with logdet's M only factored: its Cholesky
 * factor L into L's lower tiles (the inverse is not formed) and G receives
 * dL/dC without logdet's -w M^{-1}: the caller applies that part to the rows
 * by triangular solves (imx_dmoments_solve_rows). G is left untouched when
 * no other term writes it (imx_objective_dist_rest), and L may then be G.
 * Needs logdet on and gaussian_tc off (else IMX_ERR_INTERNAL). Collective;
 * all ranks return the same status. */
imx_err imx_objective_moments_dist_factor(imx_ctx *ctx, const imx_objective *obj,
                                          imx_reduction mode, const imx_dmat *C,
                                          const double *diagC, imx_dmat *G, imx_dmat *L,
                                          imx_dinv *inv, double terms[IMX_NTERMS], double *value);

/* Does G hold a moment term other than logdet (gaussian_tc, offdiag,
 * variance, decorrelation)? Local. */
int imx_objective_dist_rest(const imx_objective *obj);

/* The rule of the data path (N rows in all, K units): apply logdet's
 * M^{-1} to the rows by triangular solves with its Cholesky factor instead
 * of forming it? Yes when logdet is on, gaussian_tc off (it needs M^{-1}
 * itself), and either logdet is G's only term (the solves, 2 N K^2 flops,
 * replace the product D G) or 3 N < K (the solves' 2 N K^2 beside the
 * product with the other terms cost less than the 2/3 K^3 of the inverse).
 * Depends on N and K only, so every P takes the same path. Local. */
int imx_objective_dist_solves(const imx_objective *obj, int64_t N, int K);

/* Does imx_objective_moments_dist need its work matrix for obj? Local. */
int imx_objective_dist_needs_work(const imx_objective *obj);

/* max_{j != k} |C_jk| / sqrt(C_jj C_kk) (0 where a variance is 0) of a
 * block-cyclic C with diagonal diagC. Collective. */
imx_err imx_objective_dist_max_corr(imx_ctx *ctx, const imx_dmat *C, const double *diagC,
                                    double *rmax);

/* weight_redundancy = ||W W^T - I||_F^2 for W (K x n); adds weight * dL/dW to
 * gW and returns the unweighted value. work: K^2 doubles. */
double imx_objective_weight_redundancy(const imx_objective *obj, int K, int n, const double *W,
                                       double *gW, double *work);

/* The same, forming W W^T - I `rows` rows at a time: work is rows x K
 * doubles instead of K^2 (the scalapack backend never holds K x K). Local. */
double imx_objective_weight_redundancy_rows(const imx_objective *obj, int K, int n, const double *W,
                                            double *gW, double *work, int rows);

/* lse of one sample: -log sum_k exp(-a_k), the negative log-likelihood of a
 * mixture with energies a_k (bounded below by -log K for a >= 0); if g != NULL,
 * g_k += scale * dlse/da_k = scale * r_k with r = softmax(-a), the
 * responsibilities: the implicit-EM gradient. */
double imx_objective_lse_row(int K, const double *a, double *g, double scale);

#endif
