/* rowsout: one .npy or .h5 file from the rows every rank holds (see
 * include/imx/rowsout.h).
 *
 * Both formats are written under PATH.tmp.<pid of rank 0> and renamed by rank
 * 0 after the file is closed on every rank and fsync'd. Every collective call
 * (MPI_File_*_all, H5Fcreate, H5Dcreate2, H5Dwrite, H5Fclose) is reached by
 * every rank: local failures are agreed before the next collective step.
 */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "data_impl.h"
#include "imx/rowsout.h"

typedef enum { FMT_NPY, FMT_H5 } format;

struct imx_rows_file {
  format fmt;
  char path[IMX_PATH_LEN];
  char tmp[IMX_PATH_LEN + 32];
  MPI_File fh; /* .npy */
  int arrays;  /* arrays written so far */
  int runs;    /* imx_rows_put_runs has begun the (one) array */
  hid_t h5;    /* .h5 file, or H5I_INVALID_HID */
};

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int format_of(const char *path, format *f) {
  if (ends_with(path, ".npy")) return *f = FMT_NPY, 1;
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return *f = FMT_H5, 1;
  return 0;
}

int imx_rows_format_known(const char *path) {
  format f;
  return format_of(path, &f);
}

static imx_err mpi_io_fail(imx_ctx *ctx, const char *what, const char *file, int rc) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return imx_fail(ctx, IMX_ERR_IO, "%s: cannot %s: %s", file, what, msg);
}

imx_err imx_rows_open(imx_ctx *ctx, const char *path, imx_rows_file **out) {
  *out = NULL;
  format fmt = FMT_NPY;
  if (!format_of(path, &fmt))
    return imx_fail(ctx, IMX_ERR_USAGE,
                    "%s: unknown output format: the name must end in .npy or .h5 (.hdf5)", path);
  if (strlen(path) >= IMX_PATH_LEN) return imx_fail(ctx, IMX_ERR_USAGE, "%s: path too long", path);
  imx_rows_file *f = calloc(1, sizeof *f);
  IMX_TRY(imx_agree(ctx, f ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "output file %s", path)));
  f->fmt = fmt;
  f->h5 = H5I_INVALID_HID;
  f->fh = MPI_FILE_NULL;
  snprintf(f->path, sizeof f->path, "%s", path);
  /* One temporary name for all ranks: rank 0's pid. */
  long pid = (long)getpid();
  int rc = MPI_Bcast(&pid, 1, MPI_LONG, 0, ctx->comm);
  imx_err e = IMX_MPI_ERR(ctx, rc, "MPI_Bcast(temporary name)");
  if (!e) snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, pid);
  if (!e && ctx->rank == 0) unlink(f->tmp); /* a stale one of the same name may be longer */
  e = imx_agree(ctx, e);
  if (!e && fmt == FMT_NPY) {
    rc = MPI_File_open(ctx->comm, f->tmp, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &f->fh);
    e = imx_agree(ctx, rc == MPI_SUCCESS ? IMX_OK : mpi_io_fail(ctx, "create", f->tmp, rc));
  } else if (!e) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fapl >= 0 && fcpl >= 0 && H5Pset_fapl_mpio(fapl, ctx->comm, MPI_INFO_NULL) >= 0 &&
        H5Pset_obj_track_times(fcpl, 0) >= 0) /* no times in the root group either */
      f->h5 = H5Fcreate(f->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    e = imx_agree(ctx, f->h5 >= 0 ? IMX_OK
                                  : imx_fail(ctx, IMX_ERR_IO,
                                             "%s: cannot create an HDF5 file there (is the "
                                             "directory writable?)",
                                             f->tmp));
  }
  if (e) {
    if (f->fh != MPI_FILE_NULL) MPI_File_close(&f->fh);
    if (ctx->rank == 0) unlink(f->tmp);
    free(f);
    return e;
  }
  *out = f;
  return IMX_OK;
}

/* Do the shards [row0, row0 + nloc) of the ranks tile [0, N) in rank order? Collective. */
static imx_err check_tiling(imx_ctx *ctx, const char *path, int64_t N, int64_t row0, int64_t nloc) {
  long long mine[2] = {(long long)row0, (long long)nloc}, *all = NULL;
  int bad = 0;
  all = malloc((size_t)ctx->size * 2 * sizeof *all);
  IMX_TRY(imx_agree(ctx, all ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "shard table")));
  int rc = MPI_Allgather(mine, 2, MPI_LONG_LONG, all, 2, MPI_LONG_LONG, ctx->comm);
  if (rc != MPI_SUCCESS) {
    free(all);
    return imx_agree(ctx, IMX_MPI_ERR(ctx, rc, "MPI_Allgather(shards)"));
  }
  long long next = 0;
  for (int p = 0; p < ctx->size && !bad; p++) {
    if (all[2 * p] != next || all[2 * p + 1] < 0) bad = p + 1;
    next = all[2 * p] + all[2 * p + 1];
  }
  if (!bad && next != (long long)N) bad = ctx->size;
  free(all);
  return imx_agree(ctx, bad ? imx_fail(ctx, IMX_ERR_INTERNAL,
                                       "%s: the ranks' rows do not tile [0, %lld) in rank order "
                                       "(first wrong at rank %d)",
                                       path, (long long)N, bad - 1)
                            : IMX_OK);
}

static imx_err put_npy(imx_ctx *ctx, imx_rows_file *f, imx_rows_type type, int vector,
                       const void *a, int64_t N, int64_t row0, int64_t nloc, int64_t cols) {
  unsigned char head[IMX_NPY_HEADER_MAX];
  int hbytes = imx_npy_header_bytes(type == IMX_ROWS_F64 ? "<f8" : "<i4", vector ? 1 : 2, N, cols,
                                    head);
  int item = type == IMX_ROWS_F64 ? 8 : 4;
  MPI_Datatype elem = type == IMX_ROWS_F64 ? MPI_DOUBLE : MPI_INT32_T;
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    int rc = MPI_File_write_at(f->fh, 0, head, hbytes, MPI_BYTE, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) e = mpi_io_fail(ctx, "write the header of", f->tmp, rc);
  }
  IMX_TRY(imx_agree(ctx, e));
  /* The rows in pieces of at most 2^30 bytes (MPI counts are ints); every
   * rank makes the same number of collective calls. */
  int64_t per = ((int64_t)1 << 30) / (cols * item > 0 ? cols * item : 1);
  if (per < 1) per = 1;
  long long calls = nloc > 0 ? (nloc + per - 1) / per : 0;
  int rc = MPI_Allreduce(MPI_IN_PLACE, &calls, 1, MPI_LONG_LONG, MPI_MAX, ctx->comm);
  IMX_TRY(imx_agree(ctx, IMX_MPI_ERR(ctx, rc, "MPI_Allreduce(write calls)")));
  const char *p = a;
  for (long long c = 0; c < calls; c++) {
    int64_t r = c * per, m = nloc - r < per ? nloc - r : per;
    if (m < 0) m = 0;
    MPI_Offset off = (MPI_Offset)hbytes + (MPI_Offset)(row0 + r) * cols * item;
    rc = MPI_File_write_at_all(f->fh, off, m ? p + (size_t)(r * cols * item) : NULL,
                               (int)(m * cols), elem, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) e = mpi_io_fail(ctx, "write rows to", f->tmp, rc);
  }
  return imx_agree(ctx, e);
}

static imx_err put_h5(imx_ctx *ctx, imx_rows_file *f, const char *name, imx_rows_type type,
                      int vector, const void *a, int64_t N, int64_t row0, int64_t nloc,
                      int64_t cols) {
  hsize_t dims[2] = {(hsize_t)N, (hsize_t)cols}, start[2] = {(hsize_t)row0, 0},
          count[2] = {(hsize_t)nloc, (hsize_t)cols};
  int rank = vector ? 1 : 2;
  hid_t ftype = type == IMX_ROWS_F64 ? H5T_IEEE_F64LE : H5T_STD_I32LE;
  hid_t mtype = type == IMX_ROWS_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT32;
  hid_t fspace = H5Screate_simple(rank, dims, NULL);
  hid_t mspace = H5Screate_simple(rank, count, NULL);
  hid_t dset = H5I_INVALID_HID, dxpl = H5Pcreate(H5P_DATASET_XFER);
  /* No modification times in the object headers: the file's bytes are then
   * a function of its contents alone (the same for any number of ranks, and
   * from one run to the next). */
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) < 0) H5Pclose(dcpl), dcpl = H5I_INVALID_HID;
  imx_err e = fspace >= 0 && mspace >= 0 && dxpl >= 0 && dcpl >= 0
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_IO, "%s: cannot describe dataset %s", f->tmp, name);
  e = imx_agree(ctx, e);
  if (!e) { /* collective: every rank creates the same dataset */
    dset = H5Dcreate2(f->h5, name, ftype, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    e = imx_agree(
        ctx, dset >= 0 ? IMX_OK
                       : imx_fail(ctx, IMX_ERR_IO, "%s: cannot create dataset %s", f->tmp, name));
  }
  if (!e) {
    herr_t s = H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    if (s >= 0 && nloc > 0)
      s = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    else if (s >= 0) {
      s = H5Sselect_none(fspace);
      if (s >= 0) s = H5Sselect_none(mspace);
    }
    e = imx_agree(ctx, s >= 0 ? IMX_OK
                              : imx_fail(ctx, IMX_ERR_IO, "%s: cannot select rows of dataset %s",
                                         f->tmp, name));
  }
  if (!e) { /* collective */
    herr_t s = H5Dwrite(dset, mtype, mspace, fspace, dxpl, a);
    e = imx_agree(
        ctx, s >= 0 ? IMX_OK
                    : imx_fail(ctx, IMX_ERR_IO, "%s: cannot write rows %lld..%lld of dataset %s",
                               f->tmp, (long long)row0, (long long)(row0 + nloc - 1), name));
  }
  if (dset >= 0) H5Dclose(dset);
  if (dxpl >= 0) H5Pclose(dxpl);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  return e;
}

imx_err imx_rows_put(imx_ctx *ctx, imx_rows_file *f, const char *name, imx_rows_type type,
                     int vector, const void *a, int64_t N, int64_t row0, int64_t nloc,
                     int64_t cols) {
  if (vector) cols = 1;
  if (f->fmt == FMT_NPY && f->arrays > 0)
    return imx_fail(ctx, IMX_ERR_USAGE, "%s: a .npy file holds one array (asked for a second, %s)",
                    f->path, name);
  IMX_TRY(check_tiling(ctx, f->path, N, row0, nloc));
  if (f->fmt == FMT_NPY) IMX_TRY(put_npy(ctx, f, type, vector, a, N, row0, nloc, cols));
  else IMX_TRY(put_h5(ctx, f, name, type, vector, a, N, row0, nloc, cols));
  f->arrays++;
  return IMX_OK;
}

/* Rank 0: is there room for `bytes` more on the file system of f->tmp?
 * Local. */
static imx_err room(imx_ctx *ctx, const imx_rows_file *f, int64_t bytes) {
  struct statvfs v;
  if (statvfs(f->tmp, &v) != 0)
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot read its file system's free space: %s", f->tmp,
                    strerror(errno));
  double avail = (double)v.f_bavail * (double)v.f_frsize;
  if ((double)bytes > avail)
    return imx_fail(
        ctx, IMX_ERR_IO,
        "%s: needs %lld bytes (%.1f MiB), its file system has %.0f bytes (%.1f MiB) free", f->path,
        (long long)bytes, (double)bytes / 1048576, avail, avail / 1048576);
  return IMX_OK;
}

imx_err imx_rows_put_runs(imx_ctx *ctx, imx_rows_file *f, int64_t rows, int64_t cols, int nruns,
                          const int64_t *off, const int *len, const double *a) {
  if (f->fmt != FMT_NPY || (f->arrays > 0 && !f->runs))
    return imx_agree(ctx, imx_fail(ctx, IMX_ERR_USAGE,
                                   "%s: runs of entries go to one array of a .npy file", f->path));
  unsigned char head[IMX_NPY_HEADER_MAX];
  int hbytes = imx_npy_header_bytes("<f8", 2, rows, cols, head);
  imx_err e = IMX_OK;
  if (!f->runs && ctx->rank == 0) {
    e = room(ctx, f, hbytes + rows * cols * 8);
    if (!e) {
      int rc = MPI_File_write_at(f->fh, 0, head, hbytes, MPI_BYTE, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) e = mpi_io_fail(ctx, "write the header of", f->tmp, rc);
    }
  }
  IMX_TRY(imx_agree(ctx, e));
  f->runs = 1, f->arrays = 1;
  /* The runs as a file view: one indexed type of byte displacements from
   * the end of the header; a rank without runs views plain doubles and
   * writes none. */
  int *blen = malloc((size_t)(nruns ? nruns : 1) * sizeof *blen);
  MPI_Aint *disp = malloc((size_t)(nruns ? nruns : 1) * sizeof *disp);
  long long count = 0;
  e = blen && disp ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "%s: %d runs", f->path, nruns);
  for (int r = 0; !e && r < nruns; r++)
    blen[r] = len[r], disp[r] = (MPI_Aint)(off[r] * 8), count += len[r];
  if (!e && count > INT32_MAX)
    e = imx_fail(ctx, IMX_ERR_INTERNAL, "%s: %lld entries in one call", f->path, count);
  MPI_Datatype view = MPI_DOUBLE;
  if (!e && nruns > 0) {
    int rc = MPI_Type_create_hindexed(nruns, blen, disp, MPI_DOUBLE, &view);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&view);
    if (rc != MPI_SUCCESS)
      e = IMX_MPI_ERR(ctx, rc, "MPI_Type_create_hindexed(runs)"), view = MPI_DOUBLE;
  }
  e = imx_agree(ctx, e);
  if (!e) {
    int rc = MPI_File_set_view(f->fh, hbytes, MPI_DOUBLE, view, "native", MPI_INFO_NULL);
    if (rc == MPI_SUCCESS)
      rc = MPI_File_write_all(f->fh, count ? a : NULL, (int)count, MPI_DOUBLE, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) e = mpi_io_fail(ctx, "write entries to", f->tmp, rc);
    /* Back to bytes from the start (collective, as set_view is). */
    rc = MPI_File_set_view(f->fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL);
    if (!e && rc != MPI_SUCCESS) e = mpi_io_fail(ctx, "reset the view of", f->tmp, rc);
  }
  if (view != MPI_DOUBLE) MPI_Type_free(&view);
  free(blen), free(disp);
  return imx_agree(ctx, e);
}

/* Rank 0: make the closed temporary file durable and rename it into place
 * (or remove it). Local. */
static imx_err finish(imx_ctx *ctx, imx_rows_file *f, int commit) {
  if (!commit) {
    unlink(f->tmp);
    return IMX_OK;
  }
  int fd = open(f->tmp, O_RDONLY);
  imx_err e = fd >= 0 && fsync(fd) == 0
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_IO, "%s: cannot fsync: %s", f->tmp, strerror(errno));
  if (fd >= 0) close(fd);
  if (!e && rename(f->tmp, f->path) != 0)
    e = imx_fail(ctx, IMX_ERR_IO, "%s: cannot rename %s to it: %s", f->path, f->tmp,
                 strerror(errno));
  if (e) unlink(f->tmp);
  return e;
}

imx_err imx_rows_close(imx_ctx *ctx, imx_rows_file **fp, int commit) {
  imx_rows_file *f = *fp;
  if (!f) return IMX_OK;
  *fp = NULL;
  imx_err e = IMX_OK;
  if (f->fmt == FMT_NPY) {
    int rc = MPI_File_close(&f->fh); /* collective; flushes */
    if (rc != MPI_SUCCESS) e = mpi_io_fail(ctx, "close", f->tmp, rc);
  } else if (H5Fclose(f->h5) < 0) { /* collective */
    e = imx_fail(ctx, IMX_ERR_IO, "%s: cannot close the HDF5 file", f->tmp);
  }
  e = imx_agree(ctx, e);
  imx_err e0 = ctx->rank == 0 ? finish(ctx, f, commit && !e) : IMX_OK;
  free(f);
  IMX_TRY(imx_agree(ctx, e));
  return imx_agree(ctx, e0);
}
