/* fuzz_idx: the IDX (MNIST) header reader and row reader on arbitrary bytes.
 *
 * Each input is a whole file, plain or gzip'd (gzip is recognised by its magic,
 * as for real files). imx_idx_read_header reads it through stdio or zlib; if
 * the header is accepted and the data are small, imx_idx_read_rows reads all
 * rows, then the second half as the last of two ranks would (for gzip: stream,
 * discard, check nothing follows). Invariants besides "no crash, no sanitizer
 * report":
 *   - an error is IMX_ERR_DATA or IMX_ERR_IO with a message naming the file;
 *   - an accepted header is type 0x08, 1 to 3 dimensions, offset 4 + 4*ndim,
 *     N = dims[0], n = product of the others and at most INT_MAX, gz iff the
 *     input starts with 1f 8b;
 *   - a plain file has exactly header + N*n bytes, and its rows read back as
 *     the input's bytes; both row reads agree.
 */
#include "fuzz_common.h" /* first: it defines _GNU_SOURCE */

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "../../src/data/data_impl.h"

/* Rows are read only up to this many bytes: a gzip'd input of a few kB can
 * claim (and hold) megabytes. */
#define MAX_ROWS_BYTES (4 << 20)

static void check_error(const imx_ctx *ctx, imx_err err, const char *path) {
  FUZZ_CHECK(err == IMX_ERR_DATA || err == IMX_ERR_IO, "code %d: %s", (int)err, ctx->msg);
  FUZZ_CHECK(ctx->code == err, "recorded code %d, returned %d", (int)ctx->code, (int)err);
  FUZZ_CHECK(strstr(ctx->msg, path) != NULL, "message does not name the file: %s", ctx->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  imx_ctx ctx;
  fuzz_ctx(&ctx);
  const char *path = fuzz_file(0, data, size);
  imx_idx_header h;
  imx_err err = imx_idx_read_header(&ctx, path, &h);
  if (err) {
    check_error(&ctx, err, path);
    return 0;
  }
  int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  FUZZ_CHECK(h.type == 0x08 && h.ndim >= 1 && h.ndim <= 3, "type %#x ndim %d", h.type, h.ndim);
  FUZZ_CHECK(h.data_offset == 4 + 4 * h.ndim && h.gz == gz, "offset %lld gz %d",
             (long long)h.data_offset, h.gz);
  uint64_t n = 1; /* two uint32 factors at most: no wrap */
  for (int k = 1; k < h.ndim; k++) n *= (uint64_t)h.dims[k];
  FUZZ_CHECK(h.N == h.dims[0] && h.N >= 0 && n <= INT_MAX && h.n == (int64_t)n, "N %lld n %lld",
             (long long)h.N, (long long)h.n);
  if (!gz)
    FUZZ_CHECK((uint64_t)(h.data_offset + h.N * h.n) == size, "%lld x %lld in %zu bytes",
               (long long)h.N, (long long)h.n, size);

  if (h.N * h.n > MAX_ROWS_BYTES) return 0;
  size_t bytes = (size_t)(h.N * h.n);
  unsigned char *all = malloc(bytes ? bytes : 1);
  FUZZ_CHECK(all != NULL, "malloc %zu", bytes);
  err = imx_idx_read_rows(&ctx, path, &h, 0, h.N, all);
  if (err) {
    FUZZ_CHECK(gz, "plain file with a valid header: %s", ctx.msg);
    check_error(&ctx, err, path);
  } else if (!gz) {
    FUZZ_CHECK(memcmp(all, data + h.data_offset, bytes) == 0, "rows differ from the file");
  }
  if (!err && h.N >= 2) {
    int64_t row0 = h.N / 2;
    size_t tail = (size_t)((h.N - row0) * h.n);
    unsigned char *half = malloc(tail ? tail : 1);
    FUZZ_CHECK(half != NULL, "malloc %zu", tail);
    imx_err herr = imx_idx_read_rows(&ctx, path, &h, row0, h.N - row0, half);
    FUZZ_CHECK(!herr, "all rows read, the second half not: %s", ctx.msg);
    FUZZ_CHECK(memcmp(half, all + row0 * h.n, tail) == 0, "second half differs");
    free(half);
  }
  free(all);
  return 0;
}
