/* optlog: the optimizer log for exact resume (see include/imx/optlog.h). */
#include "imx/optlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "imx/log.h"

#define MAGIC "IMXOLOG\n"
#define MAGIC_CAPPED "IMXOLOGC" /* the log stopped at output.optimizer_log_max_mib */

struct imx_optlog {
  FILE *f; /* rank 0 only */
  char path[4096];
  int64_t nparams;
  int64_t naux;        /* optimizer statistics logged after g (the ICA preconditioner's) */
  int64_t entries;     /* entries in the file */
  int64_t max_entries; /* output.optimizer_log_max_mib as entries (INT64_MAX: no limit) */
  int capped;          /* the limit was reached: nothing more is appended */
};

/* Entry layout: uint64 hash of x, double f, nvals = nparams + naux doubles
 * (g, then aux), uint32 crc of all before. */
static size_t entry_bytes(int64_t nvals) { return 8 + 8 + (size_t)nvals * 8 + 4; }
static const long header_bytes = 16; /* magic + int64 nvals */

uint64_t imx_hash_doubles(const double *x, int64_t n) {
  const unsigned char *p = (const unsigned char *)x;
  uint64_t h = 1469598103934665603ULL;
  for (int64_t i = 0; i < n * 8; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static imx_err open_root(imx_ctx *ctx, imx_optlog *l, const char *dir, const char *name,
                         int64_t keep) {
  snprintf(l->path, sizeof l->path, "%s/%s", dir, name);
  int64_t nvals = l->nparams + l->naux;
  if (keep < 0) {
    l->f = fopen(l->path, "w+b");
    if (!l->f) return imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", l->path, strerror(errno));
    if (fwrite(MAGIC, 8, 1, l->f) != 1 || fwrite(&nvals, 8, 1, l->f) != 1)
      return imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", l->path, strerror(errno));
    l->entries = 0;
    return IMX_OK;
  }
  l->f = fopen(l->path, "r+b");
  if (!l->f) return imx_fail(ctx, IMX_ERR_IO, "cannot open %s: %s", l->path, strerror(errno));
  char magic[8];
  int64_t np = 0;
  if (fread(magic, 8, 1, l->f) != 1 ||
      (memcmp(magic, MAGIC, 8) && memcmp(magic, MAGIC_CAPPED, 8)) || fread(&np, 8, 1, l->f) != 1 ||
      np != nvals)
    return imx_fail(ctx, IMX_ERR_DATA, "%s: not an optimizer log for %lld parameters%s", l->path,
                    (long long)l->nparams,
                    l->naux ? " and the ICA preconditioner's statistics" : "");
  fseek(l->f, 0, SEEK_END);
  long size = ftell(l->f);
  int64_t have = (size - header_bytes) / (int64_t)entry_bytes(nvals);
  if (have < keep)
    return imx_fail(ctx, IMX_ERR_DATA, "%s holds %lld evaluations, the checkpoint needs %lld",
                    l->path, (long long)have, (long long)keep);
  off_t cut = header_bytes + (off_t)keep * (off_t)entry_bytes(nvals);
  fflush(l->f);
  if (ftruncate(fileno(l->f), cut))
    return imx_fail(ctx, IMX_ERR_IO, "cannot truncate %s: %s", l->path, strerror(errno));
  /* Entries past the checkpoint are gone, so the log is no longer capped. */
  if (fseek(l->f, 0, SEEK_SET) || fwrite(MAGIC, 8, 1, l->f) != 1 || fseek(l->f, 0, SEEK_END))
    return imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", l->path, strerror(errno));
  l->entries = keep;
  return IMX_OK;
}

imx_err imx_optlog_open(imx_ctx *ctx, const char *dir, const char *name, int64_t nparams,
                        int64_t naux, int64_t keep, imx_optlog **out) {
  *out = NULL;
  imx_optlog *l = calloc(1, sizeof *l);
  imx_err e = l ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "optimizer log");
  if (l) l->nparams = nparams, l->naux = naux, l->max_entries = INT64_MAX;
  if (!e && ctx->rank == 0) e = open_root(ctx, l, dir, name, keep);
  e = imx_agree(ctx, e);
  if (e) {
    imx_optlog_close(&l);
    return e;
  }
  l->entries = keep < 0 ? 0 : keep;
  *out = l;
  return IMX_OK;
}

void imx_optlog_close(imx_optlog **l) {
  if (!l || !*l) return;
  if ((*l)->f) fclose((*l)->f);
  free(*l);
  *l = NULL;
}

/* The size limit is reached: mark the file (rank 0) and say what that means. */
static imx_err cap(imx_ctx *ctx, imx_optlog *l) {
  imx_err e = IMX_OK;
  l->capped = 1;
  if (ctx->rank == 0 && (fseek(l->f, 0, SEEK_SET) || fwrite(MAGIC_CAPPED, 8, 1, l->f) != 1 ||
                         fseek(l->f, 0, SEEK_END)))
    e = imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", l->path, strerror(errno));
  imx_log(ctx, IMX_WARN,
          "%s stops at %lld evaluations (output.optimizer_log_max_mib): a resume from a "
          "checkpoint written before this point is still exact; a resume from a later one keeps "
          "the checkpoint's weights, iteration count and metrics but starts the optimizer afresh "
          "(L-BFGS history and line search), so its path is no longer bit for bit the "
          "uninterrupted run's",
          l->path, (long long)l->entries);
  return e;
}

imx_err imx_optlog_append(imx_ctx *ctx, imx_optlog *l, const double *x, double f, const double *g,
                          const double *aux) {
  imx_err e = IMX_OK;
  if (l->entries >= l->max_entries) {
    if (!l->capped) e = cap(ctx, l);
    return e;
  }
  if (ctx->rank == 0) {
    uint64_t h = imx_hash_doubles(x, l->nparams);
    size_t np = (size_t)l->nparams, na = (size_t)l->naux;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)&h, 8);
    crc = crc32(crc, (const Bytef *)&f, 8);
    crc = crc32(crc, (const Bytef *)g, (uInt)(np * 8));
    if (na) crc = crc32(crc, (const Bytef *)aux, (uInt)(na * 8));
    uint32_t c = (uint32_t)crc;
    if (fwrite(&h, 8, 1, l->f) != 1 || fwrite(&f, 8, 1, l->f) != 1 ||
        fwrite(g, 8, np, l->f) != np || (na && fwrite(aux, 8, na, l->f) != na) ||
        fwrite(&c, 4, 1, l->f) != 1)
      e = imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", l->path, strerror(errno));
  }
  l->entries++;
  return e;
}

imx_err imx_optlog_replay(imx_ctx *ctx, imx_optlog *l, int64_t i, const double *x, double *f,
                          double *g, double *aux) {
  uint64_t h = 0;
  imx_err e = IMX_OK;
  size_t np = (size_t)l->nparams, na = (size_t)l->naux;
  if (ctx->rank == 0) {
    uint32_t c = 0;
    long off = header_bytes + (long)i * (long)entry_bytes(l->nparams + l->naux);
    if (fseek(l->f, off, SEEK_SET) || fread(&h, 8, 1, l->f) != 1 || fread(f, 8, 1, l->f) != 1 ||
        fread(g, 8, np, l->f) != np || (na && fread(aux, 8, na, l->f) != na) ||
        fread(&c, 4, 1, l->f) != 1)
      e = imx_fail(ctx, IMX_ERR_DATA, "%s: cannot read evaluation %lld", l->path, (long long)i);
    if (!e) {
      uLong crc = crc32(0L, Z_NULL, 0);
      crc = crc32(crc, (const Bytef *)&h, 8);
      crc = crc32(crc, (const Bytef *)f, 8);
      crc = crc32(crc, (const Bytef *)g, (uInt)(np * 8));
      if (na) crc = crc32(crc, (const Bytef *)aux, (uInt)(na * 8));
      if ((uint32_t)crc != c)
        e = imx_fail(ctx, IMX_ERR_DATA, "%s: evaluation %lld is corrupt (checksum)", l->path,
                     (long long)i);
    }
    fseek(l->f, 0, SEEK_END);
  }
  IMX_TRY(imx_agree(ctx, e));
  double hf[2];
  memcpy(&hf[0], &h, 8);
  hf[1] = *f;
  IMX_MPI(ctx, MPI_Bcast(hf, 2, MPI_DOUBLE, 0, ctx->comm));
  IMX_MPI(ctx, MPI_Bcast(g, (int)np, MPI_DOUBLE, 0, ctx->comm));
  if (na) IMX_MPI(ctx, MPI_Bcast(aux, (int)na, MPI_DOUBLE, 0, ctx->comm));
  memcpy(&h, &hf[0], 8);
  *f = hf[1];
  if (h != imx_hash_doubles(x, l->nparams))
    return imx_fail(ctx, IMX_ERR_DATA,
                    "resume: the optimizer asked for another point than the logged run at "
                    "evaluation %lld (were optimizer.type, optimizer.options or TAO options "
                    "changed?); resume with the same optimizer settings, or delete %s to "
                    "restart the optimizer from the checkpoint's weights",
                    (long long)i, l->path);
  return IMX_OK;
}

imx_err imx_optlog_sync(imx_ctx *ctx, imx_optlog *l) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0 && (fflush(l->f) || fsync(fileno(l->f))))
    e = imx_fail(ctx, IMX_ERR_IO, "cannot sync %s: %s", l->path, strerror(errno));
  return imx_agree(ctx, e);
}

/* Bytes of one entry and of n entries with the header. */
static double log_mib(const imx_optlog *l, double n) {
  return (header_bytes + n * (double)entry_bytes(l->nparams + l->naux)) / 1048576;
}

imx_err imx_optlog_plan(imx_ctx *ctx, imx_optlog *l, double max_mib, int max_it) {
  double per = log_mib(l, 1) - log_mib(l, 0);
  /* L-BFGS usually takes one evaluation per iteration, a few more for line searches. */
  double expect = log_mib(l, 1.05 * max_it + 2);
  if (max_mib > 0) {
    double room = (max_mib - log_mib(l, 0)) / per;
    l->max_entries = room > 0 ? (int64_t)room : 0;
  }
  imx_log(ctx, IMX_INFO,
          "  optimizer log %.3g MiB per evaluation, about %.4g MiB for max_it=%d (1.05 "
          "evaluations per iteration)%s",
          per, expect, max_it,
          max_mib <= 0        ? ""
          : max_mib >= expect ? "; within output.optimizer_log_max_mib"
                              : "; stops at output.optimizer_log_max_mib, beyond which "
                                "resume is not exact");
  return IMX_OK;
}

int64_t imx_optlog_capped_at(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  char magic[8];
  int64_t nvals = 0, at = -1;
  if (fread(magic, 8, 1, f) == 1 && !memcmp(magic, MAGIC_CAPPED, 8) &&
      fread(&nvals, 8, 1, f) == 1 && nvals >= 0 && !fseek(f, 0, SEEK_END)) {
    long size = ftell(f);
    at = size < header_bytes ? 0 : (size - header_bytes) / (int64_t)entry_bytes(nvals);
  }
  fclose(f);
  return at;
}
