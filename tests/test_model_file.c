/* test_model_file: model.h5 (include/imx/model_file.h) at any number of ranks:
 *   1. a model of two layers (one with a supervised head) written by rank 0
 *      and read back: every rank gets every attribute and array bit for bit,
 *      and the configuration;
 *   2. layers set out of order are refused (IMX_ERR_INTERNAL);
 *   3. agreed errors, the same code on every rank (no hang): no model.h5
 *      (IMX_ERR_IO), a file that is not HDF5, an HDF5 file that is not an
 *      infomax model, a newer format_version (IMX_ERR_DATA). Collective. */
#include <hdf5.h>

#include "imx/model_file.h"

#include "testing.h"

static imx_ctx ctx;

/* count values i * step + offset, in a new array (freed by the model). */
static double *values(size_t count, double step, double offset) {
  double *a = malloc((count ? count : 1) * sizeof *a);
  for (size_t i = 0; a && i < count; i++) a[i] = (double)i * step + offset;
  return a;
}

static int same(const double *a, const double *b, size_t count) {
  return (!a && !b) || (a && b && !memcmp(a, b, count * sizeof *a));
}

/* Rank 0 rewrites the root attribute format_version of file as v. */
static void set_version(const char *file, int v) {
  if (ctx.rank != 0) return;
  hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT, &v);
  H5Aclose(a);
  H5Fclose(f);
}

int main(int argc, char **argv) {
  t_init(&argc, &argv, &ctx);
  char dir[64], path[128];
  t_tmpdir(ctx.comm, dir);
  int n = 4;
  imx_config cfg;
  imx_config_defaults(&cfg);
  cfg.data.scale = 0.5, cfg.data.preprocess = IMX_PRE_WHITEN, cfg.model.units = 3;
  double *mean = values((size_t)n, 0.25, -1), *P = values((size_t)n * n, 1.0 / 3, 0.1);

  /* 1. Write (rank 0) and read back (every rank). */
  imx_model *m = NULL, *r = NULL;
  imx_err e = imx_model_create(&ctx, &cfg, n, mean, P, &m);
  t_check(!e, "imx_model_create: %s", e ? ctx.msg : "ok");
  if (e) return t_finish();
  imx_model_layer *y = &m->layer[0];
  *y = (imx_model_layer){.K = 3, .n = n, .act = IMX_ACT_SOFTMAX, .tau = 0.5, .feed = IMX_FEED_R};
  y->W = values(12, 0.1, -0.3), y->b = values(3, 1, 0.5);
  y->classes = 2, y->U = values(6, -0.7, 2), y->c = values(2, 3, -1);
  y = &m->layer[1];
  *y = (imx_model_layer){.K = 2, .n = 3, .act = IMX_ACT_RELU, .tau = 1, .feed = IMX_FEED_Z};
  y->W = values(6, 1e-3, 0), y->b = values(2, -2, 0);
  m->layers = 2;
  e = imx_model_write(&ctx, m, dir, "training");
  t_check(!e, "imx_model_write: %s", e ? ctx.msg : "ok");
  e = imx_model_read(&ctx, dir, &r);
  t_check(!e, "imx_model_read on every rank: %s", e ? ctx.msg : "ok");
  if (!e) {
    int ok = r->format_version == IMX_MODEL_VERSION && !strcmp(r->status, "training") &&
             r->inputs == n && r->kind == IMX_PRE_WHITEN && r->scale == 0.5 && r->layers == 2 &&
             same(r->mean, mean, (size_t)n) && same(r->transform, P, (size_t)n * n) &&
             r->cfg.model.units == 3 && r->cfg.data.scale == 0.5;
    for (int i = 0; i < 2; i++) {
      const imx_model_layer *a = &m->layer[i], *b = &r->layer[i];
      ok = ok && a->K == b->K && a->n == b->n && a->act == b->act && a->tau == b->tau &&
           a->topk == b->topk && a->feed == b->feed && a->classes == b->classes &&
           same(a->W, b->W, (size_t)a->K * a->n) && same(a->b, b->b, (size_t)a->K) &&
           same(a->U, b->U, (size_t)a->classes * a->K) && same(a->c, b->c, (size_t)a->classes);
    }
    t_check(ok, "read back: attributes, preprocessing, 2 layers and the head, bit for bit");
  }
  imx_model_free(&r);

  /* 2. Layers in order only. */
  e = imx_model_set_layer(&ctx, m, 4, &cfg, NULL, NULL);
  t_expect_err(&ctx, e, IMX_ERR_INTERNAL, "layer 4 set with 2 layers present",
               "layer out of order");

  /* 3. Agreed errors. */
  snprintf(path, sizeof path, "%s/none", dir);
  t_expect_err(&ctx, imx_model_read(&ctx, path, &r), IMX_ERR_IO, "cannot read the model",
               "no model.h5");
  snprintf(path, sizeof path, "%s/text.h5", dir);
  if (ctx.rank == 0) t_write_file(path, "not hdf5\n", 9);
  MPI_Barrier(ctx.comm);
  t_expect_err(&ctx, imx_model_read(&ctx, path, &r), IMX_ERR_DATA, "is not an HDF5 file",
               "a text file");
  snprintf(path, sizeof path, "%s/bare.h5", dir);
  if (ctx.rank == 0) H5Fclose(H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  MPI_Barrier(ctx.comm);
  t_expect_err(&ctx, imx_model_read(&ctx, path, &r), IMX_ERR_DATA,
               "is not an infomax model: its root attribute format is missing",
               "an HDF5 file without attributes");
  snprintf(path, sizeof path, "%s/%s", dir, IMX_MODEL_FILE);
  set_version(path, IMX_MODEL_VERSION + 1);
  MPI_Barrier(ctx.comm);
  t_expect_err(&ctx, imx_model_read(&ctx, dir, &r), IMX_ERR_DATA, "newer than this infomax",
               "a newer format_version");
  t_check(r == NULL, "a failed read returns no model");

  imx_model_free(&m);
  free(mean), free(P);
  t_rmdir(ctx.comm, dir);
  int rc = t_finish();
  imx_ctx_finalize(&ctx);
  MPI_Finalize();
  return rc;
}
