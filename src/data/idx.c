/* idx: the IDX format of MNIST and Fashion-MNIST, plain or gzip'd. See
 * src/data/data_impl.h. Layout:
 *
 *   00 00 TYPE NDIM | NDIM big-endian uint32 dimensions | items, row-major
 *
 * Only TYPE 0x08 (unsigned byte) is supported: images are N x rows x cols
 * (or N x n), labels are N. Gzip'd files are recognised by their 1f 8b magic,
 * not by their name. gzip has no random access, so every rank streams the file
 * from the start and discards the rows before its own; decompression runs at
 * a few hundred MB/s, which for MNIST-sized files is a fraction of a second.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data_impl.h"

/* zlib input buffer and discard chunk: large enough that the per-call
 * overhead vanishes, small enough to stay in cache. */
#define GZ_BUFFER (256 * 1024)
/* Largest single gzread: its length is an unsigned and its result an int. */
#define GZ_MAX_READ (1 << 30)

static const char *type_name(int t) {
  switch (t) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "short";
    case 0x0C:
      return "int";
    case 0x0D:
      return "float";
    case 0x0E:
      return "double";
    default:
      return "unknown";
  }
}

/* 1 if the file starts with the gzip magic, 0 if not, -1 with errno on error. */
static int is_gzip(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  unsigned char m[2] = {0, 0};
  size_t got = fread(m, 1, 2, f);
  int e = errno;
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    errno = e;
    return -1;
  }
  return got == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

/* Reads for both kinds of file: (f, gz) has exactly one non-NULL member. */
typedef struct {
  FILE *f;
  gzFile gz;
} reader;

/* Read up to len bytes; returns the count (short at end of data) or -1. */
static int64_t reader_read(reader *r, void *buf, int64_t len) {
  unsigned char *p = buf;
  int64_t done = 0;
  while (done < len) {
    int64_t want = len - done < GZ_MAX_READ ? len - done : GZ_MAX_READ;
    int64_t got;
    if (r->gz) {
      int g = gzread(r->gz, p + done, (unsigned)want);
      if (g < 0) return -1;
      got = g;
    } else {
      got = (int64_t)fread(p + done, 1, (size_t)want, r->f);
      if (got < want && ferror(r->f)) return -1;
    }
    done += got;
    if (got < want) break;
  }
  return done;
}

/* Why a gz read stopped: zlib's message if it saw an error, else "". */
static const char *gz_why(gzFile gz, const char *path) {
  int zerr = Z_OK;
  const char *m = gzerror(gz, &zerr);
  if (zerr == Z_OK || !m) return "";
  /* zlib prefixes the path, which our message already names. */
  size_t k = strlen(path);
  return strncmp(m, path, k) == 0 && strncmp(m + k, ": ", 2) == 0 ? m + k + 2 : m;
}

/* Header of an IDX file, plain or gzip'd (see data_impl.h). Local. */
imx_err imx_idx_read_header(imx_ctx *ctx, const char *path, imx_idx_header *h) {
  memset(h, 0, sizeof *h);
  int gz = is_gzip(path);
  if (gz < 0) return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  reader r = {NULL, NULL};
  if (gz) {
    r.gz = gzopen(path, "rb");
    if (!r.gz) return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  } else {
    r.f = fopen(path, "rb");
    if (!r.f) return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  }
  imx_err err = IMX_OK;
  unsigned char b[16];
  int64_t got = reader_read(&r, b, 4);
  if (got < 0) {
    if (gz)
      err = imx_fail(ctx, IMX_ERR_DATA, "%s: corrupt gzip stream: %s", path, gz_why(r.gz, path));
    else err = imx_fail(ctx, IMX_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    goto out_close;
  }
  if (got < 4 || b[0] != 0 || b[1] != 0) {
    err = imx_fail(
        ctx, IMX_ERR_DATA,
        "%s: not an IDX file (the first 4%s bytes are %02x %02x %02x %02x; need 00 00 08 0N)", path,
        gz ? " uncompressed" : "", got > 0 ? b[0] : 0, got > 1 ? b[1] : 0, got > 2 ? b[2] : 0,
        got > 3 ? b[3] : 0);
    goto out_close;
  }
  h->type = b[2];
  h->ndim = b[3];
  h->gz = gz;
  if (h->type != 0x08) {
    err = imx_fail(ctx, IMX_ERR_DATA,
                   "%s: IDX type byte 0x%02X (%s) is not supported (need 0x08, unsigned byte)",
                   path, h->type, type_name(h->type));
    goto out_close;
  }
  if (h->ndim < 1 || h->ndim > 3) {
    err = imx_fail(ctx, IMX_ERR_DATA,
                   "%s: IDX files with %d dimensions are not supported (need 1 to 3)", path,
                   h->ndim);
    goto out_close;
  }
  h->data_offset = 4 + 4 * h->ndim;
  got = reader_read(&r, b + 4, 4 * h->ndim);
  if (got != 4 * h->ndim) {
    err = imx_fail(ctx, IMX_ERR_DATA,
                   "%s: IDX header is truncated: expected %lld bytes, found %lld", path,
                   (long long)h->data_offset, (long long)(4 + (got > 0 ? got : 0)));
    goto out_close;
  }
  uint64_t n = 1; /* two uint32 factors at most: < 2^64, but not always < 2^63 */
  for (int k = 0; k < h->ndim; k++) {
    const unsigned char *p = b + 4 + 4 * k;
    h->dims[k] = ((int64_t)p[0] << 24) | ((int64_t)p[1] << 16) | ((int64_t)p[2] << 8) | p[3];
    if (k > 0) n *= (uint64_t)h->dims[k];
  }
  h->N = h->dims[0];
  if (n > INT_MAX) {
    err = imx_fail(ctx, IMX_ERR_DATA, "%s: rows of %llu items are too long (at most %d)", path,
                   (unsigned long long)n, INT_MAX);
    goto out_close;
  }
  h->n = (int64_t)n;
  if (!gz) {
    /* A plain file must hold exactly what the header says; a gzip'd one is
     * checked while streaming (premature end, trailing data). */
    struct stat st;
    if (fstat(fileno(r.f), &st) != 0) {
      err = imx_fail(ctx, IMX_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
      goto out_close;
    }
    int64_t expect = h->data_offset + h->N * h->n;
    if ((int64_t)st.st_size != expect) {
      err = imx_fail(
          ctx, IMX_ERR_DATA,
          "%s: file %s its IDX header: expected %lld bytes (%lld-byte header + %lld x %lld), "
          "found %lld",
          path, (int64_t)st.st_size < expect ? "is shorter than" : "is longer than",
          (long long)expect, (long long)h->data_offset, (long long)h->N, (long long)h->n,
          (long long)st.st_size);
      goto out_close;
    }
  }
out_close:
  if (r.gz) gzclose(r.gz);
  if (r.f) fclose(r.f);
  return err;
}

/* Rows of a plain file: one pread of this rank's byte range. */
static imx_err read_plain(imx_ctx *ctx, const char *path, const imx_idx_header *h, int64_t row0,
                          int64_t nrows, unsigned char *out) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  int64_t off = h->data_offset + row0 * h->n, len = nrows * h->n, done = 0;
  while (done < len) {
    int64_t want = len - done < GZ_MAX_READ ? len - done : GZ_MAX_READ;
    ssize_t got = pread(fd, out + done, (size_t)want, (off_t)(off + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int e = errno;
      close(fd);
      return imx_fail(ctx, IMX_ERR_IO, "%s: cannot read at byte %lld: %s", path,
                      (long long)(off + done), strerror(e));
    }
    if (got == 0) {
      close(fd);
      return imx_fail(ctx, IMX_ERR_DATA,
                      "%s: premature end of file: expected %lld bytes, found %lld", path,
                      (long long)(h->data_offset + h->N * h->n), (long long)(off + done));
    }
    done += got;
  }
  close(fd);
  return IMX_OK;
}

/* Rows of a gzip'd file: stream, discard what precedes row0, keep ours. */
static imx_err read_gz(imx_ctx *ctx, const char *path, const imx_idx_header *h, int64_t row0,
                       int64_t nrows, unsigned char *out) {
  gzFile gz = gzopen(path, "rb");
  if (!gz) return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  gzbuffer(gz, GZ_BUFFER);
  reader r = {NULL, gz};
  imx_err err = IMX_OK;
  int64_t total = h->data_offset + h->N * h->n;
  int64_t skip = h->data_offset + row0 * h->n, pos = 0, len = nrows * h->n, got;
  unsigned char *junk = malloc(GZ_BUFFER);
  if (!junk) {
    gzclose(gz);
    return imx_fail(ctx, IMX_ERR_NOMEM, "%s: %d-byte buffer", path, GZ_BUFFER);
  }
  /* Read-and-discard rather than gzseek: zlib would do the same internally,
   * and counting ourselves tells exactly where a truncated stream ends. */
  while (pos < skip) {
    int64_t want = skip - pos < GZ_BUFFER ? skip - pos : GZ_BUFFER;
    got = reader_read(&r, junk, want);
    if (got < 0) goto out_corrupt;
    pos += got;
    if (got < want) goto out_short;
  }
  got = reader_read(&r, out, len);
  if (got < 0) goto out_corrupt;
  pos += got;
  if (got < len) goto out_short;
  if (row0 + nrows == h->N) {
    /* The rank holding the last row also checks that nothing follows it: a
     * header that undercounts is as wrong as one that overcounts. */
    unsigned char extra;
    int64_t more = reader_read(&r, &extra, 1);
    if (more < 0) goto out_corrupt;
    if (more > 0) {
      err = imx_fail(
          ctx, IMX_ERR_DATA,
          "%s: uncompressed data are longer than the IDX header says: expected %lld bytes "
          "(%lld-byte header + %lld x %lld), found more",
          path, (long long)total, (long long)h->data_offset, (long long)h->N, (long long)h->n);
    }
  }
  goto out_close;

out_short:
  err = imx_fail(
      ctx, IMX_ERR_DATA,
      "%s: premature end of gzip'd data: expected %lld uncompressed bytes (%lld-byte header + %lld "
      "x %lld), found %lld%s%s",
      path, (long long)total, (long long)h->data_offset, (long long)h->N, (long long)h->n,
      (long long)pos, *gz_why(gz, path) ? "; zlib: " : "", gz_why(gz, path));
  goto out_close;
out_corrupt:
  err = imx_fail(ctx, IMX_ERR_DATA, "%s: corrupt gzip stream after %lld uncompressed bytes: %s",
                 path, (long long)pos, gz_why(gz, path));
out_close:
  free(junk);
  gzclose(gz);
  return err;
}

/* This rank's rows of an IDX file (see data_impl.h). Local. */
imx_err imx_idx_read_rows(imx_ctx *ctx, const char *path, const imx_idx_header *h, int64_t row0,
                          int64_t nrows, unsigned char *out) {
  if (nrows <= 0) return IMX_OK;
  if (h->gz) return read_gz(ctx, path, h, row0, nrows, out);
  return read_plain(ctx, path, h, row0, nrows, out);
}

/* ---- the idx source (data.source: idx) ---- */

static imx_err idx_headers(imx_ctx *ctx, const imx_config *cfg, void *x, void *y) {
  imx_idx_header *hx = x, *hy = y;
  const char *px = cfg->data.path, *py = cfg->data.labels;
  IMX_TRY(imx_idx_read_header(ctx, px, hx));
  if (hx->ndim < 2)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: a 1-D IDX file holds labels; data.path needs images (N x rows x cols)",
                    px);
  if (py[0] == '\0') return IMX_OK;
  IMX_TRY(imx_idx_read_header(ctx, py, hy));
  if (hy->ndim != 1)
    return imx_fail(ctx, IMX_ERR_DATA, "%s: labels must be a 1-D IDX file, got %d dimensions", py,
                    hy->ndim);
  if (hy->N != hx->N)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "labels file %s has %lld labels but images file %s has %lld images", py,
                    (long long)hy->N, px, (long long)hx->N);
  return IMX_OK;
}

/* Bytes at the start of buf grow into doubles times scale; backwards, so each
 * byte is read before the double that covers it is written. */
static void idx_to_double(const void *h, void *buf, size_t count, double scale) {
  (void)h;
  const unsigned char *b = buf;
  double *x = buf;
  for (size_t k = count; k-- > 0;) x[k] = scale * (double)b[k];
}

static void idx_shape(const void *h, int64_t *rows, int64_t *cols) {
  const imx_idx_header *x = h;
  *rows = x->N;
  *cols = x->n;
}

static imx_err idx_rows(imx_ctx *ctx, const char *path, const void *h, int64_t row0, int64_t nrows,
                        void *out) {
  return imx_idx_read_rows(ctx, path, h, row0, nrows, out);
}

_Static_assert(sizeof(imx_idx_header) <= IMX_SOURCE_HEADER_MAX, "raise IMX_SOURCE_HEADER_MAX");
const imx_source_ops imx_idx_source = {.read_headers = idx_headers,
                                       .shape = idx_shape,
                                       .read_rows = idx_rows,
                                       .to_double = idx_to_double};
