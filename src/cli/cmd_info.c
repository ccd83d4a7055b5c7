/* cmd_info: `infomax info`, the build and runtime environment. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <hdf5.h>
#include <petscsys.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <zlib.h>

#include "imx/blas.h"
#include "imx/cli.h"
#include "imx/log.h"
#include "imx/scalapack.h"
#include "imx/version.h"

/* The file a symbol was loaded from, resolved through symlinks and
 * alternatives, into buf. Local. */
static const char *library_of(void *sym, char *buf, size_t len) {
  Dl_info dl;
  const char *name = dladdr(sym, &dl) && dl.dli_fname ? dl.dli_fname : "?";
  if (!realpath(name, buf)) snprintf(buf, len, "%s", name);
  return buf;
}

int imx_cmd_info(imx_ctx *ctx, const imx_args *a) {
  (void)a;
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  char *nl = strchr(mpi, '\n');
  if (nl) *nl = 0;
  char petsc[256];
  PetscGetVersion(petsc, sizeof petsc);
  char real[4096], scal_lib[4096], h5_lib[4096];
  library_of((void *)dgemm_, real, sizeof real);
  int sv[3] = {0, 0, 0};
  pilaver_(&sv[0], &sv[1], &sv[2]);
  unsigned hv[3] = {0, 0, 0};
  H5get_libversion(&hv[0], &hv[1], &hv[2]);
  char *(*ob_config)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_config");
  int (*ob_threads)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
  char *(*ob_core)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
  const char *nt = getenv("OPENBLAS_NUM_THREADS");
  imx_log(ctx, IMX_INFO, "infomax %s", imx_version());
  imx_log(ctx, IMX_INFO, "build      %s", imx_build());
  imx_log(ctx, IMX_INFO, "MPI        %s (%d rank%s)", mpi, ctx->size, ctx->size > 1 ? "s" : "");
  imx_log(ctx, IMX_INFO, "PETSc      %s, real double, %d-bit indices", petsc,
          (int)sizeof(PetscInt) * 8);
  /* Debian's 2.2.1 still says 2.0.2 through PILAVER: the build's version first. */
  imx_log(ctx, IMX_INFO, "ScaLAPACK  %s (pkg-config at build time; its PILAVER says %d.%d.%d), %s",
          imx_build_dependency("scalapack"), sv[0], sv[1], sv[2],
          library_of((void *)pilaver_, scal_lib, sizeof scal_lib));
  /* The header's H5_HAVE_PARALLEL: meson.build refuses a serial HDF5. */
  imx_log(ctx, IMX_INFO, "HDF5       %u.%u.%u, %s (built with %s), %s", hv[0], hv[1], hv[2],
#ifdef H5_HAVE_PARALLEL
          "parallel",
#else
          "serial",
#endif
          imx_build_dependency("hdf5"),
          library_of((void *)H5get_libversion, h5_lib, sizeof h5_lib));
  imx_log(ctx, IMX_INFO, "zlib       %s (built with %s)", zlibVersion(), ZLIB_VERSION);
  imx_log(ctx, IMX_INFO, "libyaml    %s", yaml_get_version_string());
  imx_log(ctx, IMX_INFO, "BLAS       %s", real);
  if (ob_config)
    imx_log(ctx, IMX_INFO, "OpenBLAS   %s; core %s; %d thread%s per rank (OPENBLAS_NUM_THREADS=%s)",
            ob_config(), ob_core ? ob_core() : "?", ob_threads ? ob_threads() : 0,
            ob_threads && ob_threads() == 1 ? "" : "s", nt ? nt : "unset");
  else
    imx_log(ctx, IMX_INFO,
            "OpenBLAS   not in use: BLAS-3 will be slow (install libopenblas0-pthread)");
  const char *ct = getenv("OPENBLAS_CORETYPE");
  if (ct) imx_log(ctx, IMX_INFO, "           OPENBLAS_CORETYPE=%s forces that kernel", ct);
  return 0;
}
