/* fuzz_npy: the .npy header parser and the whole-file reader on arbitrary bytes.
 *
 * Each input is a whole file. imx_npy_parse sees it as a buffer; then
 * imx_npy_read_all opens it as a file (header, exact size check, items to
 * doubles). Invariants checked besides "no crash, no sanitizer report":
 *   - an error is IMX_ERR_DATA (parse) or IMX_ERR_DATA/IMX_ERR_IO (file), with
 *     a message naming the file;
 *   - an accepted header is consistent: 1-D or 2-D, a known dtype and its
 *     item size, the data offset inside the input and right after the header;
 *   - the file reader accepts only what the parser accepts, with the same
 *     shape, and only if the size is exactly header + items.
 * The MPI-IO row reader is not run (it needs MPI_Init); it reads what the
 * header reader has checked.
 */
#include "fuzz_common.h" /* first: it defines _GNU_SOURCE */

#include <stdint.h>
#include <string.h>

#include "../../src/data/data_impl.h"

static int itemsize_of(const char *descr) {
  static const struct {
    const char *descr;
    int size;
  } t[] = {{"<f8", 8}, {"<f4", 4}, {"<i4", 4}, {"<i8", 8}, {"|u1", 1}};
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
    if (strcmp(descr, t[k].descr) == 0) return t[k].size;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  imx_ctx ctx;
  fuzz_ctx(&ctx);
  imx_npy_header h;
  imx_err err = imx_npy_parse(&ctx, "fuzz.npy", data, size, &h);
  if (err) {
    FUZZ_CHECK(err == IMX_ERR_DATA && ctx.code == err, "code %d", (int)err);
    FUZZ_CHECK(strncmp(ctx.msg, "fuzz.npy: ", 10) == 0, "message %s", ctx.msg);
  } else {
    FUZZ_CHECK(memchr(h.descr, '\0', sizeof h.descr) != NULL, "descr not terminated");
    FUZZ_CHECK(itemsize_of(h.descr) == h.itemsize, "descr %s itemsize %d", h.descr, h.itemsize);
    FUZZ_CHECK(h.ndim == 1 || h.ndim == 2, "ndim %d", h.ndim);
    FUZZ_CHECK(h.shape[0] >= 0 && h.shape[1] >= 0 && (h.ndim == 2 || h.shape[1] == 1),
               "shape (%lld, %lld) ndim %d", (long long)h.shape[0], (long long)h.shape[1], h.ndim);
    FUZZ_CHECK(h.data_offset >= 10 && (uint64_t)h.data_offset <= size, "offset %lld of %zu",
               (long long)h.data_offset, size);
    int major = data[6];
    size_t start = major == 1 ? 10 : 12;
    uint64_t hlen = major == 1 ? (uint64_t)data[8] | (uint64_t)data[9] << 8
                               : (uint64_t)data[8] | (uint64_t)data[9] << 8 |
                                     (uint64_t)data[10] << 16 | (uint64_t)data[11] << 24;
    FUZZ_CHECK((uint64_t)h.data_offset == start + hlen, "offset %lld, header %zu + %llu",
               (long long)h.data_offset, start, (unsigned long long)hlen);
  }

  const char *path = fuzz_file(0, data, size);
  double *a = NULL;
  int64_t rows = -1, cols = -1;
  imx_err ferr = imx_npy_read_all(&ctx, path, &a, &rows, &cols);
  if (ferr) {
    FUZZ_CHECK(a == NULL, "array returned with error %d", (int)ferr);
    FUZZ_CHECK(ferr == IMX_ERR_DATA || ferr == IMX_ERR_IO, "code %d: %s", (int)ferr, ctx.msg);
    FUZZ_CHECK(strstr(ctx.msg, path) != NULL, "message does not name the file: %s", ctx.msg);
    return 0;
  }
  FUZZ_CHECK(!err, "file reader accepted what the parser refused");
  FUZZ_CHECK(rows == h.shape[0] && cols == h.shape[1], "shape (%lld, %lld) vs (%lld, %lld)",
             (long long)rows, (long long)cols, (long long)h.shape[0], (long long)h.shape[1]);
  FUZZ_CHECK((uint64_t)(h.data_offset + rows * cols * h.itemsize) == size, "size %zu", size);
  /* Doubles on disk come back bit for bit. */
  if (strcmp(h.descr, "<f8") == 0 && rows * cols > 0)
    FUZZ_CHECK(memcmp(a, data + h.data_offset, (size_t)(rows * cols) * 8) == 0, "f8 items changed");
  free(a);
  return 0;
}
