/* test_idx: IDX (MNIST format) images and labels, plain and gzip'd, read
 * sharded by imx_data_load at P = 1..4. Rank 0 writes the files (gzip'd ones
 * with zlib's gzopen/gzwrite) into a fresh /tmp directory.
 *   - N=23 images of 4 x 3 (and a 2-D N x 12 file), pixel (i, j) =
 *     (7i + 13j) mod 256, labels i mod 5: every rank holds exactly its rows,
 *     times data.scale, and nclasses = 5; data.samples takes a prefix;
 *   - plain and gzip'd files give the same data; gzip'd labels with plain
 *     images work;
 *   - errors, with the same code on every rank: truncated plain file, gzip
 *     stream cut in half, header promising more or fewer images than the
 *     stream holds, unsupported type byte, labels count differing from images
 *     (naming both files), not an IDX file, N < P blocks.
 */
#include <math.h>
#include <stdint.h>
#include <zlib.h>

#include "../src/data/data_impl.h"
#include "testing.h"

enum { NIMG = 23, ROWS = 4, COLS = 3, NPIX = ROWS * COLS, NCLASS = 5 };

static unsigned char pixel(int64_t i, int j) { return (unsigned char)((7 * i + 13 * j) % 256); }

/* An IDX byte image: header with the given type, dims, then the payload. */
static size_t make_idx(unsigned char *buf, int type, int ndim, const uint32_t *dims,
                       const unsigned char *payload, size_t plen) {
  buf[0] = buf[1] = 0;
  buf[2] = (unsigned char)type;
  buf[3] = (unsigned char)ndim;
  for (int k = 0; k < ndim; k++)
    for (int b = 0; b < 4; b++) buf[4 + 4 * k + b] = (unsigned char)(dims[k] >> (8 * (3 - b)));
  memcpy(buf + 4 + 4 * ndim, payload, plen);
  return 4 + 4 * (size_t)ndim + plen;
}

static int write_gz(const char *path, const unsigned char *buf, size_t len) {
  gzFile gz = gzopen(path, "wb9");
  if (!gz) return -1;
  int w = gzwrite(gz, buf, (unsigned)len);
  return (gzclose(gz) == Z_OK && w == (int)len) ? 0 : -1;
}

/* Rank 0 writes a gzip'd IDX file (see make_idx); every rank waits for it.
 * Collective. */
static void write_idx_gz(imx_ctx *ctx, const char *path, int type, int ndim, const uint32_t *dims,
                         const unsigned char *payload, size_t plen) {
  if (ctx->rank == 0) {
    unsigned char buf[NIMG * NPIX + 64];
    size_t len = make_idx(buf, type, ndim, dims, payload, plen);
    t_check_quiet(write_gz(path, buf, len) == 0, "write %s", path);
  }
  MPI_Barrier(ctx->comm);
}

/* Write buf gzip'd to path and read the compressed bytes back into z (at
 * most cap); returns how many there are. Local. */
static size_t write_gz_bytes(const char *path, const unsigned char *buf, size_t len,
                             unsigned char *z, size_t cap) {
  t_check_quiet(write_gz(path, buf, len) == 0, "write %s", path);
  FILE *f = fopen(path, "rb");
  size_t zl = f ? fread(z, 1, cap, f) : 0;
  if (f) fclose(f);
  return zl;
}

static void base_cfg(imx_config *cfg, const char *images, const char *labels, int block) {
  memset(cfg, 0, sizeof *cfg);
  cfg->data.source = IMX_SRC_IDX;
  snprintf(cfg->data.path, sizeof cfg->data.path, "%s", images);
  snprintf(cfg->data.labels, sizeof cfg->data.labels, "%s", labels);
  cfg->data.scale = 1.0 / 255;
  cfg->parallel.block = block;
}

static void check_load(imx_ctx *ctx, const imx_config *cfg, int64_t N, const char *label) {
  imx_data *d = NULL;
  int f0 = t_failed;
  imx_err e = imx_data_load(ctx, cfg, &d);
  t_check_quiet(e == IMX_OK, "%s: %s", label, ctx->msg);
  if (e) return;
  int64_t r0, nl;
  imx_shard(N, cfg->parallel.block, ctx->rank, ctx->size, &r0, &nl);
  t_check_quiet(d->N == N && d->n == NPIX && d->row0 == r0 && d->nloc == nl,
                "%s: N=%lld n=%d row0=%lld nloc=%lld", label, (long long)d->N, d->n,
                (long long)d->row0, (long long)d->nloc);
  double maxerr = 0;
  int badlab = 0;
  for (int64_t i = 0; i < d->nloc && nl == d->nloc; i++) {
    for (int j = 0; j < NPIX; j++)
      maxerr = fmax(maxerr,
                    fabs(d->X[i * NPIX + j] - cfg->data.scale * (double)pixel(d->row0 + i, j)));
    if (cfg->data.labels[0]) badlab += d->labels[i] != (d->row0 + i) % NCLASS;
  }
  t_check_shards(ctx->comm, d->nloc, N, &maxerr, label);
  t_check_quiet(badlab == 0, "%s: %d wrong labels", label, badlab);
  if (cfg->data.labels[0])
    t_check_quiet(d->labels && d->nclasses == (N < NCLASS ? N : NCLASS), "%s: nclasses %d", label,
                  d->nclasses);
  else t_check_quiet(!d->labels && d->nclasses == 0, "%s: labels without a labels file", label);
  t_check(t_failed == f0, "%-30s N=%lld B=%d max error %g (tolerance 0), nclasses %d", label,
          (long long)N, cfg->parallel.block, maxerr, d->nclasses);
  imx_data_free(&d);
}

int main(int argc, char **argv) {
  imx_ctx ctx;
  t_init(&argc, &argv, &ctx);
  char dir[64];
  t_tmpdir(ctx.comm, dir);
  char img[256], imgz[256], img2d[256], lab[256], labz[256], p[256], q[256];
  snprintf(img, sizeof img, "%s/images-idx3-ubyte", dir);
  snprintf(imgz, sizeof imgz, "%s/images-idx3-ubyte.gz", dir);
  snprintf(img2d, sizeof img2d, "%s/images-idx2.gz", dir);
  snprintf(lab, sizeof lab, "%s/labels-idx1-ubyte", dir);
  snprintf(labz, sizeof labz, "%s/labels.bin", dir); /* gzip'd, detected by magic, not by name */

  unsigned char payload[NIMG * NPIX], labels[NIMG], buf[NIMG * NPIX + 64];
  for (int i = 0; i < NIMG; i++) {
    for (int j = 0; j < NPIX; j++) payload[i * NPIX + j] = pixel(i, j);
    labels[i] = (unsigned char)(i % NCLASS);
  }
  size_t zfull = 0;
  if (ctx.rank == 0) {
    uint32_t d3[3] = {NIMG, ROWS, COLS}, d2[2] = {NIMG, NPIX}, d1[1] = {NIMG};
    size_t len = make_idx(buf, 0x08, 3, d3, payload, sizeof payload);
    t_check_quiet(t_write_file(img, buf, len) == 0 && write_gz(imgz, buf, len) == 0,
                  "write images");
    len = make_idx(buf, 0x08, 2, d2, payload, sizeof payload);
    t_check_quiet(write_gz(img2d, buf, len) == 0, "write 2-D images");
    len = make_idx(buf, 0x08, 1, d1, labels, sizeof labels);
    t_check_quiet(t_write_file(lab, buf, len) == 0 && write_gz(labz, buf, len) == 0,
                  "write labels");
  }
  MPI_Barrier(ctx.comm);

  imx_config cfg;
  const int blocks[] = {1, 2, 5};
  for (int b = 0; b < 3; b++) {
    base_cfg(&cfg, img, lab, blocks[b]);
    check_load(&ctx, &cfg, NIMG, "plain images + plain labels");
    base_cfg(&cfg, imgz, labz, blocks[b]);
    check_load(&ctx, &cfg, NIMG, "gz images + gz labels");
  }
  base_cfg(&cfg, img2d, "", 2);
  cfg.data.scale = 1.0;
  check_load(&ctx, &cfg, NIMG, "2-D gz images, no labels");
  base_cfg(&cfg, img, labz, 1);
  cfg.data.samples = 9;
  check_load(&ctx, &cfg, 9, "plain + gz labels, samples=9");
  base_cfg(&cfg, imgz, lab, 1);
  cfg.data.samples = 4;
  check_load(&ctx, &cfg, 4, "gz + plain labels, samples=4");

  /* ---- errors ---- */
  imx_data *d = NULL;
  uint32_t d3[3] = {NIMG, ROWS, COLS};
  size_t len = make_idx(buf, 0x08, 3, d3, payload, sizeof payload);

  /* Plain file one row short: rank 0's size check. */
  snprintf(p, sizeof p, "%s/short-idx3", dir);
  if (ctx.rank == 0) t_check_quiet(t_write_file(p, buf, len - NPIX) == 0, "write");
  MPI_Barrier(ctx.comm);
  base_cfg(&cfg, p, "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, "expected 292 bytes",
               "truncated plain IDX");

  /* gzip'd stream cut in the middle of the compressed data. */
  snprintf(p, sizeof p, "%s/cut.gz", dir);
  if (ctx.rank == 0) {
    unsigned char z[4096];
    size_t zl = write_gz_bytes(p, buf, len, z, sizeof z);
    zfull = zl;
    t_check_quiet(t_write_file(p, z, zl / 2) == 0, "cut");
  }
  MPI_Bcast(&zfull, sizeof zfull, MPI_BYTE, 0, ctx.comm);
  char cutlabel[80];
  snprintf(cutlabel, sizeof cutlabel, "cut gzip stream (%zu of %zu bytes kept)", zfull / 2, zfull);
  base_cfg(&cfg, p, "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, "premature end of gzip'd data",
               cutlabel);

  /* A flipped bit inside the compressed data: zlib's inflate or its CRC-32
   * check at the end of the stream (read by the rank holding the last row)
   * catches it. */
  snprintf(p, sizeof p, "%s/flipped.gz", dir);
  if (ctx.rank == 0) {
    unsigned char z[4096];
    size_t zl = write_gz_bytes(p, buf, len, z, sizeof z);
    z[zl / 2] ^= 0x10;
    t_check_quiet(t_write_file(p, z, zl) == 0, "flip");
  }
  MPI_Barrier(ctx.comm);
  base_cfg(&cfg, p, "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, "gzip",
               "flipped bit in gzip stream");

  /* Header promising 30 images, stream holding 23. */
  snprintf(p, sizeof p, "%s/lying-more.gz", dir);
  uint32_t more[3] = {30, ROWS, COLS}, fewer[3] = {20, ROWS, COLS};
  write_idx_gz(&ctx, p, 0x08, 3, more, payload, sizeof payload);
  base_cfg(&cfg, p, "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA,
               "expected 376 uncompressed bytes (16-byte header + 30 x 12), found 292",
               "gz header says 30 of 23");

  /* Header promising 20 images, stream holding 23. */
  snprintf(p, sizeof p, "%s/lying-fewer.gz", dir);
  write_idx_gz(&ctx, p, 0x08, 3, fewer, payload, sizeof payload);
  base_cfg(&cfg, p, "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, "longer than the IDX header says",
               "gz header says 20 of 23");

  /* Float images (type 0x0D). */
  snprintf(p, sizeof p, "%s/float-idx3.gz", dir);
  write_idx_gz(&ctx, p, 0x0D, 3, d3, payload, sizeof payload);
  base_cfg(&cfg, p, "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA,
               "IDX type byte 0x0D (float) is not supported", "type byte 0x0D");

  /* 22 labels for 23 images. */
  snprintf(q, sizeof q, "%s/labels22.gz", dir);
  uint32_t d1[1] = {NIMG - 1};
  write_idx_gz(&ctx, q, 0x08, 1, d1, labels, NIMG - 1);
  base_cfg(&cfg, imgz, q, 1);
  char want[600];
  snprintf(want, sizeof want, "labels file %s has 22 labels but images file %s has 23 images", q,
           imgz);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, want, "labels count");

  /* Labels file given as images, images as labels, and a non-IDX file. */
  base_cfg(&cfg, lab, "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, "1-D IDX file holds labels",
               "labels as images");
  base_cfg(&cfg, img, img, 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, "labels must be a 1-D IDX file",
               "images as labels");
  base_cfg(&cfg, "data/np_f8.npy", "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, "not an IDX file", "npy as IDX");
  snprintf(p, sizeof p, "%s/none.gz", dir);
  base_cfg(&cfg, p, "", 1);
  t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_IO, "No such file", "missing IDX");
  if (ctx.size > 1) {
    base_cfg(&cfg, imgz, "", 23);
    t_expect_err(&ctx, imx_data_load(&ctx, &cfg, &d), IMX_ERR_DATA, "make 1 blocks of B=23",
                 "N < P blocks (IDX)");
  }
  t_check_quiet(d == NULL, "d set after failures");

  t_rmdir(ctx.comm, dir);
  return t_end(&ctx);
}
