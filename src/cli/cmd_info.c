/* cmd_info: `infomax info`, the build and runtime environment. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <petscsys.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "imx/blas.h"
#include "imx/cli.h"
#include "imx/log.h"

int imx_cmd_info(imx_ctx *ctx, const imx_args *a) {
  (void)a;
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  char *nl = strchr(mpi, '\n');
  if (nl) *nl = 0;
  char petsc[256];
  PetscGetVersion(petsc, sizeof petsc);
  Dl_info dl;
  const char *blas = dladdr((void *)dgemm_, &dl) && dl.dli_fname ? dl.dli_fname : "?";
  char real[4096];
  if (!realpath(blas, real)) snprintf(real, sizeof real, "%s", blas);
  char *(*ob_config)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_config");
  int (*ob_threads)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
  char *(*ob_core)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
  const char *nt = getenv("OPENBLAS_NUM_THREADS");
  imx_log(ctx, IMX_INFO, "infomax %s", IMX_VERSION);
  imx_log(ctx, IMX_INFO, "MPI        %s (%d rank%s)", mpi, ctx->size, ctx->size > 1 ? "s" : "");
  imx_log(ctx, IMX_INFO, "PETSc      %s, real double, %d-bit indices", petsc,
          (int)sizeof(PetscInt) * 8);
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
