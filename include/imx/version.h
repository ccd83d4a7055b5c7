/* version: what this program is and how it was built: the version number,
 * the git commit of the source tree (meson's vcs_tag at build time; "unknown
 * commit" for a tree without git, e.g. an unpacked tarball), the build type and
 * the compiler. For `--version`, `infomax info`, the training header and
 * summary.json. */
#ifndef IMX_VERSION_H
#define IMX_VERSION_H

/* "0.1.0 (commit 0123456789ab)", "0.1.0 (commit 0123456789ab-dirty)" for a
 * tree with uncommitted changes, or "0.1.0 (unknown commit)". A static
 * string. Local. */
const char *imx_version(void);

/* The build: meson's build type, optimization level, whether assert() is on,
 * sanitizers and the compiler, e.g. "release (-O3, NDEBUG), gcc 12.2.0".
 * A static string. Local. */
const char *imx_build(void);

/* The version of a dependency as the build found it (pkg-config): name is
 * "scalapack" or "hdf5" (those without a trustworthy run-time version call);
 * NULL for another name.
 * A static string. Local. */
const char *imx_build_dependency(const char *name);

#endif
