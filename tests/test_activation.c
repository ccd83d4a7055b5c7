/* test_activation: topk and sparsemax rows against direct definitions
 * (topk with k = K is softmax bit for bit; sparsemax against the sort-based
 * threshold of Martins & Astudillo 2016), rows on the simplex, the kept set's
 * size, ties, and the backward passes against per-row finite differences.
 * Local. */
#include "imx/activation.h"
#include "imx/rng.h"

#include "testing.h"

enum { R = 200, K = 37 };

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

/* sparsemax(u) by sorting u in decreasing order. */
static void sparsemax_ref(int n, const double *u, double *p) {
  double s[K], cum = 0, t = 0;
  memcpy(s, u, (size_t)n * sizeof *u);
  qsort(s, (size_t)n, sizeof *s, cmp_desc);
  for (int j = 0; j < n; j++) {
    cum += s[j];
    if (1 + (j + 1) * s[j] > cum) t = (cum - 1) / (j + 1);
  }
  for (int j = 0; j < n; j++) p[j] = u[j] > t ? u[j] - t : 0;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  double *Z = malloc(sizeof(double) * R * K), *A = malloc(sizeof(double) * R * K);
  double *B = malloc(sizeof(double) * R * K), work[K];
  for (int i = 0; i < R * K; i++) Z[i] = 3 * imx_rng_normal(7, 0, (uint64_t)i);
  /* a few rows with ties, including ties at the k-th value */
  for (int j = 0; j < K; j++) Z[j] = (double)(j % 4), Z[K + j] = 1.0;

  /* topk with k = K is softmax, bit for bit */
  imx_act sm = {IMX_ACT_SOFTMAX, 0.7, 0, K}, tk = {IMX_ACT_TOPK, 0.7, K, K};
  memcpy(A, Z, sizeof(double) * R * K), memcpy(B, Z, sizeof(double) * R * K);
  imx_act_forward(&sm, R, A, NULL), imx_act_forward(&tk, R, B, work);
  t_check(!memcmp(A, B, sizeof(double) * R * K), "topk with k = K is softmax bit for bit");

  /* topk, k = 5: exactly k nonzeros per row, the k smallest z, renormalized softmax */
  int k = 5, bad_count = 0;
  double worst = 0;
  tk.k = k;
  memcpy(B, Z, sizeof(double) * R * K);
  imx_act_forward(&tk, R, B, work);
  for (int i = 0; i < R; i++) {
    const double *z = Z + (size_t)i * K, *b = B + (size_t)i * K;
    int nz = 0;
    double s = 0, sa = 0;
    for (int j = 0; j < K; j++) nz += b[j] > 0, sa += b[j];
    bad_count += nz != k;
    /* a kept z is never larger than a dropped one; ties go to lower indices */
    for (int j = 0; j < K; j++)
      for (int l = 0; l < K; l++)
        if (b[j] > 0 && b[l] == 0 && (z[j] > z[l] || (z[j] == z[l] && j > l))) bad_count++;
    for (int j = 0; j < K; j++) s += b[j] > 0 ? exp(-z[j] / 0.7) : 0;
    for (int j = 0; j < K; j++)
      if (b[j] > 0) worst = fmax(worst, t_relerr(b[j], exp(-z[j] / 0.7) / s, 1e-300));
    worst = fmax(worst, fabs(sa - 1));
  }
  t_check(bad_count == 0 && worst < 1e-13,
          "topk k=%d: %d rows x K=%d, k nonzeros per row, the k smallest z (ties to the lower "
          "index), softmax over them: %d violations, max rel err %.2e (tol 1e-13)",
          k, R, K, bad_count, worst);

  /* sparsemax against the sort-based reference */
  imx_act sp = {IMX_ACT_SPARSEMAX, 0.7, 0, K};
  memcpy(B, Z, sizeof(double) * R * K);
  imx_act_forward(&sp, R, B, NULL);
  worst = 0;
  double mean_support = 0;
  for (int i = 0; i < R; i++) {
    double u[K], p[K], sa = 0;
    for (int j = 0; j < K; j++) u[j] = -Z[(size_t)i * K + j] / 0.7;
    sparsemax_ref(K, u, p);
    for (int j = 0; j < K; j++) {
      double b = B[(size_t)i * K + j];
      worst = fmax(worst, fabs(b - p[j])), sa += b, mean_support += (b > 0) / (double)R;
      if (b < 0) worst = INFINITY;
    }
    worst = fmax(worst, fabs(sa - 1));
  }
  t_check(worst < 1e-13,
          "sparsemax: %d rows x K=%d against the sorted threshold, on the simplex: "
          "max abs err %.2e (tol 1e-13); mean support %.2f units",
          R, K, worst, mean_support);

  /* backward against central differences of <g, phi(z)> per row; z scaled
   * down so that sparsemax keeps several units (support >= 2 is checked) */
  const imx_act *acts[] = {&sm, &tk, &sp};
  for (int a = 0; a < 3; a++) {
    double err = 0, h = 1e-6;
    int support = 0;
    for (int i = 2; i < 40; i++) { /* rows without ties */
      double z[K], g[K], dz[K], zp[K], zm[K];
      for (int j = 0; j < K; j++)
        z[j] = 0.1 * Z[(size_t)i * K + j], g[j] = imx_rng_normal(8, (uint64_t)i, (uint64_t)j);
      memcpy(dz, z, sizeof z);
      imx_act_forward(acts[a], 1, dz, work);
      for (int j = 0; j < K; j++) support += dz[j] > 0;
      imx_act_backward(acts[a], 1, dz, g); /* g <- dL/dz */
      double gn[K];
      for (int j = 0; j < K; j++) gn[j] = imx_rng_normal(8, (uint64_t)i, (uint64_t)j);
      for (int j = 0; j < K; j++) {
        memcpy(zp, z, sizeof z), memcpy(zm, z, sizeof z);
        zp[j] += h, zm[j] -= h;
        imx_act_forward(acts[a], 1, zp, work), imx_act_forward(acts[a], 1, zm, work);
        double fd = 0;
        for (int l = 0; l < K; l++) fd += gn[l] * (zp[l] - zm[l]) / (2 * h);
        err = fmax(err, fabs(fd - g[j]));
      }
    }
    t_check(err < 1e-7 && support >= 2 * 38,
            "%s backward vs central differences (38 rows x %d inputs, mean support %.1f): max "
            "abs err %.2e (tol 1e-7)",
            imx_activation_name(acts[a]->kind), K, support / 38.0, err);
  }
  free(Z), free(A), free(B);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
