/* rowsout: a row-sharded matrix written to one .npy or .h5 file by P ranks has
 * exactly the bytes rank 0 alone writes (a file on MPI_COMM_SELF with all
 * rows), the values read back equal what was written, a failed write leaves
 * nothing at the path and an older file intact, no time stamp changes a byte,
 * and bad requests are agreed errors; entries written as runs spread over
 * the ranks give the same bytes, and a file larger than the free space fails
 * before writing, with nothing left behind. Run at P = 1..4; uneven shards and an
 * empty rank included. */
#include <hdf5.h>
#include <sys/stat.h>

#include "imx/data.h"
#include "imx/rowsout.h"
#include "testing.h"

#define N 37
#define COLS 5

static double value(int64_t i, int64_t j) { return (double)i * 1000.0 + (double)j + 0.125; }

/* Shards of N rows over P ranks with one rank empty when P > 2 (rank 1). */
static void shard(int rank, int size, int64_t *row0, int64_t *nloc) {
  int64_t start = 0;
  for (int p = 0; p <= rank; p++) {
    int64_t m = size > 2 && p == 1 ? 0 : N / size + (p < N % size);
    if (size > 2 && p == size - 1) m = N - start; /* the last takes the rest */
    if (p == rank) *row0 = start, *nloc = m;
    start += m;
  }
}

/* Write features (and labels, for .h5) of rows [row0, row0 + nloc) to path. */
static imx_err write_file(imx_ctx *ctx, const char *path, int64_t row0, int64_t nloc) {
  double *a = malloc((size_t)(nloc ? nloc : 1) * COLS * sizeof *a);
  int32_t *lab = malloc((size_t)(nloc ? nloc : 1) * sizeof *lab);
  for (int64_t i = 0; i < nloc; i++) {
    for (int j = 0; j < COLS; j++) a[i * COLS + j] = value(row0 + i, j);
    lab[i] = (int32_t)((row0 + i) % 7) - 3;
  }
  imx_rows_file *f = NULL;
  imx_err e = imx_rows_open(ctx, path, &f);
  if (!e) e = imx_rows_put(ctx, f, "features", IMX_ROWS_F64, 0, a, N, row0, nloc, COLS);
  if (!e && strstr(path, ".h5"))
    e = imx_rows_put(ctx, f, "labels", IMX_ROWS_I32, 1, lab, N, row0, nloc, 1);
  imx_err e2 = imx_rows_close(ctx, &f, e == IMX_OK);
  free(a), free(lab);
  return e ? e : e2;
}

static int same_bytes(const char *a, const char *b) {
  unsigned char *x = NULL, *y = NULL;
  long nx = t_file_bytes(a, &x), ny = t_file_bytes(b, &y);
  int same = nx >= 0 && nx == ny && memcmp(x, y, (size_t)nx) == 0;
  free(x), free(y);
  return same;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Rank 0: read the .h5 file serially and compare every value. */
static void check_h5_values(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  double a[N * COLS];
  int32_t lab[N];
  hid_t d = f >= 0 ? H5Dopen2(f, "features", H5P_DEFAULT) : -1;
  int ok = d >= 0 && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a) >= 0;
  if (d >= 0) H5Dclose(d);
  hid_t l = f >= 0 ? H5Dopen2(f, "labels", H5P_DEFAULT) : -1;
  ok = ok && l >= 0 && H5Dread(l, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab) >= 0;
  if (l >= 0) H5Dclose(l);
  if (f >= 0) H5Fclose(f);
  int bad = !ok;
  for (int64_t i = 0; ok && i < N; i++) {
    for (int j = 0; j < COLS; j++) bad += a[i * COLS + j] != value(i, j);
    bad += lab[i] != (int32_t)(i % 7) - 3;
  }
  t_check(!bad, ".h5 read back: %d wrong values of %d (tol 0)", bad, N * COLS + N);
}

static void check_npy_values(imx_ctx *self, const char *path) {
  double *a = NULL;
  int64_t rows = 0, cols = 0;
  imx_err e = imx_npy_read_all(self, path, &a, &rows, &cols);
  int bad = e || rows != N || cols != COLS;
  for (int64_t i = 0; !bad && i < N * COLS; i++) bad += a[i] != value(i / COLS, i % COLS);
  free(a);
  t_check(!bad, ".npy read back (%lld x %lld): %d wrong (tol 0)", (long long)rows, (long long)cols,
          bad);
}

int main(int argc, char **argv) {
  imx_ctx ctx, self;
  t_init(&argc, &argv, &ctx);
  imx_ctx_init(&self, MPI_COMM_SELF);
  char dir[64], p[256], ref[256];
  t_tmpdir(ctx.comm, dir);
  int64_t row0 = 0, nloc = 0;
  shard(ctx.rank, ctx.size, &row0, &nloc);

  const char *names[] = {"x.npy", "x.h5"};
  for (int k = 0; k < 2; k++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[k]);
    snprintf(ref, sizeof ref, "%s/ref_%s", dir, names[k]);
    imx_err e = write_file(&ctx, p, row0, nloc);
    t_check(e == IMX_OK, "%s written by %d ranks (rows %lld..+%lld here): code %d", names[k],
            ctx.size, (long long)row0, (long long)nloc, (int)e);
    if (ctx.rank == 0) {
      e = write_file(&self, ref, 0, N);
      t_check(e == IMX_OK, "%s written by rank 0 alone: code %d", names[k], (int)e);
      t_check(same_bytes(p, ref), "%s: %d ranks wrote the bytes 1 rank writes", names[k], ctx.size);
      sleep(1); /* a second later: no time stamp may change a byte */
      e = write_file(&self, ref, 0, N);
      t_check(e == IMX_OK && same_bytes(p, ref), "%s: written again a second later, the same bytes",
              names[k]);
      if (k == 0) check_npy_values(&self, p);
      else check_h5_values(p);
      snprintf(ref, sizeof ref, "%s/%s.tmp.%ld", dir, names[k], (long)getpid());
      t_check(!exists(ref), "%s: no temporary file left", names[k]);
    }
    MPI_Barrier(ctx.comm);
  }

  /* A second array in a .npy file is refused; the file is not committed and
   * the older one at the path stays as it was. */
  snprintf(p, sizeof p, "%s/x.npy", dir);
  snprintf(ref, sizeof ref, "%s/ref_x.npy", dir);
  imx_rows_file *f = NULL;
  imx_err e = imx_rows_open(&ctx, p, &f);
  double one[COLS * N] = {0};
  if (!e) e = imx_rows_put(&ctx, f, "a", IMX_ROWS_F64, 0, one, N, row0, nloc, COLS);
  imx_err e2 = e ? e : imx_rows_put(&ctx, f, "b", IMX_ROWS_F64, 0, one, N, row0, nloc, COLS);
  t_expect_err(&ctx, imx_agree(&ctx, e2), IMX_ERR_USAGE, "holds one array",
               "a second array in a .npy file");
  imx_rows_close(&ctx, &f, 0);
  if (ctx.rank == 0) t_check(same_bytes(p, ref), "an abandoned write keeps the older file");

  /* Shards that do not tile [0, N): every rank gets the error, nothing written. */
  snprintf(p, sizeof p, "%s/gap.h5", dir);
  e = imx_rows_open(&ctx, p, &f);
  if (!e) e = imx_rows_put(&ctx, f, "x", IMX_ROWS_F64, 0, one, N + 1, row0, nloc, COLS);
  t_expect_err(&ctx, e, IMX_ERR_INTERNAL, "do not tile", "shards that leave a row out");
  imx_rows_close(&ctx, &f, 0);
  if (ctx.rank == 0) t_check(!exists(p), "a failed write leaves no file at the path");

  /* Runs: the N x COLS matrix with rank p writing the entries of columns
   * p, p + P, ... (one run of one element per row; row-major order mixed over
   * the ranks), in two calls: the bytes of the rows file above. */
  snprintf(p, sizeof p, "%s/runs.npy", dir);
  snprintf(ref, sizeof ref, "%s/x.npy", dir);
  {
    int64_t off[N * COLS];
    int len[N * COLS], n = 0;
    double v[N * COLS];
    e = imx_rows_open(&ctx, p, &f);
    for (int half = 0; half < 2 && !e; half++) {
      n = 0;
      for (int64_t i = half ? N / 2 : 0; i < (half ? N : N / 2); i++)
        for (int j = ctx.rank; j < COLS; j += ctx.size)
          off[n] = i * COLS + j, len[n] = 1, v[n] = value(i, j), n++;
      e = imx_rows_put_runs(&ctx, f, N, COLS, n, off, len, v);
    }
    imx_rows_close(&ctx, &f, e == IMX_OK);
    t_check(e == IMX_OK, "runs of single entries from %d ranks written: code %d %s", ctx.size,
            (int)e, e ? ctx.msg : "");
    if (ctx.rank == 0) t_check(same_bytes(p, ref), "runs.npy: the bytes of the rows file");
  }
  /* No room: a shape larger than any disk fails before writing, naming the
   * file, the bytes needed and free; nothing is left at the path. */
  snprintf(p, sizeof p, "%s/huge.npy", dir);
  e = imx_rows_open(&ctx, p, &f);
  if (!e) e = imx_rows_put_runs(&ctx, f, (int64_t)1 << 29, (int64_t)1 << 29, 0, NULL, NULL, NULL);
  t_expect_err(&ctx, e, IMX_ERR_IO, "huge.npy: needs 2305843009213694080 bytes",
               "a 2^29 x 2^29 array");
  imx_rows_close(&ctx, &f, 0);
  if (ctx.rank == 0) {
    snprintf(ref, sizeof ref, "%s/huge.npy.tmp.%ld", dir, (long)getpid());
    t_check(!exists(p) && !exists(ref), "no room: no file at the path, no temporary file left");
  }

  /* Unknown suffix, unwritable directory. */
  t_expect_err(&ctx, imx_rows_open(&ctx, "features.csv", &f), IMX_ERR_USAGE, ".npy or .h5",
               "features.csv");
  t_expect_err(&ctx, imx_rows_open(&ctx, "/nonexistent-dir/x.npy", &f), IMX_ERR_IO,
               "/nonexistent-dir/x.npy.tmp", "a .npy file in a missing directory");
  t_expect_err(&ctx, imx_rows_open(&ctx, "/nonexistent-dir/x.h5", &f), IMX_ERR_IO,
               "/nonexistent-dir/x.h5.tmp", "an .h5 file in a missing directory");

  MPI_Barrier(ctx.comm);
  t_rmdir(ctx.comm, dir);
  imx_ctx_finalize(&self);
  return t_end(&ctx);
}
