/* rundir: run directory creation and atomic writes (see include/imx/rundir.h). */
#include "imx/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imx/train.h"

#define LOCK_NAME ".lock" /* in the run directory; flock'ed by rank 0 for the whole run */

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

/* 1 if dir exists and holds any entry but the lock file, 0 if it exists
 * empty, -1 if absent. */
static int dir_state(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int any = 0;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, LOCK_NAME)) any = 1;
  closedir(d);
  return any;
}

/* Try to lock dir/.lock (created if absent) without waiting. Returns the
 * descriptor holding the lock, or -1 with errno (EWOULDBLOCK: another process
 * holds it; holder receives what it wrote: "host H pid P"). Local. */
static int try_lock(const char *dir, char *holder, size_t len) {
  char path[IMX_PATH_LEN + 16];
  snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
  snprintf(holder, len, "unknown");
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return -1;
  if (flock(fd, LOCK_EX | LOCK_NB)) {
    int err = errno;
    ssize_t got = pread(fd, holder, len - 1, 0);
    if (got > 0) {
      holder[got] = 0;
      holder[strcspn(holder, "\n")] = 0;
    }
    close(fd);
    errno = err;
    return -1;
  }
  char host[256] = "?", me[320];
  gethostname(host, sizeof host - 1);
  int m = snprintf(me, sizeof me, "host %s pid %ld\n", host, (long)getpid());
  if (ftruncate(fd, 0) || pwrite(fd, me, (size_t)m, 0) != m) {
    /* The lock holds without the note; a second process names no holder. */
  }
  return fd;
}

/* The refusal of a locked run directory. */
static imx_err busy(imx_ctx *ctx, const char *dir, const char *holder) {
  return imx_fail(ctx, IMX_ERR_IO,
                  "run directory %s is in use by another infomax process (%s, in %s/" LOCK_NAME
                  "): one process per run directory; wait for it to end, or choose another "
                  "directory",
                  dir, holder, dir);
}

/* The refusal of an explicit output.dir that holds files. */
static imx_err taken(imx_ctx *ctx, const char *dir) {
  char cfg[IMX_PATH_LEN + 16];
  snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
  if (access(cfg, F_OK) == 0)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "output.dir: %s already holds a run; continue it with `infomax train "
                    "--resume %s`, or choose a new or empty directory",
                    dir, dir);
  return imx_fail(ctx, IMX_ERR_CONFIG,
                  "output.dir: %s is not empty; choose a new or empty directory", dir);
}

/* Lock dir (rank 0): *fd the held lock, or an error naming the holder. */
static imx_err lock_on_root(imx_ctx *ctx, const char *dir, int *fd) {
  char holder[320];
  *fd = try_lock(dir, holder, sizeof holder);
  if (*fd >= 0) return IMX_OK;
  if (errno == EWOULDBLOCK) return busy(ctx, dir, holder);
  return imx_fail(ctx, IMX_ERR_IO, "cannot lock %s/" LOCK_NAME ": %s", dir, strerror(errno));
}

/* The directory of a new run, created and locked (*fd) on rank 0: an
 * explicit output.dir as given (new or empty), else the first of runs/<name>,
 * runs/<name>-2, ... that is new or empty and not locked. */
static imx_err create_on_root(imx_ctx *ctx, const imx_config *cfg, char dir[IMX_PATH_LEN],
                              int *fd) {
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
  int numbered = !cfg->output.dir[0];
  for (int k = 1; k < 10000; k++) {
    if (k == 1) snprintf(dir, IMX_PATH_LEN, "%s", base);
    else snprintf(dir, IMX_PATH_LEN, "%s-%d", base, k);
    int st = dir_state(dir);
    if (st == 1 && numbered) continue; /* holds an earlier run: never overwrite */
    if (st == 1) return taken(ctx, dir);
    if (st < 0 && mkdir(dir, 0777) && errno != EEXIST)
      return imx_fail(ctx, IMX_ERR_IO, "output.dir: cannot create %s: %s", dir, strerror(errno));
    /* Another process may have taken it meanwhile: decide under the lock. */
    char holder[320];
    *fd = try_lock(dir, holder, sizeof holder);
    if (*fd < 0 && errno != EWOULDBLOCK)
      return imx_fail(ctx, IMX_ERR_IO, "cannot lock %s/" LOCK_NAME ": %s", dir, strerror(errno));
    if (*fd < 0 && numbered) continue;
    if (*fd < 0) return busy(ctx, dir, holder);
    if (dir_state(dir) == 0) return IMX_OK;
    imx_rundir_unlock(fd);
    if (!numbered) return taken(ctx, dir);
  }
  return imx_fail(ctx, IMX_ERR_IO, "output.dir: %s-2 ... %s-9999 all exist", base, base);
}

/* config.yaml of the run, atomically (rank 0). */
static imx_err write_config(imx_ctx *ctx, const imx_config *cfg, const char *dir) {
  FILE *f = NULL;
  imx_err e = imx_file_begin(ctx, dir, "config.yaml", &f);
  if (!e) e = imx_config_write(ctx, cfg, f);
  if (!e) { /* a comment: a resume reads the file, and takes its options anew */
    char *opts = imx_train_options_in_use();
    fprintf(f, "# PETSc options in use (command line, PETSC_OPTIONS, optimizer.options): %s\n",
            opts ? opts : "?");
    free(opts);
  }
  if (!e) e = imx_file_commit(ctx, dir, "config.yaml", f);
  else if (f) fclose(f);
  return e;
}

imx_err imx_rundir_check(imx_ctx *ctx, const imx_config *cfg) {
  imx_err e = IMX_OK;
  const char *dir = cfg->output.dir;
  if (ctx->rank == 0 && dir[0]) {
    if (dir_state(dir) == 1) e = taken(ctx, dir);
    char path[IMX_PATH_LEN + 16];
    snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
    if (!e && access(path, F_OK) == 0) {
      int fd = -1;
      if (!(e = lock_on_root(ctx, dir, &fd))) imx_rundir_unlock(&fd);
    }
  }
  return imx_agree(ctx, e);
}

imx_err imx_rundir_lock(imx_ctx *ctx, const char *dir, int *fd) {
  *fd = -1;
  imx_err e = ctx->rank == 0 ? lock_on_root(ctx, dir, fd) : IMX_OK;
  e = imx_agree(ctx, e);
  if (e) imx_rundir_unlock(fd);
  return e;
}

void imx_rundir_unlock(int *fd) {
  if (*fd >= 0) close(*fd); /* releases the flock; the file stays (a stale one blocks no one) */
  *fd = -1;
}

imx_err imx_rundir_reuse(imx_ctx *ctx, const char *existing, char dir[IMX_PATH_LEN]) {
  (void)ctx;
  snprintf(dir, IMX_PATH_LEN, "%s", existing);
  return IMX_OK;
}

imx_err imx_rundir_write_config(imx_ctx *ctx, const imx_config *cfg, const char *dir) {
  return imx_agree(ctx, ctx->rank == 0 ? write_config(ctx, cfg, dir) : IMX_OK);
}

imx_err imx_rundir_create(imx_ctx *ctx, const imx_config *cfg, char dir[IMX_PATH_LEN], int *fd) {
  imx_err e = IMX_OK;
  *fd = -1;
  if (ctx->rank == 0) {
    e = create_on_root(ctx, cfg, dir, fd);
    if (!e) e = write_config(ctx, cfg, dir);
  }
  e = imx_agree(ctx, e);
  if (e) {
    imx_rundir_unlock(fd);
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
  int why = errno;
  if (fclose(f) != 0 && !bad) bad = 1, why = errno;
  if (!bad && rename(tmp, dst)) bad = 2, why = errno;
  if (!bad) return IMX_OK;
  unlink(tmp); /* never leave a partial file behind (a full disk: ENOSPC) */
  return bad == 1 ? imx_fail(ctx, IMX_ERR_IO, "cannot write %s: %s (%s removed)", dst,
                             strerror(why), tmp)
                  : imx_fail(ctx, IMX_ERR_IO, "cannot rename %s to %s: %s (%s removed)", tmp, dst,
                             strerror(why), tmp);
}

double imx_peak_rss_mib(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru)) return 0;
  return ru.ru_maxrss / 1024.0; /* Linux: KiB */
}
