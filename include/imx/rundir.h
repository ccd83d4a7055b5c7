/* rundir: the run directory (one new directory per run, never overwritten)
 * and atomic file writes.
 *
 * Layout: config.yaml (resolved config), metrics.jsonl (one line per
 * iteration), layer1_W.npy, layer1_b.npy, summary.json, checkpoint.bin and
 * optimizer_log.bin (what --resume continues from), and for synthetic data
 * the ground truth (truth_mixing.npy or truth_means.npy).
 */
#ifndef IMX_RUNDIR_H
#define IMX_RUNDIR_H

#include <stdio.h>

#include "imx/config.h"
#include "imx/ctx.h"

/* Create a new run directory and write config.yaml into it. cfg->output.dir,
 * or runs/<config file name> if empty; if that directory already holds a run
 * (any file in it), "-2", "-3", ... is appended: an earlier run is never
 * overwritten. Rank 0 creates it; the chosen path is broadcast into dir.
 * Collective. */
imx_err imx_rundir_create(imx_ctx *ctx, const imx_config *cfg, char dir[IMX_PATH_LEN]);

/* Continue in the existing run directory `existing` (resume): copy the path
 * into dir. Its config.yaml is rewritten (imx_rundir_write_config) only once
 * the checkpoint accepted the resume. Collective. */
imx_err imx_rundir_reuse(imx_ctx *ctx, const char *existing, char dir[IMX_PATH_LEN]);

/* Rewrite DIR/config.yaml with cfg atomically (rank 0). Collective. */
imx_err imx_rundir_write_config(imx_ctx *ctx, const imx_config *cfg, const char *dir);

/* Open DIR/NAME.tmp for writing; imx_file_commit flushes, fsyncs, closes and
 * renames it to DIR/NAME so a reader never sees a partial file. Local. */
imx_err imx_file_begin(imx_ctx *ctx, const char *dir, const char *name, FILE **f);
imx_err imx_file_commit(imx_ctx *ctx, const char *dir, const char *name, FILE *f);

/* Peak resident memory of this process in MiB (getrusage). Local. */
double imx_peak_rss_mib(void);

#endif
