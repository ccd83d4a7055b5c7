/* cmd_transform: `infomax transform RUN_DIR --data PATH --out FEATURES`, a
 * trained model applied to new rows.
 *
 * RUN_DIR/model.h5 (include/imx/model_file.h) gives everything: the data
 * settings (data.scale, the format's keys), the train split's preprocessing
 * and the layers. The rows of PATH are loaded as `infomax train` loads its
 * data (the format from the path's ending, every rank reading its rows),
 * preprocessed with imx_split_apply and passed up the layers with
 * imx_fixed_feed, the code `infomax eval` passes them with; the features of
 * the last layer asked for go to FEATURES with the row writer
 * (include/imx/rowsout.h), each rank its rows. So the file has the same bits
 * for any number of ranks, and the bits of `eval --out`'s features.h5 on the
 * same rows.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imx/baseline.h"
#include "imx/cli.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/log.h"
#include "imx/metrics.h"
#include "imx/model_file.h"
#include "imx/rowsout.h"
#include "imx/split.h"

/* --features: what FEATURES holds for each row. */
typedef enum { OUT_Z = 0, OUT_ACTIVATION, OUT_R, OUT_WINNER } out_kind;
static const char *const out_names[] = {"z", "activation", "r", "winner", NULL};

/* A usage error, said once (rank 0). Every rank takes it: the arguments are the same. */
static int usage(const imx_ctx *ctx, const char *fmt, const char *arg) {
  if (ctx->rank == 0) {
    fputs("infomax transform: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(
        "\nusage: infomax transform RUN_DIR --data PATH --out FEATURES.npy|.h5 [--labels PATH]\n"
        "       [--features z|activation|r|winner] [--layer L] [--force]   (see --help)\n",
        stderr);
  }
  return IMX_ERR_USAGE;
}

/* FEATURES exists and --force is not given: refused, before any work. Collective. */
static imx_err refuse_existing(imx_ctx *ctx, const char *out, int force) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0 && !force && access(out, F_OK) == 0)
    e = imx_fail(ctx, IMX_ERR_USAGE,
                 "%s exists: transform does not replace a file (add --force to replace it)", out);
  return imx_agree(ctx, e);
}

/* The rows of --data (and --labels), as the model's run loaded its data, and
 * preprocessed with the train split's statistics. Collective. */
static imx_err load(imx_ctx *ctx, const imx_model *m, const imx_args *a, imx_data **out) {
  imx_config c = m->cfg;
  if (strlen(a->data) >= IMX_PATH_LEN || (a->labels && strlen(a->labels) >= IMX_PATH_LEN))
    return imx_fail(ctx, IMX_ERR_USAGE, "--data or --labels: path longer than %d bytes",
                    IMX_PATH_LEN - 1);
  snprintf(c.data.path, sizeof c.data.path, "%s", a->data);
  snprintf(c.data.labels, sizeof c.data.labels, "%s", a->labels ? a->labels : "");
  c.data.source = imx_source_of_path(a->data);
  c.data.samples = 0;
  c.data.scale = m->scale;
  IMX_TRY(imx_data_load(ctx, &c, out));
  imx_data *d = *out;
  imx_err e = IMX_OK;
  if (d->n != m->inputs)
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "%s has %d columns, but the model takes rows of %d (the data it was trained on)",
                 a->data, d->n, m->inputs);
  if (!e) e = imx_split_apply(ctx, d, m->mean, m->transform);
  e = imx_agree(ctx, e);
  if (e) imx_data_free(out);
  return e;
}

/* Layer j (1-based) of m with its configuration from m's config, as eval
 * takes it (imx_config_layer), and its parameters from the file. */
static imx_err layer_of(imx_ctx *ctx, const imx_model *m, int j, imx_config *cj, imx_fixed *f) {
  IMX_TRY(imx_agree(ctx, imx_config_layer(ctx, &m->cfg, j - 1, cj)));
  const imx_model_layer *y = &m->layer[j - 1];
  cj->model.units = y->K, cj->model.activation = y->act, cj->model.temperature = y->tau;
  cj->model.feed = y->feed;
  if (y->act == IMX_ACT_TOPK) cj->model.topk = y->topk;
  *f = (imx_fixed){.K = y->K, .n = y->n, .act = y->act, .tau = y->tau, .W = y->W, .b = y->b};
  return IMX_OK;
}

/* Pass d up layers 1..L; layer L's outputs as `what` asks (the winner: its
 * activation, then each row's winner into *win, nloc int32 allocated here). */
static imx_err apply(imx_ctx *ctx, const imx_model *m, int L, out_kind what, imx_data *d,
                     int32_t **win) {
  for (int j = 1; j <= L; j++) {
    imx_config cj;
    imx_fixed f;
    IMX_TRY(layer_of(ctx, m, j, &cj, &f));
    if (j == L)
      cj.model.feed = what == OUT_Z ? IMX_FEED_Z : what == OUT_R ? IMX_FEED_R : IMX_FEED_ACTIVATION;
    IMX_TRY(imx_fixed_feed(ctx, &cj, &f, d));
  }
  if (what != OUT_WINNER) return IMX_OK;
  const imx_model_layer *y = &m->layer[L - 1];
  *win = malloc((size_t)(d->nloc ? d->nloc : 1) * sizeof **win);
  IMX_TRY(imx_agree(ctx, *win ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "winners")));
  for (int64_t i = 0; i < d->nloc; i++)
    (*win)[i] = imx_metrics_winner(y->act, y->K, d->X + i * y->K);
  return IMX_OK;
}

/* FEATURES: the features (or winners) and, in an .h5 file, the labels. Collective. */
static imx_err write_out(imx_ctx *ctx, const char *path, const imx_data *d, const int32_t *win) {
  imx_rows_file *f = NULL;
  IMX_TRY(imx_rows_open(ctx, path, &f));
  imx_err e = win ? imx_rows_put(ctx, f, "features", IMX_ROWS_I32, 1, win, d->N, d->row0, d->nloc,
                                 1)
                  : imx_rows_put(ctx, f, "features", IMX_ROWS_F64, 0, d->X, d->N, d->row0, d->nloc,
                                 d->n);
  if (!e && d->labels)
    e = imx_rows_put(ctx, f, "labels", IMX_ROWS_I32, 1, d->labels, d->N, d->row0, d->nloc, 1);
  IMX_TRY(imx_rows_close(ctx, &f, e == IMX_OK));
  return e;
}

int imx_cmd_transform(imx_ctx *ctx, const imx_args *a) {
  /* The command line: the same on every rank, so every rank refuses together. */
  if (a->npos != 1) return usage(ctx, "%s", "needs one RUN_DIR");
  if (!a->data) return usage(ctx, "%s", "needs --data PATH (the rows to transform)");
  if (!a->out) return usage(ctx, "%s", "needs --out FEATURES (.npy or .h5)");
  if (!imx_rows_format_known(a->out))
    return usage(ctx, "--out %s: the name must end in .npy, .h5 or .hdf5", a->out);
  int what = OUT_ACTIVATION;
  if (a->features) {
    for (what = 0; out_names[what] && strcmp(out_names[what], a->features); what++) {
    }
    if (!out_names[what])
      return usage(ctx, "--features %s: expected z, activation, r or winner", a->features);
  }
  int L = 0;
  if (a->layer) {
    char *end;
    long v = strtol(a->layer, &end, 10);
    if (*end || end == a->layer || v < 1 || v > IMX_MAX_LAYERS)
      return usage(ctx, "--layer %s: expected a layer number 1, 2, ...", a->layer);
    L = (int)v;
  }
  size_t len = strlen(a->out);
  if (a->labels && len > 4 && !strcmp(a->out + len - 4, ".npy"))
    return usage(ctx,
                 "--labels with --out %s: a .npy file holds one array; write an .h5 file "
                 "to keep the labels beside the features",
                 a->out);

  imx_model *m = NULL;
  imx_data *d = NULL;
  int32_t *win = NULL;
  imx_err e = refuse_existing(ctx, a->out, a->force);
  if (!e) e = imx_model_read(ctx, a->pos[0], &m);
  if (!e && L > m->layers)
    e = imx_fail(ctx, IMX_ERR_USAGE, "--layer %d: the model in %s has %d layer%s (1..%d)", L,
                 a->pos[0], m->layers, m->layers > 1 ? "s" : "", m->layers);
  if (!e) {
    L = L ? L : m->layers;
    if (strcmp(m->status, "finished"))
      imx_log(ctx, IMX_WARN,
              "the model in %s has status \"%s\" (%d of %d layers present): its last "
              "checkpoint's weights, not a finished run's",
              a->pos[0], m->status, m->layers, m->cfg.model.nlayers > 1 ? m->cfg.model.nlayers : 1);
    e = load(ctx, m, a, &d);
  }
  if (!e) e = apply(ctx, m, L, (out_kind)what, d, &win);
  if (!e) e = write_out(ctx, a->out, d, win);
  if (!e)
    imx_log(ctx, IMX_INFO, "transform: %s, %lld rows -> %s: %s of layer %d (%lld x %d%s)", a->data,
            (long long)d->N, a->out, out_names[what], L, (long long)d->N,
            what == OUT_WINNER ? 1 : d->n, d->labels ? ", with labels" : "");
  if (e) imx_report(ctx);
  free(win);
  imx_data_free(&d);
  imx_model_free(&m);
  return e;
}
