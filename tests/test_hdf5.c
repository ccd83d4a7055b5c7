/* test_hdf5: the hdf5 data source (src/data/hdf5.c, h5path.c), run at P = 1..4.
 *   - rows on every rank against the values written serially: N=37 rows of
 *     float64 (contiguous), float32 (chunked + gzip + shuffle), uint8 as a
 *     37 x 1 x 5 stack (flattened to 5 columns), big-endian int16, int64 and
 *     uint64 within 2^53, for several block sizes; data.samples and
 *     data.scale; labels as int32 N and uint8 N x 1; "FILE.h5" alone for the
 *     only dataset at the root; a dataset in a group;
 *   - the path syntax (imx_h5_path_parse) and imx_source_of_path on .h5 paths;
 *   - errors agreed on every rank with one code and message: missing file,
 *     not an HDF5 file, missing dataset (with what its group holds), a group,
 *     0-D and 1-D data, strings and compounds, float32 labels, labels of the
 *     wrong length or shape, NaN with row and column, int64 beyond 2^53 with
 *     row and column, N < P blocks, a bad path.
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>

#include "../src/data/data_impl.h"
#include "testing.h"

#define NR 37
#define D 5

/* Entry (i, j) of the float data, and of the integer data (which fits 0..255). */
static double pat(int64_t i, int64_t j) { return (double)i + (double)j * 1e-3; }
static double ipat(int64_t i, int64_t j) { return (double)((i * D + j) % 251); }

static void base_cfg(imx_config *cfg, const char *path, const char *labels, int block) {
  memset(cfg, 0, sizeof *cfg);
  cfg->data.source = IMX_SRC_HDF5;
  snprintf(cfg->data.path, sizeof cfg->data.path, "%s", path);
  snprintf(cfg->data.labels, sizeof cfg->data.labels, "%s", labels);
  cfg->data.scale = 1.0;
  cfg->parallel.block = block;
}

/* Rank 0: one dataset of file f (created if need be), of rank nd with dims,
 * file type ftype, written from buf of memory type mtype; chunk[0] > 0 makes
 * it chunked with gzip and shuffle. */
static void put(hid_t f, const char *name, int nd, const hsize_t *dims, hid_t ftype, hid_t mtype,
                const void *buf, const hsize_t *chunk) {
  hid_t space = nd ? H5Screate_simple(nd, dims, NULL) : H5Screate(H5S_SCALAR);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  if (chunk && chunk[0]) {
    H5Pset_chunk(dcpl, nd, chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 6);
  }
  hid_t ds = H5Dcreate2(f, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
  t_check_quiet(ds >= 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0,
                "write dataset %s", name);
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Sclose(space);
}

/* Rank 0 writes the test files; everyone waits. */
static void make_files(imx_ctx *ctx, const char *dir) {
  if (ctx->rank == 0) {
    char p[256];
    double x[NR * D], x2[NR * D];
    float x4[NR * D];
    uint8_t u8[NR * D], l8[NR];
    int16_t i16[NR * D];
    int64_t i64[NR * D], big[NR * D];
    uint64_t u64[NR * D];
    int32_t l32[NR];
    for (int i = 0; i < NR; i++) {
      for (int j = 0; j < D; j++) {
        int k = i * D + j;
        x[k] = x2[k] = pat(i, j);
        x4[k] = (float)pat(i, j);
        u8[k] = (uint8_t)ipat(i, j);
        i16[k] = (int16_t)(ipat(i, j) - 100);
        i64[k] = big[k] = (int64_t)ipat(i, j) - (j == 1 ? ((int64_t)1 << 53) : 0);
        u64[k] = (uint64_t)ipat(i, j) + (j == 2 ? ((uint64_t)1 << 53) - 300 : 0);
      }
      l32[i] = i % 3;
      l8[i] = (uint8_t)(i % 4);
    }
    x2[23 * D + 2] = NAN;
    x2[30 * D + 1] = INFINITY;
    big[(NR - 3) * D + 1] = -((int64_t)1 << 53) - 1; /* row 34: on the last rank */
    hsize_t d2[2] = {NR, D}, d3[3] = {NR, 1, D}, d1[1] = {NR}, dn1[2] = {NR, 1},
            dshort[1] = {NR - 1};
    hsize_t c2[2] = {8, 3}, c3[3] = {5, 1, D}, none[1] = {0};

    snprintf(p, sizeof p, "%s/x.h5", dir);
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    put(f, "f8", 2, d2, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x, none);
    put(f, "f4gz", 2, d2, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x4, c2);
    put(f, "img/u8", 3, d3, H5T_STD_U8LE, H5T_NATIVE_UINT8, u8, c3);
    put(f, "i16be", 2, d2, H5T_STD_I16BE, H5T_NATIVE_INT16, i16, none);
    put(f, "i64", 2, d2, H5T_STD_I64LE, H5T_NATIVE_INT64, i64, none);
    put(f, "u64", 2, d2, H5T_STD_U64LE, H5T_NATIVE_UINT64, u64, c2);
    put(f, "big", 2, d2, H5T_STD_I64LE, H5T_NATIVE_INT64, big, none);
    put(f, "nan", 2, d2, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x2, c2);
    put(f, "y32", 1, d1, H5T_STD_I32LE, H5T_NATIVE_INT32, l32, none);
    put(f, "y8", 2, dn1, H5T_STD_U8LE, H5T_NATIVE_UINT8, l8, none);
    put(f, "yf4", 1, d1, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x4, none);
    put(f, "yshort", 1, dshort, H5T_STD_I32LE, H5T_NATIVE_INT32, l32, none);
    put(f, "vec", 1, d1, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x, none);
    put(f, "scalar", 0, NULL, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x, none);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 4);
    char s[NR * D * 4];
    memset(s, 'a', sizeof s);
    put(f, "str", 2, d2, str, str, s, none);
    H5Tclose(str);
    hid_t cmp = H5Tcreate(H5T_COMPOUND, 16);
    H5Tinsert(cmp, "a", 0, H5T_NATIVE_DOUBLE);
    H5Tinsert(cmp, "b", 8, H5T_NATIVE_DOUBLE);
    put(f, "cmp", 1, d1, cmp, cmp, x, none); /* N records of 16 bytes from x (N*D*8 bytes) */
    H5Tclose(cmp);
    H5Fclose(f);

    snprintf(p, sizeof p, "%s/only.hdf5", dir); /* one dataset at the root */
    f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    put(f, "X", 2, d2, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x, none);
    H5Fclose(f);

    snprintf(p, sizeof p, "%s/x100.h5", dir);
    f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d100[2] = {100, 2};
    double x100[200];
    for (int k = 0; k < 200; k++) x100[k] = k;
    put(f, "x", 2, d100, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x100, none);
    H5Fclose(f);

    snprintf(p, sizeof p, "%s/text.h5", dir);
    t_check_quiet(t_write_file(p, "not an HDF5 file\n", 17) == 0, "write %s", p);
  }
  MPI_Barrier(ctx->comm);
}

/* Every local row equals want(i, j) * scale exactly; the shard as imx_shard says. */
static void check_rows(imx_ctx *ctx, const imx_data *d, int64_t rows, int block, int kind,
                       double scale, const char *label) {
  int64_t r0, nl;
  int f0 = t_failed;
  imx_shard(rows, block, ctx->rank, ctx->size, &r0, &nl);
  t_check_quiet(d->N == rows && d->n == D && d->row0 == r0 && d->nloc == nl,
                "%s: N=%lld n=%d row0=%lld nloc=%lld (want %lld %d %lld %lld)", label,
                (long long)d->N, d->n, (long long)d->row0, (long long)d->nloc, (long long)rows, D,
                (long long)r0, (long long)nl);
  double maxerr = 0;
  for (int64_t i = 0; i < d->nloc && d->nloc == nl; i++)
    for (int j = 0; j < D; j++) {
      int64_t g = d->row0 + i;
      double w = kind == 0   ? pat(g, j)
                 : kind == 1 ? (float)pat(g, j)
                 : kind == 2 ? ipat(g, j)
                 : kind == 3 ? ipat(g, j) - 100
                 : kind == 4 ? ipat(g, j) - (j == 1 ? 9007199254740992.0 : 0)
                             : ipat(g, j) + (j == 2 ? 9007199254740992.0 - 300 : 0);
      maxerr = fmax(maxerr, fabs(d->X[i * D + j] - w * scale));
    }
  t_check_shards(ctx->comm, d->nloc, rows, &maxerr, label);
  t_check(t_failed == f0, "%-34s N=%lld B=%d max error %g (tolerance 0)", label, (long long)rows,
          block, maxerr);
}

static void test_rows(imx_ctx *ctx, const char *dir) {
  static const struct {
    const char *name;
    int kind;
  } sets[] = {{"f8", 0}, {"f4gz", 1}, {"img/u8", 2}, {"/i16be", 3}, {"i64", 4}, {"u64", 5}};
  const int blocks[] = {1, 3, 7};
  char path[256], lab[256];
  imx_config cfg;
  imx_data *d = NULL;
  for (size_t s = 0; s < sizeof sets / sizeof *sets; s++)
    for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
      char label[64];
      snprintf(path, sizeof path, "%s/x.h5:%s", dir, sets[s].name);
      base_cfg(&cfg, path, "", blocks[b]);
      imx_err e = imx_data_load(ctx, &cfg, &d);
      t_check_quiet(e == IMX_OK, "load %s B=%d: %s", path, blocks[b], ctx->msg);
      snprintf(label, sizeof label, "hdf5 %s", sets[s].name);
      if (!e) check_rows(ctx, d, NR, blocks[b], sets[s].kind, 1.0, label);
      imx_data_free(&d);
    }
  snprintf(path, sizeof path, "%s/x.h5:/f4gz", dir);
  base_cfg(&cfg, path, "", 2);
  cfg.data.samples = 20;
  cfg.data.scale = 0.25;
  t_check_quiet(imx_data_load(ctx, &cfg, &d) == IMX_OK, "load samples=20: %s", ctx->msg);
  if (d) check_rows(ctx, d, 20, 2, 1, 0.25, "hdf5 f4gz samples=20 scale=0.25");
  imx_data_free(&d);
  snprintf(path, sizeof path, "%s/only.hdf5", dir);
  base_cfg(&cfg, path, "", 3);
  t_check_quiet(imx_data_load(ctx, &cfg, &d) == IMX_OK, "load %s: %s", path, ctx->msg);
  if (d) check_rows(ctx, d, NR, 3, 0, 1.0, "hdf5 only dataset at the root");
  imx_data_free(&d);

  const char *labs[] = {"y32", "y8"};
  for (int k = 0; k < 2; k++) {
    snprintf(path, sizeof path, "%s/x.h5:/f8", dir);
    snprintf(lab, sizeof lab, "%s/x.h5:/%s", dir, labs[k]);
    base_cfg(&cfg, path, lab, 2);
    imx_err e = imx_data_load(ctx, &cfg, &d);
    int want = k ? 4 : 3, f0 = t_failed;
    t_check_quiet(!e && d->labels && d->nclasses == want, "labels %s: nclasses %d (want %d) %s",
                  labs[k], d ? d->nclasses : -1, want, ctx->msg);
    for (int64_t i = 0; d && d->labels && i < d->nloc; i++)
      t_check_quiet(d->labels[i] == (d->row0 + i) % want, "label %lld = %d",
                    (long long)(d->row0 + i), d->labels[i]);
    t_check(t_failed == f0, "hdf5 labels %-6s N=%d nclasses %d on every rank (tolerance 0)",
            labs[k], NR, want);
    imx_data_free(&d);
  }
}

static void expect(imx_ctx *ctx, const char *dir, const char *data, const char *labels, int block,
                   imx_err code, const char *needle, const char *label) {
  char path[256], lab[256] = "";
  imx_config cfg;
  imx_data *d = NULL;
  snprintf(path, sizeof path, "%s/%s", dir, data);
  if (labels) snprintf(lab, sizeof lab, "%s/%s", dir, labels);
  base_cfg(&cfg, path, lab, block);
  t_expect_err(ctx, imx_data_load(ctx, &cfg, &d), code, needle, label);
  t_check_quiet(d == NULL, "%s: data returned with the error", label);
}

static void test_errors(imx_ctx *ctx, const char *dir) {
  expect(ctx, dir, "none.h5:/x", NULL, 1, IMX_ERR_IO, "none.h5: cannot open: No such file",
         "missing file");
  expect(ctx, dir, "text.h5", NULL, 1, IMX_ERR_DATA, "text.h5: not an HDF5 file", "not HDF5");
  expect(ctx, dir, "x.h5:/nope", NULL, 1, IMX_ERR_DATA,
         "has no dataset /nope; / holds big (dataset 37 x 5 int64)", "missing dataset");
  expect(ctx, dir, "x.h5:/img/nope", NULL, 1, IMX_ERR_DATA,
         "has no dataset /img/nope; /img holds u8 (dataset 37 x 1 x 5 uint8)",
         "missing dataset in a group");
  expect(ctx, dir, "x.h5:/no/u8", NULL, 1, IMX_ERR_DATA, "has no group /no; / holds",
         "missing group");
  expect(ctx, dir, "x.h5:/img", NULL, 1, IMX_ERR_DATA, "/img is a group, not a dataset", "a group");
  expect(ctx, dir, "x.h5:/f8/x", NULL, 1, IMX_ERR_DATA, "/f8 is a dataset, not a group",
         "dataset as group");
  expect(ctx, dir, "x.h5", NULL, 1, IMX_ERR_DATA, "more than one dataset at the file's root",
         "no dataset named");
  expect(ctx, dir, "x.h5:/scalar", NULL, 1, IMX_ERR_DATA, "the dataset is scalar", "0-D data");
  expect(ctx, dir, "x.h5:/vec", NULL, 1, IMX_ERR_DATA, "must be 2-D or more", "1-D data");
  expect(ctx, dir, "x.h5:/str", NULL, 1, IMX_ERR_DATA, "element type string is not numeric",
         "strings");
  expect(ctx, dir, "x.h5:/f8", "x.h5:/cmp", 1, IMX_ERR_DATA, "element type compound is not numeric",
         "compound labels");
  expect(ctx, dir, "x.h5:/f8", "x.h5:/yf4", 1, IMX_ERR_DATA, "float32 for labels",
         "float32 labels");
  expect(ctx, dir, "x.h5:/f8", "x.h5:/yshort", 1, IMX_ERR_DATA, "has 36 labels but data",
         "labels length");
  expect(ctx, dir, "x.h5:/f8", "x.h5:/f4gz", 1, IMX_ERR_DATA,
         "labels must be a vector (N or N x 1), got 37 x 5", "2-D labels");
  expect(ctx, dir, "x.h5:/nan", NULL, 1, IMX_ERR_DATA, "non-finite value nan at row 23, column 2",
         "NaN (chunked)");
  expect(ctx, dir, "x.h5:/big", NULL, 2, IMX_ERR_DATA,
         "value -9007199254740993 at row 34, column 1 (0-based) is beyond 2^53", "int64 > 2^53");
  expect(ctx, dir, "x.h5:", NULL, 1, IMX_ERR_CONFIG, "nothing after ':'", "empty dataset name");
  expect(ctx, dir, "x.h5:/f8//x", NULL, 1, IMX_ERR_CONFIG, "empty group or dataset name",
         "double slash");
  if (ctx->size >= 2) {
    char msg[200];
    snprintf(msg, sizeof msg, "N=100 rows make 1 blocks of B=256 but %d ranks need one block each",
             ctx->size);
    expect(ctx, dir, "x100.h5:/x", NULL, 256, IMX_ERR_DATA, msg, "N < P blocks");
  }
}

/* The path syntax and the suffixes (Local: the same on every rank). */
static void test_paths(imx_ctx *ctx) {
  static const struct {
    const char *spec, *file, *dataset;
  } ok[] = {{"a.h5", "a.h5", ""},
            {"a.h5:/x", "a.h5", "/x"},
            {"a.h5:x", "a.h5", "/x"},
            {"dir.h5:v/a.hdf5:/g/x", "dir.h5", "/v/a.hdf5:/g/x"},
            {"/d/a.hdf5:/g/h/x", "/d/a.hdf5", "/g/h/x"},
            {"a:b.h5", "a:b.h5", ""},
            {"a.npy", "a.npy", ""}};
  static const char *bad[] = {"a.h5:",     "a.h5:/",      "a.h5://x", "a.h5:/x/",
                              "a.h5:/./x", "a.h5:/x\x01", ""};
  imx_h5_path p;
  int f0 = t_failed;
  for (size_t k = 0; k < sizeof ok / sizeof *ok; k++)
    t_check_quiet(imx_h5_path_parse(ctx, ok[k].spec, &p) == IMX_OK && !strcmp(p.file, ok[k].file) &&
                      !strcmp(p.dataset, ok[k].dataset),
                  "parse %s: %s / %s (%s)", ok[k].spec, p.file, p.dataset, ctx->msg);
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    imx_err e = imx_h5_path_parse(ctx, bad[k], &p);
    t_check_quiet(e == IMX_ERR_CONFIG, "parse %s refused: code %d", bad[k], (int)e);
  }
  ctx->code = IMX_OK;
  t_check_quiet(imx_source_of_path("a.h5") == IMX_SRC_HDF5 &&
                    imx_source_of_path("/d/a.hdf5:/g/x") == IMX_SRC_HDF5 &&
                    imx_source_of_path("a.npy") == IMX_SRC_NPY &&
                    imx_source_of_path("t10k-images-idx3-ubyte.gz") == IMX_SRC_IDX &&
                    imx_source_of_path(".h5") == IMX_SRC_IDX,
                "imx_source_of_path");
  t_check(t_failed == f0, "hdf5 paths: %zu accepted, %zu refused, suffixes named (exact)",
          sizeof ok / sizeof *ok, sizeof bad / sizeof *bad);
}

int main(int argc, char **argv) {
  imx_ctx ctx;
  t_init(&argc, &argv, &ctx);
  char dir[64];
  t_tmpdir(ctx.comm, dir);

  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the writer's own errors are checked */
  make_files(&ctx, dir);
  test_paths(&ctx);
  test_rows(&ctx, dir);
  test_errors(&ctx, dir);

  t_rmdir(ctx.comm, dir);
  return t_end(&ctx);
}
