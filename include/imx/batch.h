/* batch: mini-batch training's pieces that need no data (optimizer.type
 * adam or sgd): which blocks of rows a step uses, its learning rate, and the
 * update of the parameters and the optimizer's moments.
 *
 * The rows are the data set's blocks of B = parallel.block rows (the last may
 * be shorter; each lives on one rank). Epoch e visits every block once, in
 * the order of a Fisher-Yates permutation drawn from the counter-based
 * generator at (optimizer.seed, IMX_STREAM_BATCH, e nb + i): a function of
 * the seed, the epoch and the block count alone, so every rank computes the
 * same batches for any rank count. An epoch has S = floor(nb / bb) steps of
 * bb = optimizer.batch / B blocks; the nb - S bb blocks left over join its
 * last step. Step t (counted over all epochs and resumes) is step t mod S of
 * epoch t / S, so a checkpoint's iteration is its place in the shuffle.
 */
#ifndef IMX_BATCH_H
#define IMX_BATCH_H

#include <stdint.h>
#include <string.h>

#include "imx/names.h"

/* optimizer.schedule: the learning rate at step t of max_it.
 * constant: lr; cosine: lr (1 + cos(pi t / max_it)) / 2; step: lr decay^floor(epoch /
 * decay_every). */
typedef enum { IMX_SCHED_CONSTANT = 0, IMX_SCHED_COSINE, IMX_SCHED_STEP } imx_schedule;
/* The names of imx_schedule, in its order (config accepts and writes these). */
static const char *const imx_schedule_names[] = {"constant", "cosine", "step", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_schedule_name(imx_schedule s) {
  return imx_name_of(imx_schedule_names, (int)s);
}

/* The rng stream of the batch shuffle (include/imx/rng.h). */
#define IMX_STREAM_BATCH 21

/* The stochastic TAO types this program registers (imx_batch_register). */
typedef enum { IMX_STOCH_NONE = 0, IMX_STOCH_ADAM, IMX_STOCH_SGD } imx_stochastic;

/* IMX_STOCH_ADAM for "adam", IMX_STOCH_SGD for "sgd", else IMX_STOCH_NONE. Local.
 * Inline: the configuration's checks use it without the training code. */
static inline imx_stochastic imx_batch_kind(const char *tao_type) {
  if (!strcmp(tao_type, "adam")) return IMX_STOCH_ADAM;
  if (!strcmp(tao_type, "sgd")) return IMX_STOCH_SGD;
  return IMX_STOCH_NONE;
}

typedef struct imx_batch_plan {
  int64_t N;     /* rows of the data set */
  int block;     /* B */
  int64_t nb;    /* blocks, ceil(N / B) */
  int per_batch; /* bb: blocks of a step (the last step of an epoch has the leftover too) */
  int steps;     /* S: steps per epoch */
  uint64_t seed; /* optimizer.seed */
} imx_batch_plan;

/* The plan for batches of `batch` rows (a multiple of block, <= N rounded up
 * to whole blocks) of N rows. Local. */
void imx_batch_plan_init(imx_batch_plan *p, int64_t N, int block, int batch, uint64_t seed);

/* Rows of global block i (B, or what is left for the last one). Local. */
int64_t imx_batch_block_rows(const imx_batch_plan *p, int64_t i);

/* The fewest rows any step of the plan has: a batch of bb blocks that
 * holds the short last block, or bb whole blocks. Local. */
int64_t imx_batch_min_rows(const imx_batch_plan *p);

/* The permutation of the nb blocks for epoch e into perm (nb entries). Local. */
void imx_batch_permutation(const imx_batch_plan *p, int64_t epoch, int64_t *perm);

/* Step t's blocks: *first is the offset in epoch t / S's permutation and
 * *count how many follow. Local. */
void imx_batch_of_step(const imx_batch_plan *p, int64_t t, int64_t *first, int64_t *count);

/* The learning rate at step t of max_it (epoch t / S). Local. */
double imx_batch_lr(const imx_batch_plan *p, imx_schedule s, double lr, double decay,
                    int decay_every, int64_t t, int max_it);

/* One step on n parameters x with gradient g at step t (0-based; the
 * update is the (t + 1)-th): adam (m, v: its moments, beta1, beta2, eps) or
 * sgd with momentum (m: the velocity, m = mu m + g, x -= lr m; v unused).
 * Local; the same bits wherever it runs. */
void imx_batch_update(imx_stochastic kind, int n, double *x, const double *g, double *m, double *v,
                      double lr, double beta1, double beta2, double eps, double mu, int64_t t);

#endif
