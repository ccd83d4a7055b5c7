/* json: a small streaming JSON writer for summary.json, metrics.jsonl and the
 * output of `infomax eval`. Numbers are written with 17 significant digits (they
 * read back to the same double); NaN and infinities become null. Local. */
#ifndef IMX_JSON_H
#define IMX_JSON_H

#include <stdio.h>

#define IMX_JSON_DEPTH 16

typedef struct imx_json {
  FILE *f;
  int depth;
  int count[IMX_JSON_DEPTH];   /* members written at each level */
  char closer[IMX_JSON_DEPTH]; /* '}' or ']' for each open level */
  int pretty;                  /* indent (summary.json) or one line (metrics.jsonl) */
} imx_json;

void imx_json_init(imx_json *j, FILE *f, int pretty);
/* Open an object or array; key is NULL inside arrays and at top level. */
void imx_json_object(imx_json *j, const char *key);
void imx_json_array(imx_json *j, const char *key);
void imx_json_end(imx_json *j); /* closes the innermost object or array */
void imx_json_num(imx_json *j, const char *key, double v);
void imx_json_int(imx_json *j, const char *key, long long v);
void imx_json_str(imx_json *j, const char *key, const char *s);
void imx_json_bool(imx_json *j, const char *key, int v);

#endif
