/* test_npy: the .npy parser, writer and whole-file reader on one rank.
 *   - round trip imx_npy_write -> imx_npy_read_all, bitwise, with 64-byte alignment;
 *   - hand-made headers v1/v2/v3, f4/f8, keys in any order, 1-D, Python 2 'L';
 *   - bad headers, each with the expected message substring;
 *   - truncated, over-long and header-longer-than-file files;
 *   - files written by numpy (tests/data, see make_fixtures.py);
 *   - random mutations of a valid header never crash the parser and never
 *     yield an inconsistent header.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "../src/data/data_impl.h"
#include "imx/rng.h"
#include "testing.h"

/* A .npy prelude + dict padded to a 64-byte boundary, as numpy writes it;
 * hlen_override >= 0 lies about the header length. */
static size_t make_npy(unsigned char *buf, int major, const char *dict, long hlen_override) {
  size_t start = major == 1 ? 10 : 12, dlen = strlen(dict);
  size_t total = start + dlen + 1, pad = (64 - total % 64) % 64, hlen = dlen + pad + 1;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major;
  buf[7] = 0;
  unsigned long hl = hlen_override >= 0 ? (unsigned long)hlen_override : hlen;
  for (size_t k = 0; k < start - 8; k++) buf[8 + k] = (unsigned char)(hl >> (8 * k));
  memcpy(buf + start, dict, dlen);
  memset(buf + start + dlen, ' ', pad);
  buf[start + hlen - 1] = '\n';
  return start + hlen;
}

static void good(imx_ctx *ctx, int major, const char *dict, const char *descr, int ndim, int64_t r,
                 int64_t c, int itemsize) {
  unsigned char buf[512];
  size_t len = make_npy(buf, major, dict, -1);
  imx_npy_header h;
  int f0 = t_failed;
  imx_err e = imx_npy_parse(ctx, "hand.npy", buf, len, &h);
  t_check_quiet(e == IMX_OK, "v%d %s: %s", major, dict, ctx->msg);
  if (e) return;
  t_check_quiet(strcmp(h.descr, descr) == 0 && h.ndim == ndim && h.shape[0] == r &&
                    h.shape[1] == c && h.itemsize == itemsize && h.data_offset == (int64_t)len,
                "v%d %s: parsed %s ndim=%d (%lld,%lld) item %d offset %lld", major, dict, h.descr,
                h.ndim, (long long)h.shape[0], (long long)h.shape[1], h.itemsize,
                (long long)h.data_offset);
  t_check(t_failed == f0, "v%d.0 %s", major, dict);
}

static void bad_buf(imx_ctx *ctx, const unsigned char *buf, size_t len, const char *needle,
                    const char *label) {
  imx_npy_header h;
  imx_err e = imx_npy_parse(ctx, "data/x.npy", buf, len, &h);
  t_check_quiet(e == IMX_ERR_DATA, "%s: expected IMX_ERR_DATA, got %d", label, (int)e);
  t_check_quiet(strstr(ctx->msg, "data/x.npy") != NULL, "%s: message does not name the file: %s",
                label, ctx->msg);
  t_expect_err(ctx, e, IMX_ERR_DATA, needle, label);
}

static void bad(imx_ctx *ctx, int major, const char *dict, const char *needle) {
  unsigned char buf[512];
  size_t len = make_npy(buf, major, dict, -1);
  bad_buf(ctx, buf, len, needle, dict);
}

static double pat(int64_t i, int64_t j) { return (double)i + (double)j * 1e-3; }

/* A numpy-written fixture: shape 7 x 3, entry (i, j) = i + j*1e-3 in its dtype. */
static void fixture(imx_ctx *ctx, const char *path, int f4) {
  double *a = NULL;
  int64_t r = 0, c = 0;
  int f0 = t_failed;
  imx_err e = imx_npy_read_all(ctx, path, &a, &r, &c);
  t_check_quiet(e == IMX_OK, "%s: %s", path, ctx->msg);
  if (e) return;
  double maxerr = 0;
  t_check_quiet(r == 7 && c == 3, "%s: shape (%lld, %lld)", path, (long long)r, (long long)c);
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < c; j++) {
      double want = f4 ? (double)(float)pat(i, j) : pat(i, j);
      maxerr = fmax(maxerr, fabs(a[i * c + j] - want));
    }
  t_check_quiet(maxerr == 0, "%s: max error %g (tolerance 0)", path, maxerr);
  t_check(t_failed == f0, "%s: 7 x 3, max error %g (tolerance 0)", path, maxerr);
  free(a);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx ctx;
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  char dir[64], path[256];
  t_tmpdir(ctx.comm, dir);

  /* ---- round trip ---- */
  {
    const int64_t R = 13, C = 5;
    double a[13 * 5];
    for (int64_t i = 0; i < R; i++)
      for (int64_t j = 0; j < C; j++) a[i * C + j] = pat(i, j);
    a[0] = -0.0;
    a[1] = DBL_MIN / 4; /* subnormal */
    a[2] = DBL_MAX;
    a[3] = -1.0 / 3.0;
    snprintf(path, sizeof path, "%s/rt.npy", dir);
    int f0 = t_failed;
    t_check_quiet(imx_npy_write(&ctx, path, a, R, C) == IMX_OK, "write: %s", ctx.msg);
    imx_npy_header h;
    t_check_quiet(imx_npy_read_header(&ctx, path, &h) == IMX_OK, "header: %s", ctx.msg);
    t_check_quiet(h.data_offset % 64 == 0, "data offset %lld not a multiple of 64",
                  (long long)h.data_offset);
    double *b = NULL;
    int64_t r = 0, c = 0;
    t_check_quiet(imx_npy_read_all(&ctx, path, &b, &r, &c) == IMX_OK, "read_all: %s", ctx.msg);
    t_check_quiet(r == R && c == C && b && memcmp(a, b, sizeof a) == 0, "round trip differs");
    free(b);
    /* Overwrite in place (rename over an existing file), and leave no temp file. */
    t_check_quiet(imx_npy_write(&ctx, path, a, 1, C) == IMX_OK, "rewrite: %s", ctx.msg);
    t_check_quiet(imx_npy_read_all(&ctx, path, &b, &r, &c) == IMX_OK && r == 1 && c == C,
                  "rewrite read");
    free(b);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    t_check_quiet(access(tmp, F_OK) != 0, "temp file %s left behind", tmp);
    /* Empty arrays are legal .npy files. */
    snprintf(path, sizeof path, "%s/empty.npy", dir);
    t_check_quiet(imx_npy_write(&ctx, path, a, 0, 4) == IMX_OK, "write 0x4: %s", ctx.msg);
    t_check_quiet(imx_npy_read_all(&ctx, path, &b, &r, &c) == IMX_OK && r == 0 && c == 4,
                  "read 0x4: %s", ctx.msg);
    free(b);
    t_check(t_failed == f0,
            "round trip %lld x %lld bitwise (error 0, tolerance 0), data at byte %lld",
            (long long)R, (long long)C, (long long)h.data_offset);
  }

  /* ---- hand-made good headers ---- */
  good(&ctx, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }", "<f8", 2, 3, 4, 8);
  good(&ctx, 2, "{'shape': (10,2), 'fortran_order': False, 'descr': '<f4'}", "<f4", 2, 10, 2, 4);
  good(&ctx, 3, "{\"fortran_order\":False,\"descr\":\"<f8\",\"shape\":(5,)}", "<f8", 1, 5, 1, 8);
  good(&ctx, 1, "{ 'descr' : '<i8' ,\n 'fortran_order' : False ,\n 'shape' : ( 7L , 1L ) , }",
       "<i8", 2, 7, 1, 8);
  good(&ctx, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (60000,), }", "|u1", 1, 60000, 1,
       1);
  good(&ctx, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (0, 3), }", "<i4", 2, 0, 3, 4);

  /* ---- bad headers ---- */
  {
    /* Each v1 header is refused with a message holding the second string. */
    static const char *const bad_headers[][2] = {
        {"{'descr': '>f8', 'fortran_order': False, 'shape': (3, 4), }", "unsupported dtype '>f8'"},
        {"{'descr': '<c16', 'fortran_order': False, 'shape': (3, 4), }",
         "unsupported dtype '<c16'"},
        {"{'descr': '<f8', 'fortran_order': True, 'shape': (3, 4), }",
         "fortran_order arrays are not supported (save with np.ascontiguousarray)"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 4), }",
         "3-D arrays are not supported (shape (2, 3, 4))"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (), }", "0-D arrays"},
        {"{'descr': '<f8', 'fortran_order': False, }", "lacks 'shape'"},
        {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
         "appears twice"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'x': 1}", "unexpected key 'x'"},
        {"{'descr': '<f8', 'fortran_order': Maybe, 'shape': (3,), }", "expected True or False"},
        {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (3,), }", "structured dtypes"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-3, 2), }", "malformed"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999, 2), }",
         "overflows"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
         "too large"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), } junk",
         "only padding after '}'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4)", "',' or '}'"},
        {"not a dict", "expected '{'"},
    };
    for (size_t k = 0; k < sizeof bad_headers / sizeof bad_headers[0]; k++)
      bad(&ctx, 1, bad_headers[k][0], bad_headers[k][1]);
  }
  {
    unsigned char buf[512];
    size_t len = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }",
                          -1);
    buf[5] = 'Z';
    bad_buf(&ctx, buf, len, "bad magic", "bad magic");
    buf[5] = 'Y';
    buf[6] = 4;
    bad_buf(&ctx, buf, len, "unsupported .npy format version 4.0", "version 4.0");
    buf[6] = 1;
    bad_buf(&ctx, buf, 9, "too short", "9-byte file");
    len = make_npy(buf, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }", 70000);
    bad_buf(&ctx, buf, len, "header length 70000 exceeds the file", "header length 70000");
    len = make_npy(buf, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }",
                   4000000000L);
    bad_buf(&ctx, buf, len, "header length 4000000000 exceeds the file", "v2 header length 4e9");
  }

  /* ---- file-level checks ---- */
  {
    double a[12] = {0};
    snprintf(path, sizeof path, "%s/trunc.npy", dir);
    t_check_quiet(imx_npy_write(&ctx, path, a, 3, 4) == IMX_OK, "write: %s", ctx.msg);
    t_check_quiet(truncate(path, 128 + 90) == 0, "truncate");
    double *b = NULL;
    int64_t r, c;
    t_expect_err(
        &ctx, imx_npy_read_all(&ctx, path, &b, &r, &c), IMX_ERR_DATA,
        "file is truncated: expected 224 bytes (128-byte header + 3 x 4 items of 8 bytes), found 218",
        "truncated file");
    t_check_quiet(truncate(path, 128 + 96 + 5) == 0, "extend");
    t_expect_err(&ctx, imx_npy_read_all(&ctx, path, &b, &r, &c), IMX_ERR_DATA, "found 229",
                 "over-long file");
    unsigned char buf[512];
    size_t len = make_npy(buf, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }",
                          70000);
    snprintf(path, sizeof path, "%s/longhdr.npy", dir);
    t_write_file(path, buf, len);
    imx_npy_header h;
    t_expect_err(&ctx, imx_npy_read_header(&ctx, path, &h), IMX_ERR_DATA,
                 "header length 70000 exceeds the file (128 bytes)", "header longer than file");
    snprintf(path, sizeof path, "%s/missing.npy", dir);
    t_expect_err(&ctx, imx_npy_read_header(&ctx, path, &h), IMX_ERR_IO, "No such file",
                 "missing file");
    /* A header longer than the first 4 KiB read is fetched whole. */
    char dict[6000];
    int k = snprintf(dict, sizeof dict,
                     "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), ");
    memset(dict + k, ' ', 5000);
    strcpy(dict + k + 5000, "}");
    unsigned char *big = malloc(6200);
    len = make_npy(big, 1, dict, -1);
    double two[2] = {1.5, -2.5};
    memcpy(big + len, two, sizeof two);
    snprintf(path, sizeof path, "%s/bighdr.npy", dir);
    t_write_file(path, big, len + sizeof two);
    free(big);
    t_check_quiet(imx_npy_read_all(&ctx, path, &b, &r, &c) == IMX_OK && r == 1 && c == 2 &&
                      b[0] == 1.5 && b[1] == -2.5,
                  "5 KB header: %s", ctx.msg);
    free(b);
  }

  /* ---- files written by numpy ---- */
  fixture(&ctx, "data/np_f8.npy", 0);
  fixture(&ctx, "data/np_f8_v2.npy", 0);
  fixture(&ctx, "data/np_f4.npy", 1);
  {
    double *b = NULL;
    int64_t r, c;
    t_expect_err(&ctx, imx_npy_read_all(&ctx, "data/np_fortran.npy", &b, &r, &c), IMX_ERR_DATA,
                 "data/np_fortran.npy: fortran_order arrays are not supported", "numpy fortran");
    t_expect_err(&ctx, imx_npy_read_all(&ctx, "data/np_be.npy", &b, &r, &c), IMX_ERR_DATA,
                 "data/np_be.npy: unsupported dtype '>f8'", "numpy big-endian");
    const char *lab[] = {"data/np_labels_i8.npy", "data/np_labels_u1.npy"};
    for (int f = 0; f < 2; f++) {
      t_check_quiet(imx_npy_read_all(&ctx, lab[f], &b, &r, &c) == IMX_OK && r == 7 && c == 1,
                    "%s: %s", lab[f], ctx.msg);
      for (int i = 0; b && i < 7; i++) t_check_quiet(b[i] == i % 3, "%s[%d] = %g", lab[f], i, b[i]);
      free(b);
      b = NULL;
    }
  }

  /* ---- mutations ---- */
  int accepted = 0, rejected = 0, trials = 50000, fuzz_f0 = t_failed;
  {
    unsigned char base[512], buf[512];
    size_t len = make_npy(base, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (12, 34), }",
                          -1);
    for (int t = 0; t < trials; t++) {
      memcpy(buf, base, len);
      int muts = 1 + (int)(imx_rng_bits(7, 1, (uint64_t)t) % 3);
      for (int m = 0; m < muts; m++) {
        uint64_t r = imx_rng_bits(7, 2, (uint64_t)(t * 4 + m));
        buf[r % len] = (unsigned char)(r >> 32);
      }
      size_t cut = (imx_rng_bits(7, 3, (uint64_t)t) % 4 == 0)
                       ? imx_rng_bits(7, 4, (uint64_t)t) % len
                       : len;
      imx_npy_header h;
      imx_err e = imx_npy_parse(&ctx, "fuzz.npy", buf, cut, &h);
      if (e == IMX_OK) {
        accepted++;
        t_check_quiet(h.ndim >= 1 && h.ndim <= 2 && h.data_offset <= (int64_t)cut &&
                          h.shape[0] >= 0 && h.shape[1] >= 0 &&
                          (h.itemsize == 1 || h.itemsize == 4 || h.itemsize == 8),
                      "mutation %d accepted an inconsistent header", t);
      } else {
        rejected++;
        t_check_quiet(e == IMX_ERR_DATA, "mutation %d: code %d", t, (int)e);
      }
    }
    ctx.code = IMX_OK;
  }

  t_rmdir(ctx.comm, dir);
  t_check(t_failed == fuzz_f0,
          "%d mutations: %d accepted with a consistent header, %d rejected with IMX_ERR_DATA",
          trials, accepted, rejected);
  int rc = t_finish();
  imx_ctx_finalize(&ctx);
  MPI_Finalize();
  return rc;
}
