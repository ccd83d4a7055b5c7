/* log: progress and diagnostics. imx_log prints on rank 0 only; imx_log_rank
 * prefixes "[rank/size]" and prints on the calling rank. Local. */
#ifndef IMX_LOG_H
#define IMX_LOG_H

#include "imx/ctx.h"

typedef enum { IMX_ERROR = 0, IMX_WARN = 1, IMX_INFO = 2, IMX_DEBUG = 3 } imx_log_level;

/* Messages above this level are dropped (default IMX_INFO; IMX_VERBOSE set in
 * the environment, to any value, raises it to IMX_DEBUG). */
void imx_log_set_level(imx_log_level level);
void imx_log(const imx_ctx *ctx, imx_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void imx_log_rank(const imx_ctx *ctx, imx_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
