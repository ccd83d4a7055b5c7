/* ctx: the run context and the error record (see include/imx/ctx.h). */
#include "imx/ctx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

imx_err imx_fail_at(imx_ctx *ctx, imx_err code, const char *func, const char *file, int line,
                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
  va_end(ap);
  const char *base = strrchr(file, '/');
  snprintf(ctx->where, sizeof ctx->where, "%s (%s:%d)", func, base ? base + 1 : file, line);
  ctx->code = code;
  ctx->err_rank = ctx->rank;
  return code;
}

imx_err imx_fail_mpi(imx_ctx *ctx, int rc, const char *call, const char *func, const char *file,
                     int line) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
  return imx_fail_at(ctx, IMX_ERR_MPI, func, file, line, "%s failed: %s", call, s);
}

imx_err imx_ctx_init(imx_ctx *ctx, MPI_Comm comm) {
  memset(ctx, 0, sizeof *ctx);
  ctx->comm = MPI_COMM_NULL;
  if (MPI_Comm_dup(comm, &ctx->comm) != MPI_SUCCESS) return IMX_ERR_MPI;
  MPI_Comm_set_errhandler(ctx->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(ctx->comm, &ctx->rank);
  MPI_Comm_size(ctx->comm, &ctx->size);
  return IMX_OK;
}

void imx_ctx_finalize(imx_ctx *ctx) {
  if (ctx->comm != MPI_COMM_NULL) MPI_Comm_free(&ctx->comm);
}

imx_err imx_agree(imx_ctx *ctx, imx_err local) {
  /* (code, rank) pairs: the maximum code wins; among equal codes MPI_MAXLOC
   * keeps the lowest rank, so that the message is deterministic. */
  int in[2] = {(int)local, ctx->rank}, out[2];
  if (MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MAXLOC, ctx->comm) != MPI_SUCCESS) {
    /* The communicator itself is broken: nobody can agree any more. */
    fprintf(stderr, "infomax: [%d/%d] error: MPI_Allreduce failed while agreeing on status\n",
            ctx->rank, ctx->size);
    MPI_Abort(MPI_COMM_WORLD, IMX_ERR_MPI);
  }
  if (out[0] == IMX_OK) return IMX_OK;
  int root = out[1];
  struct {
    int code, rank;
    char msg[IMX_MSG_LEN];
    char where[160];
  } rec;
  if (ctx->rank == root) {
    rec.code = ctx->code ? (int)ctx->code : out[0];
    rec.rank = ctx->rank;
    memcpy(rec.msg, ctx->msg, sizeof rec.msg);
    memcpy(rec.where, ctx->where, sizeof rec.where);
  }
  if (MPI_Bcast(&rec, (int)sizeof rec, MPI_BYTE, root, ctx->comm) != MPI_SUCCESS) {
    fprintf(stderr, "infomax: [%d/%d] error: MPI_Bcast failed while agreeing on status\n",
            ctx->rank, ctx->size);
    MPI_Abort(MPI_COMM_WORLD, IMX_ERR_MPI);
  }
  ctx->code = (imx_err)out[0];
  ctx->err_rank = rec.rank;
  memcpy(ctx->msg, rec.msg, sizeof ctx->msg);
  memcpy(ctx->where, rec.where, sizeof ctx->where);
  return ctx->code;
}

void imx_report(const imx_ctx *ctx) {
  if (ctx->rank != 0 || ctx->code == IMX_OK) return;
  if (ctx->size > 1)
    fprintf(stderr, "infomax: error (rank %d of %d): %s\n", ctx->err_rank, ctx->size, ctx->msg);
  else fprintf(stderr, "infomax: error: %s\n", ctx->msg);
  if (getenv("IMX_DEBUG")) fprintf(stderr, "infomax:   at %s\n", ctx->where);
  fflush(stderr);
}

void *imx_malloc_rows(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  /* The whole 2 MiB pages inside the block (glibc maps a block this large on
   * its own, so the advice touches no other allocation). */
  const uintptr_t huge = (uintptr_t)2 << 20;
  if (p && bytes >= IMX_HUGE_MIN) {
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), z = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (z > a) (void)madvise((void *)a, z - a, MADV_HUGEPAGE);
  }
#endif
  return p;
}
