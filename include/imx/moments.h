/* moments: sums over the rows of row-sharded matrices, block by block.
 *
 * Local rows start at a block boundary (see imx_shard), so the local blocks are
 * consecutive chunks of B rows. In reproducible mode each block is one partial
 * of an imx_rsum (bitwise identical for any P); in fast mode all local rows
 * form one partial. All functions are Collective over ctx->comm and return the
 * same bits on every rank.
 */
#ifndef IMX_MOMENTS_H
#define IMX_MOMENTS_H

#include <stdint.h>

#include "imx/ctx.h"
#include "imx/rsum.h"

/* Global column maxima of |A| (m x k, row-major, leading dimension lda) into out[k]. */
imx_err imx_colmax(imx_ctx *ctx, int64_t m, int k, const double *A, int lda, double *out);

/* The same in two steps, for callers that take the maxima in the loop that
 * writes A (while its rows are in cache): acc[j] = max(acc[j], |A(i,j)|)
 * over m local rows (acc starts at 0; Local), then the maxima over the ranks
 * (Collective). The maxima are exact: the same bits as imx_colmax. */
void imx_colmax_local(int64_t m, int k, const double *A, int lda, double *acc);
imx_err imx_colmax_reduce(imx_ctx *ctx, int k, double *acc);

/* out[k] = sum over all global rows of A (m x k, ld lda). s: a 1 x k imx_rsum.
 * amax: the global column maxima of |A| if the caller has them, else NULL
 * (in reproducible mode they are then computed here). */
imx_err imx_moments_colsum(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int k, const double *A,
                           int lda, const double *amax, double *out);

/* out (ka x kb) = sum over all global rows of A^T Bm (A: m x ka, Bm: m x kb,
 * row-major). If Bm == A (and ka == kb) the product is formed with syrk and s
 * must have been created with lower = 1. s: a ka x kb imx_rsum. amax, bmax:
 * the global column maxima of |A| and |Bm| if the caller has them (bmax kept
 * across calls for fixed data), else NULL. In reproducible mode the blocks'
 * partials are added imx_rsum_group(s) at a time (imx_rsum_add_n: the same
 * bits as one at a time). */
imx_err imx_moments_atb(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int ka, const double *A,
                        int lda, const double *amax, int kb, const double *Bm, int ldb,
                        const double *bmax, double *out);

/* The same sum with the products in float32 (parallel.precision: single):
 * each block of B rows of A is rounded to float and multiplied by SSYRK
 * (Bf == NULL: A^T A, s created with lower = 1) or SGEMM with the float Bf (m
 * x kb, ld ldb; bmax required: global column maxima of |Bf|); each block's
 * float product is converted to double and added to s. Blocks of B rows in
 * either mode, so reproducible sums keep their bits for any P. */
imx_err imx_moments_atb_single(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int ka,
                               const double *A, int lda, const double *amax, int kb,
                               const float *Bf, int ldb, const double *bmax, double *out);

/* The same as imx_moments_atb (A != Bm, bmax required), for an A with many
 * zeros (topk and sparsemax outputs): a partial whose rows of A have at most
 * density * rows * ka nonzeros is formed by skipping them (cost nnz * kb
 * instead of rows * ka * kb), else by dgemm. The choice is made per partial
 * from its own rows, so reproducible sums keep their bits for any P. */
imx_err imx_moments_atb_sparse(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int ka,
                               const double *A, int lda, const double *amax, int kb,
                               const double *Bm, int ldb, const double *bmax, double density,
                               double *out);

/* mean[k] = colsum(A) / N and C (k x k) = (A - 1 mean^T)^T (A - 1 mean^T) / N
 * over the N global rows of A (m local rows, k columns, row-major, dense),
 * through the block-wise reductions of `mode` (the same bits for any P in
 * reproducible mode). mean may be NULL when only C is wanted. */
imx_err imx_moments_covariance(imx_ctx *ctx, imx_reduction mode, int block, int64_t N, int64_t m,
                               int k, const double *A, double *mean, double *C);

#endif
