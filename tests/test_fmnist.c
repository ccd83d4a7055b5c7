/* test_fmnist: the real Fashion-MNIST training set (Debian package
 * dataset-fashion-mnist), gzip'd IDX images and labels, read sharded at
 * P = 1..4. Skips (exit 77) if the package is not installed.
 *   - N = 60000, n = 784, nclasses = 10, 6000 labels per class;
 *   - pixels in [0, 1] after data.scale = 1/255;
 *   - checksums against numpy (gzip + np.frombuffer, computed once, see
 *     below): sum of all pixel bytes, sum of row index x row sum, sum of
 *     column index x pixel, sum of row index x label. They depend on every
 *     row being on the right rank at the right place, and not on P;
 *   - the load time (slowest rank), printed.
 */
#include <math.h>
#include <stdint.h>

#include "imx/config.h"
#include "imx/data.h"
#include "testing.h"

#define IMAGES "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define LABELS "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"

/* From /usr/bin/python3 with numpy 1.24 on the packaged files. */
#define SUM_PIXELS 3431114169LL
#define SUM_ROW_X_ROWSUM 103052018522002LL
#define SUM_COL_X_PIXEL 1410492084047LL
#define SUM_ROW_X_LABEL 8087216427LL

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx ctx;
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  int present = access(IMAGES, R_OK) == 0 && access(LABELS, R_OK) == 0;
  MPI_Allreduce(MPI_IN_PLACE, &present, 1, MPI_INT, MPI_MIN, ctx.comm);
  if (!present) {
    imx_ctx_finalize(&ctx);
    int rc = t_skip(IMAGES " not installed");
    MPI_Finalize();
    return rc;
  }

  imx_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.data.source = IMX_SRC_IDX;
  snprintf(cfg.data.path, sizeof cfg.data.path, "%s", IMAGES);
  snprintf(cfg.data.labels, sizeof cfg.data.labels, "%s", LABELS);
  cfg.data.scale = 1.0 / 255;
  cfg.parallel.block = 256;

  imx_data *d = NULL;
  int f0 = t_failed;
  MPI_Barrier(ctx.comm);
  double t0 = MPI_Wtime();
  imx_err e = imx_data_load(&ctx, &cfg, &d);
  double t = MPI_Wtime() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, ctx.comm);
  t_check_quiet(e == IMX_OK, "load: %s", ctx.msg);
  if (!e) {
    t_check_quiet(d->N == 60000 && d->n == 784 && d->nclasses == 10, "N=%lld n=%d nclasses=%d",
                  (long long)d->N, d->n, d->nclasses);
    /* Sums of integers below 2^53 in doubles are exact; the pixel bytes are
     * recovered by rounding x * 255. */
    long long s[4] = {0, 0, 0, 0}, counts[10] = {0};
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < d->nloc; i++) {
      long long rowsum = 0, g = d->row0 + i;
      for (int j = 0; j < d->n; j++) {
        double x = d->X[i * d->n + j];
        lo = fmin(lo, x);
        hi = fmax(hi, x);
        long long v = llround(x * 255);
        rowsum += v;
        s[2] += (long long)j * v;
      }
      s[0] += rowsum;
      s[1] += g * rowsum;
      s[3] += g * d->labels[i];
      if (d->labels[i] >= 0 && d->labels[i] < 10) counts[d->labels[i]]++;
    }
    MPI_Allreduce(MPI_IN_PLACE, s, 4, MPI_LONG_LONG, MPI_SUM, ctx.comm);
    MPI_Allreduce(MPI_IN_PLACE, counts, 10, MPI_LONG_LONG, MPI_SUM, ctx.comm);
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_DOUBLE, MPI_MIN, ctx.comm);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_DOUBLE, MPI_MAX, ctx.comm);
    t_check_quiet(s[0] == SUM_PIXELS, "pixel sum %lld, numpy %lld", s[0], SUM_PIXELS);
    t_check_quiet(s[1] == SUM_ROW_X_ROWSUM, "row-weighted sum %lld, numpy %lld", s[1],
                  SUM_ROW_X_ROWSUM);
    t_check_quiet(s[2] == SUM_COL_X_PIXEL, "column-weighted sum %lld, numpy %lld", s[2],
                  SUM_COL_X_PIXEL);
    t_check_quiet(s[3] == SUM_ROW_X_LABEL, "row-weighted label sum %lld, numpy %lld", s[3],
                  SUM_ROW_X_LABEL);
    for (int c = 0; c < 10; c++)
      t_check_quiet(counts[c] == 6000, "class %d has %lld labels, want 6000", c, counts[c]);
    t_check_quiet(lo == 0.0 && hi == 1.0, "pixel range [%g, %g], want [0, 1]", lo, hi);
    t_check(
        t_failed == f0,
        "N=%lld n=%d, 6000 labels per class, checksums equal numpy's (error 0, tolerance 0); load %.3f s "
        "(slowest rank)",
        (long long)d->N, d->n, t);
  }
  imx_data_free(&d);
  int rc = t_finish();
  imx_ctx_finalize(&ctx);
  MPI_Finalize();
  return rc;
}
