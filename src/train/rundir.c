/* rundir: run directory creation and atomic writes (see include/imx/rundir.h). */
#include "imx/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p for every component of path but the last. */
static int make_parents(const char *path) {
  char buf[IMX_PATH_LEN];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    *p = '/';
  }
  return 0;
}

/* 1 if dir exists and holds any entry, 0 if it exists empty, -1 if absent. */
static int dir_state(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int any = 0;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) any = 1;
  closedir(d);
  return any;
}

static imx_err create_on_root(imx_ctx *ctx, const imx_config *cfg, char dir[IMX_PATH_LEN]) {
  char base[IMX_PATH_LEN];
  if (strlen(cfg->output.dir) + 8 > IMX_PATH_LEN || strlen(cfg->file) + 8 > IMX_PATH_LEN)
    return imx_fail(ctx, IMX_ERR_CONFIG, "output.dir: path too long (limit %d bytes)",
                    IMX_PATH_LEN - 8);
  if (cfg->output.dir[0]) {
    snprintf(base, sizeof base, "%s", cfg->output.dir);
  } else {
    const char *name = cfg->file[0] ? strrchr(cfg->file, '/') : NULL;
    name = name ? name + 1 : cfg->file[0] ? cfg->file : "infomax.yaml";
    char stem[IMX_PATH_LEN - 8];
    snprintf(stem, sizeof stem, "%s", name);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    snprintf(base, sizeof base, "runs/%s", stem);
  }
  size_t len = strlen(base);
  while (len > 1 && base[len - 1] == '/') base[--len] = 0;
  if (make_parents(base))
    return imx_fail(ctx, IMX_ERR_IO, "output.dir: cannot create the parents of %s: %s", base,
                    strerror(errno));
  for (int k = 1; k < 10000; k++) {
    if (k == 1) snprintf(dir, IMX_PATH_LEN, "%s", base);
    else snprintf(dir, IMX_PATH_LEN, "%s-%d", base, k);
    int st = dir_state(dir);
    if (st == 1) continue; /* holds an earlier run: never overwrite */
    if (st == 0) return IMX_OK;
    if (mkdir(dir, 0777) == 0) return IMX_OK;
    if (errno == EEXIST) continue; /* another job took it first */
    return imx_fail(ctx, IMX_ERR_IO, "output.dir: cannot create %s: %s", dir, strerror(errno));
  }
  return imx_fail(ctx, IMX_ERR_IO, "output.dir: %s-2 ... %s-9999 all exist", base, base);
}

/* config.yaml of the run, atomically (rank 0). */
static imx_err write_config(imx_ctx *ctx, const imx_config *cfg, const char *dir) {
  FILE *f = NULL;
  imx_err e = imx_file_begin(ctx, dir, "config.yaml", &f);
  if (!e) e = imx_config_write(ctx, cfg, f);
  if (!e) e = imx_file_commit(ctx, dir, "config.yaml", f);
  else if (f) fclose(f);
  return e;
}

imx_err imx_rundir_reuse(imx_ctx *ctx, const char *existing, char dir[IMX_PATH_LEN]) {
  (void)ctx;
  snprintf(dir, IMX_PATH_LEN, "%s", existing);
  return IMX_OK;
}

imx_err imx_rundir_write_config(imx_ctx *ctx, const imx_config *cfg, const char *dir) {
  return imx_agree(ctx, ctx->rank == 0 ? write_config(ctx, cfg, dir) : IMX_OK);
}

imx_err imx_rundir_create(imx_ctx *ctx, const imx_config *cfg, char dir[IMX_PATH_LEN]) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    e = create_on_root(ctx, cfg, dir);
    if (!e) e = write_config(ctx, cfg, dir);
  }
  e = imx_agree(ctx, e);
  if (e) {
    dir[0] = 0; /* no run directory on any rank */
    return e;
  }
  IMX_MPI(ctx, MPI_Bcast(dir, IMX_PATH_LEN, MPI_CHAR, 0, ctx->comm));
  return IMX_OK;
}

imx_err imx_file_begin(imx_ctx *ctx, const char *dir, const char *name, FILE **f) {
  char tmp[2 * IMX_PATH_LEN];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
  *f = fopen(tmp, "w");
  if (!*f) return imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
  return IMX_OK;
}

imx_err imx_file_commit(imx_ctx *ctx, const char *dir, const char *name, FILE *f) {
  char tmp[2 * IMX_PATH_LEN], dst[2 * IMX_PATH_LEN];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
  snprintf(dst, sizeof dst, "%s/%s", dir, name);
  int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  if (bad) return imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
  if (rename(tmp, dst))
    return imx_fail(ctx, IMX_ERR_IO, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
  return IMX_OK;
}

double imx_peak_rss_mib(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru)) return 0;
  return ru.ru_maxrss / 1024.0; /* Linux: KiB */
}
