/* model_file: RUN/model.h5, written by train and read by transform (see
 * include/imx/model_file.h; the layout is docs/guide.md's "The model file"). */
#include "imx/model_file.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imx/version.h"

imx_err imx_model_create(imx_ctx *ctx, const imx_config *cfg, int n, const double *mean,
                         const double *transform, imx_model **out) {
  *out = NULL;
  imx_model *m = calloc(1, sizeof *m);
  if (m) {
    m->mean = calloc((size_t)n, sizeof *m->mean);
    m->transform = calloc((size_t)n * n, sizeof *m->transform);
  }
  if (!m || !m->mean || !m->transform) {
    imx_model_free(&m);
    return imx_fail(ctx, IMX_ERR_NOMEM, "model: preprocessing of n=%d inputs", n);
  }
  m->format_version = IMX_MODEL_VERSION;
  snprintf(m->status, sizeof m->status, "training");
  snprintf(m->version, sizeof m->version, "%s", imx_version());
  m->cfg = *cfg;
  m->inputs = n;
  m->kind = cfg->data.preprocess;
  m->scale = cfg->data.scale;
  if (mean) memcpy(m->mean, mean, (size_t)n * sizeof *mean);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      m->transform[(size_t)i * n + j] = transform ? transform[(size_t)i * n + j] : i == j;
  *out = m;
  return IMX_OK;
}

static void clear_layer(imx_model_layer *y) {
  free(y->W), free(y->b), free(y->U), free(y->c);
  memset(y, 0, sizeof *y);
}

void imx_model_free(imx_model **pm) {
  imx_model *m = *pm;
  if (!m) return;
  for (int i = 0; i < IMX_MAX_LAYERS; i++) clear_layer(&m->layer[i]);
  free(m->mean), free(m->transform);
  free(m);
  *pm = NULL;
}

imx_err imx_model_set_layer(imx_ctx *ctx, imx_model *m, int index, const imx_config *lc,
                            const imx_layer *l, const double *theta) {
  if (index < 1 || index > m->layers + 1 || index > IMX_MAX_LAYERS)
    return imx_fail(ctx, IMX_ERR_INTERNAL, "model: layer %d set with %d layers present", index,
                    m->layers);
  for (int i = index; i < m->layers; i++) clear_layer(&m->layer[i]);
  imx_model_layer *y = &m->layer[index - 1];
  int K = imx_layer_units(l), n = imx_layer_inputs(l), C = imx_layer_head_classes(l);
  if (y->K != K || y->n != n || y->classes != C) {
    clear_layer(y);
    y->W = malloc((size_t)K * n * sizeof *y->W), y->b = malloc((size_t)K * sizeof *y->b);
    if (C) y->U = malloc((size_t)C * K * sizeof *y->U), y->c = malloc((size_t)C * sizeof *y->c);
    if (!y->W || !y->b || (C && (!y->U || !y->c))) {
      clear_layer(y);
      m->layers = index - 1;
      return imx_fail(ctx, IMX_ERR_NOMEM, "model: layer %d of %d x %d", index, K, n);
    }
  }
  y->K = K, y->n = n, y->classes = C;
  y->act = lc->model.activation, y->tau = lc->model.temperature;
  y->topk = lc->model.activation == IMX_ACT_TOPK ? lc->model.topk : 0;
  y->feed = lc->model.feed;
  imx_layer_weights(l, theta, y->W, y->b);
  if (C) { /* theta = [V, b, U (C x K), c (C)] */
    const double *head = theta + (size_t)K * n + K;
    memcpy(y->U, head, (size_t)C * K * sizeof *y->U);
    memcpy(y->c, head + (size_t)C * K, (size_t)C * sizeof *y->c);
  }
  m->layers = index;
  return IMX_OK;
}

/* ---- writing (rank 0, serial HDF5) ---- */

/* HDF5 calls below return negative ids and codes on failure; `bad` collects
 * them, so one check after a group of calls suffices. */
static int put_str(hid_t loc, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
  int bad = t < 0 || s < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0;
  hid_t a = bad ? -1 : H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  bad = bad || a < 0 || H5Awrite(a, t, &value) < 0;
  if (a >= 0) H5Aclose(a);
  if (s >= 0) H5Sclose(s);
  if (t >= 0) H5Tclose(t);
  return bad;
}

static int put_num(hid_t loc, const char *name, int is_int, double v) {
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = s < 0 ? -1
                  : H5Acreate2(loc, name, is_int ? H5T_STD_I32LE : H5T_IEEE_F64LE, s, H5P_DEFAULT,
                               H5P_DEFAULT);
  int iv = (int)v;
  int bad = a < 0 ||
            (is_int ? H5Awrite(a, H5T_NATIVE_INT, &iv) : H5Awrite(a, H5T_NATIVE_DOUBLE, &v)) < 0;
  if (a >= 0) H5Aclose(a);
  if (s >= 0) H5Sclose(s);
  return bad;
}

/* A float64 dataset of rows x cols (cols 0: a vector of rows). */
static int put_array(hid_t loc, const char *name, int rows, int cols, const double *v) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  hid_t s = H5Screate_simple(cols ? 2 : 1, dims, NULL), p = H5Pcreate(H5P_DATASET_CREATE);
  int bad = s < 0 || p < 0 || H5Pset_obj_track_times(p, 0) < 0;
  hid_t d = bad ? -1 : H5Dcreate2(loc, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, p, H5P_DEFAULT);
  bad = bad || d < 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0;
  if (d >= 0) H5Dclose(d);
  if (p >= 0) H5Pclose(p);
  if (s >= 0) H5Sclose(s);
  return bad;
}

static hid_t new_group(hid_t loc, const char *name) {
  hid_t p = H5Pcreate(H5P_GROUP_CREATE);
  if (p < 0) return -1;
  hid_t g = H5Pset_obj_track_times(p, 0) < 0 ? -1
                                             : H5Gcreate2(loc, name, H5P_DEFAULT, p, H5P_DEFAULT);
  H5Pclose(p);
  return g;
}

/* The resolved configuration as YAML text (a string to free(), or NULL). */
static char *config_text(imx_ctx *ctx, const imx_config *cfg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  imx_err e = imx_config_write(ctx, cfg, f);
  if (fclose(f) || e) {
    free(buf);
    return NULL;
  }
  return buf;
}

static int put_layer(hid_t root, int index, const imx_model_layer *y) {
  char name[32];
  snprintf(name, sizeof name, "layer%d", index);
  hid_t g = new_group(root, name);
  if (g < 0) return 1;
  int bad = put_num(g, "units", 1, y->K) | put_num(g, "inputs", 1, y->n) |
            put_str(g, "activation", imx_activation_name(y->act)) |
            put_num(g, "temperature", 0, y->tau) | put_num(g, "topk", 1, y->topk) |
            put_str(g, "feed", imx_feed_name(y->feed)) | put_array(g, "W", y->K, y->n, y->W) |
            put_array(g, "b", y->K, 0, y->b);
  if (!bad && y->classes) {
    hid_t h = new_group(g, "head");
    bad = h < 0 || put_num(h, "classes", 1, y->classes) |
                       put_array(h, "U", y->classes, y->K, y->U) |
                       put_array(h, "c", y->classes, 0, y->c);
    if (h >= 0) H5Gclose(h);
  }
  H5Gclose(g);
  return bad;
}

/* The whole file at tmp. Returns nonzero on an HDF5 failure. */
static int write_h5(const imx_model *m, const char *tmp, const char *status, const char *config) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_fapl_sec2(fapl) < 0) {
    if (fapl >= 0) H5Pclose(fapl);
    return 1;
  }
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) return 1;
  int n = m->inputs;
  int bad = put_str(f, "format", IMX_MODEL_FORMAT) |
            put_num(f, "format_version", 1, IMX_MODEL_VERSION) |
            put_str(f, "infomax_version", m->version) | put_num(f, "layers", 1, m->layers) |
            put_num(f, "inputs", 1, n) | put_str(f, "config", config) |
            put_str(f, "status", status);
  hid_t g = bad ? -1 : new_group(f, "preprocess");
  bad = bad || g < 0 ||
        put_str(g, "kind", imx_preprocess_name(m->kind)) | put_num(g, "scale", 0, m->scale) |
            put_array(g, "mean", n, 0, m->mean) | put_array(g, "transform", n, n, m->transform);
  if (g >= 0) H5Gclose(g);
  for (int i = 0; !bad && i < m->layers; i++) bad = put_layer(f, i + 1, &m->layer[i]);
  if (H5Fclose(f) < 0) bad = 1;
  return bad;
}

/* Rank 0's part of imx_model_write. Local. */
static imx_err write_on_root(imx_ctx *ctx, const imx_model *m, const char *dir,
                             const char *status) {
  char tmp[IMX_PATH_LEN + 32], dst[IMX_PATH_LEN + 32];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, IMX_MODEL_FILE);
  snprintf(dst, sizeof dst, "%s/%s", dir, IMX_MODEL_FILE);
  char *config = config_text(ctx, &m->cfg);
  if (!config) return imx_fail(ctx, IMX_ERR_NOMEM, "%s: the configuration as text", dst);
  H5E_auto2_t func;
  void *data;
  H5Eget_auto2(H5E_DEFAULT, &func, &data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);              /* our message names the file instead */
  int bad = write_h5(m, tmp, status, config) ? 3 : 0; /* 3: HDF5 failed, 1: fsync, 2: rename */
  int why = errno;
  H5Eset_auto2(H5E_DEFAULT, func, data);
  free(config);
  if (!bad) { /* HDF5 closed the file: make its bytes durable before the rename */
    int fd = open(tmp, O_RDONLY);
    bad = fd < 0 || fsync(fd) != 0;
    why = errno;
    if (fd >= 0) close(fd);
  }
  if (!bad && rename(tmp, dst)) bad = 2, why = errno;
  if (!bad) return IMX_OK;
  unlink(tmp); /* never leave a partial file behind */
  if (bad == 3)
    return imx_fail(ctx, IMX_ERR_IO,
                    "cannot write %s: HDF5 failed writing %s (last system error: %s)", dst, tmp,
                    why ? strerror(why) : "none");
  if (bad == 2)
    return imx_fail(ctx, IMX_ERR_IO, "cannot rename %s to %s: %s", tmp, dst, strerror(why));
  return imx_fail(ctx, IMX_ERR_IO, "cannot write %s (fsync of %s): %s", dst, tmp, strerror(why));
}

imx_err imx_model_write(imx_ctx *ctx, const imx_model *m, const char *dir, const char *status) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    errno = 0;
    e = write_on_root(ctx, m, dir, status);
  }
  return imx_agree(ctx, e);
}

/* ---- reading (rank 0), then broadcast ---- */

/* A string attribute (fixed or variable length) into a new string, or NULL. */
static char *get_str(hid_t loc, const char *name) {
  if (H5Aexists(loc, name) <= 0) return NULL;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  hid_t t = a < 0 ? -1 : H5Aget_type(a);
  char *out = NULL;
  if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      char *v = NULL;
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(t)); /* HDF5 converts no ASCII to UTF-8 */
      if (H5Aread(a, mt, &v) >= 0 && v) out = strdup(v);
      if (v) H5free_memory(v);
      H5Tclose(mt);
    } else {
      size_t len = H5Tget_size(t);
      out = calloc(len + 1, 1);
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, len + 1);
      H5Tset_cset(mt, H5Tget_cset(t));
      if (out && H5Aread(a, mt, out) < 0) free(out), out = NULL;
      H5Tclose(mt);
    }
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return out;
}

/* A numeric scalar attribute as double; 0 if present and read. */
static int get_num(hid_t loc, const char *name, double *v) {
  if (H5Aexists(loc, name) <= 0) return 1;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  hid_t s = a < 0 ? -1 : H5Aget_space(a);
  int bad = s < 0 || H5Sget_simple_extent_npoints(s) != 1 || H5Aread(a, H5T_NATIVE_DOUBLE, v) < 0;
  if (s >= 0) H5Sclose(s);
  if (a >= 0) H5Aclose(a);
  return bad;
}

/* Context of one read: the file, for messages. */
typedef struct rd {
  imx_ctx *ctx;
  const char *path;
} rd;

static imx_err need_num(rd *r, hid_t loc, const char *where, const char *name, int is_int,
                        double lo, double hi, double *v) {
  if (get_num(loc, name, v) || !(*v >= lo && *v <= hi) || (is_int && *v != (double)(long)*v))
    return imx_fail(r->ctx, IMX_ERR_DATA, "%s: attribute %s%s is missing or not %s in [%g, %g]",
                    r->path, where, name, is_int ? "an integer" : "a number", lo, hi);
  return IMX_OK;
}

static imx_err need_int(rd *r, hid_t loc, const char *where, const char *name, int lo, int hi,
                        int *v) {
  double x;
  IMX_TRY(need_num(r, loc, where, name, 1, lo, hi, &x));
  *v = (int)x;
  return IMX_OK;
}

/* A string attribute that must be one of names (NULL-terminated). */
static imx_err need_name(rd *r, hid_t loc, const char *where, const char *name,
                         const char *const *names, int *v) {
  char *s = get_str(loc, name);
  for (int i = 0; s && names[i]; i++)
    if (!strcmp(s, names[i])) {
      *v = i;
      free(s);
      return IMX_OK;
    }
  imx_err e = imx_fail(r->ctx, IMX_ERR_DATA, "%s: attribute %s%s is %s%s%s, not one of %s%s%s%s",
                       r->path, where, name, s ? "\"" : "missing", s ? s : "", s ? "\"" : "",
                       names[0], names[1] ? ", " : "", names[1] ? names[1] : "",
                       names[1] && names[2] ? ", ..." : "");
  free(s);
  return e;
}

/* Dataset loc/name of exactly rows x cols float values (cols 0: a vector), into a new array. */
static imx_err need_array(rd *r, hid_t loc, const char *where, const char *name, int rows, int cols,
                          double **out) {
  *out = NULL;
  hsize_t dims[3] = {0, 0, 0};
  int nd = -1;
  hid_t d = H5Lexists(loc, name, H5P_DEFAULT) > 0 ? H5Dopen2(loc, name, H5P_DEFAULT) : -1;
  hid_t s = d < 0 ? -1 : H5Dget_space(d);
  hid_t t = d < 0 ? -1 : H5Dget_type(d);
  if (s >= 0) nd = H5Sget_simple_extent_ndims(s);
  if (nd >= 1 && nd <= 2) H5Sget_simple_extent_dims(s, dims, NULL);
  int ok = t >= 0 && H5Tget_class(t) == H5T_FLOAT && nd == (cols ? 2 : 1) &&
           dims[0] == (hsize_t)rows && (!cols || dims[1] == (hsize_t)cols);
  imx_err e = IMX_OK;
  if (!ok) {
    e = d < 0 ? imx_fail(r->ctx, IMX_ERR_DATA, "%s: dataset %s%s is missing", r->path, where, name)
              : imx_fail(r->ctx, IMX_ERR_DATA,
                         "%s: dataset %s%s is not a float array of shape (%d%s%.0d), "
                         "got %d dimensions (%llu, %llu)",
                         r->path, where, name, rows, cols ? ", " : ",", cols, nd,
                         (unsigned long long)dims[0], (unsigned long long)dims[1]);
  } else {
    size_t count = (size_t)rows * (cols ? cols : 1);
    *out = malloc((count ? count : 1) * sizeof **out);
    if (!*out) e = imx_fail(r->ctx, IMX_ERR_NOMEM, "%s: dataset %s%s", r->path, where, name);
    else if (count && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
      e = imx_fail(r->ctx, IMX_ERR_DATA, "%s: cannot read dataset %s%s", r->path, where, name);
  }
  if (t >= 0) H5Tclose(t);
  if (s >= 0) H5Sclose(s);
  if (d >= 0) H5Dclose(d);
  if (e) free(*out), *out = NULL;
  return e;
}

/* Layer `index` from group layerINDEX, with n_in inputs. */
static imx_err read_layer(rd *r, hid_t f, int index, int n_in, imx_model_layer *y) {
  char gname[32], where[48];
  snprintf(gname, sizeof gname, "layer%d", index);
  snprintf(where, sizeof where, "/%s/", gname);
  if (H5Lexists(f, gname, H5P_DEFAULT) <= 0)
    return imx_fail(r->ctx, IMX_ERR_DATA,
                    "%s: group /%s is missing (attribute layers says it is there)", r->path, gname);
  hid_t g = H5Gopen2(f, gname, H5P_DEFAULT);
  if (g < 0) return imx_fail(r->ctx, IMX_ERR_DATA, "%s: cannot open group /%s", r->path, gname);
  int act = 0, feed = 0;
  double tau = 0;
  imx_err e = need_int(r, g, where, "units", 1, 1 << 30, &y->K);
  if (!e) e = need_int(r, g, where, "inputs", n_in, n_in, &y->n);
  if (!e) e = need_name(r, g, where, "activation", imx_activation_names, &act);
  if (!e) e = need_num(r, g, where, "temperature", 0, 0, 1e308, &tau);
  if (!e) e = need_int(r, g, where, "topk", 0, y->K, &y->topk);
  if (!e) e = need_name(r, g, where, "feed", imx_feed_names, &feed);
  y->act = (imx_activation)act, y->tau = tau, y->feed = (imx_feed)feed;
  if (!e) e = need_array(r, g, where, "W", y->K, y->n, &y->W);
  if (!e) e = need_array(r, g, where, "b", y->K, 0, &y->b);
  if (!e && H5Lexists(g, "head", H5P_DEFAULT) > 0) {
    char hw[64];
    snprintf(hw, sizeof hw, "%shead/", where);
    hid_t h = H5Gopen2(g, "head", H5P_DEFAULT);
    e = h < 0 ? imx_fail(r->ctx, IMX_ERR_DATA, "%s: cannot open group %s", r->path, hw)
              : need_int(r, h, hw, "classes", 1, 1 << 20, &y->classes);
    if (!e) e = need_array(r, h, hw, "U", y->classes, y->K, &y->U);
    if (!e) e = need_array(r, h, hw, "c", y->classes, 0, &y->c);
    if (h >= 0) H5Gclose(h);
  }
  H5Gclose(g);
  return e;
}

/* Everything after the format checks. */
static imx_err read_body(rd *r, hid_t f, imx_model *m) {
  char *status = get_str(f, "status"), *version = get_str(f, "infomax_version");
  char *config = get_str(f, "config");
  imx_err e = IMX_OK;
  if (!status || !version || !config)
    e = imx_fail(r->ctx, IMX_ERR_DATA, "%s: root attribute %s is missing", r->path,
                 !status    ? "status"
                 : !version ? "infomax_version"
                            : "config");
  if (!e) {
    snprintf(m->status, sizeof m->status, "%s", status);
    snprintf(m->version, sizeof m->version, "%s", version);
    char name[IMX_PATH_LEN];
    snprintf(name, sizeof name, "%s (attribute config)", r->path);
    imx_config_defaults(&m->cfg);
    e = imx_config_load_text(r->ctx, &m->cfg, name, config);
  }
  free(status), free(version), free(config);
  if (!e) e = need_int(r, f, "/", "layers", 1, IMX_MAX_LAYERS, &m->layers);
  if (!e) e = need_int(r, f, "/", "inputs", 1, 1 << 30, &m->inputs);
  int n = m->inputs, kind = 0;
  hid_t g = -1;
  if (!e && H5Lexists(f, "preprocess", H5P_DEFAULT) <= 0)
    e = imx_fail(r->ctx, IMX_ERR_DATA, "%s: group /preprocess is missing", r->path);
  if (!e && (g = H5Gopen2(f, "preprocess", H5P_DEFAULT)) < 0)
    e = imx_fail(r->ctx, IMX_ERR_DATA, "%s: cannot open group /preprocess", r->path);
  if (!e) e = need_name(r, g, "/preprocess/", "kind", imx_preprocess_names, &kind);
  m->kind = (imx_preprocess)kind;
  if (!e) e = need_num(r, g, "/preprocess/", "scale", 0, -1e308, 1e308, &m->scale);
  if (!e) e = need_array(r, g, "/preprocess/", "mean", n, 0, &m->mean);
  if (!e) e = need_array(r, g, "/preprocess/", "transform", n, n, &m->transform);
  if (g >= 0) H5Gclose(g);
  for (int i = 0; !e && i < m->layers; i++)
    e = read_layer(r, f, i + 1, i ? m->layer[i - 1].K : n, &m->layer[i]);
  return e;
}

/* Rank 0: find, open, check and read the file. */
static imx_err read_on_root(imx_ctx *ctx, const char *path, imx_model *m) {
  char file[IMX_PATH_LEN + 32];
  struct stat sb;
  int isdir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
  snprintf(file, sizeof file, isdir ? "%s/" IMX_MODEL_FILE : "%s", path);
  if (access(file, R_OK))
    return imx_fail(ctx, IMX_ERR_IO,
                    "cannot read the model %s: %s (`infomax train` writes it into the run "
                    "directory with every checkpoint and at the end; a run directory from an "
                    "infomax without model.h5 has none)",
                    file, strerror(errno));
  rd r = {.ctx = ctx, .path = file};
  H5E_auto2_t func;
  void *data;
  H5Eget_auto2(H5E_DEFAULT, &func, &data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  imx_err e = IMX_OK;
  hid_t f = -1;
  if (H5Fis_hdf5(file) <= 0)
    e = imx_fail(ctx, IMX_ERR_DATA, "%s is not an HDF5 file, so not an infomax model", file);
  if (!e) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_fapl_sec2(fapl) >= 0) f = H5Fopen(file, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) e = imx_fail(ctx, IMX_ERR_IO, "cannot open %s (HDF5)", file);
  }
  if (!e) {
    char *format = get_str(f, "format");
    if (!format || strcmp(format, IMX_MODEL_FORMAT))
      e = imx_fail(ctx, IMX_ERR_DATA,
                   "%s is not an infomax model: its root attribute format is %s%s%s, expected "
                   "\"" IMX_MODEL_FORMAT "\"",
                   file, format ? "\"" : "missing", format ? format : "", format ? "\"" : "");
    free(format);
  }
  double v = 0;
  if (!e && get_num(f, "format_version", &v))
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: root attribute format_version is missing", file);
  if (!e && v > IMX_MODEL_VERSION) {
    char *by = get_str(f, "infomax_version");
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "%s has format_version %g, newer than this infomax %s reads (%d): it was "
                 "written by infomax %s; read it with that version or a newer one",
                 file, v, imx_version(), IMX_MODEL_VERSION, by ? by : "(unknown)");
    free(by);
  }
  if (!e && !(v >= 1 && v == (int)v))
    e = imx_fail(ctx, IMX_ERR_DATA, "%s: format_version %g is not a version (1, 2, ...)", file, v);
  m->format_version = (int)v;
  if (!e) e = read_body(&r, f, m);
  if (f >= 0) H5Fclose(f);
  H5Eset_auto2(H5E_DEFAULT, func, data);
  return e;
}

/* Send one array of count doubles from rank 0 (allocated on the others). */
static imx_err bcast_array(imx_ctx *ctx, double **a, size_t count) {
  if (!count) return IMX_OK;
  if (ctx->rank != 0) *a = malloc(count * sizeof **a);
  IMX_TRY(imx_agree(ctx, *a ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "model: %zu values", count)));
  IMX_MPI(ctx, MPI_Bcast(*a, (int)count, MPI_DOUBLE, 0, ctx->comm));
  return IMX_OK;
}

/* Rank 0's model to every rank: the struct as bytes (its pointers are
 * replaced on the others), then each array. */
static imx_err bcast_model(imx_ctx *ctx, imx_model *m) {
  imx_model copy = *m;
  IMX_MPI(ctx, MPI_Bcast(&copy, (int)sizeof copy, MPI_BYTE, 0, ctx->comm));
  if (ctx->rank != 0) {
    *m = copy;
    m->mean = m->transform = NULL;
    for (int i = 0; i < IMX_MAX_LAYERS; i++) {
      imx_model_layer *y = &m->layer[i];
      y->W = y->b = y->U = y->c = NULL;
    }
  }
  size_t n = (size_t)m->inputs;
  IMX_TRY(bcast_array(ctx, &m->mean, n));
  IMX_TRY(bcast_array(ctx, &m->transform, n * n));
  for (int i = 0; i < m->layers; i++) {
    imx_model_layer *y = &m->layer[i];
    IMX_TRY(bcast_array(ctx, &y->W, (size_t)y->K * y->n));
    IMX_TRY(bcast_array(ctx, &y->b, (size_t)y->K));
    IMX_TRY(bcast_array(ctx, &y->U, (size_t)y->classes * y->K));
    IMX_TRY(bcast_array(ctx, &y->c, (size_t)y->classes));
  }
  return IMX_OK;
}

imx_err imx_model_read(imx_ctx *ctx, const char *path, imx_model **out) {
  *out = NULL;
  imx_model *m = calloc(1, sizeof *m);
  imx_err e = m ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "model");
  if (!e && ctx->rank == 0) e = read_on_root(ctx, path, m);
  e = imx_agree(ctx, e);
  if (!e) e = bcast_model(ctx, m);
  if (e) {
    imx_model_free(&m);
    return e;
  }
  *out = m;
  return IMX_OK;
}
