/* source: the data sources, one row each (see include/imx/data.h). A new
 * format is a row here, in the order of imx_source, and a file with its ops
 * (a header reader, a row reader, the conversion to doubles) beside npy.c. */
#include <stdint.h>
#include <string.h>

#include "data_impl.h"

const imx_source_row imx_sources[] = {
    [IMX_SRC_SYNTHETIC_ICA] = {"synthetic-ica", 0, NULL, &imx_synth_source},
    [IMX_SRC_GMM] = {"gmm", 0, NULL, &imx_synth_source},
    [IMX_SRC_NPY] = {"npy", 1, ".npy", &imx_npy_source},
    [IMX_SRC_IDX] = {"idx", 1, NULL, &imx_idx_source},
    [IMX_SRC_HDF5] = {"hdf5", 1, ".h5 .hdf5", &imx_hdf5_source},
    {NULL, 0, NULL, NULL}};

/* The name of source s, or "?" outside the table. Local. */
const char *imx_source_name(imx_source s) {
  int rows = (int)(sizeof imx_sources / sizeof imx_sources[0]) - 1; /* without the end row */
  return (int)s >= 0 && (int)s < rows ? imx_sources[s].name : "?";
}

/* Where the ending x (len chars) first names path: the end of its first
 * occurrence that closes the path or is followed by ':' (a place inside the
 * file: "x.h5:/images"), with a file name longer than the ending; SIZE_MAX if
 * none. */
static size_t first_end(const char *path, const char *x, size_t len) {
  size_t L = strlen(path);
  for (size_t e = len + 1; e <= L; e++)
    if ((path[e] == ':' || path[e] == '\0') && !strncmp(path + e - len, x, len)) return e;
  return SIZE_MAX;
}

/* The file source with the suffix that names path earliest (so "x.h5:/a.npy"
 * is hdf5: the file is x.h5), else the first file source without a suffix
 * (idx: MNIST's files have none). Local. */
imx_source imx_source_of_path(const char *path) {
  int fallback = -1, best = -1;
  size_t at = SIZE_MAX;
  for (int i = 0; imx_sources[i].name; i++) {
    const char *x = imx_sources[i].suffix;
    if (!imx_sources[i].file) continue;
    if (!x && fallback < 0) fallback = i;
    while (x && *x) {
      size_t len = strcspn(x, " "), e = len ? first_end(path, x, len) : SIZE_MAX;
      if (e < at) at = e, best = i;
      x += len;
      x += strspn(x, " ");
    }
  }
  return (imx_source)(best >= 0 ? best : fallback);
}
