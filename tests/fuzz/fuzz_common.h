/* fuzz_common: what the libFuzzer harnesses share (see docs/fuzzing.md).
 *
 * The parsers under test are Local: they touch the context only to record an
 * error, so a zeroed imx_ctx on "rank 0 of 1" stands in for one made by
 * imx_ctx_init, and MPI is never initialised. Readers that take a path get an
 * in-memory file (memfd) named /proc/self/fd/N, so the harness runs exactly
 * the code a real file goes through without touching the disk.
 */
#ifndef IMX_FUZZ_COMMON_H
#define IMX_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "imx/ctx.h"

/* An invariant the code under test promises; a violation is a finding, so it
 * crashes the way libFuzzer reports (and saves the input). */
#define FUZZ_CHECK(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "fuzz: invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                        \
      fputc('\n', stderr);                                                                 \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

/* A context as imx_ctx_init leaves it on one rank, without a communicator. */
static inline void fuzz_ctx(imx_ctx *ctx) {
  memset(ctx, 0, sizeof *ctx);
  ctx->comm = MPI_COMM_NULL;
  ctx->rank = 0;
  ctx->size = 1;
}

/* In-memory files, reused across inputs: slot k holds the last bytes written
 * to it. Returns a path that fopen/gzopen/open accept (borrowed, valid until
 * the next call with the same slot). Falls back to a file under /tmp, unlinked
 * at exit, where memfd_create is missing. Aborts if neither works: the harness
 * would test nothing. */
#define FUZZ_SLOTS 2
static char fuzz_tmp_paths[FUZZ_SLOTS][64];

static void fuzz_unlink_tmp(void) {
  for (int k = 0; k < FUZZ_SLOTS; k++)
    if (fuzz_tmp_paths[k][0]) unlink(fuzz_tmp_paths[k]);
}

static inline const char *fuzz_file(int slot, const void *data, size_t size) {
  static int fd[FUZZ_SLOTS] = {-1, -1};
  static char path[FUZZ_SLOTS][64];
  if (fd[slot] < 0) {
    fd[slot] = memfd_create("imx-fuzz", MFD_CLOEXEC);
    if (fd[slot] >= 0) {
      snprintf(path[slot], sizeof path[slot], "/proc/self/fd/%d", fd[slot]);
    } else {
      snprintf(fuzz_tmp_paths[slot], sizeof fuzz_tmp_paths[slot], "/tmp/imx-fuzz-XXXXXX");
      fd[slot] = mkstemp(fuzz_tmp_paths[slot]);
      if (fd[slot] < 0) {
        perror("fuzz: memfd_create and mkstemp");
        abort();
      }
      memcpy(path[slot], fuzz_tmp_paths[slot], sizeof path[slot]);
      atexit(fuzz_unlink_tmp);
    }
  }
  const unsigned char *p = data;
  size_t done = 0;
  if (ftruncate(fd[slot], 0) != 0) {
    perror("fuzz: ftruncate");
    abort();
  }
  while (done < size) {
    ssize_t w = pwrite(fd[slot], p + done, size - done, (off_t)done);
    if (w <= 0) {
      perror("fuzz: pwrite");
      abort();
    }
    done += (size_t)w;
  }
  return path[slot];
}

#endif
