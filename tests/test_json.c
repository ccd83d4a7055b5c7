/* test_json: the JSON writer's output, byte for byte: escapes of quote,
 * backslash and control characters in values and keys, non-ASCII (UTF-8)
 * passed through, NaN and +-Inf written as null, and doubles written with 17
 * significant digits that read back to the same bits. */
#include <float.h>
#include <stdint.h>

#include "imx/json.h"
#include "imx/rng.h"
#include "testing.h"

/* What a writer function writes, as a string (free() it). */
typedef void (*writer)(imx_json *j);

static char *render(writer w, int pretty) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  imx_json j;
  imx_json_init(&j, f, pretty);
  w(&j);
  fclose(f);
  return buf;
}

static void w_escapes(imx_json *j) {
  imx_json_object(j, NULL);
  imx_json_str(j, "q\"k\\", "quote \" backslash \\ slash /");
  imx_json_str(j, "ctl", "nl\n tab\t cr\r bs\b ff\f one\x01 us\x1f del\x7f");
  imx_json_str(j, "utf8", "\xc3\xa9t\xc3\xa9 \xe2\x88\x91 \xf0\x9f\x98\x80");
  imx_json_str(j, "null", NULL);
  imx_json_end(j);
}

static void w_nonfinite(imx_json *j) {
  imx_json_object(j, NULL);
  imx_json_num(j, "nan", NAN);
  imx_json_num(j, "inf", INFINITY);
  imx_json_array(j, "a");
  imx_json_num(j, NULL, -INFINITY);
  imx_json_num(j, NULL, 0.5);
  imx_json_int(j, NULL, -7);
  imx_json_bool(j, NULL, 1);
  imx_json_end(j);
  imx_json_end(j);
}

static void w_pretty(imx_json *j) {
  imx_json_object(j, NULL);
  imx_json_int(j, "n", 3);
  imx_json_object(j, "o");
  imx_json_bool(j, "b", 0);
  imx_json_end(j);
  imx_json_array(j, "e");
  imx_json_end(j);
  imx_json_end(j);
}

static void expect_text(writer w, int pretty, const char *want, const char *what) {
  char *got = render(w, pretty);
  int ok = got && !strcmp(got, want);
  t_check(ok, "%s: byte for byte (tolerance 0)%s%s%s%s", what,
          ok ? "" : "\n  got:  ", ok ? "" : (got ? got : "(nothing)"),
          ok ? "" : "\n  want: ", ok ? "" : want);
  free(got);
}

#define NROUND 2000
static double vals[NROUND];
static void w_numbers(imx_json *j) {
  imx_json_array(j, NULL);
  for (int i = 0; i < NROUND; i++) imx_json_num(j, NULL, vals[i]);
  imx_json_end(j);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  expect_text(
      w_escapes, 0,
      "{\"q\\\"k\\\\\": \"quote \\\" backslash \\\\ slash /\", "
      "\"ctl\": \"nl\\n tab\\t cr\\u000d bs\\u0008 ff\\u000c one\\u0001 us\\u001f del\x7f\", "
      "\"utf8\": \"\xc3\xa9t\xc3\xa9 \xe2\x88\x91 \xf0\x9f\x98\x80\", \"null\": \"\"}",
      "escapes of quote, backslash and control characters (keys too); UTF-8 passed through");
  expect_text(w_nonfinite, 0, "{\"nan\": null, \"inf\": null, \"a\": [null, 0.5, -7, true]}",
              "NaN, +Inf and -Inf written as null");
  expect_text(w_pretty, 1, "{\n  \"n\": 3,\n  \"o\": {\n    \"b\": false\n  },\n  \"e\": []\n}\n",
              "pretty layout: two spaces per level, empty array on one line");

  /* Round trip: random doubles over the whole exponent range, plus the hard ones. */
  const double special[] = {0.1,
                            1.0 / 3,
                            -0.0,
                            DBL_MIN,
                            DBL_MAX,
                            4.9406564584124654e-324,
                            2.2250738585072009e-308,
                            9007199254740993.0,
                            1e23,
                            5e-324};
  int ns = (int)(sizeof special / sizeof *special);
  for (int i = 0; i < NROUND; i++) {
    if (i < ns) {
      vals[i] = special[i];
      continue;
    }
    uint64_t bits = imx_rng_bits(3, 1, (uint64_t)i);
    memcpy(&vals[i], &bits, sizeof bits);
    if (!isfinite(vals[i])) vals[i] = (double)i * 1.0000000000000002;
  }
  char *text = render(w_numbers, 0);
  int differ = 0, parsed = 0, digits_max = 0;
  if (text) {
    char *p = text + 1; /* after '[' */
    for (int i = 0; i < NROUND; i++) {
      char *end = NULL;
      double r = strtod(p, &end);
      if (end == p) break;
      int digits = 0, started = 0; /* significant digits: from the first nonzero one */
      for (char *q = p; q < end && *q != 'e'; q++) {
        started |= *q >= '1' && *q <= '9';
        digits += started && *q >= '0' && *q <= '9';
      }
      if (digits > digits_max) digits_max = digits;
      parsed++;
      if (memcmp(&r, &vals[i], sizeof r)) {
        differ++;
        t_check_quiet(0, "double %d: wrote %.*s for %a, read back %a", i, (int)(end - p), p,
                      vals[i], r);
      }
      p = end;
      while (*p == ',' || *p == ' ') p++;
    }
  }
  t_check(text && parsed == NROUND && differ == 0 && digits_max <= 17,
          "%d doubles (random bit patterns, subnormals, DBL_MAX, -0) written and read back: %d of "
          "%d parsed, %d differ in any bit (tol 0), at most %d significant digits (17 allowed)",
          NROUND, parsed, NROUND, differ, digits_max);
  free(text);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
