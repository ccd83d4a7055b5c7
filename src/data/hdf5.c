/* hdf5: the hdf5 data source (data.source: hdf5), a numeric dataset of an
 * HDF5 file read with parallel HDF5 (see include/imx/data.h and
 * src/data/data_impl.h).
 *
 * data.path (and data.labels, eval.test_path, eval.test_labels) name an array
 * as "FILE.h5:/DATASET" (h5path.c). A dataset of N x d1 x ... x dk items is N
 * rows of d1*...*dk values (an image stack N x 28 x 28 is N rows of 784),
 * as the IDX reader flattens its images; labels are a vector of N (or N x 1).
 * Items may be integers of 1, 2, 4 or 8 bytes, signed or not, or floats of 4
 * or 8 bytes, in any byte order, any layout (contiguous, chunked) and any
 * filter the library has (gzip, shuffle, ...): libhdf5 does the file format,
 * this file the checks and the messages.
 *
 * Rank 0 reads the headers alone (the default sec2 driver); then every rank
 * opens the file through MPI-IO and reads its own rows, a hyperslab, with
 * collective transfers. Every collective HDF5 call is preceded by an
 * agreement, so a failure on one rank is reported by all and none waits.
 * libhdf5's own error printing is off inside these functions: the messages
 * are ours, with the library's innermost reason appended where it helps.
 */
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_impl.h"

/* Upper bound on one collective read per rank (bytes), below the 2 GiB where
 * some MPI-IO layers still count in int. */
#define MAX_READ_BYTES ((int64_t)1 << 30)
/* Members of a group named in a "no such dataset" message. */
#define LIST_MAX 12
/* libhdf5 1.10+ locks a file it opens: a writer that still has it open, or
 * a file system without file locks (some parallel ones), make it refuse. */
#define LOCK_HINT                                                                     \
  " (another program has it open for writing, or the file system has no file locks: " \
  "then set HDF5_USE_FILE_LOCKING=FALSE in the environment of every rank)"
/* Integers beyond 2^53 in magnitude are not all exact doubles. */
#define EXACT_INT ((int64_t)1 << 53)

/* The parsed header of one dataset, broadcast to every rank as bytes. */
typedef struct h5_header {
  int is_float;       /* 1: IEEE float; 0: integer */
  int is_signed;      /* integers: 1 signed, 0 unsigned */
  int size;           /* bytes per item: 1, 2, 4 or 8 */
  int ndim;           /* rank of the dataspace */
  int64_t rows, cols; /* dims[0] and the product of the others (1 for a vector) */
} h5_header;

/* ---- libhdf5's error stack ---- */

/* libhdf5 prints its error stack on every failed call unless told not to:
 * off while we are in this file, restored on the way out. */
typedef struct {
  H5E_auto2_t func;
  void *data;
} quiet_state;

static void quiet_begin(quiet_state *q) {
  q->func = NULL;
  q->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(const quiet_state *q) {
  H5Eclear2(H5E_DEFAULT);
  H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t innermost(unsigned n, const H5E_error2_t *e, void *out) {
  if (n == 0 && e->desc) snprintf(out, 160, "%s", e->desc);
  return 0;
}

/* The reason libhdf5 recorded for its last failure (its innermost message),
 * then the stack cleared. */
static const char *reason(char buf[160]) {
  buf[0] = '\0';
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, buf);
  H5Eclear2(H5E_DEFAULT);
  return buf[0] ? buf : "no reason given";
}

/* ---- what a group holds, for messages ---- */

typedef struct {
  hid_t group;
  int count, shown;
  size_t len;
  char text[600];
} listing;

/* "name (dataset 100 x 8 float64)" or "name (group)": of the first LIST_MAX. */
static void describe(hid_t loc, const char *name, char *out, size_t cap);

static herr_t list_member(hid_t group, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  listing *l = data;
  l->count++;
  if (l->shown >= LIST_MAX || l->len + 8 >= sizeof l->text) return 0;
  char one[200];
  describe(group, name, one, sizeof one);
  int w = snprintf(l->text + l->len, sizeof l->text - l->len, "%s%s", l->shown ? ", " : "", one);
  if (w > 0)
    l->len += (size_t)w < sizeof l->text - l->len ? (size_t)w : sizeof l->text - l->len - 1;
  l->shown++;
  return 0;
}

/* What the group at path (in file f) holds, as "a (dataset 10 x 3 int32), b
 * (group)", at most LIST_MAX names and then how many more. */
static void list_group(hid_t f, const char *path, char *out, size_t cap) {
  listing l = {.group = -1};
  hid_t g = H5Gopen2(f, path, H5P_DEFAULT);
  if (g < 0) {
    snprintf(out, cap, "(cannot list it)");
    H5Eclear2(H5E_DEFAULT);
    return;
  }
  hsize_t idx = 0;
  H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, list_member, &l);
  H5Gclose(g);
  H5Eclear2(H5E_DEFAULT);
  if (l.count == 0) snprintf(out, cap, "nothing");
  else if (l.count > l.shown) snprintf(out, cap, "%s and %d more", l.text, l.count - l.shown);
  else snprintf(out, cap, "%s", l.text);
}

/* The name of a type for messages: "uint8", "float32", "string", ... */
static void type_name(hid_t t, char *out, size_t cap) {
  H5T_class_t c = H5Tget_class(t);
  size_t size = H5Tget_size(t);
  if (c == H5T_INTEGER)
    snprintf(out, cap, "%sint%d", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", (int)(8 * size));
  else if (c == H5T_FLOAT) snprintf(out, cap, "float%d", (int)(8 * size));
  else {
    static const struct {
      H5T_class_t c;
      const char *name;
    } names[] = {
        {H5T_STRING, "string"},     {H5T_COMPOUND, "compound"},    {H5T_ENUM, "enum"},
        {H5T_BITFIELD, "bitfield"}, {H5T_OPAQUE, "opaque"},        {H5T_REFERENCE, "reference"},
        {H5T_ARRAY, "array"},       {H5T_VLEN, "variable-length"}, {H5T_TIME, "time"}};
    const char *n = "unknown";
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
      if (names[k].c == c) n = names[k].name;
    snprintf(out, cap, "%s", n);
  }
}

/* "12 x 28 x 28", or "scalar" / "empty" for the dataspaces without a shape. */
static void shape_text(hid_t space, char *out, size_t cap) {
  H5S_class_t c = H5Sget_simple_extent_type(space);
  int nd = H5Sget_simple_extent_ndims(space);
  if (c == H5S_SCALAR || nd == 0) {
    snprintf(out, cap, c == H5S_NULL ? "empty" : "scalar");
    return;
  }
  hsize_t dims[H5S_MAX_RANK];
  if (nd < 0 || nd > H5S_MAX_RANK || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
    snprintf(out, cap, "?");
    return;
  }
  size_t k = 0;
  out[0] = '\0';
  for (int i = 0; i < nd && k + 24 < cap; i++)
    k += (size_t)snprintf(out + k, cap - k, "%s%llu", i ? " x " : "", (unsigned long long)dims[i]);
}

static void describe(hid_t loc, const char *name, char *out, size_t cap) {
  hid_t o = H5Oopen(loc, name, H5P_DEFAULT);
  H5I_type_t t = o < 0 ? H5I_BADID : H5Iget_type(o);
  if (t == H5I_DATASET) {
    char shape[96], type[32];
    hid_t s = H5Dget_space(o), ty = H5Dget_type(o);
    shape_text(s, shape, sizeof shape);
    type_name(ty, type, sizeof type);
    snprintf(out, cap, "%s (dataset %s %s)", name, shape, type);
    H5Sclose(s);
    H5Tclose(ty);
  } else {
    snprintf(out, cap, "%s (%s)", name,
             t == H5I_GROUP      ? "group"
             : t == H5I_DATATYPE ? "named type"
                                 : "broken link");
  }
  if (o >= 0) H5Oclose(o);
  H5Eclear2(H5E_DEFAULT);
}

/* ---- rank 0: find and check one dataset ---- */

/* The one dataset at the root of f, for a path without a dataset part. */
typedef struct {
  int datasets;
  char name[IMX_PATH_LEN];
} only_one;

static herr_t find_dataset(hid_t group, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  only_one *o = data;
  hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj >= 0 && H5Iget_type(obj) == H5I_DATASET && o->datasets++ == 0)
    snprintf(o->name, sizeof o->name, "/%s", name);
  if (obj >= 0) H5Oclose(obj);
  H5Eclear2(H5E_DEFAULT);
  return 0;
}

/* Resolve p->dataset in f: the only root dataset if it is "", else walk its
 * groups so that a missing part is named with what its group holds. */
static imx_err locate(imx_ctx *ctx, hid_t f, const char *spec, imx_h5_path *p) {
  char have[700];
  if (!p->dataset[0]) {
    only_one o = {0, ""};
    hsize_t idx = 0;
    H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, find_dataset, &o);
    H5Eclear2(H5E_DEFAULT);
    if (o.datasets != 1) {
      list_group(f, "/", have, sizeof have);
      return imx_fail(ctx, IMX_ERR_DATA,
                      "%s: %s dataset at the file's root, so name one as %s:/NAME; the root "
                      "holds %s",
                      spec, o.datasets ? "more than one" : "no", p->file, have);
    }
    memcpy(p->dataset, o.name, sizeof o.name);
  }
  /* Each prefix "/a", "/a/b", ... must exist, and all but the last be a group. */
  char prefix[IMX_PATH_LEN];
  const char *d = p->dataset;
  for (size_t i = 1;; i++) {
    if (d[i] != '/' && d[i] != '\0') continue;
    memcpy(prefix, d, i);
    prefix[i] = '\0';
    char parent[IMX_PATH_LEN];
    size_t cut = (size_t)(strrchr(prefix, '/') - prefix);
    memcpy(parent, prefix, cut ? cut : 1);
    parent[cut ? cut : 1] = '\0';
    htri_t there = H5Lexists(f, prefix, H5P_DEFAULT);
    if (there <= 0) {
      H5Eclear2(H5E_DEFAULT);
      list_group(f, parent, have, sizeof have);
      return imx_fail(ctx, IMX_ERR_DATA, "%s: %s has no %s %s; %s holds %s", spec, p->file,
                      d[i] ? "group" : "dataset", prefix, parent, have);
    }
    hid_t o = H5Oopen(f, prefix, H5P_DEFAULT);
    H5I_type_t t = o < 0 ? H5I_BADID : H5Iget_type(o);
    if (o >= 0) H5Oclose(o);
    char why[160];
    if (o < 0)
      return imx_fail(ctx, IMX_ERR_DATA, "%s: cannot open %s (a broken link?): %s", spec, prefix,
                      reason(why));
    if (d[i] && t != H5I_GROUP)
      return imx_fail(ctx, IMX_ERR_DATA, "%s: %s is a %s, not a group", spec, prefix,
                      t == H5I_DATASET ? "dataset" : "named type");
    if (!d[i] && t != H5I_DATASET) {
      if (t == H5I_GROUP) list_group(f, prefix, have, sizeof have);
      return imx_fail(ctx, IMX_ERR_DATA, "%s: %s is a %s, not a dataset%s%s", spec, prefix,
                      t == H5I_GROUP ? "group" : "named type", t == H5I_GROUP ? "; it holds " : "",
                      t == H5I_GROUP ? have : "");
    }
    if (!d[i]) return IMX_OK;
  }
}

/* The filters of a chunked dataset must be in this libhdf5 (gzip is; szip,
 * lzf or blosc may not be): else the read would fail with a vaguer reason. */
static imx_err check_filters(imx_ctx *ctx, hid_t ds, const char *spec) {
  hid_t dcpl = H5Dget_create_plist(ds);
  int nf = dcpl < 0 ? 0 : H5Pget_nfilters(dcpl);
  imx_err e = IMX_OK;
  for (int k = 0; k < nf && !e; k++) {
    unsigned flags = 0, cd[8];
    size_t ncd = 8;
    char name[64] = "";
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, sizeof name, name, NULL);
    if (id >= 0 && H5Zfilter_avail(id) <= 0)
      e = imx_fail(ctx, IMX_ERR_DATA,
                   "%s: compressed with filter %d (%s), which this HDF5 library does not have "
                   "(rewrite it with gzip, or install the filter plugin on HDF5_PLUGIN_PATH)",
                   spec, (int)id, name[0] ? name : "unnamed");
  }
  if (dcpl >= 0) H5Pclose(dcpl);
  H5Eclear2(H5E_DEFAULT);
  return e;
}

/* Shape and type of the open dataset ds against what a data matrix (labels
 * = 0) or a label vector (labels = 1) may be. */
static imx_err check_dataset(imx_ctx *ctx, hid_t ds, const char *spec, int labels, h5_header *h) {
  hid_t space = H5Dget_space(ds), type = H5Dget_type(ds);
  char shape[96] = "?", tname[32] = "?";
  imx_err e = IMX_OK;
  if (space < 0 || type < 0) {
    char why[160];
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: cannot read the dataset's shape and type: %s", spec,
                 reason(why));
    goto out;
  }
  shape_text(space, shape, sizeof shape);
  type_name(type, tname, sizeof tname);
  int nd = H5Sget_simple_extent_ndims(space);
  hsize_t dims[H5S_MAX_RANK];
  if (H5Sget_simple_extent_type(space) != H5S_SIMPLE || nd < 1 || nd > H5S_MAX_RANK ||
      H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: the dataset is %s; need %s", spec, shape,
                 labels ? "a vector of labels (N or N x 1)" : "rows x features (2-D or more)");
    goto out;
  }
  if (!labels && nd < 2) {
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "%s: the data matrix must be 2-D or more (rows x features), got 1-D of %llu", spec,
                 (unsigned long long)dims[0]);
    goto out;
  }
  if (labels && !(nd == 1 || (nd == 2 && dims[1] == 1))) {
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: labels must be a vector (N or N x 1), got %s", spec,
                 shape);
    goto out;
  }
  int64_t cols = 1;
  for (int k = 1; k < nd; k++) {
    if (dims[k] > (hsize_t)INT_MAX || (dims[k] && cols > INT_MAX / (int64_t)dims[k])) {
      e = imx_fail(ctx, IMX_ERR_DATA, "%s: shape %s makes more than %d values per row", spec, shape,
                   INT_MAX);
      goto out;
    }
    cols *= (int64_t)dims[k];
  }
  if (dims[0] > (hsize_t)INT64_MAX / 16) {
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: shape %s is too large", spec, shape);
    goto out;
  }
  H5T_class_t c = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  int ok_int = c == H5T_INTEGER && (size == 1 || size == 2 || size == 4 || size == 8);
  int ok_float = c == H5T_FLOAT && (size == 4 || size == 8);
  if (!ok_int && !ok_float)
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "%s: element type %s is not numeric (need integers of 8 to 64 bits, float32 or "
                 "float64)",
                 spec, tname);
  else if (labels && ok_float && size == 4)
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "%s: element type float32 for labels (need integers, or float64 with integer "
                 "values)",
                 spec);
  if (e) goto out;
  h->is_float = ok_float;
  h->is_signed = ok_int && H5Tget_sign(type) != H5T_SGN_NONE;
  h->size = (int)size;
  h->ndim = nd;
  h->rows = (int64_t)dims[0];
  h->cols = cols;
out:
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  H5Eclear2(H5E_DEFAULT);
  return e;
}

/* Open, find and check one array (rank 0, sec2 driver). */
static imx_err read_header(imx_ctx *ctx, const char *spec, int labels, h5_header *h) {
  imx_h5_path p;
  IMX_TRY(imx_h5_path_parse(ctx, spec, &p));
  struct stat st;
  if (stat(p.file, &st) != 0)
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s", p.file, strerror(errno));
  if (!S_ISREG(st.st_mode)) return imx_fail(ctx, IMX_ERR_IO, "%s: not a regular file", p.file);
  FILE *probe = fopen(p.file, "rb");
  if (!probe) return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s", p.file, strerror(errno));
  fclose(probe);
  char why[160];
  hid_t f = H5Fopen(p.file, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0 && strstr(reason(why), "lock"))
    return imx_fail(ctx, IMX_ERR_IO, "%s: cannot open: %s%s", p.file, why, LOCK_HINT);
  if (f < 0)
    return imx_fail(ctx, IMX_ERR_DATA, "%s: not an HDF5 file, or a damaged one (HDF5: %s)", p.file,
                    why);
  imx_err e = locate(ctx, f, spec, &p);
  hid_t ds = -1;
  if (!e) {
    ds = H5Dopen2(f, p.dataset, H5P_DEFAULT);
    if (ds < 0)
      e = imx_fail(ctx, IMX_ERR_DATA, "%s: cannot open dataset %s: %s", spec, p.dataset,
                   reason(why));
  }
  if (!e) e = check_dataset(ctx, ds, spec, labels, h);
  if (!e) e = check_filters(ctx, ds, spec);
  if (ds >= 0) H5Dclose(ds);
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  return e;
}

/* Rank 0's checks of the data and labels headers. Local. */
static imx_err h5_headers(imx_ctx *ctx, const imx_config *cfg, void *x, void *y) {
  h5_header *hx = x, *hy = y;
  const char *px = cfg->data.path, *py = cfg->data.labels;
  quiet_state q;
  quiet_begin(&q);
  imx_err e = read_header(ctx, px, 0, hx);
  if (!e && py[0]) e = read_header(ctx, py, 1, hy);
  if (!e && py[0] && hy->rows != hx->rows)
    e = imx_fail(ctx, IMX_ERR_DATA, "labels %s has %lld labels but data %s has %lld rows", py,
                 (long long)hy->rows, px, (long long)hx->rows);
  quiet_end(&q);
  return e;
}

static void h5_shape(const void *h, int64_t *rows, int64_t *cols) {
  const h5_header *x = h;
  *rows = x->rows;
  *cols = x->cols;
}

/* ---- every rank: its rows, collectively ---- */

/* The native memory type of the file's items (HDF5 converts the byte order). */
static hid_t memory_type(const h5_header *h) {
  if (h->is_float) return h->size == 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
  switch (h->size) {
    case 1:
      return h->is_signed ? H5T_NATIVE_INT8 : H5T_NATIVE_UINT8;
    case 2:
      return h->is_signed ? H5T_NATIVE_INT16 : H5T_NATIVE_UINT16;
    case 4:
      return h->is_signed ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT32;
    default:
      return h->is_signed ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
  }
}

/* 64-bit integers beyond 2^53 in magnitude would be rounded to a neighbour:
 * refused, with the first one's row and column. Local. */
static imx_err check_exact(imx_ctx *ctx, const char *spec, const h5_header *h, const void *buf,
                           int64_t row0, int64_t count) {
  if (h->is_float || h->size != 8) return IMX_OK;
  for (int64_t i = 0; i < count; i++) {
    int64_t s;
    uint64_t u;
    memcpy(&u, (const unsigned char *)buf + 8 * i, 8);
    memcpy(&s, &u, 8);
    int bad = h->is_signed ? (s > EXACT_INT || s < -EXACT_INT) : u > (uint64_t)EXACT_INT;
    if (bad) {
      char v[32];
      if (h->is_signed) snprintf(v, sizeof v, "%lld", (long long)s);
      else snprintf(v, sizeof v, "%llu", (unsigned long long)u);
      return imx_fail(ctx, IMX_ERR_DATA,
                      "%s: value %s at row %lld, column %lld (0-based) is beyond 2^53 = %lld in "
                      "magnitude, where 64-bit integers stop being exact doubles",
                      spec, v, (long long)(row0 + i / h->cols), (long long)(i % h->cols),
                      (long long)EXACT_INT);
    }
  }
  return IMX_OK;
}

/* Each rank's ok flag combined; an MPI failure counts as not ok everywhere. */
static int all_ok(imx_ctx *ctx, int ok) {
  int v = ok ? 1 : 0;
  if (MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, ctx->comm) != MPI_SUCCESS) return 0;
  return v;
}

/* This rank's rows, collectively: open through MPI-IO, select the hyperslab
 * of rows [row0, row0 + nrows) and read it in the same number of collective
 * reads on every rank (empty selections where a rank has fewer). Called on
 * every rank; agreed before each collective call. */
static imx_err h5_rows(imx_ctx *ctx, const char *spec, const void *hv, int64_t row0, int64_t nrows,
                       void *out) {
  const h5_header *h = hv;
  quiet_state q;
  quiet_begin(&q);
  char why[160];
  imx_h5_path p;
  hid_t fapl = -1, f = -1, ds = -1, fspace = -1, mspace = -1, dxpl = -1;
  imx_err e = imx_h5_path_parse(ctx, spec, &p);
  /* rank 0 resolved an empty dataset name; every rank resolves it the same way
   * below, from the same file */
  if (!e) {
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, ctx->comm, MPI_INFO_NULL) < 0)
      e = imx_fail(ctx, IMX_ERR_INTERNAL, "%s: cannot set up MPI-IO file access: %s", p.file,
                   reason(why));
  }
  /* H5Fopen is collective: all ranks or none. */
  if ((e = imx_agree(ctx, e))) goto out;
  f = H5Fopen(p.file, H5F_ACC_RDONLY, fapl);
  if (f < 0)
    e = imx_fail(ctx, IMX_ERR_IO, "%s: cannot open with parallel HDF5 (MPI-IO): %s%s", p.file,
                 reason(why), strstr(why, "lock") ? LOCK_HINT : "");
  int opened = all_ok(ctx, f >= 0);
  if (!opened && f >= 0) {
    /* The others failed where this rank did not: its file handle can only be
     * closed collectively, which they cannot join. */
    fprintf(stderr, "infomax: error: %s: parallel HDF5 opened the file on some ranks only\n",
            p.file);
    MPI_Abort(ctx->comm, IMX_ERR_IO);
  }
  if ((e = imx_agree(ctx, e))) goto out;
  if (!p.dataset[0]) e = locate(ctx, f, spec, &p);
  if (!e && (ds = H5Dopen2(f, p.dataset, H5P_DEFAULT)) < 0)
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: cannot open dataset %s: %s", spec, p.dataset, reason(why));
  hsize_t dims[H5S_MAX_RANK], start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
  int nd = 0;
  if (!e) {
    fspace = H5Dget_space(ds);
    nd = fspace < 0 ? -1 : H5Sget_simple_extent_ndims(fspace);
    if (nd != h->ndim || H5Sget_simple_extent_dims(fspace, dims, NULL) < 0 ||
        (int64_t)dims[0] != h->rows)
      e = imx_fail(ctx, IMX_ERR_DATA, "%s: the dataset changed while it was being read", spec);
    dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (!e && (dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0))
      e = imx_fail(ctx, IMX_ERR_INTERNAL, "%s: cannot set up collective transfers: %s", spec,
                   reason(why));
  }
  /* The same number of collective reads on every rank. */
  int64_t rowbytes = h->cols * h->size, chunk = rowbytes ? MAX_READ_BYTES / rowbytes : 1;
  if (chunk < 1) chunk = 1;
  int64_t reads = (nrows + chunk - 1) / chunk;
  if (MPI_Allreduce(MPI_IN_PLACE, &reads, 1, MPI_INT64_T, MPI_MAX, ctx->comm) != MPI_SUCCESS && !e)
    e = imx_fail(ctx, IMX_ERR_MPI, "%s: MPI_Allreduce of the number of reads failed", spec);
  hid_t mtype = memory_type(h);
  for (int64_t k = 0; k < reads; k++) {
    if ((e = imx_agree(ctx, e))) goto out;
    int64_t r = k * chunk, m = nrows - r < chunk ? nrows - r : chunk;
    if (m < 0) m = 0;
    for (int i = 1; i < nd; i++) count[i] = dims[i];
    start[0] = (hsize_t)(row0 + r);
    count[0] = (hsize_t)m;
    hsize_t mcount = m > 0 ? (hsize_t)(m * h->cols) : 1; /* (selected: none, below) */
    herr_t rc = 0;
    if (mspace >= 0) H5Sclose(mspace);
    mspace = H5Screate_simple(1, &mcount, NULL);
    if (m > 0) rc = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    else rc = H5Sselect_none(fspace) < 0 || H5Sselect_none(mspace) < 0 ? -1 : 0;
    if (mspace < 0 || rc < 0) {
      e = imx_fail(ctx, IMX_ERR_INTERNAL, "%s: cannot select rows %lld..%lld: %s", spec,
                   (long long)(row0 + r), (long long)(row0 + r + m - 1), reason(why));
      continue; /* to the agreement at the top */
    }
    if (H5Dread(ds, mtype, mspace, fspace, dxpl, (unsigned char *)out + r * rowbytes) < 0)
      e = imx_fail(ctx, IMX_ERR_IO, "%s: reading rows %lld..%lld failed: %s", spec,
                   (long long)(row0 + r), (long long)(row0 + r + m - 1), reason(why));
  }
  if (!e) e = check_exact(ctx, spec, h, out, row0, nrows * h->cols);
out:
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  if (dxpl >= 0) H5Pclose(dxpl);
  if (ds >= 0) H5Dclose(ds);
  if (f >= 0) H5Fclose(f); /* collective: every rank opened it (agreed above) */
  if (fapl >= 0) H5Pclose(fapl);
  quiet_end(&q);
  return e;
}

/* Native items to doubles in place, then times scale. Narrower items grow:
 * walk backwards so that item i is read before double i overwrites it. */
static void h5_to_double(const void *hv, void *buf, size_t count, double scale) {
  const h5_header *h = hv;
  unsigned char *b = buf;
  double *x = buf;
  if (!(h->is_float && h->size == 8)) {
    for (size_t k = count; k-- > 0;) {
      const unsigned char *p = b + (size_t)h->size * k;
      double v;
      if (h->is_float) {
        float t;
        memcpy(&t, p, 4);
        v = t;
      } else if (h->is_signed) {
        int64_t s = 0;
        if (h->size == 1) s = *(const int8_t *)p;
        else if (h->size == 2) {
          int16_t t;
          memcpy(&t, p, 2);
          s = t;
        } else if (h->size == 4) {
          int32_t t;
          memcpy(&t, p, 4);
          s = t;
        } else memcpy(&s, p, 8);
        v = (double)s;
      } else {
        uint64_t u = 0;
        if (h->size == 1) u = *p;
        else if (h->size == 2) {
          uint16_t t;
          memcpy(&t, p, 2);
          u = t;
        } else if (h->size == 4) {
          uint32_t t;
          memcpy(&t, p, 4);
          u = t;
        } else memcpy(&u, p, 8);
        v = (double)u;
      }
      x[k] = v;
    }
  }
  imx_data_scale(x, count, scale);
}

_Static_assert(sizeof(h5_header) <= IMX_SOURCE_HEADER_MAX, "raise IMX_SOURCE_HEADER_MAX");
const imx_source_ops imx_hdf5_source = {
    .read_headers = h5_headers, .shape = h5_shape, .read_rows = h5_rows, .to_double = h5_to_double};
