/* optlog: the optimizer log, which makes a resumed run continue exactly as
 * the uninterrupted run would have.
 *
 * Every objective evaluation appends (hash of x, f, gradient) to
 * RUN_DIR/optimizer_log.bin (layer 1; layerL_optimizer_log.bin for layer L >= 2
 * of a stack). On resume, TAO restarts from the initial
 * parameters and every evaluation up to the checkpoint is served from the log
 * instead of the data (after checking that TAO asks for the same x, bit for
 * bit). TAO's whole internal state (L-BFGS pairs and scaling, line-search
 * bracket, CG direction) is thereby rebuilt exactly, for any TAO type, at the
 * cost of (nparams + naux + 3) doubles per evaluation on disk and of TAO's own vector
 * work to replay. Rank 0 reads and writes the file; entries are broadcast.
 */
#ifndef IMX_OPTLOG_H
#define IMX_OPTLOG_H

#include <stdint.h>

#include "imx/ctx.h"

typedef struct imx_optlog imx_optlog;

/* Open DIR/NAME (optimizer_log.bin, layer2_optimizer_log.bin, ...) for nparams parameters and naux optimizer
 * statistics per evaluation (the ICA preconditioner's; 0 = none). keep < 0: start a new
 * log; keep >= 0: an existing log must hold at least keep entries and is cut
 * to exactly keep (entries after the checkpoint are dropped). Collective. */
imx_err imx_optlog_open(imx_ctx *ctx, const char *dir, const char *name, int64_t nparams,
                        int64_t naux, int64_t keep, imx_optlog **out);
/* Close (and free); accepts NULL. Collective. */
void imx_optlog_close(imx_optlog **log);

/* Append one evaluation and its naux statistics aux (rank 0 writes; every
 * rank passes the same values). Collective only in the error agreement. */
imx_err imx_optlog_append(imx_ctx *ctx, imx_optlog *log, const double *x, double f, const double *g,
                          const double *aux);

/* Entry i into f, g and aux on every rank, after checking that its hash matches
 * x; a mismatch means the optimizer's path changed (other TAO type or
 * options) and is an error. Collective. */
imx_err imx_optlog_replay(imx_ctx *ctx, imx_optlog *log, int64_t i, const double *x, double *f,
                          double *g, double *aux);

/* Print the log's expected size (per evaluation and for max_it iterations at
 * about 1.05 evaluations per iteration) and bound it to max_mib MiB (0 = no
 * limit). Past the bound nothing more is appended, the file is marked capped
 * and a warning says what a later resume keeps and gives up. Collective. */
imx_err imx_optlog_plan(imx_ctx *ctx, imx_optlog *log, double max_mib, int max_it);

/* The number of evaluations a capped log file holds, or -1 if the file is
 * missing or not capped. Local. */
int64_t imx_optlog_capped_at(const char *path);

/* Make every appended entry durable (before a checkpoint names them). Collective. */
imx_err imx_optlog_sync(imx_ctx *ctx, imx_optlog *log);

/* Bit hash of a vector (FNV-1a over the bytes). Local. */
uint64_t imx_hash_doubles(const double *x, int64_t n);

#endif
