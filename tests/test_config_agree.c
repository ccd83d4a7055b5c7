/* test_config_agree: imx_config_setup at any rank count. A bad config (file or
 * override) or a missing file fails with the same code and message on every
 * rank, without hanging; a good config gives the same bytes on every rank.
 * Ranks other than 0 work from "/" so that they could not open the relative
 * config path even if they tried. Runs in tests/. Exit 0 pass, 1 fail
 * (tests/testing.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imx/config.h"
#include "imx/ctx.h"
#include "testing.h"

static imx_ctx ctx;

/* 1 on every rank if flag is set on any rank. Collective. */
static int any(int flag) {
  MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, ctx.comm);
  return flag;
}

/* One check agreed across ranks; bad is this rank's verdict. Collective. */
static void check(int bad, const char *what) { t_check(!any(bad), "%s (P=%d)", what, ctx.size); }

/* setup must fail on every rank with want_code and exactly want_msg. */
static void expect_failure(const char *what, const char *path, int nov, char **ov,
                           imx_err want_code, const char *want_msg) {
  imx_config cfg;
  memset(&cfg, 0, sizeof cfg);
  imx_err err = imx_config_setup(&ctx, &cfg, path, nov, ov);
  int bad = (err != want_code) || (ctx.code != want_code) || strcmp(ctx.msg, want_msg) != 0;
  t_check_quiet(!bad, "%s: got code %d/%d \"%s\", expected %d \"%s\"", what, (int)err,
                (int)ctx.code, ctx.msg, (int)want_code, want_msg);
  /* The same bytes of message everywhere: compare with rank 0's copy. */
  char root_msg[IMX_MSG_LEN];
  memcpy(root_msg, ctx.msg, sizeof root_msg);
  MPI_Bcast(root_msg, IMX_MSG_LEN, MPI_CHAR, 0, ctx.comm);
  bad |= strcmp(root_msg, ctx.msg) != 0;
  check(bad, what);
  ctx.code = IMX_OK;
  ctx.msg[0] = '\0';
}

int main(int argc, char **argv) {
  t_init(&argc, &argv, &ctx);
  if (ctx.rank != 0 && chdir("/") != 0) {
    t_check(0, "chdir /");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

  expect_failure("bad file fails alike on all ranks", "configs/bad_range.yaml", 0, NULL,
                 IMX_ERR_CONFIG,
                 "configs/bad_range.yaml:2:10: model.units: 0 is out of range (must be >= 1)");
  expect_failure("missing file fails alike on all ranks", "configs/no_such_file.yaml", 0, NULL,
                 IMX_ERR_IO,
                 "cannot open config configs/no_such_file.yaml: No such file or directory");
  char *bad_ov[] = {"model.units=4", "objective.lamda=0.5"};
  expect_failure("bad override fails alike on all ranks", "configs/good_full.yaml", 2, bad_ov,
                 IMX_ERR_CONFIG,
                 "--set objective.lamda=0.5: unknown key \"lamda\" in objective (did you mean "
                 "\"lambda\"?)");
  expect_failure("cross-field error fails alike on all ranks", "configs/bad_npy_nopath.yaml", 0,
                 NULL, IMX_ERR_CONFIG,
                 "configs/bad_npy_nopath.yaml: data.source is npy but data.path is empty (which "
                 "file?)");

  /* Good config: rank 0's struct arrives byte for byte; other ranks start
   * from garbage to show the broadcast fills everything. */
  imx_config cfg, root;
  memset(&cfg, ctx.rank == 0 ? 0 : 0xAB, sizeof cfg);
  char *ov[] = {"model.units=5", "data.path=x.npy", "data.source=npy", "objective.lse=2"};
  imx_err err = imx_config_setup(&ctx, &cfg, "configs/good_full.yaml", 4, ov);
  int bad = err != IMX_OK || cfg.model.units != 5 || cfg.data.source != IMX_SRC_NPY ||
            cfg.data.components != 3 || cfg.objective.weight[IMX_TERM_LSE] != 2.0 ||
            strcmp(cfg.file, "configs/good_full.yaml") != 0;
  t_check_quiet(!bad, "good config: err %d \"%s\"", (int)err, ctx.msg);
  check(bad, "good file + overrides resolve on all ranks");
  memcpy(&root, &cfg, sizeof root);
  MPI_Bcast(&root, (int)sizeof root, MPI_BYTE, 0, ctx.comm);
  check(memcmp(&root, &cfg, sizeof cfg) != 0, "good config: identical bytes on every rank");

  /* Defaults only (no file): also identical everywhere. */
  memset(&cfg, ctx.rank == 0 ? 0 : 0xCD, sizeof cfg);
  err = imx_config_setup(&ctx, &cfg, NULL, 0, NULL);
  memcpy(&root, &cfg, sizeof root);
  MPI_Bcast(&root, (int)sizeof root, MPI_BYTE, 0, ctx.comm);
  imx_config d;
  imx_config_defaults(&d);
  check(err != IMX_OK || memcmp(&root, &cfg, sizeof cfg) != 0 || memcmp(&d, &cfg, sizeof cfg) != 0,
        "no file: the defaults, identical on every rank");

  return t_end(&ctx);
}
