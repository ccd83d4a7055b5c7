/* test_terms: the terms table and the presets table (src/objective/terms.c).
 * Every term row has the name of imx_term_names and the kind this test
 * expects; the kind predicates of objective.h say what the table says; the
 * preset rows are those of imx_preset_names, and each resolves to the weights
 * the preset table of docs/objectives.md documents. */
#include "imx/objective.h"

#include "testing.h"

/* The kinds, written down a second time: a wrong row in the table fails here. */
static const imx_term_kind expected_kind[IMX_NTERMS] = {
    [IMX_TERM_LOGDET] = IMX_KIND_MOMENT,        [IMX_TERM_OFFDIAG] = IMX_KIND_MOMENT,
    [IMX_TERM_VARIANCE] = IMX_KIND_MOMENT,      [IMX_TERM_GAUSSIAN_TC] = IMX_KIND_MOMENT,
    [IMX_TERM_DECORRELATION] = IMX_KIND_MOMENT, [IMX_TERM_WEIGHT_REDUNDANCY] = IMX_KIND_WEIGHTS,
    [IMX_TERM_LSE] = IMX_KIND_PER_ROW,          [IMX_TERM_SUPERVISED] = IMX_KIND_PER_ROW,
    [IMX_TERM_ENTROPY] = IMX_KIND_PER_ROW,      [IMX_TERM_HSIC] = IMX_KIND_PER_ROW};

/* One row of the docs' preset table: name and weights (IMX_PRESET_LAMBDA for "lambda"). */
typedef struct {
  char name[64];
  double w[IMX_NTERMS];
} doc_row;

static int term_index(const char *name) {
  for (int t = 0; t < IMX_NTERMS; t++)
    if (!strcmp(imx_term_names[t], name)) return t;
  return -1;
}

/* The rows "| `preset` | `term` value, ... |" of the table under "## Presets";
 * value is a number, a fraction a/b, or lambda. Returns the number of rows, or
 * -1 when the file cannot be read or a cell cannot be parsed (why in *why). */
static int read_doc_presets(const char *path, doc_row *rows, int max, char *why, size_t whylen) {
  FILE *f = fopen(path, "r");
  if (!f) return snprintf(why, whylen, "cannot open %s", path), -1;
  char line[1024];
  int in = 0, n = 0;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "## ", 3)) in = !strncmp(line, "## Presets", 10);
    if (!in || strncmp(line, "| `", 3)) continue;
    if (n == max) break;
    doc_row *r = &rows[n];
    memset(r, 0, sizeof *r);
    char *p = line + 3, *q = strchr(p, '`');
    if (!q || (size_t)(q - p) >= sizeof r->name) break;
    memcpy(r->name, p, (size_t)(q - p));
    char *cell = strchr(q, '|');
    while (cell && (p = strchr(cell, '`')) && (q = strchr(p + 1, '`'))) {
      *q = 0;
      int t = term_index(p + 1);
      cell = q + 1;
      if (t < 0) continue; /* e.g. `data.preprocess: whiten` in a remark */
      while (*cell == ' ') cell++;
      char *end;
      if (!strncmp(cell, "lambda", 6)) {
        r->w[t] = IMX_PRESET_LAMBDA;
        end = cell + 6;
      } else {
        r->w[t] = strtod(cell, &end);
        if (end == cell) {
          fclose(f);
          return snprintf(why, whylen, "preset %s: no value after `%s`", r->name, p + 1), -1;
        }
        if (*end == '/') {
          char *num = end + 1;
          r->w[t] /= strtod(num, &end);
        }
      }
      cell = end;
    }
    n++;
  }
  fclose(f);
  return n;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx ctx;
  imx_ctx_init(&ctx, MPI_COMM_SELF);

  /* The terms table. */
  {
    int bad = -1;
    for (int t = 0; t < IMX_NTERMS && bad < 0; t++) {
      const imx_term_info *r = &imx_objective_terms[t];
      int moment = r->kind == IMX_KIND_MOMENT;
      if (!r->name || strcmp(r->name, imx_term_names[t]) || r->kind != expected_kind[t] ||
          !r->doc || !r->doc[0] || (moment != (r->needs != 0)))
        bad = t;
    }
    t_check(bad < 0,
            "terms table: %d rows named as imx_term_names, with the expected kinds, a "
            "doc line, and needs exactly for the moment terms (first bad row: %d)",
            IMX_NTERMS, bad);
  }

  /* The predicates read the table: each term alone, then every pair. */
  {
    int bad = 0, pairs = 0;
    for (int t = 0; t < IMX_NTERMS; t++)
      for (int s = t; s < IMX_NTERMS; s++)
        for (int nv = 0; nv < 2; nv++) {
          imx_objective o = {.null_vector = nv};
          o.w[t] = 0.7, o.w[s] = 1.3;
          const imx_term_info *a = &imx_objective_terms[t], *b = &imx_objective_terms[s];
          int factors = !!(a->needs & IMX_NEEDS_FACTOR) + (s != t && (b->needs & IMX_NEEDS_FACTOR));
          bad |= imx_objective_per_sample(&o) !=
                 (a->kind == IMX_KIND_PER_ROW || b->kind == IMX_KIND_PER_ROW);
          bad |= imx_objective_needs_cov(&o) !=
                 (a->kind == IMX_KIND_MOMENT || b->kind == IMX_KIND_MOMENT);
          bad |= imx_objective_needs_factor(&o) != (factors > 0);
          bad |= imx_objective_dist_needs_work(&o) != (factors == 2 && nv);
          const imx_term_kind kinds[] = {IMX_KIND_MOMENT, IMX_KIND_PER_ROW, IMX_KIND_WEIGHTS};
          for (int k = 0; k < 3; k++)
            bad |= imx_objective_has_kind(&o, kinds[k]) !=
                   (a->kind == kinds[k] || b->kind == kinds[k]);
          pairs++;
        }
    imx_objective none = {.null_vector = 1};
    bad |= imx_objective_per_sample(&none) || imx_objective_needs_cov(&none) ||
           imx_objective_needs_factor(&none) || imx_objective_dist_needs_work(&none);
    t_check(!bad,
            "per_sample, needs_cov, needs_factor, has_kind and dist_needs_work agree with "
            "the kinds and needs of the table on %d term pairs and on no term",
            pairs);
  }

  /* The presets table and imx_preset_names list the same names in the same order. */
  int npresets = 0;
  {
    int same = 1;
    for (; imx_objective_presets[npresets].name; npresets++)
      same &= imx_preset_names[npresets] &&
              !strcmp(imx_preset_names[npresets], imx_objective_presets[npresets].name) &&
              imx_objective_preset(imx_preset_names[npresets]) == &imx_objective_presets[npresets];
    same &= imx_preset_names[npresets] == NULL && imx_objective_preset("no-such-preset") == NULL;
    t_check(same, "presets table: %d rows, the names of imx_preset_names in order", npresets);
  }

  /* Every preset resolves to the weights docs/objectives.md documents (lambda = 0.37). */
  {
    doc_row rows[32];
    char why[256] = "";
    int nrows = read_doc_presets("../docs/objectives.md", rows, 32, why, sizeof why);
    t_check(nrows == npresets, "docs/objectives.md documents %d presets, the table has %d%s%s",
            nrows, npresets, why[0] ? ": " : "", why);
    const double lambda = 0.37;
    for (int i = 0; i < nrows; i++) {
      imx_config c;
      t_small_config(&c, 1000, 8, 4, 64);
      c.model.activation = IMX_ACT_RELU; /* lse with identity outputs is refused */
      snprintf(c.objective.preset, sizeof c.objective.preset, "%s", rows[i].name);
      c.objective.lambda = lambda;
      imx_objective o;
      imx_err e = imx_objective_resolve(&ctx, &c, 8, 1000, &o);
      int all_zero = 1, same = 1;
      double worst = 0;
      for (int t = 0; t < IMX_NTERMS; t++) {
        double want = rows[i].w[t] == IMX_PRESET_LAMBDA ? lambda : rows[i].w[t];
        all_zero &= want == 0;
        if (!e) same &= o.w[t] == want, worst = fmax(worst, fabs(o.w[t] - want));
      }
      if (all_zero) /* the preset "none": resolving refuses, weights must be set */
        t_check(e == IMX_ERR_CONFIG && strstr(ctx.msg, "every term has weight 0"),
                "preset %-13s documented as all 0: resolving it alone is refused (\"%s\")",
                rows[i].name, ctx.msg);
      else
        t_check(!e && same,
                "preset %-13s resolves to the documented weights: max diff %.1e "
                "(tol 0)%s%s",
                rows[i].name, worst, e ? ": " : "", e ? ctx.msg : "");
      ctx.code = IMX_OK;
    }
    /* An explicit weight replaces the preset's. */
    imx_config c;
    t_small_config(&c, 1000, 8, 4, 64);
    snprintf(c.objective.preset, sizeof c.objective.preset, "gaussian");
    c.objective.lambda = lambda, c.objective.weight[IMX_TERM_OFFDIAG] = 2.5;
    c.objective.weight[IMX_TERM_LSE] = 0;
    imx_objective o;
    imx_err e = imx_objective_resolve(&ctx, &c, 8, 1000, &o);
    t_check(!e && o.w[IMX_TERM_LOGDET] == 1 && o.w[IMX_TERM_OFFDIAG] == 2.5,
            "objective.offdiag = 2.5 overrides gaussian's lambda: logdet %g, offdiag %g",
            o.w[IMX_TERM_LOGDET], o.w[IMX_TERM_OFFDIAG]);
  }

  imx_ctx_finalize(&ctx);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
