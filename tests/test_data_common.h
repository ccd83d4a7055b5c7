/* Helpers shared by the data-module tests (test_npy, test_data, test_idx,
 * test_fmnist): failure counting, expected-error checks agreed across ranks,
 * and a scratch directory under /tmp that rank 0 creates and removes. */
#ifndef TEST_DATA_COMMON_H
#define TEST_DATA_COMMON_H

#include <dirent.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imx/ctx.h"

static int t_failures = 0;

#define CHECK(cond, ...)                                           \
  do {                                                             \
    if (!(cond)) {                                                 \
      t_failures++;                                                \
      fprintf(stderr, "[rank %d] FAIL %s:%d: ", t_rank(), __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                \
      fputc('\n', stderr);                                         \
    }                                                              \
  } while (0)

static inline int t_rank(void) {
  int r = 0, up = 0;
  MPI_Initialized(&up);
  if (up) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

/* A call expected to fail with `code` and a message containing `needle`, with
 * the same code on every rank of ctx (checked with an allreduce). */
static inline void t_expect_err(imx_ctx *ctx, imx_err got, imx_err code, const char *needle, const char *label) {
  int mm[2] = {(int)got, -(int)got};
  MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_INT, MPI_MAX, ctx->comm);
  CHECK(mm[0] == -mm[1], "%s: ranks returned different codes (max %d, min %d)", label, mm[0], -mm[1]);
  CHECK(got == code, "%s: expected code %d, got %d (%s)", label, (int)code, (int)got, ctx->msg);
  CHECK(!needle || strstr(ctx->msg, needle), "%s: message \"%s\" lacks \"%s\"", label, ctx->msg, needle);
  if (ctx->rank == 0 && got == code) printf("  ok   %-28s -> %s\n", label, ctx->msg);
  ctx->code = IMX_OK;
  ctx->msg[0] = '\0';
}

/* Rank 0 creates a fresh directory under /tmp and broadcasts its name. */
static inline void t_tmpdir(MPI_Comm comm, char dir[64]) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    strcpy(dir, "/tmp/imx_test_data_XXXXXX");
    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      MPI_Abort(comm, 1);
    }
  }
  MPI_Bcast(dir, 64, MPI_CHAR, 0, comm);
}

/* Rank 0 removes the directory and the plain files in it, after everyone is done. */
static inline void t_rmdir(MPI_Comm comm, const char *dir) {
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

static inline int t_write_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(buf, 1, len, f);
  return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* Every rank's failures summed; rank 0 prints the verdict. Returns the exit code. */
static inline int t_finish(const char *name, const char *detail) {
  int total = t_failures;
  MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  int size;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (t_rank() == 0) {
    if (total)
      printf("%s (P=%d): FAILED: %d check(s) failed; %s\n", name, size, total, detail);
    else
      printf("%s (P=%d): PASSED; %s\n", name, size, detail);
  }
  return total ? 1 : 0;
}

#endif
