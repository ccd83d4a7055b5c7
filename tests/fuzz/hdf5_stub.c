/* hdf5_stub: the hdf5 source's ops for the fuzz build, which compiles a
 * fixed list of sources without libhdf5 (tests/fuzz/build_and_run.sh). The
 * table of sources (src/data/source.c) points to imx_hdf5_source; no harness
 * loads data through it, and if one did it would get this error. The path
 * syntax (src/data/h5path.c) is linked and fuzzed as it is. */
#include "../../src/data/data_impl.h"

static imx_err no_hdf5(imx_ctx *ctx, const imx_config *cfg, void *hx, void *hy) {
  (void)hx;
  (void)hy;
  return imx_fail(ctx, IMX_ERR_INTERNAL, "%s: the fuzz build has no HDF5", cfg->data.path);
}

const imx_source_ops imx_hdf5_source = {.read_headers = no_hdf5};
