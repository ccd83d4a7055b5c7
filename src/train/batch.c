/* batch: mini-batch plan, learning rate and update (see include/imx/batch.h). */
#include "imx/batch.h"

#include <math.h>
#include <string.h>

#include "imx/rng.h"

void imx_batch_plan_init(imx_batch_plan *p, int64_t N, int block, int batch, uint64_t seed) {
  p->N = N, p->block = block, p->seed = seed;
  p->nb = (N + block - 1) / block;
  p->per_batch = batch / block;
  if (p->per_batch < 1) p->per_batch = 1;
  if (p->per_batch > p->nb) p->per_batch = (int)p->nb;
  p->steps = p->nb > 0 ? (int)(p->nb / p->per_batch) : 1;
}

int64_t imx_batch_block_rows(const imx_batch_plan *p, int64_t i) {
  int64_t r0 = i * p->block;
  return p->N - r0 < p->block ? p->N - r0 : p->block;
}

int64_t imx_batch_min_rows(const imx_batch_plan *p) {
  return (int64_t)(p->per_batch - 1) * p->block + imx_batch_block_rows(p, p->nb - 1);
}

void imx_batch_permutation(const imx_batch_plan *p, int64_t epoch, int64_t *perm) {
  for (int64_t i = 0; i < p->nb; i++) perm[i] = i;
  /* Fisher-Yates from the last entry down: entry i swaps with one of 0..i. */
  for (int64_t i = p->nb - 1; i > 0; i--) {
    uint64_t r = imx_rng_bits(p->seed, IMX_STREAM_BATCH, (uint64_t)(epoch * p->nb + i));
    int64_t j = (int64_t)(r % (uint64_t)(i + 1));
    int64_t tmp = perm[i];
    perm[i] = perm[j], perm[j] = tmp;
  }
}

void imx_batch_of_step(const imx_batch_plan *p, int64_t t, int64_t *first, int64_t *count) {
  int64_t k = t % p->steps;
  *first = k * p->per_batch;
  *count = k == p->steps - 1 ? p->nb - *first : p->per_batch;
}

double imx_batch_lr(const imx_batch_plan *p, imx_schedule s, double lr, double decay,
                    int decay_every, int64_t t, int max_it) {
  const double pi = 3.14159265358979323846;
  switch (s) {
    case IMX_SCHED_COSINE:
      return max_it > 0 && t < max_it ? lr * 0.5 * (1 + cos(pi * (double)t / max_it)) : 0;
    case IMX_SCHED_STEP:
      return lr * pow(decay, (double)((t / p->steps) / (decay_every > 0 ? decay_every : 1)));
    default:
      return lr;
  }
}

void imx_batch_update(imx_stochastic kind, int n, double *x, const double *g, double *m, double *v,
                      double lr, double beta1, double beta2, double eps, double mu, int64_t t) {
  if (kind == IMX_STOCH_SGD) {
    for (int i = 0; i < n; i++) {
      m[i] = mu * m[i] + g[i];
      x[i] -= lr * m[i];
    }
    return;
  }
  double c1 = 1 - pow(beta1, (double)(t + 1)), c2 = 1 - pow(beta2, (double)(t + 1));
  for (int i = 0; i < n; i++) {
    m[i] = beta1 * m[i] + (1 - beta1) * g[i];
    v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
    x[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps);
  }
}
