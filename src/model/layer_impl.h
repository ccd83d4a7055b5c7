/* layer_impl: the layer's private struct and its linear-algebra backends'
 * method table, shared by the common core (layer.c) and the two backends
 * (layer_replicated.c: replicated LAPACK; layer_scalapack.c: block-cyclic
 * ScaLAPACK). Not part of the public API (include/imx/layer.h).
 *
 * The core holds everything both backends share: the weights, the forward
 * pass, the centered outputs D, the per-row terms (lse, supervised, entropy,
 * hsic), the backward loop over chunks of rows and the reductions of dL/dW
 * and dL/db. A backend holds C, G and the moment terms on them, in a state of
 * its own (l->impl) that only its file sees. The backend is chosen once, at
 * creation; afterwards the core reaches it only through l->ops.
 */
#ifndef IMX_LAYER_IMPL_H
#define IMX_LAYER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "imx/activation.h"
#include "imx/layer.h"
#include "imx/objective_entropy.h"
#include "imx/objective_hsic.h"
#include "imx/rsum.h"
#include "imx/supervised.h"

typedef struct imx_layer_ops imx_layer_ops;

/* What the objective leaves free in the biases, and how the layer pins it
 * (docs/objectives.md, "The gauge of the biases"). */
typedef enum {
  IMX_GAUGE_NONE = 0, /* the objective sees every b_j */
  IMX_GAUGE_MEAN,     /* only b - mean(b) is seen: evaluate there, project dL/db onto sum 0 */
  IMX_GAUGE_FIXED     /* no term depends on b: dL/db = 0, b keeps its initial value */
} imx_gauge;

struct imx_layer {
  int K, n;              /* units, inputs */
  int64_t N, nloc, row0; /* global and local rows, first global row here */
  int block;             /* B */
  imx_activation act;
  double tau;          /* softmax temperature */
  imx_act phi;         /* the activation (kind, tau, topk's k) */
  double *actwork;     /* its scratch (imx_act_work doubles) */
  imx_supervised *sup; /* the supervised term's head (NULL when its weight is 0) */
  const double *head;  /* its parameters in the theta being evaluated */
  double *ghead;       /* its gradient */
  int sparse;          /* use the zeros of dZ in dL/dW (topk, sparsemax; parallel.sparse) */
  int wn;              /* weight normalization */
  int extended;        /* objective.extended_every > 0: the entropy term's switch */
  imx_reduction mode;
  imx_objective obj;
  const double *X; /* nloc x n, borrowed from the data set (or the batch's rows) */
  /* Mini-batch evaluation (imx_layer_use_blocks): while a subset of the blocks
   * is in use, X, nloc and N describe it and these keep the whole data set. */
  const double *X_all;
  int64_t nloc_all, N_all;
  double *Xb;     /* the batch's local rows when they are not contiguous */
  size_t Xb_rows; /* rows Xb holds room for */
  int on_batch;   /* a subset of the blocks is in use */
  /* C blended across mini-batch steps (imx_layer_set_blend; the replicated
   * backend applies it): a batch's C = blend C_run + (1 - blend) C_batch. */
  double blend;      /* 0: off */
  double *Crun;      /* K x K: the last committed step's C */
  double *Cnext;     /* K x K: the C of the last evaluation on a batch */
  int blend_have;    /* Crun holds a step's C (else a batch's C is its own) */
  int blend_pending; /* Cnext is waiting for imx_layer_blend_commit */
  int single;        /* parallel.precision: single: the row-block products in float32 */
  float *Xf;         /* nloc x n: X rounded to float (single) */
  float *Wf, *bf;    /* K x n, K: W and b rounded to float, per evaluation (single) */
  float *Zf;         /* chunk x K: one chunk of z, then phi(z), in float (single) */
  double *xmax;      /* n: global column maxima of |X| */
  int moments_ok;    /* the moments path applies */
  int moments_path;  /* evaluate from S_x instead of the data */
  int cov_from_Sx; /* data path, identity units: the backend forms C = W S_x W^T, not from the rows */
  double *Sx;      /* n x n input covariance (moments path, cov_from_Sx) */
  double *mux;     /* n: mean of the inputs (with S_x) */
  double *W, *norms, *b; /* effective weights, ||v_j||, biases */
  imx_gauge gauge;       /* the free part of b and how it is pinned */
  int on_z;  /* the InfoMax terms read z (objective.on: z, an activation other than identity) */
  double *A; /* nloc x K: what the InfoMax terms read (data path): phi(z), or z when on_z */
  double *P; /* nloc x K: phi(z) for lse and supervised when on_z (else NULL: they read A) */
  double *H; /* chunk x K: their dL/da, then dL/dz, of one chunk of rows (when P) */
  double *D; /* nloc x K: centered A, then dL/dZ unless the backend keeps its own */
  double *m; /* K: means of the outputs */
  /* K each: global column maxima of |A|, |D| and |dL/dZ| (reproducible mode,
   * the bounds of their sums), taken in the loops that write them. */
  double *amax, *dmax, *zmax;
  double *gW, *gb;         /* K x n, K: dL/dW, dL/db */
  double *rowv;            /* nloc per-sample values (lse) */
  imx_rsum *rK, *rKn, *r1; /* sums of K, K x n and 1 column(s) */
  imx_entropy *ent;        /* the entropy term's sums (NULL when its weight is 0) */
  imx_hsic *hsic;          /* the hsic term's features and sums (NULL when its weight is 0) */
  /* The linear-algebra backend (include/imx/linalg.h). */
  imx_linalg_kind linalg;   /* which, for its name */
  char linalg_why[400];     /* why it was chosen, for the log */
  const imx_layer_ops *ops; /* its methods */
  void *impl;               /* its state (a struct of its own file), NULL until ops->create */
  size_t bytes;             /* bytes of the buffers above and the backend's on this rank */
  double bytes_max;         /* the largest bytes over the ranks (at creation) */
};

/* A backend's methods. C and G belong to the backend; "the moment terms" are
 * the terms that are functions of C (imx_objective_needs_cov). */
struct imx_layer_ops {
  /* Bytes per rank of the layer with this backend on P ranks: common (what
   * every backend allocates) plus its own, for a moments path or not. Local. */
  double (*estimate)(const imx_config *cfg, const imx_layer *l, int P, int moments, double common);
  /* Create l->impl (buffers, grid). Collective (agreed). */
  imx_err (*create)(imx_ctx *ctx, const imx_config *cfg, imx_layer *l);
  /* Free l->impl (NULL accepted). Collective (the grid). */
  void (*destroy)(imx_layer *l);
  /* Prepare for the data path (moments = 0) or the moments path: buffers of
   * its own, l->cov_from_Sx. Local; the caller agrees. */
  imx_err (*set_path)(imx_ctx *ctx, imx_layer *l, int moments);
  /* imx_layer_set_panels. Collective. */
  imx_err (*set_panels)(imx_ctx *ctx, imx_layer *l, int panel_tiles, int group_tiles);
  /* Data path, after the core's centered outputs D: C (from D or S_x), then,
   * with moment terms, their unweighted values into terms, their weighted sum
   * into *value and G. Collective. */
  imx_err (*data_moments)(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value);
  /* Data path backward, before the core's loop over chunks: *dZ receives
   * where dL/dZ of the local rows goes (nloc x K). A backend that applies G
   * to all rows at once writes the moment terms' dL/dA there. Collective. */
  imx_err (*grad_begin)(imx_ctx *ctx, imx_layer *l, double **dZ);
  /* The moment terms' dL/dA = (2/N) D G for local rows r0 .. r0 + c - 1 (0
   * without moment terms): returns where it is (c x K), the backend's scratch
   * or the chunk's rows of dZ. Local. */
  double *(*grad_rows)(imx_layer *l, int64_t r0, int c);
  /* After the core reduced dL/dW from dZ: the moment terms' part of dL/dW
   * that does not pass through the rows (C from S_x). Local. */
  void (*grad_end)(imx_layer *l);
  /* The moments path: C = W S_x W^T, the moment terms (as data_moments) and,
   * if want_grad, dL/dW = 2 G W S_x into l->gW. Collective. */
  imx_err (*eval_moments)(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value,
                          int want_grad);
  /* diag C of the last evaluation: entry j at [j * *stride]. Local. */
  const double *(*diag)(const imx_layer *l, size_t *stride);
  /* max_{j != k} |C_jk| / sqrt(C_jj C_kk) of the last evaluation. Local. */
  double (*max_corr)(const imx_layer *l);
  /* weight_redundancy of l->W: adds its weighted dL/dW to l->gW and returns
   * its unweighted value. Local. */
  double (*weight_redundancy)(imx_layer *l);
  /* imx_layer_describe_linalg and imx_layer_grid. Local. */
  void (*describe)(const imx_layer *l, char *buf, size_t len);
  void (*grid)(const imx_layer *l, int *pr, int *pc, int *nb);
  /* Why the ICA preconditioner's statistics are not available with this
   * backend (NULL: they are). */
  const char *no_precond;
};

extern const imx_layer_ops imx_layer_replicated_ops; /* layer_replicated.c */
extern const imx_layer_ops imx_layer_scalapack_ops;  /* layer_scalapack.c */

/* Is what the InfoMax terms read linear in x (identity units, or
 * objective.on: z), so that its covariance is W S_x W^T? Local. */
static inline int imx_layer_linear_stat(const imx_layer *l) {
  return l->act == IMX_ACT_IDENTITY || l->on_z;
}

/* Rows per BLAS call in the data path. Local. */
int64_t imx_layer_chunk(const imx_layer *l);

/* malloc of count doubles (at least one), counted in l->bytes; sets *bad
 * on failure. Local. */
void *imx_layer_alloc(imx_layer *l, size_t count, int *bad);

/* malloc of count floats (at least one), counted in l->bytes; sets *bad on
 * failure. Local. */
float *imx_layer_alloc_float(imx_layer *l, size_t count, int *bad);

#endif
