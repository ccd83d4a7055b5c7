/* json: streaming JSON writer (see include/imx/json.h). */
#include "imx/json.h"

#include <math.h>

void imx_json_init(imx_json *j, FILE *f, int pretty) {
  j->f = f, j->depth = 0, j->pretty = pretty;
  j->count[0] = 0;
}

static void put_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c == '\t') fputs("\\t", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* Separator, indentation and key before a member. */
static void member(imx_json *j, const char *key) {
  if (j->depth > 0 && j->count[j->depth]++) fputc(',', j->f);
  if (j->pretty && j->depth > 0) fprintf(j->f, "\n%*s", 2 * j->depth, "");
  else if (j->depth > 0 && j->count[j->depth] > 1) fputc(' ', j->f);
  if (key) {
    put_string(j->f, key);
    fputs(": ", j->f);
  }
}

static void open_level(imx_json *j, const char *key, char c) {
  member(j, key);
  fputc(c, j->f);
  if (j->depth + 1 < IMX_JSON_DEPTH) {
    j->count[++j->depth] = 0;
    j->closer[j->depth] = c == '{' ? '}' : ']';
  }
}

void imx_json_object(imx_json *j, const char *key) { open_level(j, key, '{'); }
void imx_json_array(imx_json *j, const char *key) { open_level(j, key, '['); }

void imx_json_end(imx_json *j) {
  if (j->depth == 0) return;
  if (j->pretty && j->count[j->depth]) fprintf(j->f, "\n%*s", 2 * (j->depth - 1), "");
  fputc(j->closer[j->depth--], j->f);
  if (j->depth == 0 && j->pretty) fputc('\n', j->f);
}

void imx_json_num(imx_json *j, const char *key, double v) {
  member(j, key);
  if (isfinite(v)) fprintf(j->f, "%.17g", v);
  else fputs("null", j->f);
}

void imx_json_int(imx_json *j, const char *key, long long v) {
  member(j, key);
  fprintf(j->f, "%lld", v);
}

void imx_json_str(imx_json *j, const char *key, const char *s) {
  member(j, key);
  put_string(j->f, s ? s : "");
}

void imx_json_bool(imx_json *j, const char *key, int v) {
  member(j, key);
  fputs(v ? "true" : "false", j->f);
}
