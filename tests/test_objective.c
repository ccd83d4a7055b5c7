/* test_objective: every term's dL/dC against central finite differences along
 * random symmetric directions, with and without the softmax null vector; the
 * lse and weight_redundancy gradients; the not-SPD message; the entropy
 * estimator on samples of its own density and of a Gaussian; the hsic
 * random-feature estimate against the direct O(N^2) HSIC. */
#include "imx/objective.h"
#include "imx/objective_entropy.h"
#include "imx/objective_hsic.h"
#include "imx/rng.h"

#include "testing.h"

#define K 6

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double value(imx_ctx *ctx, const imx_objective *o, const double *C) {
  double G[K * K], work[2 * K * K + K], terms[IMX_NTERMS], v = NAN;
  if (imx_objective_moments(ctx, o, K, C, G, work, terms, &v)) return NAN;
  return v;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx ctx;
  imx_ctx_init(&ctx, MPI_COMM_SELF);
  srand(3);
  /* C = B B^T / K + 0.1 I: SPD with correlations. */
  double B[K * K], C[K * K];
  for (int i = 0; i < K * K; i++) B[i] = (double)rand() / RAND_MAX - 0.5;
  for (int i = 0; i < K; i++)
    for (int j = 0; j < K; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += B[i * K + k] * B[j * K + k];
      C[i * K + j] = s / K + (i == j ? 0.1 : 0);
    }
  int moment_terms[] = {IMX_TERM_LOGDET, IMX_TERM_OFFDIAG, IMX_TERM_VARIANCE, IMX_TERM_GAUSSIAN_TC,
                        IMX_TERM_DECORRELATION};
  for (int nv = 0; nv < 2; nv++)
    for (size_t ti = 0; ti < sizeof moment_terms / sizeof *moment_terms; ti++) {
      int t = moment_terms[ti];
      imx_objective o = {.eps = 1e-3, .null_vector = nv};
      o.w[t] = 0.7;
      double G[K * K], work[2 * K * K + K], terms[IMX_NTERMS], v;
      imx_err e = imx_objective_moments(&ctx, &o, K, C, G, work, terms, &v);
      double worst = 0;
      for (int dir = 0; dir < 4 && !e; dir++) {
        double E[K * K], Cp[K * K], Cm[K * K], h = 1e-5, gd = 0;
        for (int i = 0; i < K; i++)
          for (int j = 0; j <= i; j++)
            E[i * K + j] = E[j * K + i] = (double)rand() / RAND_MAX - 0.5;
        for (int i = 0; i < K * K; i++) {
          Cp[i] = C[i] + h * E[i], Cm[i] = C[i] - h * E[i];
          gd += G[i] * E[i];
        }
        double fd = (value(&ctx, &o, Cp) - value(&ctx, &o, Cm)) / (2 * h);
        double err = t_relerr(gd, fd, 1e-8);
        worst = err > worst ? err : worst;
      }
      t_check(!e && worst < 1e-7 && fabs(v - 0.7 * terms[t]) < 1e-12 * fabs(v),
              "dL/dC of %-14s (null vector %s): max rel err vs central FD %.2e (tol 1e-7)",
              imx_term_names[t], nv ? "on " : "off", worst);
    }

  /* Known values: variance of a diagonal C; offdiag and decorrelation of a correlated pair. */
  {
    double D[4] = {2, 0.5, 0.5, 1}, G[4], work[16], terms[IMX_NTERMS], v;
    imx_objective o = {.eps = 0};
    o.w[IMX_TERM_VARIANCE] = o.w[IMX_TERM_OFFDIAG] = o.w[IMX_TERM_DECORRELATION] = 1;
    o.w[IMX_TERM_LOGDET] = o.w[IMX_TERM_GAUSSIAN_TC] = 1;
    imx_objective_moments(&ctx, &o, 2, D, G, work, terms, &v);
    double ld = log(2 * 1 - 0.25);
    t_check(fabs(terms[IMX_TERM_VARIANCE] + log(2.0)) < 1e-15 &&
                fabs(terms[IMX_TERM_OFFDIAG] - 0.5) < 1e-15 &&
                fabs(terms[IMX_TERM_DECORRELATION] - 2 * 0.25 / 2) < 1e-15 &&
                fabs(terms[IMX_TERM_LOGDET] + ld) < 1e-15 &&
                fabs(terms[IMX_TERM_GAUSSIAN_TC] - 0.5 * (log(2.0) - ld)) < 1e-15,
            "closed-form values of all moment terms on a 2 x 2 C");
  }

  /* gaussian_tc of softmax-like outputs (C 1 = 0) is -1/2 log pdet R, bounded
   * below by -(K-1)/2 log(K/(K-1)) > -1/2 however small the variances. */
  {
    double worst = INFINITY, P[K * K], Cs[K * K];
    for (int i = 0; i < K; i++)
      for (int j = 0; j < K; j++) P[i * K + j] = (i == j) - 1.0 / K;
    for (int trial = 0; trial < 20; trial++) {
      double scale = pow(10.0, -(trial % 10)); /* variances down to 1e-9 */
      for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
          double s = 0;
          for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) s += P[i * K + a] * C[a * K + b] * P[b * K + j];
          Cs[i * K + j] = scale * s;
        }
      imx_objective o = {.eps = 0, .null_vector = 1};
      o.w[IMX_TERM_GAUSSIAN_TC] = 1;
      double v = value(&ctx, &o, Cs);
      worst = v < worst ? v : worst;
    }
    double bound = -(K - 1) / 2.0 * log((double)K / (K - 1));
    t_check(worst >= bound - 1e-9, "gaussian_tc of outputs with C 1 = 0: min %.6f >= %.6f", worst,
            bound);
  }

  /* Not SPD: clear message with the pivot, never a NaN. */
  {
    double S[9] = {1, 1, 0, 1, 1, 0, 0, 0, 1}, G[9], work[27], terms[IMX_NTERMS], v;
    imx_objective o = {.eps = 0};
    o.w[IMX_TERM_LOGDET] = 1;
    imx_err e = imx_objective_moments(&ctx, &o, 3, S, G, work, terms, &v);
    t_check(e == IMX_ERR_NUMERIC && strstr(ctx.msg, "INFO=2") && strstr(ctx.msg, "K=3") &&
                strstr(ctx.msg, "objective.eps"),
            "singular C: \"%s\"", ctx.msg);
  }

  /* lse: gradient of log sum exp(-a) by central differences. */
  {
    double a[K], g[K] = {0}, worst = 0;
    for (int k = 0; k < K; k++) a[k] = 3 * ((double)rand() / RAND_MAX - 0.5);
    imx_objective_lse_row(K, a, g, 1.0);
    for (int k = 0; k < K; k++) {
      double h = 1e-6, ap[K], am[K];
      memcpy(ap, a, sizeof a), memcpy(am, a, sizeof a);
      ap[k] += h, am[k] -= h;
      double fd = (imx_objective_lse_row(K, ap, NULL, 0) - imx_objective_lse_row(K, am, NULL, 0)) /
                  (2 * h);
      double err = t_relerr(g[k], fd, 1e-8);
      worst = err > worst ? err : worst;
    }
    t_check(worst < 1e-8, "lse row gradient: max rel err %.2e (tol 1e-8)", worst);
  }

  /* weight_redundancy: dL/dW by central differences. */
  {
    enum { KW = 4, N = 5 };
    double W[KW * N], g[KW * N] = {0}, work[KW * KW], worst = 0;
    imx_objective o = {.eps = 0};
    o.w[IMX_TERM_WEIGHT_REDUNDANCY] = 1;
    for (int i = 0; i < KW * N; i++) W[i] = (double)rand() / RAND_MAX - 0.5;
    imx_objective_weight_redundancy(&o, KW, N, W, g, work);
    for (int i = 0; i < KW * N; i++) {
      double h = 1e-6, s = W[i], dummy[KW * N] = {0};
      W[i] = s + h;
      double fp = imx_objective_weight_redundancy(&o, KW, N, W, dummy, work);
      W[i] = s - h;
      double fm = imx_objective_weight_redundancy(&o, KW, N, W, dummy, work);
      W[i] = s;
      double err = t_relerr(g[i], (fp - fm) / (2 * h), 1e-6);
      worst = err > worst ? err : worst;
    }
    t_check(worst < 1e-7, "weight_redundancy gradient: max rel err %.2e (tol 1e-7)", worst);
  }
  /* entropy: on samples of p(u) = sech(u)^2 / 2 (logistic, scale 1/2) the
   * cross-entropy is the entropy, 2 - log 2; on unit Gaussians it is an upper
   * bound of 1/2 log(2 pi e). Tolerance: 5 standard errors of the mean of
   * -log p(u) (its std is below 1 for both), 5 / sqrt(N). */
  {
    enum { NS = 200000, B = 256 };
    double *D = malloc((size_t)NS * 2 * sizeof *D), v = NAN;
    for (int i = 0; i < NS; i++) {
      double u = imx_rng_uniform(7, 1, (uint64_t)i);
      D[2 * i] = 0.5 * log(u / (1 - u));
      D[2 * i + 1] = imx_rng_normal(7, 2, (uint64_t)i);
    }
    double m[2] = {0, 0};
    for (int i = 0; i < NS; i++) m[0] += D[2 * i] / NS, m[1] += D[2 * i + 1] / NS;
    for (int i = 0; i < NS; i++) D[2 * i] -= m[0], D[2 * i + 1] -= m[1];
    imx_entropy *ent = NULL;
    imx_err e = imx_entropy_create(&ctx, IMX_RED_REPRODUCIBLE, 2, NS, 0, 0, &ent);
    if (!e) e = imx_entropy_value(&ctx, ent, B, NS, D, 1.0 / NS, &v);
    /* the value is the sum over both units; the Gaussian's cross-entropy
     * E[2 log cosh u] + log 2 is 1.44228 (trapezoid rule on [-12, 12]), above its
     * entropy 1.4189 */
    double h_logistic = 2 - log(2.0), ce_gauss = 1.44228, tol = 2 * 5 / sqrt((double)NS);
    t_check(!e && fabs(v - h_logistic - ce_gauss) < tol,
            "entropy of logistic(1/2) + cross-entropy of N(0,1): %.5f, expected %.5f (tol %.4f)", v,
            h_logistic + ce_gauss, tol);
    imx_entropy_free(&ent);
    free(D);
  }
  /* Extended Infomax: value and gradient of the entropy term with mixed
   * densities (k = +1, -1, -1) against central differences of the value of
   * the centered outputs, and the switch on a Laplace and a uniform unit
   * (unit variance): it must pick super for the first, sub for the second. */
  {
    enum { NS = 96, KE = 3, B = 16 };
    double A[NS * KE], D[NS * KE], g[NS * KE];
    for (int i = 0; i < NS * KE; i++) A[i] = 1.5 * imx_rng_normal(11, 0, (uint64_t)i);
    imx_entropy *ent = NULL;
    imx_err e = imx_entropy_create(&ctx, IMX_RED_REPRODUCIBLE, KE, NS, 0, 1, &ent);
    const signed char k[KE] = {1, -1, -1};
    if (!e) imx_entropy_set_signs(ent, k);
    double v0 = 0, maxrel = 0;
    /* value of the centered A */
#define ENT_VALUE(out)                                                    \
  do {                                                                    \
    for (int j = 0; j < KE; j++) {                                        \
      double m = 0;                                                       \
      for (int i = 0; i < NS; i++) m += A[i * KE + j] / NS;               \
      for (int i = 0; i < NS; i++) D[i * KE + j] = A[i * KE + j] - m;     \
    }                                                                     \
    if (!e) e = imx_entropy_value(&ctx, ent, B, NS, D, 1.0 / NS, &(out)); \
  } while (0)
    ENT_VALUE(v0);
    for (int i = 0; i < NS * KE; i++) g[i] = 0;
    if (!e) imx_entropy_grad_rows(ent, 0, NS, D, g, 1.0 / NS);
    for (int q = 0; !e && q < NS * KE; q += 7) {
      double a = A[q], h = 1e-5, vp = 0, vm = 0;
      A[q] = a + h;
      ENT_VALUE(vp);
      A[q] = a - h;
      ENT_VALUE(vm);
      A[q] = a;
      double fd = (vp - vm) / (2 * h), gmax = 0;
      for (int r = 0; r < NS * KE; r++) gmax = fabs(g[r]) > gmax ? fabs(g[r]) : gmax;
      double rel = fabs(fd - g[q]) / gmax;
      maxrel = rel > maxrel ? rel : maxrel;
    }
#undef ENT_VALUE
    t_check(!e && maxrel < 1e-7,
            "entropy with k = (+1, -1, -1): gradient vs central differences: max err %.2e "
            "of max |g| (tol 1e-7)",
            maxrel);
    imx_entropy_free(&ent);
    /* the switch */
    enum { NU = 20000 };
    double *U = malloc((size_t)NU * 2 * sizeof *U);
    for (int i = 0; i < NU; i++) {
      double u = imx_rng_uniform(13, 0, (uint64_t)i) - 0.5;
      U[2 * i] = (u < 0 ? 1 : -1) * log(1 - 2 * fabs(u)) / sqrt(2.0);          /* Laplace, var 1 */
      U[2 * i + 1] = sqrt(12.0) * (imx_rng_uniform(13, 1, (uint64_t)i) - 0.5); /* uniform */
    }
    e = imx_entropy_create(&ctx, IMX_RED_REPRODUCIBLE, 2, NU, 0, 1, &ent);
    double v = 0;
    int sub = 0, flips = 0;
    signed char ks[2] = {0, 0};
    if (!e) e = imx_entropy_value(&ctx, ent, 256, NU, U, 1.0 / NU, &v);
    if (!e) flips = imx_entropy_switch(ent, 1.0 / NU, &sub), imx_entropy_signs(ent, ks);
    t_check(!e && ks[0] == 1 && ks[1] == -1 && sub == 1 && flips == 1,
            "Extended Infomax switch: Laplace k = %+d (expected +1), uniform k = %+d (expected "
            "-1), %d flip(s)",
            ks[0], ks[1], flips);
    imx_entropy_free(&ent);
    free(U);
  }
  /* hsic: the random-feature estimate against the direct V-statistic
   * HSIC_b = (1/N^2) sum_{u<v} tr(Kc_u Kc_v) with the Gaussian kernel of
   * bandwidth 1, for three units: a dependent pair (y = x^2 + noise) and an
   * independent third. Units have independent frequencies, so the estimate
   * is unbiased over the draws; each kernel value is a mean over D/2
   * frequencies of cos(omega (a - a')) (a (cos, sin) pair each), so the
   * error has a standard deviation s_D proportional to 1/sqrt(D). s_D is measured
   * over R seeds: the mean must be within 4 s_D / sqrt(R) of the direct
   * value, every draw within 4 s_D, and s_128 / s_512 near sqrt(4) = 2. */
  {
    enum { NS = 400, R = 8 };
    double *A = malloc((size_t)NS * 3 * sizeof *A);
    for (int i = 0; i < NS; i++) {
      double x = imx_rng_normal(9, 1, (uint64_t)i);
      A[3 * i] = x;
      A[3 * i + 1] = x * x - 1 + 0.3 * imx_rng_normal(9, 2, (uint64_t)i);
      A[3 * i + 2] = imx_rng_normal(9, 3, (uint64_t)i);
    }
    /* centered Gram matrices of the three units */
    double *Kc = malloc((size_t)3 * NS * NS * sizeof *Kc);
    for (int u = 0; u < 3; u++) {
      double *Ku = Kc + (size_t)u * NS * NS, tot = 0, *row = calloc(NS, sizeof *row);
      for (int i = 0; i < NS; i++)
        for (int k = 0; k < NS; k++) {
          double d = A[3 * i + u] - A[3 * k + u];
          Ku[(size_t)i * NS + k] = exp(-d * d / 2);
          row[i] += Ku[(size_t)i * NS + k] / NS;
        }
      for (int i = 0; i < NS; i++) tot += row[i] / NS;
      for (int i = 0; i < NS; i++)
        for (int k = 0; k < NS; k++) Ku[(size_t)i * NS + k] += tot - row[i] - row[k];
      free(row);
    }
    double direct = 0;
    for (int u = 0; u < 3; u++)
      for (int v = 0; v < u; v++) {
        double s = 0;
        for (size_t i = 0; i < (size_t)NS * NS; i++)
          s += Kc[u * (size_t)NS * NS + i] * Kc[v * (size_t)NS * NS + i];
        direct += s / ((double)NS * NS);
      }
    imx_config c;
    imx_config_defaults(&c);
    c.objective.hsic_bandwidth = -1; /* sigma = 1 itself */
    imx_hsic *h = NULL;
    double sd[2] = {0, 0};
    imx_err e = IMX_OK;
    for (int di = 0; di < 2; di++) {
      int D = di ? 512 : 128;
      double v[R], mean = 0, worst = 0;
      c.objective.hsic_features = D;
      for (int r = 0; r < R; r++) {
        c.model.seed = 100 + (unsigned)r;
        v[r] = NAN;
        e |= imx_hsic_create(&ctx, &c, 3, NS, 0, NS, 16, 16, 0, &h);
        if (h) e |= imx_hsic_value(&ctx, h, A, 1.0 / NS, &v[r]);
        imx_hsic_free(&h);
        mean += v[r] / R;
      }
      for (int r = 0; r < R; r++) sd[di] += (v[r] - mean) * (v[r] - mean) / (R - 1);
      sd[di] = sqrt(sd[di]);
      for (int r = 0; r < R; r++) worst = fmax(worst, fabs(v[r] - direct));
      t_check(!e && fabs(mean - direct) < 4 * sd[di] / sqrt((double)R) && worst < 4 * sd[di],
              "hsic, D=%d random features vs direct O(N^2) HSIC %.5f on N=%d: mean of %d draws "
              "%.5f (tol 4 s_D/sqrt(R) = %.2e), worst draw off by %.2e (tol 4 s_D = %.2e)",
              D, direct, NS, R, mean, 4 * sd[di] / sqrt((double)R), worst, 4 * sd[di]);
    }
    t_check(
        sd[0] / sd[1] > 1.2 && sd[0] / sd[1] < 3.5,
        "hsic random-feature error ~ 1/sqrt(D): s_128 / s_512 = %.2f (expected 2, range 1.2..3.5)",
        sd[0] / sd[1]);
    imx_hsic_free(&h);
    /* the median heuristic: rows 2 s (s < 200) of N = 400, every pair, upper median */
    {
      c.objective.hsic_bandwidth = 1.5;
      e = imx_hsic_create(&ctx, &c, 3, NS, 0, NS, 16, 16, 0, &h);
      double v = NAN, worst = 0;
      if (!e) e = imx_hsic_value(&ctx, h, A, 1.0 / NS, &v);
      for (int u = 0; !e && u < 3; u++) {
        enum { M = 200, NP = M * (M - 1) / 2 };
        static double p[NP];
        int q = 0;
        for (int i = 0; i < M; i++)
          for (int k = 0; k < i; k++) p[q++] = fabs(A[3 * (2 * i) + u] - A[3 * (2 * k) + u]);
        qsort(p, NP, sizeof *p, cmp_dbl);
        worst = fmax(worst, fabs(imx_hsic_bandwidths(h)[u] - 1.5 * p[NP / 2]));
      }
      t_check(!e && worst == 0,
              "hsic bandwidth = 1.5 x the median |a_i - a_i'| of 200 rows: "
              "differs from sorting by %.1e",
              worst);
      imx_hsic_free(&h);
    }
    /* the memory refusal names the knob */
    c.objective.hsic_features = 4096;
    e = imx_hsic_create(&ctx, &c, 1000, NS, 0, NS, 16, 16, 1e9, &h);
    t_check(e == IMX_ERR_CONFIG && strstr(ctx.msg, "objective.hsic_features"),
            "hsic K=1000 x D=4096 with 1e9 bytes refused: \"%s\"", ctx.msg);
    ctx.code = IMX_OK;
    free(Kc), free(A);
  }
  imx_ctx_finalize(&ctx);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
