/* rundir: the run directory (one new directory per run, never overwritten,
 * one process at a time) and atomic file writes.
 *
 * Layout: config.yaml (resolved config), metrics.jsonl (one line per
 * iteration), layer1_W.npy, layer1_b.npy, summary.json, checkpoint.bin and
 * optimizer_log.bin (what --resume continues from), model.h5 (the whole
 * model: include/imx/model_file.h), and for synthetic data the ground truth
 * (truth_mixing.npy or truth_means.npy).
 */
#ifndef IMX_RUNDIR_H
#define IMX_RUNDIR_H

#include <stdio.h>

#include "imx/config.h"
#include "imx/ctx.h"

/* Create a new run directory, lock it and write config.yaml into it. An
 * explicit cfg->output.dir is used as given: new, or existing and empty (but
 * for the lock file); one that holds files is refused (IMX_ERR_CONFIG, with
 * the hint to --resume it if it holds a run), one locked by another process
 * too (IMX_ERR_IO, naming the holder). Without output.dir, runs/<config file
 * name>, numbered "-2", "-3", ... past directories that hold a run or are
 * locked: an earlier run is never overwritten. Rank 0 creates the directory
 * and holds the lock in *fd (-1 on other ranks, and after an error) until
 * imx_rundir_unlock; the chosen path is broadcast into dir. Collective. */
imx_err imx_rundir_create(imx_ctx *ctx, const imx_config *cfg, char dir[IMX_PATH_LEN], int *fd);

/* Refuse early (before data are read) what imx_rundir_create would refuse
 * for an explicit cfg->output.dir: a directory that holds files or is locked.
 * Creates nothing. Collective. */
imx_err imx_rundir_check(imx_ctx *ctx, const imx_config *cfg);

/* Lock the existing run directory dir for this process (rank 0 flocks
 * dir/.lock, writes "host H pid P" into it and keeps it open in *fd; other
 * ranks get -1). Without waiting: a directory locked by another process is
 * refused with IMX_ERR_IO naming the holder. The kernel releases the lock
 * when the process ends, so a lock file left by a dead process blocks
 * nothing. Collective. */
imx_err imx_rundir_lock(imx_ctx *ctx, const char *dir, int *fd);

/* Release the lock of imx_rundir_create or imx_rundir_lock (the file stays);
 * accepts -1 and sets *fd to -1. Local. */
void imx_rundir_unlock(int *fd);

/* Continue in the existing run directory `existing` (resume; lock it first
 * with imx_rundir_lock): copy the path into dir. Its config.yaml is rewritten (imx_rundir_write_config) only once
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
