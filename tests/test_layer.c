/* test_layer: the gradient of every term x activation x weight normalization
 * x objective.on (activation, z) against central finite differences (the full pipeline: forward, block
 * moments, reduction, objective, backward, reduction); the data and moments
 * paths agree; fast and reproducible reductions agree. Collective. */
#include "imx/layer.h"
#include "imx/preprocess.h"
#include "imx/rng.h"

#include "testing.h"

static imx_ctx ctx;

/* Directional derivative check along 3 random directions with base step h0;
 * returns max rel err. */
static double fd_check(imx_layer *l, const double *theta, int np, double h0) {
  double *g = malloc((size_t)np * sizeof *g), *x = malloc((size_t)np * sizeof *x), f, worst = 0;
  if (imx_layer_eval(&ctx, l, theta, &f, g, NULL)) return INFINITY;
  for (int dir = 0; dir < 3; dir++) {
    double gd = 0, fd[2];
    double *d = malloc((size_t)np * sizeof *d);
    for (int i = 0; i < np; i++)
      d[i] = imx_rng_normal(99, (uint64_t)dir, (uint64_t)i), gd += g[i] * d[i];
    imx_err e = IMX_OK;
    /* Central differences at h and h/2, Richardson-extrapolated: O(h^4). */
    for (int k = 0; k < 2; k++) {
      double h = h0 / (1 << k), fp, fm;
      for (int i = 0; i < np; i++) x[i] = theta[i] + h * d[i];
      e |= imx_layer_eval(&ctx, l, x, &fp, NULL, NULL);
      for (int i = 0; i < np; i++) x[i] = theta[i] - h * d[i];
      e |= imx_layer_eval(&ctx, l, x, &fm, NULL, NULL);
      fd[k] = (fp - fm) / (2 * h);
    }
    free(d);
    if (e) return INFINITY;
    double err = t_relerr(gd, (4 * fd[1] - fd[0]) / 3, 1e-6);
    worst = err > worst ? err : worst;
  }
  free(g), free(x);
  return worst;
}

/* Evaluate layers a and b at a's initial parameters: the losses and the
 * largest gradient difference relative to b's largest entry. Returns theta
 * (malloc'd, imx_layer_nparams(a) entries) for further checks. */
static double *eval_pair(imx_layer *a, imx_layer *b, const imx_config *c, double *fa, double *fb,
                         double *grel) {
  int np = imx_layer_nparams(a);
  double *theta = malloc((size_t)np * sizeof *theta), *g1 = malloc((size_t)np * sizeof *g1),
         *g2 = malloc((size_t)np * sizeof *g2);
  imx_layer_init_params(&ctx, a, c, theta);
  imx_layer_eval(&ctx, a, theta, fa, g1, NULL);
  imx_layer_eval(&ctx, b, theta, fb, g2, NULL);
  double gerr = 0, gmax = 0;
  for (int i = 0; i < np; i++)
    gerr = fmax(gerr, fabs(g1[i] - g2[i])), gmax = fmax(gmax, fabs(g2[i]));
  *grel = gerr / gmax;
  free(g1), free(g2);
  return theta;
}

/* The value msg gives a term in "... (terms: name value, name value)": 1 if
 * listed (*v its value), 0 if not. */
static int listed_term(const char *msg, const char *name, double *v) {
  char key[64];
  const char *list = strstr(msg, "(terms: ");
  for (const char *p = list; p; p = strstr(p + 1, key)) {
    snprintf(key, sizeof key, "%s ", name);
    if ((p[-1] == ' ' || p[-1] == '(') && !strncmp(p, key, strlen(key))) {
      *v = strtod(p + strlen(key), NULL);
      return 1;
    }
  }
  return 0;
}

static imx_data *load(imx_config *c) {
  imx_data *d = NULL;
  if (imx_data_load(&ctx, c, &d) || imx_preprocess_apply(&ctx, c, d, NULL, NULL)) {
    t_check(0, "load data: %s", ctx.msg);
    return NULL;
  }
  return d;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  imx_config c;
  t_small_config(&c, 400, 6, 5, 16);
  imx_data *d = load(&c);
  if (!d) return t_finish();
  /* The supervised term needs labels: a Gaussian mixture of 3 classes. */
  imx_config cg = c;
  cg.data.source = IMX_SRC_GMM, cg.data.components = 3, cg.data.separation = 1.5;
  imx_data *dg = load(&cg);
  if (!dg) return t_finish();

  /* 1. Gradient checks; with objective.on: z for every activation but
   * identity (where z and phi(z) are the same). The last "term" (t =
   * IMX_NTERMS) is logdet + entropy + supervised together: with terms on z the
   * head's gradient passes through phi and the others do not. */
  const imx_activation acts[] = {IMX_ACT_IDENTITY, IMX_ACT_RELU, IMX_ACT_SOFTMAX, IMX_ACT_TOPK,
                                 IMX_ACT_SPARSEMAX};
  for (int on = 0; on < 2; on++)
    for (int ai = on; ai < 5; ai++)
      for (int wn = 0; wn < 2; wn++)
        for (int t = 0; t <= IMX_NTERMS; t++) {
          if (t == IMX_NTERMS && !on) continue;
          imx_config cc = c;
          cc.objective.on = on ? IMX_ON_Z : IMX_ON_ACTIVATION;
          cc.model.activation = acts[ai];
          cc.model.weight_norm = wn;
          cc.model.temperature = 0.7;
          cc.model.topk = 3; /* of K = 5 */
          cc.model.init_bias = 0.3;
          cc.objective.eps = 1e-3;
          cc.objective.label_fraction = 0.4;
          cc.parallel.path = IMX_PATH_DATA;
          snprintf(cc.objective.preset, sizeof cc.objective.preset, "none");
          for (int u = 0; u < IMX_NTERMS; u++) cc.objective.weight[u] = u == t ? 1.3 : 0;
          int sup = t == IMX_TERM_SUPERVISED || t == IMX_NTERMS;
          if (t == IMX_NTERMS)
            cc.objective.weight[IMX_TERM_LOGDET] = 0.5, cc.objective.weight[IMX_TERM_ENTROPY] = 0.7,
            cc.objective.weight[IMX_TERM_SUPERVISED] = 1.1;
          imx_layer *l = NULL;
          double worst = INFINITY;
          if (t == IMX_TERM_LSE && acts[ai] == IMX_ACT_IDENTITY) {
            imx_err e = imx_layer_create(&ctx, &cc, d, &l);
            t_check(e == IMX_ERR_CONFIG && strstr(ctx.msg, "unbounded"),
                    "lse with identity activation refused: \"%s\"", ctx.msg);
            ctx.code = IMX_OK;
            continue;
          }
          if (sup) cc.data = cg.data;
          if (!imx_layer_create(&ctx, &cc, sup ? dg : d, &l)) {
            int np = imx_layer_nparams(l);
            double *theta = malloc((size_t)np * sizeof *theta);
            imx_layer_init_params(&ctx, l, &cc, theta);
            /* a head away from 0, so that its own gradient is not the only one */
            for (int i = cc.model.units * (cc.data.dim + 1); i < np; i++)
              theta[i] = 0.5 * imx_rng_normal(5, 5, (uint64_t)i);
            /* hsic's features cos(omega a / sigma) have derivatives that grow
           * as (omega / sigma)^k: the O(h^4) truncation error of the
           * differences grows by 1e4 per decade of h (hsic, topk, weight_norm
           * off: 9.6e-9 at h = 1e-5, 7.8e-7 at 1e-4, 7.7e-3 at 1e-3), so
           * hsic takes the smaller step. */
            worst = fd_check(l, theta, np, t == IMX_TERM_HSIC ? 1e-5 : 1e-4);
            free(theta);
          }
          /* topk and sparsemax are piecewise smooth: a row within the step of a
         * change of selection bounds what the Richardson differences can show. */
          double tol = acts[ai] >= IMX_ACT_TOPK ? 3e-7 : 1e-7;
          t_check(worst < tol,
                  "gradient %-17s %-8s weight_norm %-3s on %-10s: max rel err %.2e (tol %g)%s%s",
                  t < IMX_NTERMS ? imx_term_names[t] : "logdet+ent+sup",
                  imx_activation_name(acts[ai]), wn ? "on" : "off", on ? "z" : "activation", worst,
                  tol, l ? "" : " error: ", l ? "" : ctx.msg);
          imx_layer_free(&l);
        }

  /* 1b. The supervised term: refused without labels; its labeled rows. */
  {
    imx_config cc = c;
    cc.objective.weight[IMX_TERM_SUPERVISED] = 1;
    imx_layer *l = NULL;
    imx_err e = imx_layer_create(&ctx, &cc, d, &l);
    t_check(e == IMX_ERR_CONFIG && strstr(ctx.msg, "objective.supervised needs labels"),
            "supervised without labels refused: \"%s\"", ctx.msg);
    ctx.code = IMX_OK;
    imx_layer_free(&l);
    cc = cg;
    cc.model.activation = IMX_ACT_SOFTMAX;
    cc.objective.weight[IMX_TERM_SUPERVISED] = 1;
    cc.objective.label_fraction = 1e-9;
    e = imx_layer_create(&ctx, &cc, dg, &l);
    t_check(e == IMX_ERR_CONFIG && strstr(ctx.msg, "labels none of the N = 400 rows"),
            "a label fraction that labels no row refused: \"%s\"", ctx.msg);
    ctx.code = IMX_OK;
    imx_layer_free(&l);
    cc.objective.label_fraction = 0.1;
    e = imx_layer_create(&ctx, &cc, dg, &l);
    t_check(!e && imx_layer_nparams(l) == 5 * 6 + 5 + 3 * 5 + 3 && imx_layer_head_classes(l) == 3,
            "supervised head: C = 3 classes, %d parameters (K n + K + C K + C = 53)",
            l ? imx_layer_nparams(l) : -1);
    imx_layer_free(&l);
  }

  /* 1c. topk with k/K <= 1/8 and sparsemax: dL/dW from the nonzeros of dZ
   * (parallel.sparse) against the dense product, and against finite
   * differences. sparsemax is piecewise linear: at small tau many rows sit
   * near a change of support (a kink) within the step, so its check uses
   * tau = 20 (the sparse product is exercised by topk here and by
   * test_invariance). */
  {
    imx_config cs;
    t_small_config(&cs, 400, 6, 24, 16);
    imx_data *ds = load(&cs);
    for (int a = 0; ds && a < 2; a++) {
      imx_config cc = cs;
      cc.model.activation = a ? IMX_ACT_SPARSEMAX : IMX_ACT_TOPK;
      cc.model.topk = 3, cc.model.temperature = a ? 20 : 0.5, cc.model.init_bias = 0.3;
      cc.objective.eps = 1e-3;
      imx_layer *l1 = NULL, *l2 = NULL;
      cc.parallel.sparse = 1;
      imx_layer_create(&ctx, &cc, ds, &l1);
      cc.parallel.sparse = 0;
      imx_layer_create(&ctx, &cc, ds, &l2);
      if (!l1 || !l2) {
        t_check(0, "sparse layers: %s", ctx.msg);
        break;
      }
      double f1, f2, grel;
      double *theta = eval_pair(l1, l2, &cc, &f1, &f2, &grel);
      double fd = fd_check(l1, theta, imx_layer_nparams(l1), 1e-4);
      t_check(f1 == f2 && grel < 1e-13 && fd < 1e-7,
              "%s K=24 (k=3): dL/dW from the nonzeros of dZ vs dense: loss equal, gradient rel "
              "err %.2e (tol 1e-13); vs finite differences %.2e (tol 1e-7)",
              imx_activation_name(cc.model.activation), grel, fd);
      free(theta);
      imx_layer_free(&l1), imx_layer_free(&l2);
    }
    imx_data_free(&ds);
  }

  /* 2. The moments path (C = W S_x W^T) against the data path. */
  {
    imx_config cc = c;
    snprintf(cc.objective.preset, sizeof cc.objective.preset, "gaussian");
    cc.objective.weight[IMX_TERM_WEIGHT_REDUNDANCY] = 0.2;
    cc.objective.weight[IMX_TERM_GAUSSIAN_TC] = 0.5;
    cc.objective.weight[IMX_TERM_DECORRELATION] = 0.5;
    cc.objective.weight[IMX_TERM_VARIANCE] = 0.5;
    cc.model.init_bias = 0.5;
    imx_layer *l = NULL;
    imx_layer_create(&ctx, &cc, d, &l);
    t_check(l && !strcmp(imx_layer_path(l), "moments"),
            "identity + moment terms choose the moments path automatically");
    int np = imx_layer_nparams(l);
    double *theta = malloc((size_t)np * sizeof *theta), *g1 = malloc((size_t)np * sizeof *g1),
           *g2 = malloc((size_t)np * sizeof *g2), f1, f2;
    imx_layer_init_params(&ctx, l, &cc, theta);
    imx_layer_eval(&ctx, l, theta, &f1, g1, NULL);
    imx_layer_set_path(&ctx, l, 0);
    imx_layer_eval(&ctx, l, theta, &f2, g2, NULL);
    double gerr = 0, gmax = 0;
    for (int i = 0; i < np; i++)
      gerr = fmax(gerr, fabs(g1[i] - g2[i])), gmax = fmax(gmax, fabs(g2[i]));
    t_check(t_relerr(f1, f2, 1e-300) < 1e-11 && gerr / gmax < 1e-10,
            "moments path vs data path: loss rel err %.2e (tol 1e-11), gradient %.2e (tol 1e-10)",
            t_relerr(f1, f2, 1e-300), gerr / gmax);
    imx_config bad = cc;
    bad.model.activation = IMX_ACT_SOFTMAX;
    imx_layer *lb = NULL;
    imx_layer_create(&ctx, &bad, d, &lb);
    imx_err e = imx_layer_set_path(&ctx, lb, 1);
    t_check(e == IMX_ERR_CONFIG, "moments path refused for softmax: \"%s\"", ctx.msg);
    ctx.code = IMX_OK;
    imx_layer_free(&lb);
    /* With the terms on z the activation does not matter to C = W S_x W^T. */
    bad.objective.on = IMX_ON_Z;
    imx_layer_create(&ctx, &bad, d, &lb);
    t_check(lb && !strcmp(imx_layer_path(lb), "moments"),
            "softmax with objective.on: z and moment terms chooses the moments path");
    double f3 = 0;
    if (lb) imx_layer_eval(&ctx, lb, theta, &f3, g2, NULL);
    double gdiff = 0;
    for (int i = 0; i < np; i++) gdiff = fmax(gdiff, fabs(g1[i] - g2[i]));
    t_check(f3 == f1 && gdiff == 0,
            "softmax on z, moments path = identity, moments path: loss %.17g vs %.17g, gradient "
            "max diff %.2e (want equal)",
            f3, f1, gdiff);
    imx_layer_free(&lb);
    free(theta), free(g1), free(g2);
    imx_layer_free(&l);
  }

  /* 3. fast (MPI_Allreduce) and reproducible reductions agree at the same point,
   * for the moment terms and for the per-sample entropy and hsic sums. */
  const char *presets[] = {"gaussian", "ica", "hsic"};
  for (int pi = 0; pi < 3; pi++) {
    imx_config cr = c, cf;
    cr.model.activation = IMX_ACT_SOFTMAX;
    cr.objective.lambda = 0.3;
    snprintf(cr.objective.preset, sizeof cr.objective.preset, "%s", presets[pi]);
    cf = cr;
    cf.parallel.reduction = IMX_RED_FAST;
    imx_data *df = load(&cf);
    imx_layer *lr = NULL, *lf = NULL;
    imx_layer_create(&ctx, &cr, d, &lr);
    imx_layer_create(&ctx, &cf, df, &lf);
    double f1, f2, grel;
    free(eval_pair(lr, lf, &cr, &f1, &f2, &grel));
    t_check(
        t_relerr(f1, f2, 1e-300) < 1e-12 && grel < 1e-12,
        "fast vs reproducible reduction, %s preset: loss rel err %.2e, gradient %.2e (tol 1e-12)",
        presets[pi], t_relerr(f1, f2, 1e-300), grel);
    imx_layer_free(&lr), imx_layer_free(&lf);
    imx_data_free(&df);
  }

  /* 4. The rank-deficiency pitfall is refused before training. */
  {
    imx_config cc = c;
    cc.model.units = 9; /* > n = 6 */
    imx_layer *l = NULL;
    imx_err e = imx_layer_create(&ctx, &cc, d, &l);
    t_check(e == IMX_ERR_CONFIG && strstr(ctx.msg, "softmax") && strstr(ctx.msg, "objective.eps"),
            "log det with identity and K > n refused: \"%s\"", ctx.msg);
    ctx.code = IMX_OK;
    imx_layer_free(&l);
  }
  /* 5. A non-finite objective names its terms: a NaN in the supervised head
   * makes only that term NaN; the message must list every term with a
   * nonzero weight under its own name, and no other. */
  {
    imx_config cc = cg;
    cc.model.activation = IMX_ACT_SOFTMAX;
    cc.objective.label_fraction = 0.4;
    snprintf(cc.objective.preset, sizeof cc.objective.preset, "none");
    for (int u = 0; u < IMX_NTERMS; u++) cc.objective.weight[u] = 0;
    const int on[] = {IMX_TERM_OFFDIAG, IMX_TERM_SUPERVISED, IMX_TERM_ENTROPY, IMX_TERM_HSIC};
    for (int i = 0; i < 4; i++) cc.objective.weight[on[i]] = 1;
    imx_layer *l = NULL;
    double f = 0;
    imx_err e = imx_layer_create(&ctx, &cc, dg, &l);
    if (!e) {
      int np = imx_layer_nparams(l);
      double *theta = malloc((size_t)np * sizeof *theta);
      imx_layer_init_params(&ctx, l, &cc, theta);
      theta[np - 1] = NAN; /* the head's last bias */
      e = imx_layer_eval(&ctx, l, theta, &f, NULL, NULL);
      free(theta);
    }
    int named = e == IMX_ERR_NUMERIC && strstr(ctx.msg, "objective is ");
    for (int t = 0; t < IMX_NTERMS; t++) {
      double v = 0;
      int want = cc.objective.weight[t] != 0,
          got = named && listed_term(ctx.msg, imx_term_names[t], &v);
      named = named && got == want && (!got || (t == IMX_TERM_SUPERVISED ? isnan(v) : isfinite(v)));
    }
    t_check(named,
            "non-finite objective names its terms (supervised nan; offdiag, entropy, hsic "
            "finite; no others): \"%s\"",
            ctx.msg);
    ctx.code = IMX_OK;
    imx_layer_free(&l);
  }
  imx_data_free(&d);
  imx_data_free(&dg);
  imx_ctx_finalize(&ctx);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
