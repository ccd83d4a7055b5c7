/* npy: the NumPy .npy format (versions 1.0, 2.0, 3.0), 1-D and 2-D C-order
 * arrays of a few little-endian dtypes. See include/imx/data.h and
 * src/data/data_impl.h. Layout of a file:
 *
 *   "\x93NUMPY" major minor | header length (uint16 LE for 1.x, uint32 LE for
 *   2.x and 3.x) | header: a Python dict literal, space padded, ending in '\n' |
 *   data
 *
 * The header comes from files we did not write, so the parser trusts nothing:
 * every length is checked against the bytes at hand and every problem is an
 * IMX_ERR_DATA naming the file and what was wrong.
 */
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_impl.h"

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
/* numpy itself refuses headers above 10000 bytes unless told otherwise; a
 * header this much larger is garbage, not a shape. */
#define MAX_HEADER_LEN (1 << 20)
/* Bytes rank 0 reads first: enough for every header numpy writes. */
#define FIRST_READ 4096
/* Upper bound on one MPI-IO read, so byte counts stay far from 2^31 in
 * implementations that convert to int internally. */
#define MAX_READ_BYTES ((int64_t)1 << 30)

/* ---- little-endian items, whatever the host ---- */

static uint64_t load_le(const unsigned char *p, int size) {
  uint64_t v = 0;
  for (int i = size - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void store_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int host_is_little_endian(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

/* Raw items to doubles in place (see data_impl.h). Local. */
void imx_npy_to_double(const char *descr, void *buf, size_t count) {
  unsigned char *b = buf;
  double *x = buf;
  /* The common case is already right: skip a pass over what may be GBs. */
  if (strcmp(descr, "<f8") == 0 && host_is_little_endian()) return;
  if (strcmp(descr, "<f8") == 0 || strcmp(descr, "<i8") == 0) {
    /* Same size: in place, any order. */
    int is_float = descr[1] == 'f';
    for (size_t i = 0; i < count; i++) {
      uint64_t u = load_le(b + 8 * i, 8);
      if (is_float) {
        memcpy(&x[i], &u, sizeof u);
      } else {
        int64_t s;
        memcpy(&s, &u, sizeof s);
        x[i] = (double)s;
      }
    }
    return;
  }
  /* Narrower items grow into doubles: walk backwards so that item i is read
   * before double i overwrites it (double i covers items >= i only). */
  for (size_t k = count; k-- > 0;) {
    double v;
    if (strcmp(descr, "<f4") == 0) {
      uint32_t u = (uint32_t)load_le(b + 4 * k, 4);
      float f;
      memcpy(&f, &u, sizeof f);
      v = f;
    } else if (strcmp(descr, "<i4") == 0) {
      uint32_t u = (uint32_t)load_le(b + 4 * k, 4);
      int32_t s;
      memcpy(&s, &u, sizeof s);
      v = s;
    } else {
      v = b[k]; /* "|u1" */
    }
    x[k] = v;
  }
}

/* ---- header parsing ---- */

typedef struct {
  const unsigned char *p, *begin, *end;
} scanner;

static void skip_ws(scanner *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int accept(scanner *s, char c) {
  skip_ws(s);
  if (s->p < s->end && *s->p == (unsigned char)c) {
    s->p++;
    return 1;
  }
  return 0;
}

/* A quoted Python string without escapes; 0 on success. */
static int scan_string(scanner *s, char *out, size_t cap) {
  skip_ws(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return -1;
  unsigned char q = *s->p++;
  size_t k = 0;
  while (s->p < s->end && *s->p != q) {
    if (*s->p == '\\' || *s->p < 0x20 || k + 1 >= cap) return -1;
    out[k++] = (char)*s->p++;
  }
  if (s->p >= s->end) return -1;
  s->p++;
  out[k] = '\0';
  return 0;
}

/* A non-negative Python int (optional 'L' suffix from Python 2); 0 on success. */
static int scan_int(scanner *s, int64_t *v) {
  skip_ws(s);
  if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
  int64_t x = 0;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
    int d = *s->p++ - '0';
    if (x > (INT64_MAX - d) / 10) return -2;
    x = 10 * x + d;
  }
  if (s->p < s->end && *s->p == 'L') s->p++;
  *v = x;
  return 0;
}

static int scan_word(scanner *s, const char *w) {
  skip_ws(s);
  size_t n = strlen(w);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return 0;
  s->p += n;
  return 1;
}

/* The header text for messages: printable, at most 100 characters. */
static void excerpt(const unsigned char *b, const unsigned char *e, char *out, size_t cap) {
  while (e > b && (e[-1] == ' ' || e[-1] == '\n')) e--; /* the padding says nothing */
  size_t k = 0;
  for (; b < e && k + 4 < cap && k < 100; b++)
    out[k++] = (*b >= 0x20 && *b < 0x7f) ? (char)*b : '?';
  if (b < e && k + 4 < cap) {
    memcpy(out + k, "...", 3);
    k += 3;
  }
  out[k] = '\0';
}

static imx_err malformed(imx_ctx *ctx, const char *what, const scanner *s, const char *expected) {
  char ex[128];
  excerpt(s->begin, s->end, ex, sizeof ex);
  return imx_fail(ctx, IMX_ERR_DATA,
                  "%s: malformed .npy header: expected %s at header byte %d in \"%s\"", what,
                  expected, (int)(s->p - s->begin), ex);
}

static const struct {
  const char *descr;
  int itemsize;
} dtypes[] = {{"<f8", 8}, {"<f4", 4}, {"<i4", 4}, {"<i8", 8}, {"|u1", 1}};

/* The prelude (magic, version, header length). Returns 0 and the header start
 * and length, or -1 (bad magic), -2 (too short), -3 (bad version). */
static int prelude(const unsigned char *buf, size_t len, int *major, int *minor, size_t *start,
                   uint32_t *hlen) {
  if (len < MAGIC_LEN || memcmp(buf, MAGIC, MAGIC_LEN) != 0) return -1;
  if (len < 8) return -2;
  *major = buf[6];
  *minor = buf[7];
  if ((*major != 1 && *major != 2 && *major != 3) || *minor != 0) return -3;
  *start = *major == 1 ? 10 : 12;
  if (len < *start) return -2;
  *hlen = (uint32_t)load_le(buf + 8, *major == 1 ? 2 : 4);
  return 0;
}

static imx_err prelude_error(imx_ctx *ctx, const char *what, int rc, const unsigned char *buf,
                             size_t len, int major, int minor) {
  if (rc == -1) {
    char ex[32];
    excerpt(buf, buf + (len < 8 ? len : 8), ex, sizeof ex);
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: not a .npy file (bad magic \"%s\", need \"\\x93NUMPY\")", what, ex);
  }
  if (rc == -3)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: unsupported .npy format version %d.%d (need 1.0, 2.0 or 3.0)", what, major,
                    minor);
  return imx_fail(ctx, IMX_ERR_DATA, "%s: file too short for a .npy header (%zu bytes)", what, len);
}

/* Parse a .npy header (prelude and dict). Local.
 *   what (in): the file name for messages.
 *   buf, len (in): the first len bytes of the file; they must cover the whole
 *     header, else the header "exceeds the file".
 *   h (out): the header; shape[1] = 1 for 1-D arrays.
 * Errors: IMX_ERR_DATA naming `what` and the problem (magic, version, length,
 * malformed dict, missing/duplicate/unknown key, dtype, fortran order, ndim,
 * overflow). Does not check the file size: see imx_npy_read_header. */
imx_err imx_npy_parse(imx_ctx *ctx, const char *what, const unsigned char *buf, size_t len,
                      imx_npy_header *h) {
  int major = 0, minor = 0;
  size_t start = 0;
  uint32_t hlen = 0;
  int rc = prelude(buf, len, &major, &minor, &start, &hlen);
  if (rc) return prelude_error(ctx, what, rc, buf, len, major, minor);
  if (hlen > len - start)
    return imx_fail(ctx, IMX_ERR_DATA, "%s: header length %u exceeds the file (%zu bytes)", what,
                    (unsigned)hlen, len);

  memset(h, 0, sizeof *h);
  scanner s = {buf + start, buf + start, buf + start + hlen};
  int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
  char descr[32] = "";
  int64_t shape[8];
  int ndim = 0;

  if (!accept(&s, '{')) return malformed(ctx, what, &s, "'{'");
  while (!accept(&s, '}')) {
    char key[32];
    if (scan_string(&s, key, sizeof key)) return malformed(ctx, what, &s, "a quoted key or '}'");
    if (!accept(&s, ':')) return malformed(ctx, what, &s, "':'");
    if (strcmp(key, "descr") == 0 && !have_descr) {
      skip_ws(&s);
      if (s.p < s.end && *s.p == '[')
        return imx_fail(ctx, IMX_ERR_DATA,
                        "%s: structured dtypes are not supported (need '<f8' or '<f4')", what);
      if (scan_string(&s, descr, sizeof descr)) return malformed(ctx, what, &s, "a quoted dtype");
      have_descr = 1;
    } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
      if (scan_word(&s, "True")) fortran = 1;
      else if (!scan_word(&s, "False")) return malformed(ctx, what, &s, "True or False");
      have_order = 1;
    } else if (strcmp(key, "shape") == 0 && !have_shape) {
      if (!accept(&s, '(')) return malformed(ctx, what, &s, "'(' opening the shape");
      while (!accept(&s, ')')) {
        int64_t v;
        int irc = scan_int(&s, &v);
        if (irc == -2)
          return imx_fail(ctx, IMX_ERR_DATA, "%s: shape entry %d overflows 64 bits", what, ndim);
        if (irc) return malformed(ctx, what, &s, "a non-negative integer or ')' in the shape");
        if (ndim == 8)
          return imx_fail(ctx, IMX_ERR_DATA, "%s: shape has more than 8 dimensions", what);
        shape[ndim++] = v;
        if (!accept(&s, ',')) {
          if (!accept(&s, ')')) return malformed(ctx, what, &s, "',' or ')' in the shape");
          break;
        }
      }
      have_shape = 1;
    } else if (strcmp(key, "descr") == 0 || strcmp(key, "fortran_order") == 0 ||
               strcmp(key, "shape") == 0) {
      return imx_fail(ctx, IMX_ERR_DATA, "%s: key '%s' appears twice in the .npy header", what,
                      key);
    } else {
      return imx_fail(ctx, IMX_ERR_DATA, "%s: unexpected key '%s' in the .npy header", what, key);
    }
    if (!accept(&s, ',')) {
      if (!accept(&s, '}')) return malformed(ctx, what, &s, "',' or '}'");
      break;
    }
  }
  skip_ws(&s);
  if (s.p != s.end) return malformed(ctx, what, &s, "only padding after '}'");
  if (!have_descr || !have_order || !have_shape)
    return imx_fail(ctx, IMX_ERR_DATA, "%s: .npy header lacks '%s'", what,
                    !have_descr   ? "descr"
                    : !have_order ? "fortran_order"
                                  : "shape");

  int itemsize = 0;
  for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
    if (strcmp(descr, dtypes[k].descr) == 0) itemsize = dtypes[k].itemsize;
  if (!itemsize)
    return imx_fail(
        ctx, IMX_ERR_DATA,
        "%s: unsupported dtype '%s' (need '<f8' or '<f4'; label vectors may also be '<i4', "
        "'<i8' or '|u1')",
        what, descr);
  if (fortran)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: fortran_order arrays are not supported (save with np.ascontiguousarray)",
                    what);
  if (ndim < 1 || ndim > 2) {
    char sh[160] = "";
    size_t k = 0;
    for (int i = 0; i < ndim && k < sizeof sh - 24; i++)
      k += (size_t)snprintf(sh + k, sizeof sh - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: %d-D arrays are not supported (shape (%s)); need 1-D or 2-D", what, ndim,
                    sh);
  }
  int64_t rows = shape[0], cols = ndim == 2 ? shape[1] : 1;
  /* rows*cols*itemsize + offset must fit in an int64 (and an MPI_Offset). */
  if (cols > 0 && rows > (INT64_MAX / 2 - (int64_t)start - hlen) / cols / itemsize)
    return imx_fail(ctx, IMX_ERR_DATA, "%s: shape (%lld, %lld) is too large", what, (long long)rows,
                    (long long)cols);
  memcpy(h->descr, descr, strlen(descr) + 1);
  h->ndim = ndim;
  h->shape[0] = rows;
  h->shape[1] = cols;
  h->itemsize = itemsize;
  h->data_offset = (int64_t)start + hlen;
  return IMX_OK;
}

/* ---- whole-file readers (stdio) ---- */

/* Open path and read+parse its header; leaves f open on success. */
static imx_err open_header(imx_ctx *ctx, const char *path, imx_npy_header *h, FILE **fp) {
  FILE *f = fopen(path, "rb");
  if (!f) return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    int e = errno;
    fclose(f);
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    fclose(f);
    return imx_fail(ctx, IMX_ERR_IO, "%s: not a regular file", path);
  }
  int64_t size = (int64_t)st.st_size;
  unsigned char first[FIRST_READ];
  size_t got = fread(first, 1, sizeof first, f);
  if (got < sizeof first && ferror(f)) {
    int e = errno;
    fclose(f);
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot read: %s", path, strerror(e));
  }

  int major = 0, minor = 0;
  size_t start = 0;
  uint32_t hlen = 0;
  int rc = prelude(first, got, &major, &minor, &start, &hlen);
  if (rc) {
    fclose(f);
    return prelude_error(ctx, path, rc, first, got, major, minor);
  }
  int64_t need = (int64_t)start + hlen;
  if (need > size) {
    fclose(f);
    return imx_fail(ctx, IMX_ERR_DATA, "%s: header length %u exceeds the file (%lld bytes)", path,
                    (unsigned)hlen, (long long)size);
  }
  if (hlen > MAX_HEADER_LEN) {
    fclose(f);
    return imx_fail(ctx, IMX_ERR_DATA, "%s: header length %u is implausible (more than %d bytes)",
                    path, (unsigned)hlen, MAX_HEADER_LEN);
  }
  imx_err err;
  if ((size_t)need <= got) {
    err = imx_npy_parse(ctx, path, first, got, h);
  } else {
    /* A long header (many padding bytes, or a generous writer): read it all. */
    unsigned char *buf = malloc((size_t)need);
    if (!buf) {
      fclose(f);
      return imx_fail(ctx, IMX_ERR_NOMEM, "%s: %lld-byte header", path, (long long)need);
    }
    memcpy(buf, first, got);
    size_t more = fread(buf + got, 1, (size_t)need - got, f);
    if (more != (size_t)need - got)
      err = imx_fail(ctx, IMX_ERR_IO, "%s: cannot read the %lld-byte header", path,
                     (long long)need);
    else err = imx_npy_parse(ctx, path, buf, (size_t)need, h);
    free(buf);
  }
  if (err) {
    fclose(f);
    return err;
  }
  /* The size must match exactly: a header whose shape disagrees with the file
   * is lying about something, and guessing which part is wrong helps no one. */
  int64_t expect = h->data_offset + h->shape[0] * h->shape[1] * h->itemsize;
  if (size != expect) {
    fclose(f);
    return imx_fail(
        ctx, IMX_ERR_DATA,
        "%s: file is %s: expected %lld bytes (%lld-byte header + %lld x %lld items of %d bytes), "
        "found %lld",
        path, size < expect ? "truncated" : "longer than its header says", (long long)expect,
        (long long)h->data_offset, (long long)h->shape[0], (long long)h->shape[1], h->itemsize,
        (long long)size);
  }
  *fp = f;
  return IMX_OK;
}

/* Header of a .npy file, with its size checked (see data_impl.h). Local. */
imx_err imx_npy_read_header(imx_ctx *ctx, const char *path, imx_npy_header *h) {
  FILE *f = NULL;
  IMX_TRY(open_header(ctx, path, h, &f));
  fclose(f);
  return IMX_OK;
}

/* Read a whole 1-D or 2-D .npy file as doubles. Local.
 *   path (in): the file.
 *   a (out): rows*cols doubles, row-major, allocated here; the caller frees it
 *     with free(). NULL on error.
 *   rows, cols (out): the shape (cols = 1 for a 1-D file).
 * Errors: IMX_ERR_IO, IMX_ERR_DATA (as imx_npy_read_header), IMX_ERR_NOMEM. */
imx_err imx_npy_read_all(imx_ctx *ctx, const char *path, double **a, int64_t *rows, int64_t *cols) {
  imx_npy_header h;
  FILE *f = NULL;
  *a = NULL;
  IMX_TRY(open_header(ctx, path, &h, &f));
  int64_t count = h.shape[0] * h.shape[1];
  if ((uint64_t)count > SIZE_MAX / sizeof(double)) {
    fclose(f);
    return imx_fail(ctx, IMX_ERR_NOMEM, "%s: %lld x %lld array", path, (long long)h.shape[0],
                    (long long)h.shape[1]);
  }
  double *x = malloc(count ? (size_t)count * sizeof(double) : 1);
  if (!x) {
    fclose(f);
    return imx_fail(ctx, IMX_ERR_NOMEM, "%s: %lld x %lld array", path, (long long)h.shape[0],
                    (long long)h.shape[1]);
  }
  if (fseeko(f, (off_t)h.data_offset, SEEK_SET) != 0 ||
      fread(x, (size_t)h.itemsize, (size_t)count, f) != (size_t)count) {
    int e = errno;
    fclose(f);
    free(x);
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot read %lld items: %s", path, (long long)count,
                    strerror(e));
  }
  fclose(f);
  imx_npy_to_double(h.descr, x, (size_t)count);
  *a = x;
  *rows = h.shape[0];
  *cols = h.shape[1];
  return IMX_OK;
}

/* ---- writer ---- */

/* Write a 2-D '<f8' C-order .npy file atomically. Local.
 *   path (in): the destination; PATH.tmp.<pid> is written, fsync'd and
 *     renamed over it, so readers see the old file or the whole new one.
 *   a (in, local): rows x cols doubles, row-major; borrowed for the call.
 * The header is padded so that the data start at a multiple of 64 bytes.
 * Errors: IMX_ERR_IO with strerror (the temp file is removed). */
int imx_npy_header_bytes(const char *descr, int ndim, int64_t rows, int64_t cols,
                         unsigned char head[IMX_NPY_HEADER_MAX]) {
  char dict[128];
  int dlen = ndim == 1
                 ? snprintf(dict, sizeof dict,
                            "{'descr': '%s', 'fortran_order': False, 'shape': (%lld,), }", descr,
                            (long long)rows)
                 : snprintf(dict, sizeof dict,
                            "{'descr': '%s', 'fortran_order': False, 'shape': (%lld, %lld), }",
                            descr, (long long)rows, (long long)cols);
  /* Pad with spaces and a final '\n' so the data start on a 64-byte boundary,
   * as numpy does (aligned memory maps). */
  int total = 10 + dlen + 1;
  int pad = (64 - total % 64) % 64;
  int hlen = dlen + pad + 1;
  memcpy(head, MAGIC, MAGIC_LEN);
  head[6] = 1;
  head[7] = 0;
  head[8] = (unsigned char)(hlen & 0xff);
  head[9] = (unsigned char)(hlen >> 8);
  memcpy(head + 10, dict, (size_t)dlen);
  memset(head + 10 + dlen, ' ', (size_t)pad);
  head[10 + hlen - 1] = '\n';
  return 10 + hlen;
}

imx_err imx_npy_write(imx_ctx *ctx, const char *path, const double *a, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0)
    return imx_fail(ctx, IMX_ERR_INTERNAL, "%s: negative shape (%lld, %lld)", path, (long long)rows,
                    (long long)cols);
  unsigned char head[IMX_NPY_HEADER_MAX];
  int hbytes = imx_npy_header_bytes("<f8", 2, rows, cols, head);

  /* Write a temporary file and rename it, so that a reader never sees half a
   * file and a crash leaves the previous version intact. */
  char tmp[IMX_PATH_LEN + 32];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
    return imx_fail(ctx, IMX_ERR_IO, "%s: path too long", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return imx_fail(ctx, IMX_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
  int ok = fwrite(head, 1, (size_t)hbytes, f) == (size_t)hbytes;
  unsigned char chunk[8 * 4096];
  int64_t count = rows * cols;
  for (int64_t i = 0; ok && i < count;) {
    int64_t m = count - i < 4096 ? count - i : 4096;
    for (int64_t k = 0; k < m; k++) {
      uint64_t u;
      memcpy(&u, &a[i + k], sizeof u);
      store_le64(chunk + 8 * k, u);
    }
    ok = fwrite(chunk, 8, (size_t)m, f) == (size_t)m;
    i += m;
  }
  int e = ok ? 0 : errno;
  if (ok && fflush(f) != 0) ok = 0, e = errno;
  if (ok && fsync(fileno(f)) != 0) ok = 0, e = errno;
  if (fclose(f) != 0 && ok) ok = 0, e = errno;
  if (!ok) {
    unlink(tmp);
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot write: %s", tmp, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    e = errno;
    unlink(tmp);
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot rename %s to it: %s", path, tmp, strerror(e));
  }
  return IMX_OK;
}

/* ---- sharded rows (MPI-IO) ---- */

/* This rank's rows of a .npy file by MPI-IO (see data_impl.h). Local. */
imx_err imx_npy_read_rows(imx_ctx *ctx, const char *path, const imx_npy_header *h, int64_t row0,
                          int64_t nrows, void *out) {
  if (nrows <= 0) return IMX_OK;
  MPI_File fh;
  int rc = MPI_File_open(MPI_COMM_SELF, path, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh);
  if (rc != MPI_SUCCESS) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open with MPI-IO: %s", path, s);
  }
  /* Count in rows, not bytes or items: a shard of many GB is still a small
   * number of rows, and the int count of MPI_File_read_at stays < 2^31. */
  MPI_Datatype item, row;
  MPI_Type_contiguous(h->itemsize, MPI_BYTE, &item);
  MPI_Type_contiguous((int)h->shape[1], item, &row);
  MPI_Type_commit(&row);
  int64_t rowbytes = h->shape[1] * h->itemsize;
  int64_t chunk = MAX_READ_BYTES / rowbytes;
  if (chunk < 1) chunk = 1;
  if (chunk > INT_MAX) chunk = INT_MAX;
  imx_err err = IMX_OK;
  unsigned char *dst = out;
  for (int64_t done = 0; done < nrows;) {
    int want = (int)(nrows - done < chunk ? nrows - done : chunk);
    MPI_Offset off = (MPI_Offset)(h->data_offset + (row0 + done) * rowbytes);
    MPI_Status st;
    rc = MPI_File_read_at(fh, off, dst + done * rowbytes, want, row, &st);
    if (rc != MPI_SUCCESS) {
      char s[MPI_MAX_ERROR_STRING];
      int len = 0;
      MPI_Error_string(rc, s, &len);
      err = imx_fail(ctx, IMX_ERR_IO, "%s: MPI_File_read_at of rows %lld..%lld failed: %s", path,
                     (long long)(row0 + done), (long long)(row0 + done + want - 1), s);
      break;
    }
    int got = 0;
    MPI_Get_count(&st, row, &got);
    if (got != want) {
      err = imx_fail(ctx, IMX_ERR_DATA, "%s: short read at row %lld: expected %d rows, found %d",
                     path, (long long)(row0 + done), want, got == MPI_UNDEFINED ? -1 : got);
      break;
    }
    done += want;
  }
  MPI_Type_free(&row);
  MPI_Type_free(&item);
  MPI_File_close(&fh);
  return err;
}

/* ---- the npy source (data.source: npy) ---- */

/* Rank 0's checks of the data and labels headers. Local. */
static imx_err npy_headers(imx_ctx *ctx, const imx_config *cfg, void *x, void *y) {
  imx_npy_header *hx = x, *hy = y;
  const char *px = cfg->data.path, *py = cfg->data.labels;
  IMX_TRY(imx_npy_read_header(ctx, px, hx));
  if (hx->ndim != 2)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: the data matrix must be 2-D (rows x features), got 1-D of %lld", px,
                    (long long)hx->shape[0]);
  if (strcmp(hx->descr, "<f8") != 0 && strcmp(hx->descr, "<f4") != 0)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: unsupported dtype '%s' for the data matrix (need '<f8' or '<f4')", px,
                    hx->descr);
  if (py[0] == '\0') return IMX_OK;
  IMX_TRY(imx_npy_read_header(ctx, py, hy));
  if (hy->shape[1] != 1)
    return imx_fail(ctx, IMX_ERR_DATA, "%s: labels must be a vector, got shape (%lld, %lld)", py,
                    (long long)hy->shape[0], (long long)hy->shape[1]);
  if (strcmp(hy->descr, "<f4") == 0)
    return imx_fail(
        ctx, IMX_ERR_DATA,
        "%s: unsupported dtype '<f4' for labels (need '<i4', '<i8', '|u1' or '<f8' with integer "
        "values)",
        py);
  if (hy->shape[0] != hx->shape[0])
    return imx_fail(ctx, IMX_ERR_DATA,
                    "labels file %s has %lld labels but data file %s has %lld rows", py,
                    (long long)hy->shape[0], px, (long long)hx->shape[0]);
  return IMX_OK;
}

static void npy_shape(const void *h, int64_t *rows, int64_t *cols) {
  const imx_npy_header *n = h;
  *rows = n->shape[0];
  *cols = n->shape[1];
}

static imx_err npy_rows(imx_ctx *ctx, const char *path, const void *h, int64_t row0, int64_t nrows,
                        void *out) {
  return imx_npy_read_rows(ctx, path, h, row0, nrows, out);
}

/* Items to doubles, then times scale (as two passes: the same bits as ever). */
static void npy_to_double(const void *h, void *buf, size_t count, double scale) {
  imx_npy_to_double(((const imx_npy_header *)h)->descr, buf, count);
  imx_data_scale(buf, count, scale);
}

_Static_assert(sizeof(imx_npy_header) <= IMX_SOURCE_HEADER_MAX, "raise IMX_SOURCE_HEADER_MAX");
const imx_source_ops imx_npy_source = {.read_headers = npy_headers,
                                       .shape = npy_shape,
                                       .read_rows = npy_rows,
                                       .to_double = npy_to_double};
