/* test_supervised: the supervised head's value against a direct computation,
 * its gradients dL/d[U, c] and dL/dA against central finite differences
 * (measured relative error and tolerance), with every row labeled and with
 * half of them; and data without labels refused. */
#include <stdint.h>

#include "imx/data.h"
#include "imx/rng.h"
#include "imx/supervised.h"
#include "testing.h"

#define NROWS 60 /* rows */
#define K 5      /* outputs of the layer */
#define C 4      /* classes */
#define NH (C * K + C)

static imx_supervised *head_for(imx_ctx *ctx, imx_config *cfg, imx_data *d, double fraction) {
  imx_supervised *s = NULL;
  cfg->objective.label_fraction = fraction;
  if (imx_supervised_create(ctx, cfg, d, K, &s)) t_check(0, "create: %s", ctx->msg);
  return s;
}

static double value(imx_ctx *ctx, imx_supervised *s, const double *head, const double *A) {
  double v = NAN;
  if (imx_supervised_value(ctx, s, head, A, &v)) t_check(0, "value: %s", ctx->msg);
  return v;
}

int main(int argc, char **argv) {
  imx_ctx ctx;
  t_init(&argc, &argv, &ctx);
  imx_config cfg;
  imx_config_defaults(&cfg);
  cfg.parallel.block = 8;
  imx_data d = {.N = NROWS, .n = K, .block = 8, .nclasses = C};
  imx_shard(NROWS, d.block, ctx.rank, ctx.size, &d.row0, &d.nloc);
  int32_t labels[NROWS];
  double A[NROWS * K], head[NH];
  for (int i = 0; i < NROWS; i++) labels[i] = (int32_t)((i * 7 + 3) % C);
  for (int i = 0; i < NROWS * K; i++) A[i] = imx_rng_uniform(4, 1, (uint64_t)i);
  for (int i = 0; i < NH; i++) head[i] = 0.5 * imx_rng_normal(4, 2, (uint64_t)i);
  d.labels = labels + d.row0;
  double *Aloc = A + d.row0 * K;

  const double fractions[] = {1.0, 0.5};
  for (int fi = 0; fi < 2; fi++) {
    imx_supervised *s = head_for(&ctx, &cfg, &d, fractions[fi]);
    if (!s) break;
    long long L = imx_supervised_labeled(s);
    t_check(imx_supervised_classes(s) == C && imx_supervised_nparams(s) == NH && L > 0 &&
                L <= NROWS && (fractions[fi] < 1 || L == NROWS),
            "label_fraction %.1f: %d classes, %d head parameters, %lld of %d rows labeled",
            fractions[fi], imx_supervised_classes(s), imx_supervised_nparams(s), L, NROWS);

    /* The value against the formula, on the labeled rows: the rows whose
     * dL/dA is nonzero (on P = 1; the mean over L rows otherwise). */
    double v = value(&ctx, s, head, Aloc);
    double ghead[NH], T[NROWS * K];
    memset(T, 0, sizeof T);
    imx_supervised_backward_rows(s, head, 0, (int)d.nloc, 1.0, T);
    if (imx_supervised_grad_head(&ctx, s, Aloc, 1.0, ghead)) t_check(0, "grad_head: %s", ctx.msg);
    if (ctx.size == 1) {
      double direct = 0;
      for (int i = 0; i < NROWS; i++) {
        int labeled = 0;
        for (int k = 0; k < K; k++) labeled |= T[i * K + k] != 0;
        if (!labeled) continue;
        double sk[C], mx = -INFINITY, sum = 0;
        for (int c = 0; c < C; c++) {
          sk[c] = head[C * K + c];
          for (int k = 0; k < K; k++) sk[c] += head[c * K + k] * A[i * K + k];
          mx = sk[c] > mx ? sk[c] : mx;
        }
        for (int c = 0; c < C; c++) sum += exp(sk[c] - mx);
        direct += mx + log(sum) - sk[labels[i]];
      }
      direct /= (double)L;
      double err = t_relerr(v, direct, 1e-300);
      t_check(err < 1e-13,
              "label_fraction %.1f: value %.15g against the formula %.15g: rel err "
              "%.2e (tol 1e-13)",
              fractions[fi], v, direct, err);
    }

    /* dL/d[U, c] by central differences. */
    const double h = 1e-5;
    double worst = 0, gmax = 0;
    for (int i = 0; i < NH; i++) {
      double hp[NH];
      memcpy(hp, head, sizeof hp);
      hp[i] = head[i] + h;
      double fp = value(&ctx, s, hp, Aloc);
      hp[i] = head[i] - h;
      double fm = value(&ctx, s, hp, Aloc);
      double fd = (fp - fm) / (2 * h);
      worst = fmax(worst, fabs(fd - ghead[i]));
      gmax = fmax(gmax, fabs(ghead[i]));
    }
    t_check(gmax > 0 && worst / gmax < 1e-8,
            "label_fraction %.1f: dL/d[U, c] (%d entries) vs finite differences: max err %.2e "
            "relative to max |g| %.2e: %.2e (tol 1e-8)",
            fractions[fi], NH, worst, gmax, worst / gmax);

    /* dL/dA by central differences, on this rank's rows. */
    worst = 0, gmax = 0;
    int zero_unlabeled = 1;
    for (int64_t i = 0; i < d.nloc * K; i++) {
      double keep = Aloc[i];
      Aloc[i] = keep + h;
      double fp = value(&ctx, s, head, Aloc);
      Aloc[i] = keep - h;
      double fm = value(&ctx, s, head, Aloc);
      Aloc[i] = keep;
      double fd = (fp - fm) / (2 * h);
      worst = fmax(worst, fabs(fd - T[i]));
      gmax = fmax(gmax, fabs(T[i]));
      if (fd == 0 && T[i] != 0) zero_unlabeled = 0;
    }
    t_check(gmax > 0 && worst / gmax < 1e-8 && zero_unlabeled,
            "label_fraction %.1f: dL/dA (%lld x %d) vs finite differences: max err %.2e relative "
            "to max |g| %.2e: %.2e (tol 1e-8)%s",
            fractions[fi], (long long)d.nloc, K, worst, gmax, worst / gmax,
            zero_unlabeled ? "" : "; nonzero on an unlabeled row");

    /* scale multiplies both gradients exactly. */
    double g2[NH], T2[NROWS * K];
    memset(T2, 0, sizeof T2);
    value(&ctx, s, head, Aloc);
    imx_supervised_backward_rows(s, head, 0, (int)d.nloc, 0.25, T2);
    if (imx_supervised_grad_head(&ctx, s, Aloc, 0.25, g2)) t_check(0, "grad_head: %s", ctx.msg);
    int scaled = 1;
    for (int i = 0; i < NH; i++) scaled &= g2[i] == 0.25 * ghead[i];
    for (int64_t i = 0; i < d.nloc * K; i++) scaled &= T2[i] == 0.25 * T[i];
    t_check(scaled, "label_fraction %.1f: scale 0.25 gives 0.25 x both gradients, bit for bit",
            fractions[fi]);
    imx_supervised_free(&s);
    t_check(s == NULL, "imx_supervised_free nulls the pointer");
  }

  /* No labels: refused on every rank. */
  imx_data nolab = d;
  nolab.labels = NULL, nolab.nclasses = 0;
  imx_supervised *s = NULL;
  imx_err e = imx_supervised_create(&ctx, &cfg, &nolab, K, &s);
  t_expect_err(&ctx, e, IMX_ERR_CONFIG, "needs labels", "data without labels");
  imx_supervised_free(&s);

  return t_end(&ctx);
}
