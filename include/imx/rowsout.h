/* rowsout: one file from the rows every rank holds.
 *
 * A row-sharded matrix (rank p holds global rows [row0, row0 + nloc), the
 * shards of imx_shard in rank order) is written to one file, each rank writing
 * its own rows: .npy through MPI-IO (rank 0 writes the header, every rank its
 * rows at their offset, collectively), .h5 / .hdf5 through collective parallel
 * HDF5 (one dataset per array, contiguous layout). The bytes of the file do not
 * depend on the number of ranks.
 *
 * A file is written under a temporary name in the same directory and renamed
 * into place only when every rank has written all of it (imx_rows_close with
 * commit), so a failed or interrupted write never leaves a partial file at the
 * path, and never replaces an older file with a broken one.
 *
 *   imx_rows_file *f;
 *   IMX_TRY(imx_rows_open(ctx, "features.h5", &f));
 *   e = imx_rows_put(ctx, f, "features", IMX_ROWS_F64, A, N, row0, nloc, K);
 *   ... more arrays (.h5 only) ...
 *   IMX_TRY(imx_rows_close(ctx, &f, e == IMX_OK));
 */
#ifndef IMX_ROWSOUT_H
#define IMX_ROWSOUT_H

#include <stdint.h>

#include "imx/ctx.h"

/* Element type of an array: float64 or int32 ('<f8' / '<i4' in .npy,
 * H5T_IEEE_F64LE / H5T_STD_I32LE in HDF5). */
typedef enum { IMX_ROWS_F64 = 0, IMX_ROWS_I32 } imx_rows_type;

typedef struct imx_rows_file imx_rows_file;

/* Does path name a format imx_rows_open writes (.npy, .h5, .hdf5)? Local. */
int imx_rows_format_known(const char *path);

/* Start writing path (its temporary name; path itself is untouched until
 * imx_rows_close commits). Collective.
 * Errors (agreed): IMX_ERR_USAGE (a suffix other than .npy, .h5, .hdf5),
 * IMX_ERR_IO (the directory is not writable), IMX_ERR_NOMEM. */
imx_err imx_rows_open(imx_ctx *ctx, const char *path, imx_rows_file **out);

/* Write one array: global N x cols (cols = 1 and a 1-D array when vector is
 * set), this rank's rows [row0, row0 + nloc) from a (row-major). A .npy file
 * takes exactly one array (name is ignored); an .h5 file one dataset per name.
 * Collective.
 * Errors (agreed): IMX_ERR_IO (naming the file, and the rank that failed),
 * IMX_ERR_USAGE (a second array in a .npy file), IMX_ERR_INTERNAL (shards that
 * do not tile [0, N) in rank order). */
imx_err imx_rows_put(imx_ctx *ctx, imx_rows_file *f, const char *name, imx_rows_type type,
                     int vector, const void *a, int64_t N, int64_t row0, int64_t nloc,
                     int64_t cols);

/* Write part of one rows x cols float64 .npy array whose entries are spread
 * over the ranks in runs (a matrix held in tiles, not in rows): this rank's
 * nruns runs, run r being len[r] consecutive elements of the row-major array
 * from element off[r] (ascending, not overlapping), their values one run
 * after another in a. Call it as often as needed (the same rows and cols
 * every time, every rank every time, nruns may be 0); the runs of all calls
 * and ranks must cover the array exactly once (not checked: the caller's
 * layout). The first call checks that the file system has room for the whole
 * file and writes the header. .npy only. Collective.
 * Errors (agreed): IMX_ERR_IO (no room: the file, the bytes needed and the
 * bytes free; or a failed write), IMX_ERR_USAGE (not a .npy file, another
 * array before), IMX_ERR_NOMEM. */
imx_err imx_rows_put_runs(imx_ctx *ctx, imx_rows_file *f, int64_t rows, int64_t cols, int nruns,
                          const int64_t *off, const int *len, const double *a);

/* Finish: with commit (on every rank the same), flush, fsync and rename the
 * temporary file to the path; without, remove it. Frees *f and sets it to
 * NULL (accepts NULL). Collective.
 * Errors (agreed): IMX_ERR_IO. */
imx_err imx_rows_close(imx_ctx *ctx, imx_rows_file **f, int commit);

#endif
