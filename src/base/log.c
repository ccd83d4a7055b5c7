/* log: rank-0 progress lines and per-rank diagnostics. */
#include "imx/log.h"

#include <stdio.h>
#include <stdlib.h>

static imx_log_level max_level = IMX_INFO;

void imx_log_set_level(imx_log_level level) { max_level = level; }

static void emit(FILE *f, const char *prefix, const char *fmt, va_list ap) {
  if (prefix) fputs(prefix, f);
  vfprintf(f, fmt, ap);
  fputc('\n', f);
  fflush(f);
}

static const char *level_prefix(imx_log_level level) {
  return level == IMX_ERROR ? "infomax: error: " : level == IMX_WARN ? "infomax: warning: " : NULL;
}

void imx_log(const imx_ctx *ctx, imx_log_level level, const char *fmt, ...) {
  if (ctx->rank != 0 || level > max_level) return;
  va_list ap;
  va_start(ap, fmt);
  emit(level <= IMX_WARN ? stderr : stdout, level_prefix(level), fmt, ap);
  va_end(ap);
}

void imx_log_rank(const imx_ctx *ctx, imx_log_level level, const char *fmt, ...) {
  if (level > max_level) return;
  char prefix[48];
  snprintf(prefix, sizeof prefix, "[%d/%d] ", ctx->rank, ctx->size);
  va_list ap;
  va_start(ap, fmt);
  emit(stderr, prefix, fmt, ap);
  va_end(ap);
}
