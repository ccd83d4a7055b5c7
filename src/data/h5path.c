/* h5path: "FILE.h5:/DATASET", the path of an array inside an HDF5 file (see
 * src/data/data_impl.h). Pure string work, without libhdf5, so that the
 * fuzzers link it as it is.
 *
 * The file ends at the first ':' that follows ".h5" or ".hdf5"; what comes
 * after it is the dataset, a '/'-separated path from the file's root group.
 * Without such a ':' the whole string is the file and the dataset is the
 * only one at the file's root (the reader checks that there is exactly one).
 */
#include <string.h>

#include "data_impl.h"

static const char *const suffixes[] = {".h5", ".hdf5"};

/* The length of the file part of spec: up to the first ':' right after a
 * suffix, or the whole string. */
static size_t file_length(const char *spec) {
  size_t L = strlen(spec);
  for (size_t i = 0; i < L; i++) {
    if (spec[i] != ':') continue;
    for (size_t k = 0; k < sizeof suffixes / sizeof *suffixes; k++) {
      size_t s = strlen(suffixes[k]);
      if (i >= s && !memcmp(spec + i - s, suffixes[k], s)) return i;
    }
  }
  return L;
}

/* Split spec into file and dataset (see data_impl.h). Local. */
imx_err imx_h5_path_parse(imx_ctx *ctx, const char *spec, imx_h5_path *p) {
  memset(p, 0, sizeof *p);
  size_t L = strlen(spec), f = file_length(spec);
  if (L >= sizeof p->file)
    return imx_fail(ctx, IMX_ERR_CONFIG, "%.64s...: an HDF5 path of %zu characters (at most %zu)",
                    spec, L, sizeof p->file - 1);
  if (f == 0) return imx_fail(ctx, IMX_ERR_CONFIG, "\"%s\": no file name", spec);
  memcpy(p->file, spec, f);
  if (f == L) return IMX_OK;

  const char *d = spec + f + 1;
  if (*d == '\0')
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "%s: nothing after ':' (write FILE.h5:/DATASET, or FILE.h5 alone for the only "
                    "dataset at the file's root)",
                    spec);
  /* One leading '/' (the root) is implied when left out. */
  size_t k = 0;
  p->dataset[k++] = '/';
  if (*d == '/') d++;
  if (*d == '\0')
    return imx_fail(ctx, IMX_ERR_CONFIG, "%s: names the root group, not a dataset (write %s/NAME)",
                    spec, p->file);
  for (const char *c = d; *c; c++) {
    unsigned char u = (unsigned char)*c;
    if (u < 0x20 || u == 0x7f)
      return imx_fail(ctx, IMX_ERR_CONFIG,
                      "%s: control character 0x%02x at position %d of the dataset name", spec, u,
                      (int)(c - spec));
    int starts = c == d || c[-1] == '/'; /* the first character of a component */
    if (u == '/' && (starts || c[1] == '\0'))
      return imx_fail(
          ctx, IMX_ERR_CONFIG,
          "%s: empty group or dataset name in \"%s\" (a '/' at its end or two in a row)", spec,
          spec + f + 1);
    if (starts && u == '.' && (c[1] == '/' || c[1] == '\0'))
      return imx_fail(ctx, IMX_ERR_CONFIG, "%s: '.' is not a group or dataset name", spec);
    p->dataset[k++] = (char)u;
  }
  p->dataset[k] = '\0';
  return IMX_OK;
}
