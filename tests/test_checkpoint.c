/* test_checkpoint: checkpoint.bin written then read back is bit for bit the
 * same (header and parameters); a corrupt checkpoint is refused with an
 * IMX_ERR_* code and a message naming the file: any one byte flipped, the
 * file cut at any length, a wrong magic, a file that is missing. */
#include <stdint.h>
#include <sys/stat.h>

#include "imx/checkpoint.h"
#include "imx/rng.h"
#include "testing.h"

#define NK 3
#define NIN 4
#define NPARAMS (NK * NIN + NK + 5) /* a supervised head's parameters after W and b */
#define HEADER_BYTES \
  (96 + 16 + IMX_CHECKPOINT_SETTINGS) /* the on-disk header, version 2 (src/train/checkpoint.c) */

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char *buf = malloc(1 << 16);
  *len = buf ? fread(buf, 1, 1 << 16, f) : 0;
  fclose(f);
  return buf;
}

/* Read dir's checkpoint: 2 if it was refused with IMX_ERR_DATA (IMX_ERR_IO
 * when io) and a message naming path, 1 if refused otherwise, 0 if accepted.
 * Clears the error record. */
static int refused(imx_ctx *ctx, const char *dir, const char *path, int io, char *msg, size_t len) {
  imx_checkpoint h;
  double *theta = NULL;
  imx_err e = imx_checkpoint_read(ctx, dir, "checkpoint.bin", &h, &theta);
  int named = e == (io ? IMX_ERR_IO : IMX_ERR_DATA) && strstr(ctx->msg, path) && theta == NULL;
  snprintf(msg, len, "code %d: %s", (int)e, ctx->msg);
  free(theta);
  ctx->code = IMX_OK, ctx->msg[0] = '\0';
  return named ? 2 : e != IMX_OK;
}

int main(int argc, char **argv) {
  imx_ctx ctx;
  t_init(&argc, &argv, &ctx);
  char dir[64], path[128], msg[IMX_MSG_LEN + 32];
  t_tmpdir(ctx.comm, dir);
  snprintf(path, sizeof path, "%s/checkpoint.bin", dir);

  /* Round trip. */
  imx_checkpoint h = {.K = NK,
                      .n = NIN,
                      .nparams = NPARAMS,
                      .iteration = 17,
                      .evaluations = 23,
                      .reduction = 1,
                      .block = 64,
                      .tao_type = "blmvm",
                      .loss = -1.0 / 3,
                      .data_rows = 123456789012LL};
  double theta[NPARAMS];
  for (int i = 0; i < NPARAMS; i++) theta[i] = imx_rng_normal(7, 1, (uint64_t)i) * 1e3;
  theta[0] = -0.0, theta[1] = 5e-324, theta[2] = NAN;
  imx_err e = imx_checkpoint_write(&ctx, dir, "checkpoint.bin", &h, theta);
  t_check(e == IMX_OK, "write %s: %s", path, e ? ctx.msg : "ok");
  struct stat st;
  if (stat(path, &st)) st.st_size = -1;
  t_check(st.st_size == HEADER_BYTES + NPARAMS * 8 + 4,
          "%s holds the header, %d parameters and a CRC-32: %lld bytes (want %d)", path, NPARAMS,
          (long long)st.st_size, HEADER_BYTES + NPARAMS * 8 + 4);
  snprintf(msg, sizeof msg, "%s.tmp", path);
  t_check(access(msg, F_OK) != 0, "no temporary file left behind (%s)", msg);
  imx_checkpoint r;
  double *back = NULL;
  e = imx_checkpoint_read(&ctx, dir, "checkpoint.bin", &r, &back);
  int same = !e && back && !memcmp(back, theta, sizeof theta);
  int hsame = !e && r.K == h.K && r.n == h.n && r.nparams == h.nparams &&
              r.iteration == h.iteration && r.evaluations == h.evaluations &&
              r.reduction == h.reduction && r.block == h.block && !strcmp(r.tao_type, h.tao_type) &&
              !memcmp(&r.loss, &h.loss, sizeof r.loss) && r.data_rows == h.data_rows;
  t_check(same && hsame,
          "round trip: %d parameters (with -0, a subnormal, NaN) and every header field bit for "
          "bit (tolerance 0): parameters %s, header %s%s%s",
          NPARAMS, same ? "equal" : "DIFFER", hsame ? "equal" : "DIFFERS", e ? ": " : "",
          e ? ctx.msg : "");
  free(back);
  ctx.code = IMX_OK;

  /* Every single flipped byte is refused. */
  size_t len = 0;
  unsigned char *good = ctx.rank == 0 ? slurp(path, &len) : NULL;
  long long nlen = (long long)len;
  MPI_Bcast(&nlen, 1, MPI_LONG_LONG, 0, ctx.comm);
  /* Including the high bytes of the nparams field (bytes 28..31): a claimed
   * size the file does not have is a corrupt file (IMX_ERR_DATA naming it),
   * not an out-of-memory error (regression: the reader allocated first). */
  int accepted = 0, unnamed = 0;
  char first_bad[sizeof msg] = "", example[sizeof msg] = "";
  for (long long pos = 0; pos < nlen; pos++) {
    if (ctx.rank == 0) {
      good[pos] ^= 0x10;
      t_write_file(path, good, len);
      good[pos] ^= 0x10;
    }
    int how = refused(&ctx, dir, path, 0, msg, sizeof msg);
    if (how == 0 && !accepted++) snprintf(first_bad, sizeof first_bad, "byte %lld: %s", pos, msg);
    if (how == 1 && !unnamed++) snprintf(first_bad, sizeof first_bad, "byte %lld: %s", pos, msg);
    if (how == 2 && pos == HEADER_BYTES + 8) snprintf(example, sizeof example, "%s", msg);
  }
  t_check(nlen > 0 && accepted == 0 && unnamed == 0,
          "one flipped byte at each of the %lld positions: %d accepted, %d refused without "
          "IMX_ERR_DATA and the file's name (tol 0)%s%s; e.g. %s",
          nlen, accepted, unnamed, first_bad[0] ? "; first: " : "", first_bad, example);

  /* Every truncation is refused. */
  int cut_ok = 0, cut_bad = 0;
  for (long long cut = 0; cut < nlen; cut++) {
    if (ctx.rank == 0) t_write_file(path, good, (size_t)cut);
    if (refused(&ctx, dir, path, 0, msg, sizeof msg) == 2) cut_ok++;
    else if (!cut_bad++) snprintf(first_bad, sizeof first_bad, "cut at %lld: %s", cut, msg);
  }
  t_check(cut_bad == 0,
          "the file cut at each of the %lld lengths 0 .. %lld: %d refused, %d not%s%s", nlen,
          nlen - 1, cut_ok, cut_bad, cut_bad ? "; first: " : "", cut_bad ? first_bad : "");

  /* A wrong magic, with an otherwise valid layout. */
  if (ctx.rank == 0) {
    memcpy(good, "IMXOLOG\n", 8); /* another of our files */
    t_write_file(path, good, len);
  }
  int magic_ok = refused(&ctx, dir, path, 0, msg, sizeof msg) == 2;
  t_check(magic_ok && strstr(msg, "not an infomax checkpoint"), "wrong magic refused: %s", msg);

  /* No checkpoint at all. */
  if (ctx.rank == 0) unlink(path);
  t_check(refused(&ctx, dir, dir, 1, msg, sizeof msg) == 2,
          "missing checkpoint refused with IMX_ERR_IO "
          "naming the directory: %s",
          msg);

  free(good);
  t_rmdir(ctx.comm, dir);
  return t_end(&ctx);
}
