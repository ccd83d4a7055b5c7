/* version: the version, commit and build (see include/imx/version.h). */
#include "imx/version.h"

#include <string.h>

#include "imx_version.h" /* generated in the build directory (meson.build) */

const char *imx_version(void) { return IMX_VERSION_NUMBER " (" IMX_COMMIT ")"; }

const char *imx_build(void) { return IMX_BUILD; }

const char *imx_build_dependency(const char *name) {
  static const char *const deps[][2] = {{"scalapack", IMX_DEP_SCALAPACK}, {"hdf5", IMX_DEP_HDF5}};
  for (size_t i = 0; i < sizeof deps / sizeof deps[0]; i++)
    if (!strcmp(name, deps[i][0])) return deps[i][1];
  return NULL;
}
