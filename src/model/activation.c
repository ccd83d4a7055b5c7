/* activation: phi and its backward pass (see include/imx/activation.h and
 * docs/objectives.md, "Activations"). One row of `acts` per activation, in the
 * order of imx_activation: a new activation is one row here, its three
 * functions and its name in include/imx/activation.h. */
#include "imx/activation.h"

#include <math.h>
#include <string.h>

#include "imx/select.h"

/* softmax(-z/tau) over the k smallest z; ties at the k-th value go to the
 * lower indices. The others are set to 0. */
static void topk_row(int K, int k, double tau, double *z, double *work) {
  memcpy(work, z, (size_t)K * sizeof *z);
  double t = imx_select_kth(work, K, k - 1);
  int below = 0;
  for (int j = 0; j < K; j++) below += z[j] < t;
  int ties = k - below; /* entries equal to t that are kept, lowest index first */
  double zmin = z[0], s = 0;
  for (int j = 1; j < K; j++) zmin = z[j] < zmin ? z[j] : zmin;
  for (int j = 0; j < K; j++) {
    int keep = z[j] < t || (z[j] == t && ties-- > 0);
    s += (z[j] = keep ? exp(-(z[j] - zmin) / tau) : 0);
  }
  for (int j = 0; j < K; j++) z[j] /= s;
}

/* sparsemax(u), u = -z/tau: p = max(u - t, 0) with sum p = 1. t is found
 * by Michelot's iteration: t = (sum_{u_j > t} u_j - 1) / |{u_j > t}|, starting
 * from all entries; t only grows and the set only shrinks, so it ends after
 * at most K rounds (a few in practice) at the exact threshold. Working on
 * -z/tau keeps the sums in the row's own order: no sort, no scratch. */
static void sparsemax_row(int K, double tau, double *z) {
  double zmin = z[0];
  for (int j = 1; j < K; j++) zmin = z[j] < zmin ? z[j] : zmin;
  /* u_j = -(z_j - zmin)/tau <= 0 with max 0: shift-invariant, no overflow. */
  for (int j = 0; j < K; j++) z[j] = -(z[j] - zmin) / tau;
  double t = -INFINITY;
  for (int round = 0; round <= K; round++) {
    double s = 0;
    int c = 0;
    for (int j = 0; j < K; j++)
      if (z[j] > t) s += z[j], c++;
    double tn = (s - 1) / c;
    if (!(tn > t)) break;
    t = tn;
  }
  for (int j = 0; j < K; j++) z[j] = z[j] > t ? z[j] - t : 0;
}

/* ---- forward: a = phi(z) in place on rows x K ---- */

static void identity_fwd(const imx_act *a, int64_t rows, double *Z, double *work) {
  (void)a, (void)rows, (void)Z, (void)work;
}

static void relu_fwd(const imx_act *a, int64_t rows, double *Z, double *work) {
  (void)work;
  for (int64_t i = 0; i < rows * a->K; i++) Z[i] = Z[i] > 0 ? Z[i] : 0;
}

static void softmax_fwd(const imx_act *a, int64_t rows, double *Z, double *work) {
  (void)work;
  int K = a->K;
  for (int64_t i = 0; i < rows; i++) {
    double *z = Z + i * K, zmin = z[0], s = 0;
    for (int k = 1; k < K; k++) zmin = z[k] < zmin ? z[k] : zmin;
    for (int k = 0; k < K; k++) s += (z[k] = exp(-(z[k] - zmin) / a->tau));
    for (int k = 0; k < K; k++) z[k] /= s;
  }
}

static void topk_fwd(const imx_act *a, int64_t rows, double *Z, double *work) {
  for (int64_t i = 0; i < rows; i++) topk_row(a->K, a->k, a->tau, Z + i * a->K, work);
}

static void sparsemax_fwd(const imx_act *a, int64_t rows, double *Z, double *work) {
  (void)work;
  for (int64_t i = 0; i < rows; i++) sparsemax_row(a->K, a->tau, Z + i * a->K);
}

/* ---- backward: g <- dL/dz from g = dL/da, A = phi(z) ---- */

static void identity_bwd(const imx_act *a, int64_t rows, const double *A, double *g) {
  (void)a, (void)rows, (void)A, (void)g;
}

static void relu_bwd(const imx_act *a, int64_t rows, const double *A, double *g) {
  for (int64_t i = 0; i < rows * a->K; i++) g[i] = A[i] > 0 ? g[i] : 0;
}

/* The implicit-EM gradient: dL/dz = -(1/tau) r * (g - <r, g>). For topk the
 * same formula holds on the kept set S (a softmax over S) and gives 0 outside
 * it, where r = 0. */
static void softmax_bwd(const imx_act *a, int64_t rows, const double *A, double *g) {
  int K = a->K;
  for (int64_t i = 0; i < rows; i++) {
    const double *r = A + i * K;
    double *gi = g + i * K, rg = 0;
    for (int k = 0; k < K; k++) rg += r[k] * gi[k];
    for (int k = 0; k < K; k++) gi[k] = -r[k] * (gi[k] - rg) / a->tau;
  }
}

/* dp/du = diag(s) - s s^T / |S| on the support S (s its indicator), and
 * du/dz = -1/tau: dL/dz_k = -(1/tau) s_k (g_k - mean_{j in S} g_j). */
static void sparsemax_bwd(const imx_act *a, int64_t rows, const double *A, double *g) {
  int K = a->K;
  for (int64_t i = 0; i < rows; i++) {
    const double *p = A + i * K;
    double *gi = g + i * K, s = 0;
    int c = 0;
    for (int k = 0; k < K; k++)
      if (p[k] > 0) s += gi[k], c++;
    double mean = c ? s / c : 0;
    for (int k = 0; k < K; k++) gi[k] = p[k] > 0 ? -(gi[k] - mean) / a->tau : 0;
  }
}

/* ---- forward in float32 (parallel.precision: single) ---- */

/* The float rows of the forward functions above, with the same steps in
 * float arithmetic (expf, float sums). topk selects its k-th value in double
 * on a copy of the row (exact: every float is a double). */
static void identity_fwd_f(const imx_act *a, int64_t rows, float *Z, double *work) {
  (void)a, (void)rows, (void)Z, (void)work;
}

static void relu_fwd_f(const imx_act *a, int64_t rows, float *Z, double *work) {
  (void)work;
  for (int64_t i = 0; i < rows * a->K; i++) Z[i] = Z[i] > 0 ? Z[i] : 0;
}

static void softmax_fwd_f(const imx_act *a, int64_t rows, float *Z, double *work) {
  (void)work;
  int K = a->K;
  float tau = (float)a->tau;
  for (int64_t i = 0; i < rows; i++) {
    float *z = Z + i * K, zmin = z[0], s = 0;
    for (int k = 1; k < K; k++) zmin = z[k] < zmin ? z[k] : zmin;
    for (int k = 0; k < K; k++) s += (z[k] = expf(-(z[k] - zmin) / tau));
    for (int k = 0; k < K; k++) z[k] /= s;
  }
}

static void topk_fwd_f(const imx_act *a, int64_t rows, float *Z, double *work) {
  int K = a->K, k = a->k;
  float tau = (float)a->tau;
  for (int64_t i = 0; i < rows; i++) {
    float *z = Z + i * K;
    for (int j = 0; j < K; j++) work[j] = z[j];
    double t = imx_select_kth(work, K, k - 1);
    int below = 0;
    for (int j = 0; j < K; j++) below += z[j] < t;
    int ties = k - below;
    float zmin = z[0], s = 0;
    for (int j = 1; j < K; j++) zmin = z[j] < zmin ? z[j] : zmin;
    for (int j = 0; j < K; j++) {
      int keep = z[j] < t || (z[j] == t && ties-- > 0);
      s += (z[j] = keep ? expf(-(z[j] - zmin) / tau) : 0);
    }
    for (int j = 0; j < K; j++) z[j] /= s;
  }
}

static void sparsemax_fwd_f(const imx_act *a, int64_t rows, float *Z, double *work) {
  (void)work;
  int K = a->K;
  float tau = (float)a->tau;
  for (int64_t i = 0; i < rows; i++) {
    float *z = Z + i * K, zmin = z[0];
    for (int j = 1; j < K; j++) zmin = z[j] < zmin ? z[j] : zmin;
    for (int j = 0; j < K; j++) z[j] = -(z[j] - zmin) / tau;
    float t = -INFINITY;
    for (int round = 0; round <= K; round++) {
      float s = 0;
      int c = 0;
      for (int j = 0; j < K; j++)
        if (z[j] > t) s += z[j], c++;
      float tn = (s - 1) / (float)c;
      if (!(tn > t)) break;
      t = tn;
    }
    for (int j = 0; j < K; j++) z[j] = z[j] > t ? z[j] - t : 0;
  }
}

/* ---- the table ---- */

typedef struct act_row {
  int simplex; /* rows of phi sum to 1 */
  int sparse;  /* exact zeros by construction */
  int work;    /* needs K doubles of scratch in the forward pass */
  void (*forward)(const imx_act *a, int64_t rows, double *Z, double *work);
  void (*backward)(const imx_act *a, int64_t rows, const double *A, double *g);
  void (*forward_f)(const imx_act *a, int64_t rows, float *Z, double *work); /* in float32 */
} act_row;

static const act_row acts[] = {
    [IMX_ACT_IDENTITY] = {0, 0, 0, identity_fwd, identity_bwd, identity_fwd_f},
    [IMX_ACT_RELU] = {0, 0, 0, relu_fwd, relu_bwd, relu_fwd_f},
    [IMX_ACT_SOFTMAX] = {1, 0, 0, softmax_fwd, softmax_bwd, softmax_fwd_f},
    [IMX_ACT_TOPK] = {1, 1, 1, topk_fwd, softmax_bwd, topk_fwd_f},
    [IMX_ACT_SPARSEMAX] = {1, 1, 0, sparsemax_fwd, sparsemax_bwd, sparsemax_fwd_f},
};
_Static_assert(sizeof acts / sizeof acts[0] == sizeof imx_activation_names / sizeof(char *) - 1,
               "one row of acts per name in imx_activation_names");

int imx_activation_simplex(imx_activation a) { return acts[a].simplex; }

int imx_activation_sparse(imx_activation a) { return acts[a].sparse; }

int imx_act_work(const imx_act *a) { return acts[a->kind].work ? a->K : 0; }

void imx_act_forward(const imx_act *a, int64_t rows, double *Z, double *work) {
  acts[a->kind].forward(a, rows, Z, work);
}

void imx_act_forward_f(const imx_act *a, int64_t rows, float *Z, double *work) {
  acts[a->kind].forward_f(a, rows, Z, work);
}

void imx_act_backward(const imx_act *a, int64_t rows, const double *A, double *g) {
  acts[a->kind].backward(a, rows, A, g);
}
