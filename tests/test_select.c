/* test_select: imx_select_kth against a full sort, on random arrays, on
 * arrays with many duplicates, on constant and sorted arrays, for k = 0,
 * k = n - 1 and k in between; and the selection leaves a permutation of its
 * input. Exact comparisons (tolerance 0): selection does no arithmetic. */
#include <stdint.h>

#include "imx/rng.h"
#include "imx/select.h"
#include "testing.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Fill v with n values of the given kind from stream `s`. */
static void fill(double *v, int64_t n, int kind, uint64_t s) {
  for (int64_t i = 0; i < n; i++) {
    double u = imx_rng_normal(11, s, (uint64_t)i);
    if (kind == 0) v[i] = u;                                                   /* distinct */
    else if (kind == 1) v[i] = floor(3 * imx_rng_uniform(11, s, (uint64_t)i)); /* 0, 1, 2 */
    else if (kind == 2) v[i] = 4.25;                                           /* constant */
    else if (kind == 3) v[i] = (double)i;                                      /* sorted */
    else v[i] = (double)(n - i);                                               /* reversed */
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  static const char *const kinds[] = {"random", "duplicates", "constant", "sorted", "reversed"};
  static const int64_t sizes[] = {1, 2, 3, 7, 64, 1001};
  double *v = malloc(1001 * sizeof *v), *w = malloc(1001 * sizeof *w),
         *ref = malloc(1001 * sizeof *ref);
  for (int kind = 0; kind < 5; kind++) {
    int cases = 0, wrong = 0, notperm = 0;
    for (int si = 0; si < 6; si++) {
      int64_t n = sizes[si];
      fill(ref, n, kind, (uint64_t)(100 * kind + si));
      qsort(ref, (size_t)n, sizeof *ref, cmp_double);
      /* k = 0, k = n - 1, the median and a few in between */
      int64_t ks[] = {0, n - 1, n / 2, n / 3, (2 * n) / 3, n > 1 ? 1 : 0};
      for (int ki = 0; ki < 6; ki++) {
        int64_t k = ks[ki];
        fill(v, n, kind, (uint64_t)(100 * kind + si));
        double got = imx_select_kth(v, n, k);
        cases++;
        if (got != ref[k]) wrong++;
        t_check_quiet(got == ref[k], "%s n=%lld k=%lld: selected %.17g, sorted %.17g", kinds[kind],
                      (long long)n, (long long)k, got, ref[k]);
        memcpy(w, v, (size_t)n * sizeof *w);
        qsort(w, (size_t)n, sizeof *w, cmp_double);
        int perm = !memcmp(w, ref, (size_t)n * sizeof *w);
        notperm += !perm;
        t_check_quiet(perm, "%s n=%lld k=%lld: v is no longer a permutation of its input",
                      kinds[kind], (long long)n, (long long)k);
      }
    }
    t_check(wrong == 0 && notperm == 0,
            "select_kth on %s arrays, n = 1 .. 1001, k = 0, n-1 and between: %d of %d differ from "
            "the sort (tol 0), %d not a permutation",
            kinds[kind], wrong, cases, notperm);
  }
  free(v), free(w), free(ref);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
