/* checkpoint: atomic, checksummed training state (see include/imx/checkpoint.h). */
#include "imx/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "IMXCKPT\n"
#define VERSION 2 /* 2: the data's fingerprint, the backend and the settings */

/* On-disk header: fixed-width fields, little-endian as on every platform we
 * build for (checked at open by the magic and version). */
typedef struct disk_header {
  char magic[8];
  uint32_t version, reserved;
  int32_t K, n;
  int64_t nparams;
  int32_t iteration, evaluations;
  int32_t reduction, block;
  char tao_type[32];
  double loss;
  int64_t data_rows;
  uint64_t data_fingerprint;
  int32_t linalg, altered;
  char settings[IMX_CHECKPOINT_SETTINGS];
} disk_header;

static imx_err write_all(imx_ctx *ctx, int fd, const void *buf, size_t len, const char *path) {
  const char *p = buf;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    p += w, len -= (size_t)w;
  }
  return IMX_OK;
}

static imx_err write_root(imx_ctx *ctx, const char *dir, const char *name, const imx_checkpoint *h,
                          const double *theta) {
  char tmp[4096], dst[4096];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
  snprintf(dst, sizeof dst, "%s/%s", dir, name);
  disk_header d;
  memset(&d, 0, sizeof d);
  memcpy(d.magic, MAGIC, 8);
  d.version = VERSION;
  d.K = h->K, d.n = h->n, d.nparams = h->nparams;
  d.iteration = h->iteration, d.evaluations = h->evaluations;
  d.reduction = h->reduction, d.block = h->block;
  snprintf(d.tao_type, sizeof d.tao_type, "%s", h->tao_type);
  d.loss = h->loss;
  d.data_rows = h->data_rows;
  d.data_fingerprint = h->data_fingerprint;
  d.linalg = h->linalg, d.altered = h->altered;
  snprintf(d.settings, sizeof d.settings, "%s", h->settings);
  size_t bytes = (size_t)h->nparams * sizeof *theta;
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, (const Bytef *)&d, sizeof d);
  for (size_t off = 0; off < bytes; off += 1u << 30) { /* zlib lengths are uInt */
    size_t len = bytes - off < (1u << 30) ? bytes - off : (1u << 30);
    crc = crc32(crc, (const Bytef *)theta + off, (uInt)len);
  }
  uint32_t c32 = (uint32_t)crc;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
  imx_err e = write_all(ctx, fd, &d, sizeof d, tmp);
  if (!e) e = write_all(ctx, fd, theta, bytes, tmp);
  if (!e) e = write_all(ctx, fd, &c32, sizeof c32, tmp);
  if (!e && fsync(fd)) e = imx_fail(ctx, IMX_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
  if (close(fd) && !e) e = imx_fail(ctx, IMX_ERR_IO, "close %s: %s", tmp, strerror(errno));
  if (!e && rename(tmp, dst))
    e = imx_fail(ctx, IMX_ERR_IO, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
  /* A failed write (a full disk) leaves no partial file; the old checkpoint stays. */
  if (e) unlink(tmp);
  if (!e) { /* make the rename itself durable */
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
  }
  return e;
}

imx_err imx_checkpoint_write(imx_ctx *ctx, const char *dir, const char *name,
                             const imx_checkpoint *h, const double *theta) {
  imx_err e = ctx->rank == 0 ? write_root(ctx, dir, name, h, theta) : IMX_OK;
  return imx_agree(ctx, e);
}

static imx_err read_root(imx_ctx *ctx, const char *dir, const char *name, imx_checkpoint *h,
                         double **theta) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return imx_fail(ctx, IMX_ERR_IO, "cannot resume from %s: no checkpoint (%s)", dir,
                    strerror(errno));
  disk_header d;
  imx_err e = IMX_OK;
  /* Magic and version first: an older version has a shorter header. */
  const size_t lead = offsetof(disk_header, K);
  if (fread(&d, lead, 1, f) != 1 || memcmp(d.magic, MAGIC, 8))
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: not an infomax checkpoint (bad magic or too short)", path);
  else if (d.version == 1)
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "%s: checkpoint version 1, written by an infomax that did not record the data "
                 "and settings it trained on, so a resume could not be checked; this infomax "
                 "resumes version %d only: continue it with the infomax that wrote it, or start "
                 "the run anew",
                 path, VERSION);
  else if (d.version != VERSION)
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: checkpoint version %u, this infomax reads %d", path,
                 d.version, VERSION);
  else if (fread((char *)&d + lead, sizeof d - lead, 1, f) != 1)
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: truncated header", path);
  else if (d.K < 1 || d.n < 1 || d.nparams < (int64_t)d.K * d.n + d.K)
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: inconsistent sizes (K=%d, n=%d, %lld parameters)", path,
                 d.K, d.n, (long long)d.nparams);
  /* The header's count must match the file's size before it sizes an
   * allocation: a corrupt count is a corrupt file, not an out-of-memory. */
  long size = -1;
  if (!e && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  if (!e && (size < 0 || fseek(f, (long)sizeof d, SEEK_SET) != 0))
    e = imx_fail(ctx, IMX_ERR_IO, "%s: cannot determine its size", path);
  if (!e && (double)size != (double)sizeof d + 8.0 * (double)d.nparams + 4.0)
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "%s: %ld bytes, but its header promises %lld parameters "
                 "(%.0f bytes): the file is truncated or corrupt",
                 path, size, (long long)d.nparams,
                 (double)sizeof d + 8.0 * (double)d.nparams + 4.0);
  double *x = NULL;
  if (!e) {
    x = malloc((size_t)d.nparams * sizeof *x);
    if (!x) e = imx_fail(ctx, IMX_ERR_NOMEM, "checkpoint parameters (%lld)", (long long)d.nparams);
  }
  uint32_t c32 = 0;
  if (!e && (fread(x, sizeof *x, (size_t)d.nparams, f) != (size_t)d.nparams ||
             fread(&c32, sizeof c32, 1, f) != 1))
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: truncated (expected %lld parameters and a checksum)", path,
                 (long long)d.nparams);
  if (!e) {
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)&d, sizeof d);
    size_t bytes = (size_t)d.nparams * sizeof *x;
    for (size_t off = 0; off < bytes; off += 1u << 30) {
      size_t len = bytes - off < (1u << 30) ? bytes - off : (1u << 30);
      crc = crc32(crc, (const Bytef *)x + off, (uInt)len);
    }
    if ((uint32_t)crc != c32)
      e = imx_fail(ctx, IMX_ERR_DATA,
                   "%s: checksum mismatch (stored %08x, computed %08x): the "
                   "file is corrupt",
                   path, c32, (uint32_t)crc);
  }
  fclose(f);
  if (e) {
    free(x);
    return e;
  }
  h->K = d.K, h->n = d.n, h->nparams = d.nparams;
  h->iteration = d.iteration, h->evaluations = d.evaluations;
  h->reduction = d.reduction, h->block = d.block;
  memcpy(h->tao_type, d.tao_type, sizeof h->tao_type);
  h->tao_type[sizeof h->tao_type - 1] = 0;
  h->loss = d.loss;
  h->data_rows = d.data_rows;
  h->data_fingerprint = d.data_fingerprint;
  h->linalg = d.linalg, h->altered = d.altered;
  memcpy(h->settings, d.settings, sizeof h->settings);
  h->settings[sizeof h->settings - 1] = 0;
  *theta = x;
  return IMX_OK;
}

imx_err imx_checkpoint_read(imx_ctx *ctx, const char *dir, const char *name, imx_checkpoint *h,
                            double **theta) {
  *theta = NULL;
  memset(h, 0, sizeof *h);
  imx_err e = ctx->rank == 0 ? read_root(ctx, dir, name, h, theta) : IMX_OK;
  IMX_TRY(imx_agree(ctx, e));
  IMX_MPI(ctx, MPI_Bcast(h, (int)sizeof *h, MPI_BYTE, 0, ctx->comm));
  if (ctx->rank != 0) {
    *theta = malloc((size_t)h->nparams * sizeof **theta);
    e = *theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "checkpoint parameters");
  }
  e = imx_agree(ctx, e);
  if (!e) {
    for (int64_t off = 0; off < h->nparams; off += INT32_MAX / 2) {
      int len = (int)(h->nparams - off < INT32_MAX / 2 ? h->nparams - off : INT32_MAX / 2);
      if (MPI_Bcast(*theta + off, len, MPI_DOUBLE, 0, ctx->comm) != MPI_SUCCESS) {
        e = imx_fail(ctx, IMX_ERR_MPI, "broadcast of the checkpoint failed");
        break;
      }
    }
  }
  if (e) {
    free(*theta);
    *theta = NULL;
  }
  return e;
}
