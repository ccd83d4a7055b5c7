/* fuzz_config: the YAML configuration loader and the --set parser on arbitrary bytes.
 *
 * Each input is a whole config file, loaded with imx_config_load from an
 * in-memory file. Invariants besides "no crash, no sanitizer report":
 *   - a failed load leaves the struct as it was and records IMX_ERR_CONFIG (or
 *     IMX_ERR_NOMEM) with a message; config errors start with file:line:col or
 *     file: byte N;
 *   - an accepted config round-trips: imx_config_write, then imx_config_load of
 *     what it wrote, gives the same bytes (apart from cfg->file), as
 *     include/imx/config.h promises and the broadcast relies on;
 *   - imx_config_validate does not crash on any loaded config.
 * The input, up to its first NUL, is then also given to imx_config_set as one
 * "--set section.key=value" override.
 */
#include "fuzz_common.h" /* first: it defines _GNU_SOURCE */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "imx/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The structs are large (paths): static, not on the stack of every call. */
  static imx_config cfg, before, again;
  imx_ctx ctx;
  fuzz_ctx(&ctx);
  const char *path = fuzz_file(0, data, size);
  imx_config_defaults(&cfg);
  before = cfg;
  imx_err err = imx_config_load(&ctx, &cfg, path);
  if (err) {
    FUZZ_CHECK(err == IMX_ERR_CONFIG || err == IMX_ERR_NOMEM, "code %d: %s", (int)err, ctx.msg);
    FUZZ_CHECK(ctx.code == err && ctx.msg[0], "no message for code %d", (int)err);
    FUZZ_CHECK(err != IMX_ERR_CONFIG || strncmp(ctx.msg, path, strlen(path)) == 0,
               "message does not start with the file: %s", ctx.msg);
    FUZZ_CHECK(memcmp(&cfg, &before, sizeof cfg) == 0, "failed load changed the config");
  } else {
    FUZZ_CHECK(strcmp(cfg.file, path) == 0, "file %s", cfg.file);
    (void)imx_config_validate(&ctx, &cfg);

    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    FUZZ_CHECK(m != NULL, "open_memstream");
    err = imx_config_write(&ctx, &cfg, m);
    FUZZ_CHECK(fclose(m) == 0, "fclose of the memory stream");
    FUZZ_CHECK(!err, "loaded config does not write: %s", ctx.msg);
    const char *path2 = fuzz_file(1, text, len);
    imx_config_defaults(&again);
    err = imx_config_load(&ctx, &again, path2);
    FUZZ_CHECK(!err, "written config does not load back: %s\n%s", ctx.msg, text);
    memset(cfg.file, 0, sizeof cfg.file);
    memset(again.file, 0, sizeof again.file);
    FUZZ_CHECK(memcmp(&cfg, &again, sizeof cfg) == 0, "written config loads back different:\n%s",
               text);
    free(text);
  }

  /* The same bytes as one override, on the defaults. */
  size_t n = strnlen((const char *)data, size);
  char *assignment = malloc(n + 1);
  FUZZ_CHECK(assignment != NULL, "malloc");
  memcpy(assignment, data, n);
  assignment[n] = '\0';
  imx_config_defaults(&cfg);
  before = cfg;
  err = imx_config_set(&ctx, &cfg, assignment);
  if (err) {
    FUZZ_CHECK(err == IMX_ERR_CONFIG || err == IMX_ERR_NOMEM, "--set code %d: %s", (int)err,
               ctx.msg);
    FUZZ_CHECK(memcmp(&cfg, &before, sizeof cfg) == 0, "failed --set changed the config");
  }
  free(assignment);
  return 0;
}
