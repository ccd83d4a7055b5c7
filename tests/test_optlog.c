/* test_optlog: evaluations appended to the optimizer log and replayed give
 * back the same f, gradient and statistics bit for bit; a replay at another
 * point, a flipped byte, a log too short for the checkpoint and a wrong magic
 * are refused with IMX_ERR_DATA and a message naming the file. */
#include <stdint.h>

#include "imx/optlog.h"
#include "imx/rng.h"
#include "testing.h"

#define NP 7                                      /* parameters */
#define NAUX 3                                    /* optimizer statistics per evaluation */
#define NEV 6                                     /* evaluations */
#define ENTRY_BYTES (8 + 8 + (NP + NAUX) * 8 + 4) /* hash, f, g and aux, crc */
#define HEADER_BYTES 16

static double xs[NEV][NP], fs[NEV], gs[NEV][NP], as[NEV][NAUX];

/* Replay entries 0 .. upto-1 of an open log; count entries that differ in any bit. */
static int replay_all(imx_ctx *ctx, imx_optlog *log, int upto, char *msg, size_t len) {
  int differ = 0;
  msg[0] = '\0';
  for (int i = 0; i < upto; i++) {
    double f = 0, g[NP], a[NAUX];
    imx_err e = imx_optlog_replay(ctx, log, i, xs[i], &f, g, a);
    if (e || memcmp(&f, &fs[i], 8) || memcmp(g, gs[i], sizeof g) || memcmp(a, as[i], sizeof a)) {
      if (!differ++) snprintf(msg, len, "entry %d: code %d %s", i, (int)e, ctx->msg);
      ctx->code = IMX_OK;
    }
  }
  return differ;
}

int main(int argc, char **argv) {
  imx_ctx ctx;
  t_init(&argc, &argv, &ctx);
  char dir[64], path[128], msg[IMX_MSG_LEN + 64];
  t_tmpdir(ctx.comm, dir);
  snprintf(path, sizeof path, "%s/optimizer_log.bin", dir);
  for (int i = 0; i < NEV; i++) {
    for (int k = 0; k < NP; k++) xs[i][k] = imx_rng_normal(9, 1, (uint64_t)(i * NP + k));
    for (int k = 0; k < NP; k++) gs[i][k] = imx_rng_normal(9, 2, (uint64_t)(i * NP + k));
    for (int k = 0; k < NAUX; k++) as[i][k] = imx_rng_uniform(9, 3, (uint64_t)(i * NAUX + k));
    fs[i] = 100.0 / (i + 3);
  }
  gs[1][0] = NAN, gs[2][1] = -0.0;

  /* Write, sync, close; reopen keeping all entries and replay them. */
  imx_optlog *log = NULL;
  imx_err e = imx_optlog_open(&ctx, dir, "optimizer_log.bin", NP, NAUX, -1, &log);
  for (int i = 0; !e && i < NEV; i++) e = imx_optlog_append(&ctx, log, xs[i], fs[i], gs[i], as[i]);
  if (!e) e = imx_optlog_sync(&ctx, log);
  t_check(!e, "write %d evaluations of %d parameters and %d statistics: %s", NEV, NP, NAUX,
          e ? ctx.msg : "ok");
  imx_optlog_close(&log);
  t_check(log == NULL, "imx_optlog_close nulls the pointer");
  e = imx_optlog_open(&ctx, dir, "optimizer_log.bin", NP, NAUX, NEV, &log);
  int differ = e ? NEV : replay_all(&ctx, log, NEV, msg, sizeof msg);
  t_check(!e && differ == 0,
          "replay of %d evaluations: %d differ in f, g or statistics in any bit "
          "(tolerance 0)%s%s",
          NEV, differ, differ ? ": " : "", e ? ctx.msg : msg);
  ctx.code = IMX_OK;

  /* Another point than the logged one. */
  if (log) {
    double f, g[NP], a[NAUX], x[NP];
    memcpy(x, xs[2], sizeof x);
    x[NP - 1] = nextafter(x[NP - 1], 1e300); /* one bit */
    e = imx_optlog_replay(&ctx, log, 2, x, &f, g, a);
    t_expect_err(&ctx, e, IMX_ERR_DATA, "another point", "replay at a point one bit away");
  }
  imx_optlog_close(&log);

  /* keep = 4 cuts the entries after the checkpoint; they are gone after. */
  e = imx_optlog_open(&ctx, dir, "optimizer_log.bin", NP, NAUX, 4, &log);
  differ = e ? 4 : replay_all(&ctx, log, 4, msg, sizeof msg);
  t_check(!e && differ == 0, "reopened keeping 4 of %d: the 4 replay bit for bit (%d differ)%s%s",
          NEV, differ, differ ? ": " : "", e ? ctx.msg : msg);
  if (log) {
    double f, g[NP], a[NAUX];
    e = imx_optlog_replay(&ctx, log, 4, xs[4], &f, g, a);
    t_expect_err(&ctx, e, IMX_ERR_DATA, path, "replay of entry 4 after the cut at 4");
  }
  imx_optlog_close(&log);
  e = imx_optlog_open(&ctx, dir, "optimizer_log.bin", NP, NAUX, 5, &log);
  t_expect_err(&ctx, e, IMX_ERR_DATA, "holds 4 evaluations", "a log shorter than the checkpoint");
  imx_optlog_close(&log);

  /* Every flipped byte of an entry is detected at its replay. */
  size_t len = 0;
  unsigned char *buf = NULL;
  if (ctx.rank == 0) {
    FILE *f = fopen(path, "rb");
    buf = malloc(HEADER_BYTES + 4 * ENTRY_BYTES + 1);
    len = f && buf ? fread(buf, 1, HEADER_BYTES + 4 * ENTRY_BYTES + 1, f) : 0;
    if (f) fclose(f);
  }
  long long nlen = (long long)len;
  MPI_Bcast(&nlen, 1, MPI_LONG_LONG, 0, ctx.comm);
  t_check(nlen == HEADER_BYTES + 4 * ENTRY_BYTES, "log of 4 entries: %lld bytes (want %d)", nlen,
          HEADER_BYTES + 4 * ENTRY_BYTES);
  int missed = 0, tried = 0;
  char first[sizeof msg] = "", example[sizeof msg] = "";
  for (long long pos = HEADER_BYTES; pos < nlen; pos++) {
    int entry = (int)((pos - HEADER_BYTES) / ENTRY_BYTES);
    if (ctx.rank == 0) {
      buf[pos] ^= 0x01;
      t_write_file(path, buf, len);
      buf[pos] ^= 0x01;
    }
    e = imx_optlog_open(&ctx, dir, "optimizer_log.bin", NP, NAUX, 4, &log);
    double f, g[NP], a[NAUX];
    if (!e) e = imx_optlog_replay(&ctx, log, entry, xs[entry], &f, g, a);
    tried++;
    if (!(e == IMX_ERR_DATA && strstr(ctx.msg, path))) {
      if (!missed++) snprintf(first, sizeof first, "byte %lld: code %d %s", pos, (int)e, ctx.msg);
    } else if (!example[0]) {
      snprintf(example, sizeof example, "%s", ctx.msg);
    }
    ctx.code = IMX_OK, ctx.msg[0] = '\0';
    imx_optlog_close(&log);
  }
  t_check(tried > 0 && missed == 0,
          "one flipped bit at each of the %d bytes of 4 entries: %d not "
          "refused with IMX_ERR_DATA naming the file (tol 0)%s%s; e.g. %s",
          tried, missed, missed ? "; first: " : "", first, example);

  /* A wrong magic. */
  if (ctx.rank == 0 && len) {
    memcpy(buf, "IMXCKPT\n", 8);
    t_write_file(path, buf, len);
  }
  e = imx_optlog_open(&ctx, dir, "optimizer_log.bin", NP, NAUX, 0, &log);
  t_expect_err(&ctx, e, IMX_ERR_DATA, "not an optimizer log", "wrong magic");
  imx_optlog_close(&log);

  free(buf);
  t_rmdir(ctx.comm, dir);
  return t_end(&ctx);
}
