/* test_metrics: every measure of include/imx/metrics.h on data where the
 * answer is known in closed form, at any number of ranks:
 *   1. K identical prototypes: effective rank 1, max and mean |corr| 1, TC
 *      infinite (R singular), 2 regions, ||W W^T - I||_F = sqrt(K(K-1)), one
 *      winner (ties go to the lowest index);
 *   2. orthogonal prototypes on whitened data: C = I, so TC 0, effective rank
 *      K, correlations 0, W W^T = I; the unmixing of the true mixing has
 *      Amari distance 0, a permuted and scaled one too;
 *   3. the Amari index of hand-made matrices (0, 1/2, 1);
 *   4. hand-made sign patterns: 37 distinct patterns of K = 70, 130 and 1
 *      bits over 1000 rows, the largest region, z = 0 counted as "not > 0";
 *   5. hand-made softmax outputs with 3 equally frequent winners and one
 *      constant unit: 1 dead unit, winner entropy log2 3, |corr| 1/2, TC
 *      -log 1.5 (the null direction left out), effective rank 2;
 *   6. the measures of a layer on all ranks have the same bits as on one
 *      rank alone (reproducible reductions);
 *   7. hand-made signs: units positive on 1/2, 1/4 and none of the rows have
 *      sign entropies 1, H(1/4) and 0 bits (one constant-sign unit); random
 *      regions are the regions of the random baseline's rows at the offsets
 *      b (1 region for offsets far above the data, not measured without X).
 *      Collective. */
#include "imx/baseline.h"
#include "imx/layer.h"
#include "imx/linalg.h"
#include "imx/metrics.h"
#include "imx/preprocess.h"
#include "imx/rng.h"

#include "testing.h"

static imx_ctx ctx;

static imx_data *load(imx_ctx *c, const imx_config *cfg, double *transform) {
  imx_data *d = NULL;
  if (imx_data_load(c, cfg, &d) || imx_preprocess_apply(c, cfg, d, NULL, transform)) {
    t_check(0, "load data: %s", c->msg);
    imx_data_free(&d);
  }
  return d;
}

/* Measures of the layer [W, b] (K x n, identity activation unless cfg says
 * otherwise) on d. */
static imx_err measures_of(imx_ctx *c, const imx_config *cfg, const imx_data *d, const double *W,
                           const double *b, const double *transform, imx_metrics *m) {
  int K = cfg->model.units, n = d->n;
  imx_layer *l = NULL;
  imx_err e = imx_layer_create(c, cfg, d, &l);
  double *theta = malloc(((size_t)K * n + K) * sizeof *theta);
  if (!e) {
    memcpy(theta, W, (size_t)K * n * sizeof *W);
    memcpy(theta + (size_t)K * n, b, (size_t)K * sizeof *b);
    e = imx_metrics_compute(c, cfg, l, theta, d, transform, m);
  }
  if (e) t_check(0, "measures: %s", c->msg);
  free(theta);
  imx_layer_free(&l);
  return e;
}

/* Inverse of the n x n matrix M by Gauss-Jordan with partial pivoting. */
static void invert(int n, const double *M, double *out) {
  double *a = malloc((size_t)n * 2 * n * sizeof *a);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < 2 * n; j++) a[i * 2 * n + j] = j < n ? M[i * n + j] : (j - n == i);
  for (int c = 0; c < n; c++) {
    int p = c;
    for (int r = c + 1; r < n; r++)
      if (fabs(a[r * 2 * n + c]) > fabs(a[p * 2 * n + c])) p = r;
    for (int j = 0; j < 2 * n; j++) {
      double t = a[c * 2 * n + j];
      a[c * 2 * n + j] = a[p * 2 * n + j], a[p * 2 * n + j] = t;
    }
    double piv = a[c * 2 * n + c];
    for (int j = 0; j < 2 * n; j++) a[c * 2 * n + j] /= piv;
    for (int r = 0; r < n; r++)
      if (r != c) {
        double f = a[r * 2 * n + c];
        for (int j = 0; j < 2 * n; j++) a[r * 2 * n + j] -= f * a[c * 2 * n + j];
      }
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) out[i * n + j] = a[i * 2 * n + n + j];
  free(a);
}

static void identical_prototypes(void) {
  imx_config c;
  int K = 5, n = 6;
  t_small_config(&c, 400, n, K, 16);
  c.model.activation = IMX_ACT_IDENTITY;
  imx_data *d = load(&ctx, &c, NULL);
  if (!d) return;
  double *W = malloc((size_t)K * n * sizeof *W), b[5] = {0};
  for (int k = 0; k < K; k++)
    for (int j = 0; j < n; j++) W[k * n + j] = 1 / sqrt((double)n);
  imx_metrics m;
  if (!measures_of(&ctx, &c, d, W, b, NULL, &m)) {
    t_check(fabs(m.effective_rank - 1) < 1e-9,
            "identical prototypes: effective rank %.15g (1, tol 1e-9)", m.effective_rank);
    t_check(fabs(m.max_abs_corr - 1) < 1e-12 && fabs(m.mean_abs_corr - 1) < 1e-12,
            "identical prototypes: max |corr| %.15g, mean |corr| %.15g (1, tol 1e-12)",
            m.max_abs_corr, m.mean_abs_corr);
    t_check(isinf(m.gaussian_tc) && m.gaussian_tc > 0,
            "identical prototypes: TC %g (+inf: R singular)", m.gaussian_tc);
    t_check(m.regions == 2 && m.dead_units == 0,
            "identical prototypes: %lld regions (2), %d dead (0)", m.regions, m.dead_units);
    double wr = sqrt((double)K * (K - 1));
    t_check(fabs(m.weight_redundancy - wr) < 1e-12 * wr,
            "identical prototypes: ||W W^T - I||_F %.15g (sqrt(K(K-1)) = %.15g)",
            m.weight_redundancy, wr);
    t_check(
        m.winners[0] == 400 && m.winning_units == 1 && m.winner_entropy_bits == 0,
        "identical prototypes: all %lld samples won by unit 0 (ties to the lowest), entropy %g bits",
        m.winners[0], m.winner_entropy_bits);
    t_check(isnan(m.amari), "no mixing known without K = n: Amari distance is NaN");
  }
  imx_metrics_clear(&m);
  free(W);
  imx_data_free(&d);
}

static void orthogonal_on_white(void) {
  imx_config c;
  int n = 6, K = 6;
  t_small_config(&c, 2000, n, K, 32);
  c.data.preprocess = IMX_PRE_WHITEN;
  c.data.whiten_eps = 0; /* exactly white: C = I up to rounding */
  c.model.activation = IMX_ACT_IDENTITY;
  double *T = malloc((size_t)n * n * sizeof *T);
  imx_data *d = load(&ctx, &c, T);
  if (!d) return;
  /* A random orthogonal W: the eigenvectors of a random symmetric matrix. */
  double *W = malloc((size_t)n * n * sizeof *W), lam[6], b[6] = {0};
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++)
      W[i * n + j] = W[j * n + i] = imx_rng_normal(7, 0, (uint64_t)(i * n + j));
  imx_linalg_eigh(&ctx, n, W, lam);
  imx_metrics m;
  if (!measures_of(&ctx, &c, d, W, b, T, &m)) {
    t_check(fabs(m.gaussian_tc) < 1e-10, "orthogonal W on white data: TC %.3e (0, tol 1e-10)",
            m.gaussian_tc);
    t_check(fabs(m.effective_rank - K) < 1e-10,
            "orthogonal W on white data: effective rank %.15g (%d)", m.effective_rank, K);
    t_check(m.max_abs_corr < 1e-10, "orthogonal W on white data: max |corr| %.3e (0, tol 1e-10)",
            m.max_abs_corr);
    t_check(m.weight_redundancy < 1e-13, "orthogonal W: ||W W^T - I||_F %.3e (0, tol 1e-13)",
            m.weight_redundancy);
  }
  imx_metrics_clear(&m);
  /* Unmixing: W = the inverse of the mixing as the layer sees it, then
   * with rows permuted, scaled and sign-flipped (still a perfect unmixing). */
  double *M = malloc((size_t)n * n * sizeof *M), *Wi = malloc((size_t)n * n * sizeof *Wi);
  imx_metrics_mixing(n, T, d->truth, M);
  invert(n, M, Wi);
  for (int variant = 0; variant < 2; variant++) {
    for (int k = 0; k < n; k++) {
      int src = variant ? (k * 5 + 1) % n : k;
      double s = 0;
      for (int j = 0; j < n; j++) s += Wi[src * n + j] * Wi[src * n + j];
      double scale = variant ? (k % 2 ? -1 : 1) / sqrt(s) : 1 / sqrt(s);
      for (int j = 0; j < n; j++) W[k * n + j] = Wi[src * n + j] * scale;
    }
    if (!measures_of(&ctx, &c, d, W, b, T, &m))
      t_check(m.amari < 1e-12, "Amari distance of the %s unmixing: %.3e (0, tol 1e-12)",
              variant ? "permuted, sign-flipped" : "exact", m.amari);
    imx_metrics_clear(&m);
  }
  /* The identity is no unmixing of a random mixing. */
  for (int i = 0; i < n * n; i++) W[i] = i % (n + 1) == 0;
  if (!measures_of(&ctx, &c, d, W, b, T, &m))
    t_check(m.amari > 0.05 && m.amari <= 1, "Amari distance of W = I: %.3f (in (0.05, 1])",
            m.amari);
  imx_metrics_clear(&m);
  free(M), free(Wi), free(W), free(T);
  imx_data_free(&d);
}

static void amari_closed_form(void) {
  double perm[9] = {0, 2, 0, 0, 0, -3, 0.5, 0, 0};
  double tri[4] = {1, 1, 0, 1};
  double ones[16];
  for (int i = 0; i < 16; i++) ones[i] = 1;
  double a = imx_metrics_amari(3, perm), t = imx_metrics_amari(2, tri),
         o = imx_metrics_amari(4, ones);
  t_check(a == 0 && t == 0.5 && o == 1,
          "Amari index: scaled permutation %g (0), [[1,1],[0,1]] %g (1/2), all ones %g (1)", a, t,
          o);
}

/* Row i of the hand-made patterns: q = 7 i mod 37 in bits 0..5, again in
 * bits 64..69 when K > 69; "off" bits alternate between 0 and -1. */
static void patterns(int64_t row0, int64_t nloc, int K, double *Z) {
  for (int64_t i = 0; i < nloc; i++) {
    int64_t g = row0 + i;
    int q = (int)((7 * g) % 37);
    for (int k = 0; k < K; k++) {
      int bit = k < 6 ? (q >> k) & 1 : (k >= 64 && k < 70) ? (q >> (k - 64)) & 1 : 0;
      Z[i * K + k] = bit ? 0.5 + k : ((g + k) % 2 ? 0.0 : -1.0);
    }
  }
}

static void sign_patterns(void) {
  int64_t N = 1000, row0, nloc;
  imx_shard(N, 16, ctx.rank, ctx.size, &row0, &nloc);
  const int Ks[3] = {70, 130, 6};
  for (int t = 0; t < 3; t++) {
    int K = Ks[t];
    double *Z = malloc((size_t)nloc * K * sizeof *Z);
    patterns(row0, nloc, K, Z);
    long long r = 0, big = 0;
    imx_err e = imx_metrics_regions(&ctx, nloc, K, Z, &r, &big);
    /* 1000 = 27 * 37 + 1: the residue of row 0 (q = 0) occurs 28 times. */
    t_check(!e && r == 37 && big == 28, "sign patterns, K=%d: %lld regions (37), largest %lld (28)",
            K, r, big);
    free(Z);
  }
  /* K = 1, z = +-1 by parity of the row: 2 regions of 500. */
  double *z = malloc((size_t)nloc * sizeof *z);
  for (int64_t i = 0; i < nloc; i++) z[i] = (row0 + i) % 2 ? 1 : -1;
  long long r = 0, big = 0;
  imx_err e = imx_metrics_regions(&ctx, nloc, 1, z, &r, &big);
  t_check(!e && r == 2 && big == 500, "sign patterns, K=1: %lld regions (2), largest %lld (500)", r,
          big);
  free(z);
}

static void softmax_by_hand(void) {
  int64_t N = 999, row0, nloc;
  int K = 4;
  imx_shard(N, 16, ctx.rank, ctx.size, &row0, &nloc);
  double *A = malloc((size_t)nloc * K * sizeof *A);
  for (int64_t i = 0; i < nloc; i++)
    for (int k = 0; k < K; k++) A[i * K + k] = k == (row0 + i) % 3 ? 0.7 : 0.1;
  imx_outputs o = {.N = N, .nloc = nloc, .block = 16, .K = K, .act = IMX_ACT_SOFTMAX, .A = A};
  imx_metrics m;
  imx_err e = imx_metrics_outputs(&ctx, IMX_RED_REPRODUCIBLE, &o, &m);
  if (e) t_check(0, "softmax by hand: %s", ctx.msg);
  else {
    t_check(m.winners[0] == 333 && m.winners[1] == 333 && m.winners[2] == 333 &&
                m.winners[3] == 0 && m.winning_units == 3 &&
                fabs(m.winner_entropy_bits - log2(3.0)) < 1e-14,
            "softmax by hand: winners %lld %lld %lld %lld, entropy %.15g bits (log2 3)",
            m.winners[0], m.winners[1], m.winners[2], m.winners[3], m.winner_entropy_bits);
    t_check(m.dead_units == 1, "softmax by hand: %d dead unit (1: the constant one)", m.dead_units);
    t_check(fabs(m.max_abs_corr - 0.5) < 1e-12 && fabs(m.mean_abs_corr - 0.5) < 1e-12,
            "softmax by hand: max |corr| %.15g, mean %.15g (1/2)", m.max_abs_corr, m.mean_abs_corr);
    t_check(fabs(m.gaussian_tc + log(1.5)) < 1e-12,
            "softmax by hand: TC %.15g (-log 1.5 = %.15g: null direction left out)", m.gaussian_tc,
            -log(1.5));
    t_check(fabs(m.effective_rank - 2) < 1e-9, "softmax by hand: effective rank %.15g (2)",
            m.effective_rank);
    t_check(m.regions == 1 && m.largest_region == N,
            "softmax by hand: all a > 0: %lld region of %lld", m.regions, m.largest_region);
  }
  imx_metrics_clear(&m);
  free(A);
}

static void sign_entropy_by_hand(void) {
  int64_t N = 1000, row0, nloc;
  int K = 3, n = 4;
  imx_shard(N, 16, ctx.rank, ctx.size, &row0, &nloc);
  double *Z = malloc((size_t)(nloc ? nloc : 1) * K * sizeof *Z);
  double *X = malloc((size_t)(nloc ? nloc : 1) * n * sizeof *X);
  for (int64_t i = 0; i < nloc; i++) {
    int64_t g = row0 + i;
    Z[i * K + 0] = g % 2 ? -1 : 1, Z[i * K + 1] = g % 4 ? -2 : 3, Z[i * K + 2] = -0.5;
    for (int j = 0; j < n; j++) X[i * n + j] = imx_rng_normal(7, 3, (uint64_t)(g * n + j));
  }
  double b[3] = {0.1, -0.2, 0.3}, far[3] = {1e9, 1e9, 1e9};
  imx_outputs o = {.N = N, .nloc = nloc, .block = 16, .K = K, .act = IMX_ACT_RELU, .Z = Z, .A = Z};
  imx_metrics m, mx, mf;
  imx_err e = imx_metrics_outputs(&ctx, IMX_RED_REPRODUCIBLE, &o, &m);
  o.X = X, o.n = n, o.b = b, o.seed = 11;
  if (!e) e = imx_metrics_outputs(&ctx, IMX_RED_REPRODUCIBLE, &o, &mx);
  o.b = far;
  if (!e) e = imx_metrics_outputs(&ctx, IMX_RED_REPRODUCIBLE, &o, &mf);
  if (e) {
    t_check(0, "sign entropy by hand: %s", ctx.msg);
    free(Z), free(X);
    return;
  }
  double h4 = -0.25 * log2(0.25) - 0.75 * log2(0.75);
  t_check(m.sign_entropy[0] == 1 && fabs(m.sign_entropy[1] - h4) < 1e-15 &&
              m.sign_entropy[2] == 0 && m.constant_sign_units == 1 && m.sign_entropy_min == 0 &&
              fabs(m.sign_entropy_mean - (1 + h4) / 3) < 1e-15,
          "sign entropy by hand: %.15g %.15g %.15g bits (1, H(1/4) = %.15g, 0), mean %.15g, "
          "min %g, %d constant-sign unit (1)",
          m.sign_entropy[0], m.sign_entropy[1], m.sign_entropy[2], h4, m.sign_entropy_mean,
          m.sign_entropy_min, m.constant_sign_units);
  /* The same count by hand: the random baseline's rows at the offsets b. */
  double W[3 * 4], *Zr = malloc((size_t)(nloc ? nloc : 1) * K * sizeof *Zr);
  imx_baseline_random_rows(11, K, n, W);
  for (int64_t i = 0; i < nloc; i++)
    for (int k = 0; k < K; k++) {
      double s = b[k];
      for (int j = 0; j < n; j++) s += W[k * n + j] * X[i * n + j];
      Zr[i * K + k] = s;
    }
  long long want = 0, big = 0;
  e = imx_metrics_regions(&ctx, nloc, K, Zr, &want, &big);
  t_check(!e && m.random_regions == -1 && mx.random_regions == want && want > 1 &&
              mf.random_regions == 1,
          "random regions: %lld without X (-1: not measured), %lld at b (%lld by hand), %lld with "
          "offsets far above the data (1)",
          m.random_regions, mx.random_regions, want, mf.random_regions);
  imx_metrics_clear(&m), imx_metrics_clear(&mx), imx_metrics_clear(&mf);
  free(Z), free(X), free(Zr);
}

/* All measures of a random softmax layer on the first p ranks; world rank 0
 * keeps them. */
static void measures_on(int p, const imx_config *c, imx_metrics *out) {
  int wrank;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, wrank < p ? 0 : MPI_UNDEFINED, wrank, &sub);
  imx_metrics_init(out);
  if (sub == MPI_COMM_NULL) return;
  imx_ctx sc;
  imx_ctx_init(&sc, sub);
  double *T = malloc((size_t)c->data.dim * c->data.dim * sizeof *T);
  imx_data *d = load(&sc, c, T);
  imx_layer *l = NULL;
  if (d && !imx_layer_create(&sc, c, d, &l)) {
    double *theta = malloc((size_t)imx_layer_nparams(l) * sizeof *theta);
    imx_layer_init_params(&sc, l, c, theta);
    if (imx_metrics_compute(&sc, c, l, theta, d, T, out))
      t_check(0, "measures on %d ranks: %s", p, sc.msg);
    free(theta);
  }
  imx_layer_free(&l);
  imx_data_free(&d);
  free(T);
  imx_ctx_finalize(&sc);
  MPI_Comm_free(&sub);
}

static void rank_invariance(void) {
  imx_config c;
  t_small_config(&c, 1000, 8, 8, 16);
  c.model.activation = IMX_ACT_SOFTMAX;
  c.model.init_bias = 0.5;
  int P;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  imx_metrics one, all;
  measures_on(1, &c, &one);
  measures_on(P, &c, &all);
  if (ctx.rank == 0) {
    int K = c.model.units;
    double s1[] = {one.max_abs_corr,   one.mean_abs_corr,       one.gaussian_tc,
                   one.effective_rank, one.winner_entropy_bits, one.weight_redundancy,
                   one.amari};
    double sP[] = {all.max_abs_corr,   all.mean_abs_corr,       all.gaussian_tc,
                   all.effective_rank, all.winner_entropy_bits, all.weight_redundancy,
                   all.amari};
    int same = one.corr && all.corr && !memcmp(s1, sP, sizeof s1) &&
               !memcmp(one.corr, all.corr, (size_t)K * K * sizeof *one.corr) &&
               !memcmp(one.eigenvalues, all.eigenvalues, (size_t)K * sizeof *one.eigenvalues) &&
               !memcmp(one.winners, all.winners, (size_t)K * sizeof *one.winners) &&
               one.regions == all.regions && one.largest_region == all.largest_region &&
               one.dead_units == all.dead_units && one.random_regions == all.random_regions &&
               !memcmp(one.sign_entropy, all.sign_entropy, (size_t)K * sizeof *one.sign_entropy);
    t_check(same,
            "measures on %d ranks have the same bits as on 1 (TC %.17g vs %.17g, %lld regions, "
            "%lld random regions at b, mean sign entropy %.6f bits, Amari %.6f)",
            P, sP[2], s1[2], all.regions, all.random_regions, all.sign_entropy_mean, all.amari);
  }
  imx_metrics_clear(&one);
  imx_metrics_clear(&all);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  identical_prototypes();
  orthogonal_on_white();
  amari_closed_form();
  sign_patterns();
  softmax_by_hand();
  rank_invariance();
  sign_entropy_by_hand();
  int rc = t_finish();
  imx_ctx_finalize(&ctx);
  MPI_Finalize();
  return rc;
}
