/* test_config: defaults, loading, every error message (exact text and
 * line:col), --set, validation, write -> load round trip, reference page.
 * Single process; runs in tests/ so fixtures are configs/<name>.yaml.
 * Exit 0 pass, 1 fail (tests/testing.h). */
#include <math.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imx/config.h"
#include "imx/ctx.h"
#include "testing.h"

static imx_ctx ctx;

/* Compare an outcome with the expected code and exact message. */
static void expect(const char *what, imx_err got, imx_err want, const char *want_msg) {
  int ok = (got == want) && (!want || strcmp(ctx.msg, want_msg) == 0);
  if (ok) t_check(1, "%s -> %d \"%s\"", what, (int)got, got ? ctx.msg : "");
  else
    t_check(0, "%s -> code %d \"%s\", expected code %d \"%s\"", what, (int)got, got ? ctx.msg : "",
            (int)want, want_msg ? want_msg : "");
  ctx.code = IMX_OK;
  ctx.msg[0] = '\0';
}

/* Two configs are the same bytes, ignoring the file they came from. */
static int same_config(const imx_config *a, const imx_config *b) {
  imx_config x = *a, y = *b;
  memset(x.file, 0, sizeof x.file);
  memset(y.file, 0, sizeof y.file);
  return memcmp(&x, &y, sizeof x) == 0;
}

static void test_defaults(void) {
  imx_config c;
  imx_config_defaults(&c);
  int ok = c.file[0] == '\0' && c.data.source == IMX_SRC_SYNTHETIC_ICA && !c.data.path[0] &&
           !c.data.labels[0] && c.data.samples == 0 && c.data.dim == 8 && c.data.components == 4 &&
           c.data.separation == 4.0 && c.data.seed == 1 && c.data.scale == 1.0 &&
           c.data.preprocess == IMX_PRE_CENTER && c.data.whiten_eps == 1e-6 && c.model.units == 8 &&
           c.model.activation == IMX_ACT_IDENTITY && c.model.temperature == 1.0 &&
           c.model.weight_norm == 1 && !strcmp(c.model.init, "random") && c.model.seed == 2 &&
           c.model.init_bias == 0.0 && !strcmp(c.objective.preset, "gaussian") &&
           c.objective.lambda == 0.1 && c.objective.eps == 0.0 &&
           !strcmp(c.optimizer.type, "lmvm") && c.optimizer.max_it == 200 &&
           c.optimizer.gatol == 1e-8 && c.optimizer.grtol == 1e-8 && !c.optimizer.options[0] &&
           c.parallel.reduction == IMX_RED_REPRODUCIBLE && c.parallel.block == 256 &&
           c.parallel.linalg == IMX_LINALG_AUTO && c.parallel.path == IMX_PATH_AUTO &&
           !c.output.dir[0] && c.output.every == 1;
  for (int t = 0; t < IMX_NTERMS; t++) ok = ok && isnan(c.objective.weight[t]);
  t_check(ok, "defaults have the documented values");
  expect("validate(defaults)", imx_config_validate(&ctx, &c), IMX_OK, NULL);
  t_check(!strcmp(imx_activation_name(IMX_ACT_SOFTMAX), "softmax") &&
              !strcmp(imx_source_name(IMX_SRC_SYNTHETIC_ICA), "synthetic-ica") &&
              !strcmp(imx_preprocess_name(IMX_PRE_WHITEN), "whiten") &&
              !strcmp(imx_reduction_name(IMX_RED_FAST), "fast") &&
              !strcmp(imx_activation_name((imx_activation)9), "?"),
          "enum name functions");
}

static void test_good_files(void) {
  imx_config c, d;
  imx_config_defaults(&d);
  imx_config_defaults(&c);
  expect("load configs/good_full.yaml", imx_config_load(&ctx, &c, "configs/good_full.yaml"), IMX_OK,
         NULL);
  double *w = c.objective.weight;
  int ok = !strcmp(c.file, "configs/good_full.yaml") && c.data.source == IMX_SRC_GMM &&
           c.data.samples == 5000 && c.data.dim == 16 && c.data.components == 3 &&
           c.data.separation == 2.5 && c.data.seed == 12345678901234567890ULL &&
           c.data.scale == 0.00392156862745098 && c.data.preprocess == IMX_PRE_WHITEN &&
           c.data.whiten_eps == 1e-3 && c.model.units == 32 &&
           c.model.activation == IMX_ACT_SOFTMAX && c.model.temperature == 0.5 &&
           c.model.weight_norm == 0 && !strcmp(c.model.init, "random") && c.model.seed == 7 &&
           c.model.init_bias == 0.01 && !strcmp(c.objective.preset, "implicit-em") &&
           c.objective.lambda == 0.25 && c.objective.eps == 1e-9 && w[IMX_TERM_LSE] == 1.0 &&
           isnan(w[IMX_TERM_VARIANCE]) && w[IMX_TERM_DECORRELATION] == 0.5 &&
           isnan(w[IMX_TERM_LOGDET]) && isnan(w[IMX_TERM_OFFDIAG]) &&
           isnan(w[IMX_TERM_GAUSSIAN_TC]) && isnan(w[IMX_TERM_WEIGHT_REDUNDANCY]) &&
           !strcmp(c.optimizer.type, "bncg") && c.optimizer.max_it == 50 &&
           c.optimizer.gatol == 1e-6 && c.optimizer.grtol == 0 &&
           !strcmp(c.optimizer.options, "-tao_ls_type armijo") &&
           c.parallel.reduction == IMX_RED_FAST && c.parallel.block == 64 &&
           c.parallel.linalg == IMX_LINALG_REPLICATED && c.parallel.path == IMX_PATH_MOMENTS &&
           !strcmp(c.output.dir, "runs/test") && c.output.every == 10;
  t_check(ok, "good_full.yaml: every value as written");
  expect("validate(good_full)", imx_config_validate(&ctx, &c), IMX_OK, NULL);

  const char *empty[] = {"configs/good_empty.yaml", "configs/good_comments.yaml"};
  for (int i = 0; i < 2; i++) {
    imx_config_defaults(&c);
    expect(empty[i], imx_config_load(&ctx, &c, empty[i]), IMX_OK, NULL);
    t_check(same_config(&c, &d) && !strcmp(c.file, empty[i]), "%s gives the defaults", empty[i]);
  }
  imx_config_defaults(&c);
  expect("configs/good_flow.yaml", imx_config_load(&ctx, &c, "configs/good_flow.yaml"), IMX_OK,
         NULL);
  t_check(c.model.units == 3 && c.model.activation == IMX_ACT_RELU, "flow style mapping");
}

static void test_bad_files(void) {
  static const struct {
    const char *file;
    imx_err code;
    const char *msg;
  } cases[] = {
      {"configs/bad_unknown_key.yaml", IMX_ERR_CONFIG,
       "configs/bad_unknown_key.yaml:4:3: unknown key \"lamda\" in objective (did you mean "
       "\"lambda\"?)"},
      {"configs/bad_unknown_section.yaml", IMX_ERR_CONFIG,
       "configs/bad_unknown_section.yaml:1:1: unknown section \"modle\" (did you mean \"model\"?)"},
      {"configs/bad_type.yaml", IMX_ERR_CONFIG,
       "configs/bad_type.yaml:2:11: objective.lambda: expected a number, got \"abc\""},
      {"configs/bad_range.yaml", IMX_ERR_CONFIG,
       "configs/bad_range.yaml:2:10: model.units: 0 is out of range (must be >= 1)"},
      {"configs/bad_enum.yaml", IMX_ERR_CONFIG,
       "configs/bad_enum.yaml:2:15: model.activation: \"softmx\" is not one of identity, relu, "
       "softmax, topk, sparsemax (did you mean \"softmax\"?)"},
      {"configs/bad_duplicate.yaml", IMX_ERR_CONFIG,
       "configs/bad_duplicate.yaml:4:3: duplicate key objective.lambda (first given at line 2)"},
      {"configs/bad_duplicate_section.yaml", IMX_ERR_CONFIG,
       "configs/bad_duplicate_section.yaml:5:1: duplicate section model (first given at line 1)"},
      {"configs/bad_syntax.yaml", IMX_ERR_CONFIG,
       "configs/bad_syntax.yaml:3:19: mapping values are not allowed in this context"},
      {"configs/bad_flow.yaml", IMX_ERR_CONFIG,
       "configs/bad_flow.yaml:2:1: did not find expected ',' or '}' (while parsing a flow "
       "mapping, started at 1:8)"},
      {"configs/bad_utf8.yaml", IMX_ERR_CONFIG,
       "configs/bad_utf8.yaml: byte 15: invalid leading UTF-8 octet"},
      {"configs/bad_tab.yaml", IMX_ERR_CONFIG,
       "configs/bad_tab.yaml:2:1: found character that cannot start any token (while scanning "
       "for the next token, started at 2:1)"},
      {"configs/bad_nested.yaml", IMX_ERR_CONFIG,
       "configs/bad_nested.yaml:3:5: model.units: expected a single value, got a mapping"},
      {"configs/bad_sequence.yaml", IMX_ERR_CONFIG,
       "configs/bad_sequence.yaml:2:3: section data must be a mapping of key: value, got a "
       "sequence"},
      {"configs/bad_section_scalar.yaml", IMX_ERR_CONFIG,
       "configs/bad_section_scalar.yaml:1:8: section model must be a mapping of key: value, got "
       "a scalar"},
      {"configs/bad_anchor.yaml", IMX_ERR_CONFIG,
       "configs/bad_anchor.yaml:2:10: anchors (&k) are not supported"},
      {"configs/bad_alias.yaml", IMX_ERR_CONFIG,
       "configs/bad_alias.yaml:3:9: aliases (*k) are not supported"},
      {"configs/bad_tag.yaml", IMX_ERR_CONFIG,
       "configs/bad_tag.yaml:2:10: tags (!!int) are not supported"},
      {"configs/bad_int.yaml", IMX_ERR_CONFIG,
       "configs/bad_int.yaml:2:8: data.dim: expected an integer, got \"1.5\""},
      {"configs/bad_inf.yaml", IMX_ERR_CONFIG,
       "configs/bad_inf.yaml:2:11: objective.lambda: expected a finite number, got \".inf\""},
      {"configs/bad_bool.yaml", IMX_ERR_CONFIG,
       "configs/bad_bool.yaml:2:16: model.weight_norm: expected true or false, got \"maybe\""},
      {"configs/bad_weight.yaml", IMX_ERR_CONFIG,
       "configs/bad_weight.yaml:2:12: objective.offdiag: -1 is out of range (must be >= 0)"},
      {"configs/bad_quoted.yaml", IMX_ERR_CONFIG,
       "configs/bad_quoted.yaml:2:11: objective.lambda: expected a number, got the quoted "
       "string \"0.5\""},
      {"configs/bad_toplevel.yaml", IMX_ERR_CONFIG,
       "configs/bad_toplevel.yaml:1:1: the top level must be a mapping of sections (data, model, "
       "...), got a sequence"},
      {"configs/bad_two_docs.yaml", IMX_ERR_CONFIG,
       "configs/bad_two_docs.yaml:3:1: a config file holds one YAML document, found a second"},
      {"configs/bad_preset.yaml", IMX_ERR_CONFIG,
       "configs/bad_preset.yaml:2:11: objective.preset: \"gausian\" is not one of none, "
       "gaussian, gaussian-tc, decorrelation, implicit-em, ica, hsic (did you mean \"gaussian\"?)"},
      {"configs/bad_optimizer_type.yaml", IMX_ERR_CONFIG,
       "configs/bad_optimizer_type.yaml:2:9: optimizer.type: expected a name of [a-z0-9_], got "
       "\"L-BFGS\""},
      {"configs/bad_scale.yaml", IMX_ERR_CONFIG,
       "configs/bad_scale.yaml:2:10: data.scale: 0 is out of range (must be != 0)"},
      /* Loads (cross-field rules wait for the overrides), then fails validation. */
      {"configs/bad_npy_nopath.yaml", IMX_ERR_CONFIG,
       "configs/bad_npy_nopath.yaml: data.source is npy but data.path is empty (which file?)"},
      {"configs/no_such_file.yaml", IMX_ERR_IO,
       "cannot open config configs/no_such_file.yaml: No such file or directory"},
      {"configs", IMX_ERR_IO, "cannot read config configs: Is a directory"},
  };
  imx_config d;
  imx_config_defaults(&d);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    imx_config c;
    imx_config_defaults(&c);
    imx_err err = imx_config_load(&ctx, &c, cases[i].file);
    if (err == IMX_OK) {
      err = imx_config_validate(&ctx, &c);
    } else {
      t_check(!memcmp(&c, &d, sizeof c), "%s: failed load leaves cfg unchanged", cases[i].file);
    }
    expect(cases[i].file, err, cases[i].code, cases[i].msg);
  }
}

static void test_set(void) {
  imx_config c, before;
  imx_config_defaults(&c);
  expect("--set objective.lambda=0.5", imx_config_set(&ctx, &c, "objective.lambda=0.5"), IMX_OK,
         NULL);
  expect("--set ' model.units = 12 '", imx_config_set(&ctx, &c, " model.units = 12 "), IMX_OK,
         NULL);
  expect("--set model.weight_norm=off", imx_config_set(&ctx, &c, "model.weight_norm=off"), IMX_OK,
         NULL);
  expect("--set data.whiten_eps=1e-3", imx_config_set(&ctx, &c, "data.whiten_eps=1e-3"), IMX_OK,
         NULL);
  expect("--set optimizer.options=...", imx_config_set(&ctx, &c, "optimizer.options=-a=b -c d"),
         IMX_OK, NULL);
  expect("--set data.source=npy", imx_config_set(&ctx, &c, "data.source=npy"), IMX_OK, NULL);
  t_check(c.objective.lambda == 0.5 && c.model.units == 12 && c.model.weight_norm == 0 &&
              c.data.whiten_eps == 1e-3 && !strcmp(c.optimizer.options, "-a=b -c d") &&
              c.data.source == IMX_SRC_NPY,
          "--set values applied");

  /* Each term weight key lands in its own slot: the table matches imx_term_names. */
  int ok = 1;
  for (int t = 0; t < IMX_NTERMS; t++) {
    char a[96];
    snprintf(a, sizeof a, "objective.%s=%d", imx_term_names[t], t + 1);
    ok = ok && imx_config_set(&ctx, &c, a) == IMX_OK;
  }
  for (int t = 0; t < IMX_NTERMS; t++) ok = ok && c.objective.weight[t] == t + 1;
  t_check(ok, "objective.<imx_term_names[t]> sets weight[t] for every term");
  expect("--set objective.offdiag=~", imx_config_set(&ctx, &c, "objective.offdiag=~"), IMX_OK,
         NULL);
  expect("--set objective.lse=null", imx_config_set(&ctx, &c, "objective.lse=null"), IMX_OK, NULL);
  t_check(isnan(c.objective.weight[IMX_TERM_OFFDIAG]) && isnan(c.objective.weight[IMX_TERM_LSE]),
          "~ and null reset a weight to NAN (from the preset)");

  static const struct {
    const char *a, *msg;
  } bad[] = {
      {"objective.lamda=0.5",
       "--set objective.lamda=0.5: unknown key \"lamda\" in objective (did you mean \"lambda\"?)"},
      {"objective.xyz=1", "--set objective.xyz=1: unknown key \"xyz\" in objective"},
      {"modle.units=3", "--set modle.units=3: unknown section \"modle\" (did you mean \"model\"?)"},
      {"lambda=0.5",
       "--set lambda=0.5: expected section.key=value (did you mean "
       "\"objective.lambda\"?)"},
      {"objective.lambda", "--set objective.lambda: expected section.key=value"},
      {"objective.lambda=abc",
       "--set objective.lambda=abc: objective.lambda: expected a number, got \"abc\""},
      {"objective.lambda=",
       "--set objective.lambda=: objective.lambda: expected a number, got \"\""},
      {"objective.lambda=nan",
       "--set objective.lambda=nan: objective.lambda: expected a number, got \"nan\""},
      {"objective.lambda=.inf",
       "--set objective.lambda=.inf: objective.lambda: expected a finite number, got \".inf\""},
      {"objective.lse=.nan",
       "--set objective.lse=.nan: objective.lse: expected a finite number, got \".nan\""},
      {"data.scale=.nan",
       "--set data.scale=.nan: data.scale: expected a finite number, got \".nan\""},
      {"data.scale=-.inf",
       "--set data.scale=-.inf: data.scale: expected a finite number, got \"-.inf\""},
      {"objective.lambda=1e999",
       "--set objective.lambda=1e999: objective.lambda: expected a finite number, got "
       "\"1e999\""},
      {"objective.lambda=-0.1",
       "--set objective.lambda=-0.1: objective.lambda: -0.1 is out of range (must be >= 0)"},
      {"model.units=0", "--set model.units=0: model.units: 0 is out of range (must be >= 1)"},
      {"model.units=2000000",
       "--set model.units=2000000: model.units: 2000000 is out of range (must be <= 1000000)"},
      {"optimizer.max_it=3000000000",
       "--set optimizer.max_it=3000000000: optimizer.max_it: 3000000000 is out of range (must "
       "be <= 2147483647)"},
      {"data.samples=99999999999999999999",
       "--set data.samples=99999999999999999999: data.samples: 99999999999999999999 is out of "
       "range (must be <= 9223372036854775807)"},
      {"data.dim=1.5", "--set data.dim=1.5: data.dim: expected an integer, got \"1.5\""},
      {"data.dim=1e3", "--set data.dim=1e3: data.dim: expected an integer, got \"1e3\""},
      {"model.seed=-1",
       "--set model.seed=-1: model.seed: expected a non-negative integer, got \"-1\""},
      {"model.seed=18446744073709551616",
       "--set model.seed=18446744073709551616: model.seed: 18446744073709551616 is out of range "
       "(must be <= 18446744073709551615)"},
      {"model.temperature=0",
       "--set model.temperature=0: model.temperature: 0 is out of range (must be > 0)"},
      {"data.scale=0", "--set data.scale=0: data.scale: 0 is out of range (must be != 0)"},
      {"model.weight_norm=2",
       "--set model.weight_norm=2: model.weight_norm: expected true or false, got \"2\""},
      {"model.activation=softmx",
       "--set model.activation=softmx: model.activation: \"softmx\" is not one of identity, "
       "relu, softmax, topk, sparsemax (did you mean \"softmax\"?)"},
      {"objective.preset=foo",
       "--set objective.preset=foo: objective.preset: \"foo\" is not one of none, gaussian, "
       "gaussian-tc, decorrelation, implicit-em, ica, hsic"},
      {"objective.offdiag=-1",
       "--set objective.offdiag=-1: objective.offdiag: -1 is out of range (must be >= 0)"},
      {"objective.offdiag=x",
       "--set objective.offdiag=x: objective.offdiag: expected a number or ~, got \"x\""},
      {"optimizer.type=",
       "--set optimizer.type=: optimizer.type: expected a name of [a-z0-9_], got \"\""},
      {"model.init=~", "--set model.init=~: model.init: must not be empty"},
  };
  before = c;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect(bad[i].a, imx_config_set(&ctx, &c, bad[i].a), IMX_ERR_CONFIG, bad[i].msg);
  t_check(!memcmp(&c, &before, sizeof c), "failed --set leaves cfg unchanged");

  char longpath[IMX_PATH_LEN + 32] = "data.path=";
  memset(longpath + 10, 'x', IMX_PATH_LEN);
  longpath[10 + IMX_PATH_LEN] = '\0';
  imx_err err = imx_config_set(&ctx, &c, longpath);
  t_check(err == IMX_ERR_CONFIG && strstr(ctx.msg,
                                          "data.path: too long (512 characters, at most "
                                          "511)"),
          "--set data.path=<512 chars>: \"%s\"", ctx.msg);
  ctx.code = IMX_OK;
}

static void test_validate(void) {
  imx_config c;
  imx_config_defaults(&c);
  c.data.source = IMX_SRC_IDX;
  expect("validate: idx without path", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "data.source is idx but data.path is empty (which file?)");
  strcpy(c.data.path, "train-images-idx3-ubyte.gz");
  c.data.samples = 0;
  expect("validate: idx, samples 0 (all rows)", imx_config_validate(&ctx, &c), IMX_OK, NULL);
  c.data.source = IMX_SRC_GMM;
  strcpy(c.file, "my.yaml");
  expect("validate: gmm with samples 0 (the generator's default)", imx_config_validate(&ctx, &c),
         IMX_OK, NULL);
  imx_config_defaults(&c);
  c.model.activation = IMX_ACT_TOPK;
  expect("validate: topk without model.topk", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "model.activation is topk but model.topk is 0: it needs 1 <= k <= model.units = 8");
  c.model.topk = 9;
  expect("validate: topk with k > K", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "model.activation is topk but model.topk is 9: it needs 1 <= k <= model.units = 8");
  c.model.topk = 8;
  expect("validate: topk with k = K", imx_config_validate(&ctx, &c), IMX_OK, NULL);
  /* Values put into the struct by code get the same checks as parsed ones. */
  imx_config_defaults(&c);
  c.model.units = 0;
  expect("validate: units 0 set in code", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "model.units: 0 is out of range (must be >= 1)");
  imx_config_defaults(&c);
  strcpy(c.objective.preset, "bogus");
  expect("validate: unknown preset", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "objective.preset: \"bogus\" is not one of none, gaussian, gaussian-tc, decorrelation, "
         "implicit-em, ica, hsic");
  imx_config_defaults(&c);
  c.model.activation = (imx_activation)7;
  expect("validate: activation 7", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "model.activation: 7 is not a valid choice");
  imx_config_defaults(&c);
  c.data.scale = NAN;
  expect("validate: scale NAN", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "data.scale: expected a finite number, got \"nan\"");
  imx_config_defaults(&c);
  c.model.weight_norm = 2;
  expect("validate: weight_norm 2", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "model.weight_norm: expected true or false (1 or 0), got 2");
  imx_config_defaults(&c);
  c.objective.weight[IMX_TERM_LSE] = INFINITY;
  expect("validate: weight inf", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "objective.lse: expected a finite number, got \"inf\"");
  FILE *null = fopen("/dev/null", "w");
  expect("write refuses what would not load back", imx_config_write(&ctx, &c, null), IMX_ERR_CONFIG,
         "objective.lse: expected a finite number, got \"inf\"");
  fclose(null);
  imx_config_defaults(&c);
  memset(c.output.dir, 'x', sizeof c.output.dir);
  expect("validate: unterminated string", imx_config_validate(&ctx, &c), IMX_ERR_CONFIG,
         "output.dir: string is not terminated");
}

/* Write c to a temporary file, load it into defaults, compare bytes. */
static void round_trip(const char *what, const imx_config *c) {
  char path[] = "/tmp/imx_test_config_XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    t_check(0, "%s: cannot create a temporary file", what);
    return;
  }
  imx_err err = imx_config_write(&ctx, c, f);
  fclose(f);
  imx_config back;
  imx_config_defaults(&back);
  if (!err) err = imx_config_load(&ctx, &back, path);
  int ok = !err && same_config(c, &back) && !strcmp(back.file, path);
  t_check(ok, "%s: write -> load gives the same bytes%s%s", what, err ? ": " : "",
          err ? ctx.msg : "");
  if (!ok) { /* show what was written */
    fflush(stdout);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "cat %s", path);
    if (system(cmd) != 0) printf("(cannot show %s)\n", path);
  }
  unlink(path);
  ctx.code = IMX_OK;
}

/* Copy into a string field, zero-filling it as the loader does, so that the
 * bytes after the NUL match too. */
static void set_str(char *dst, size_t size, const char *s) {
  memset(dst, 0, size);
  memcpy(dst, s, strlen(s));
}

static void test_round_trip(void) {
  imx_config c;
  imx_config_defaults(&c);
  round_trip("defaults", &c);

  FILE *full = fopen("/dev/full", "w");
  if (full) {
    expect("write to /dev/full", imx_config_write(&ctx, &c, full), IMX_ERR_IO,
           "cannot write the configuration: No space left on device");
    fclose(full);
  }
  full = fopen("/dev/full", "w"); /* unbuffered: now the emitter's own write fails */
  if (full) {
    setvbuf(full, NULL, _IONBF, 0);
    expect("write to unbuffered /dev/full", imx_config_write(&ctx, &c, full), IMX_ERR_IO,
           "cannot write the configuration: No space left on device");
    fclose(full);
  }

  imx_config_defaults(&c);
  expect("load good_full", imx_config_load(&ctx, &c, "configs/good_full.yaml"), IMX_OK, NULL);
  round_trip("good_full.yaml", &c);

  /* Awkward values: doubles that need 17 digits, extremes, strings that look
   * like other YAML types or hold YAML syntax. */
  imx_config_defaults(&c);
  c.data.source = IMX_SRC_IDX;
  c.data.samples = LLONG_MAX;
  c.data.seed = ULLONG_MAX;
  c.model.seed = 0;
  c.data.separation = 1.0 / 3.0;
  c.data.scale = -5e-324;
  c.data.whiten_eps = 1.7976931348623157e308;
  c.model.temperature = 0.1 + 0.2;
  c.model.init_bias = -0.0;
  c.objective.lambda = 1e-300;
  c.objective.weight[IMX_TERM_GAUSSIAN_TC] = 2.5;
  c.objective.weight[IMX_TERM_LSE] = 0.0;
  set_str(c.data.path, sizeof c.data.path, " leading space: and # hash.npy");
  set_str(c.data.labels, sizeof c.data.labels, "~");
  set_str(c.output.dir, sizeof c.output.dir, "null");
  set_str(c.model.init, sizeof c.model.init, "yes");
  set_str(c.objective.preset, sizeof c.objective.preset, "gaussian-tc");
  set_str(c.optimizer.options, sizeof c.optimizer.options,
          "-tao_ls_type  armijo 'x' \"y\" \\ \xc3\xa9 # not a comment");
  c.model.weight_norm = 0;
  c.optimizer.max_it = INT_MAX;
  round_trip("awkward values", &c);

  /* Long strings are not folded (width unlimited). */
  imx_config_defaults(&c);
  for (int i = 0; i < IMX_OPTS_LEN - 1; i++) c.optimizer.options[i] = (i % 7 == 3) ? ' ' : 'a';
  c.optimizer.options[IMX_OPTS_LEN - 1] = '\0';
  round_trip("1023-character options", &c);
}

/* The reference page names every section and key the writer writes. */
static void test_reference(void) {
  char *ref = NULL, *ref2 = NULL, *yaml = NULL;
  size_t nref = 0, nref2 = 0, nyaml = 0;
  FILE *f = open_memstream(&ref, &nref);
  imx_config_reference(f);
  fclose(f);
  f = open_memstream(&ref2, &nref2);
  imx_config_reference(f);
  fclose(f);
  t_check(nref == nref2 && !memcmp(ref, ref2, nref), "reference output is deterministic");
  t_check(!strncmp(ref, "# Configuration reference\n", 26) &&
              strstr(ref, "infomax config --reference") &&
              strstr(ref, "| key | type | default | allowed | meaning |"),
          "reference has the title, intro and table header");

  imx_config c;
  imx_config_defaults(&c);
  f = open_memstream(&yaml, &nyaml);
  imx_err err = imx_config_write(&ctx, &c, f);
  fclose(f);
  t_check(!err, "write defaults to memory");
  int nkeys = 0, missing = 0;
  const char *section = NULL;
  for (char *line = strtok(yaml, "\n"); line; line = strtok(NULL, "\n")) {
    char want[128];
    if (line[0] != ' ') { /* "section:" */
      line[strcspn(line, ":")] = '\0';
      snprintf(want, sizeof want, "\n## %s\n", line);
      section = strstr(ref, want);
      if (!section) t_check_quiet(0, "reference lacks section %s", line), missing++;
      continue;
    }
    line += strspn(line, " ");
    line[strcspn(line, ":")] = '\0';
    snprintf(want, sizeof want, "\n| `%s` |", line);
    const char *at = section ? strstr(section, want) : NULL;
    const char *next = section ? strstr(section + 1, "\n## ") : NULL;
    if (!at || (next && at > next)) t_check_quiet(0, "reference lacks key %s", line), missing++;
    nkeys++;
  }
  t_check(!missing && nkeys >= 37, "reference lists all %d keys, each under its section", nkeys);
  t_check(
      strstr(ref, "| `lambda` | number | `0.1` | finite and >= 0 |") &&
          strstr(ref, "| `logdet` | number or ~ | preset |") &&
          strstr(ref, "| `units` | integer | `8` | >= 1 and <= 1000000 |") &&
          strstr(
              ref,
              "| `activation` | choice | `identity` | `identity`, `relu`, `softmax`, `topk`, `sparsemax` |"),
      "reference rows show type, default and allowed values");
  free(ref);
  free(ref2);
  free(yaml);
}

/* model.layers: a list of per-layer settings; errors name the entry; the
 * resolved file loads back to the same bytes; a layer's configuration. */
static imx_config load_text(const char *what, const char *text, imx_err want,
                            const char *want_msg) {
  char path[] = "/tmp/imx_test_layers_XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  imx_config c;
  imx_config_defaults(&c);
  if (!f) {
    t_check(0, "%s: cannot create a temporary file", what);
    return c;
  }
  fputs(text, f);
  fclose(f);
  imx_err e = imx_config_load(&ctx, &c, path);
  if (!e) e = imx_config_validate(&ctx, &c);
  /* messages start with the temporary path: compare what follows it */
  const char *msg = strncmp(ctx.msg, path, strlen(path)) ? ctx.msg : ctx.msg + strlen(path);
  t_check(e == want && (!want_msg || strstr(msg, want_msg)), "%s -> %d \"%s\"", what, e, msg);
  ctx.code = IMX_OK;
  unlink(path);
  return c;
}

static void test_layers(void) {
  imx_config c = load_text("layers: three entries",
                           "model:\n  units: 6\n  layers:\n    - ~\n"
                           "    - {units: 4, activation: relu, objective.preset: decorrelation}\n"
                           "    - units: 3\n      feed: z\n      optimizer.max_it: 7\n",
                           IMX_OK, NULL);
  imx_config l3;
  imx_err e = imx_config_layer(&ctx, &c, 2, &l3);
  t_check(c.model.nlayers == 3 && !e && l3.model.units == 3 && l3.model.feed == IMX_FEED_Z &&
              l3.optimizer.max_it == 7 && l3.model.activation == IMX_ACT_IDENTITY,
          "layers: 3 entries; layer 3 has units 3, feed z, max_it 7 and the file's activation");
  round_trip("layers", &c);
  load_text("layers: a data key in an entry", "model:\n  layers:\n    - {data.samples: 5}\n",
            IMX_ERR_CONFIG,
            ":3:8: model.layers[1]: \"data.samples\": a layer sets keys of model, "
            "objective and optimizer only");
  load_text("layers: a bad value", "model:\n  layers:\n    - {}\n    - {units: many}\n",
            IMX_ERR_CONFIG,
            ":4:15: model.layers[2]: model.units: expected an integer, got \"many\"");
  load_text("layers: topk without k in an entry", "model:\n  layers:\n    - {activation: topk}\n",
            IMX_ERR_CONFIG, "model.layers[1]: model.activation is topk but model.topk is 0");
  load_text("layers: not a list", "model:\n  layers: 3\n", IMX_ERR_CONFIG,
            ":2:11: model.layers: expected a list of layers");
  imx_config_defaults(&c);
  expect("--set model.layers=[2]", imx_config_set(&ctx, &c, "model.layers=[2]"), IMX_ERR_CONFIG,
         "--set model.layers=[2]: model.layers is a list: give it in the config file (--set "
         "model.layers=[] removes it)");
}

static void test_stages(void) {
  imx_config c = load_text("stages: three entries",
                           "objective:\n  preset: hsic\noptimizer:\n  max_it: 30\n  stages:\n"
                           "    - {hsic_bandwidth: 0.5, max_it: 100, optimizer.gatol: 1e-9}\n"
                           "    - ~\n"
                           "    - objective.hsic_seed_offset: 1\n",
                           IMX_OK, NULL);
  imx_config s1, s2, s3;
  imx_err e = imx_config_stage(&ctx, &c, 0, &s1);
  if (!e) e = imx_config_stage(&ctx, &c, 1, &s2);
  if (!e) e = imx_config_stage(&ctx, &c, 2, &s3);
  t_check(c.optimizer.nstages == 3 && !e && s1.objective.hsic_bandwidth == 0.5 &&
              s1.optimizer.max_it == 100 && s1.optimizer.gatol == 1e-9 &&
              s2.optimizer.max_it == 30 && s2.objective.hsic_bandwidth == 1.0 &&
              s3.objective.hsic_seed_offset == 1 && s3.optimizer.max_it == 30,
          "stages: 3 entries; stage 1 has bandwidth 0.5, max_it 100, gatol 1e-9; stage 2 the "
          "file's; stage 3 hsic_seed_offset 1");
  round_trip("stages", &c);
  load_text("stages: a model key", "optimizer:\n  stages:\n    - {}\n    - {model.units: 5}\n",
            IMX_ERR_CONFIG, ":4:8: optimizer.stages[2]: \"model.units\": a stage sets");
  load_text("stages: the supervised head", "optimizer:\n  stages:\n    - {supervised: 1}\n",
            IMX_ERR_CONFIG, ":3:8: optimizer.stages[1]: \"supervised\": a stage sets");
  load_text("stages: the TAO options", "optimizer:\n  stages:\n    - {options: -tao_monitor}\n",
            IMX_ERR_CONFIG, ":3:8: optimizer.stages[1]: \"options\": a stage sets");
  imx_config m = load_text("stages: adam, then L-BFGS in single precision",
                           "optimizer:\n  stages:\n    - {type: adam, lr: 0.2, batch: 4096}\n"
                           "    - {type: lmvm, precision: single}\n",
                           IMX_OK, NULL);
  e = imx_config_stage(&ctx, &m, 0, &s1);
  if (!e) e = imx_config_stage(&ctx, &m, 1, &s2);
  t_check(!e && !strcmp(s1.optimizer.type, "adam") && s1.optimizer.lr == 0.2 &&
              s1.optimizer.batch == 4096 && s1.parallel.precision == m.parallel.precision &&
              !strcmp(s2.optimizer.type, "lmvm") && s2.parallel.precision != m.parallel.precision,
          "stages: stage 1 adam with lr 0.2 and batch 4096, stage 2 lmvm in single precision");
  load_text("stages: adam in single precision",
            "optimizer:\n  stages:\n    - {type: adam, parallel.precision: single}\n",
            IMX_ERR_CONFIG,
            "optimizer.stages[1]: parallel.precision: single with optimizer.type adam");
  load_text("stages: a bad value", "optimizer:\n  stages:\n    - {gatol: -1}\n", IMX_ERR_CONFIG,
            ":3:15: optimizer.stages[1]: optimizer.gatol:");
  load_text("stages: odd hsic features", "optimizer:\n  stages:\n    - {hsic_features: 7}\n",
            IMX_ERR_CONFIG, "optimizer.stages[1]: objective.hsic_features is 7");
  load_text("stages: not a list", "optimizer:\n  stages: 3\n", IMX_ERR_CONFIG,
            ":2:11: optimizer.stages: expected a list of stages");
  load_text("stages: with a stack",
            "model:\n  layers: [{}, {units: 2}]\noptimizer:\n  stages: [{}, {}]\n", IMX_ERR_CONFIG,
            "optimizer.stages and model.layers (2 layers) together");
  imx_config_defaults(&c);
  expect("--set optimizer.stages=[{}]", imx_config_set(&ctx, &c, "optimizer.stages=[{}]"),
         IMX_ERR_CONFIG,
         "--set optimizer.stages=[{}]: optimizer.stages is a list: give it in the config file "
         "(--set optimizer.stages=[] removes it)");
}

int main(int argc, char **argv) {
  t_init(&argc, &argv, &ctx);
  test_defaults();
  test_good_files();
  test_bad_files();
  test_set();
  test_validate();
  test_round_trip();
  test_layers();
  test_stages();
  test_reference();
  return t_end(&ctx);
}
