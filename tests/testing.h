/* testing: the one helper of the C tests (HPL style).
 *
 * Every check prints one line with what it measured and the tolerance it was
 * held to, "PASSED: ..." or "FAILED: ...": t_check prints on world rank 0 when
 * it passes and on every rank where it fails; t_check_quiet (for checks inside
 * loops) prints only failures. t_finish agrees on the result across ranks,
 * prints the verdict and returns the exit code: 0 pass, 1 fail; t_skip prints
 * why and returns 77 (skip). Expected errors (t_expect_err) are checked for the
 * code, a piece of the message, and the same code on every rank.
 *
 *   imx_ctx ctx;
 *   t_init(&argc, &argv, &ctx);
 *   t_check(err < 1e-12, "gradient vs finite differences: max rel err %.2e (tol 1e-12)", err);
 *   ...
 *   return t_end(&ctx);
 */
#ifndef IMX_TESTING_H
#define IMX_TESTING_H

#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imx/config.h"
#include "imx/ctx.h"

static int t_failed = 0; /* failed checks on this rank */

/* This process's rank in MPI_COMM_WORLD (0 before MPI_Init). Local. */
static inline int t_rank(void) {
  int r = 0, up = 0;
  MPI_Initialized(&up);
  if (up) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

__attribute__((unused)) static void t_report(int ok, int quiet, const char *fmt, va_list ap) {
  int rank = t_rank();
  if (!ok) t_failed++;
  if (ok && (quiet || rank != 0)) return;
  if (rank) printf("[rank %d] ", rank);
  printf("%s: ", ok ? "PASSED" : "FAILED");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
}

/* Record a check on this rank; print it on world rank 0, or wherever it fails. */
__attribute__((format(printf, 2, 3), unused)) static void t_check(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  t_report(ok, 0, fmt, ap);
  va_end(ap);
}

/* The same, silent when it passes: for checks repeated in loops. */
__attribute__((format(printf, 2, 3), unused)) static void t_check_quiet(int ok, const char *fmt,
                                                                        ...) {
  va_list ap;
  va_start(ap, fmt);
  t_report(ok, 1, fmt, ap);
  va_end(ap);
}

/* Relative error |a - b| / max(|b|, floor). */
__attribute__((unused)) static double t_relerr(double a, double b, double floor) {
  double d = fabs(b) > floor ? fabs(b) : floor;
  return fabs(a - b) / d;
}

/* A call expected to fail with `code` and a message containing `needle` (NULL:
 * any), with the same code on every rank of ctx. Clears the error record.
 * Collective. */
__attribute__((unused)) static void t_expect_err(imx_ctx *ctx, imx_err got, imx_err code,
                                                 const char *needle, const char *label) {
  int mm[2] = {(int)got, -(int)got};
  MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_INT, MPI_MAX, ctx->comm);
  int same = mm[0] == -mm[1], ok = same && got == code && (!needle || strstr(ctx->msg, needle));
  if (same)
    t_check(ok, "%s: code %d on every rank (want %d) -> %s%s%s%s", label, (int)got, (int)code,
            ctx->msg, ok || !needle ? "" : " (lacks \"", ok || !needle ? "" : needle,
            ok || !needle ? "" : "\")");
  else
    t_check(0, "%s: ranks returned different codes (min %d, max %d; want %d) -> %s", label, -mm[1],
            mm[0], (int)code, ctx->msg);
  ctx->code = IMX_OK;
  ctx->msg[0] = '\0';
}

/* Rank 0 creates a fresh directory under /tmp and broadcasts its name. Collective. */
__attribute__((unused)) static void t_tmpdir(MPI_Comm comm, char dir[64]) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    strcpy(dir, "/tmp/imx_test_XXXXXX");
    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      MPI_Abort(comm, 1);
    }
  }
  if (MPI_Bcast(dir, 64, MPI_CHAR, 0, comm) != MPI_SUCCESS) MPI_Abort(comm, 1);
}

/* Rank 0 removes the directory and the plain files in it, after everyone is
 * done. Collective. */
__attribute__((unused)) static void t_rmdir(MPI_Comm comm, const char *dir) {
  int rank;
  MPI_Barrier(comm);
  MPI_Comm_rank(comm, &rank);
  if (rank != 0) return;
  DIR *dp = opendir(dir);
  if (dp) {
    struct dirent *e;
    char p[512];
    while ((e = readdir(dp)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
      }
    closedir(dp);
  }
  rmdir(dir);
}

/* The bytes of the file at path into *buf (malloc'd, the caller frees it);
 * their number, or -1 if it cannot be read. Local. */
__attribute__((unused)) static long t_file_bytes(const char *path, unsigned char **buf) {
  FILE *f = fopen(path, "rb");
  *buf = NULL;
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  *buf = malloc((size_t)n + 1);
  long got = *buf ? (long)fread(*buf, 1, (size_t)n, f) : -1;
  fclose(f);
  return got == n ? n : -1;
}

/* Write len bytes to path; 0 on success, -1 on failure. Local. */
__attribute__((unused)) static int t_write_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(buf, 1, len, f);
  return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* The local rows of a row-sharded matrix (nloc on this rank) add up to N over
 * comm, and its largest error, *maxerr on entry, is 0 over comm (tolerance 0):
 * two quiet checks; *maxerr becomes the maximum over comm. Collective. */
__attribute__((unused)) static void t_check_shards(MPI_Comm comm, int64_t nloc, int64_t N,
                                                   double *maxerr, const char *label) {
  int64_t tot = nloc;
  MPI_Allreduce(MPI_IN_PLACE, &tot, 1, MPI_INT64_T, MPI_SUM, comm);
  MPI_Allreduce(MPI_IN_PLACE, maxerr, 1, MPI_DOUBLE, MPI_MAX, comm);
  t_check_quiet(tot == N, "%s: %lld rows over all ranks, want %lld", label, (long long)tot,
                (long long)N);
  t_check_quiet(*maxerr == 0, "%s: max error %g (tolerance 0)", label, *maxerr);
}

/* Agree on the result, print the verdict on rank 0 and return the exit code
 * (0 pass, 1 fail). Collective over MPI_COMM_WORLD. */
static int t_finish(void) {
  int total = t_failed, size = 1;
  MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (t_rank() == 0) {
    if (total) printf("FAILED: %d check(s) failed (P=%d)\n", total, size);
    else printf("PASSED (P=%d)\n", size);
    fflush(stdout);
  }
  return total ? 1 : 0;
}

/* MPI_Init and a context on MPI_COMM_WORLD; aborts if the context cannot be
 * made. Collective. */
__attribute__((unused)) static void t_init(int *argc, char ***argv, imx_ctx *ctx) {
  MPI_Init(argc, argv);
  if (imx_ctx_init(ctx, MPI_COMM_WORLD)) {
    printf("FAILED: imx_ctx_init\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

/* Free the context of t_init, print the verdict, MPI_Finalize; returns the
 * exit code. Collective. */
__attribute__((unused)) static int t_end(imx_ctx *ctx) {
  imx_ctx_finalize(ctx);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}

/* Print why the test is skipped (rank 0) and return the exit code 77. */
__attribute__((unused)) static int t_skip(const char *why) {
  if (t_rank() == 0) printf("SKIPPED: %s\n", why);
  return 77;
}

/* A small synthetic configuration for numerical tests. */
__attribute__((unused)) static void t_small_config(imx_config *c, int N, int n, int K, int block) {
  imx_config_defaults(c);
  c->data.source = IMX_SRC_SYNTHETIC_ICA;
  c->data.samples = N;
  c->data.dim = n;
  c->model.units = K;
  c->parallel.block = block;
}

#endif
