/* ctx: the run context (communicator, rank, size) and the error record.
 *
 * Every fallible function returns imx_err (IMX_OK = 0). The failure site calls
 * imx_fail(ctx, code, fmt, ...), which records the message with rank, function
 * and file:line and returns the code. IMX_TRY propagates. At phase boundaries
 * ranks call imx_agree() so that all return the same error and rank 0 reports
 * it once. The numeric value of imx_err is the process exit code.
 *
 * House rules for errors: which idiom when, and why.
 *
 * 1. Inside a collective phase, after an agreement: IMX_TRY. Once imx_agree()
 *    has run, every rank holds the same code, so all ranks return together:
 *      IMX_TRY(imx_agree(ctx, e));
 *      IMX_TRY(imx_checkpoint_write(ctx, dir, &h, theta));  // agrees before it returns
 *
 * 2. Local work that precedes an agreement: chain `if (!e) e = ...` and do
 *    not return. A rank that returns early skips the next imx_agree(), and
 *    the other ranks wait in it forever (a hang, not an error message):
 *      imx_err e = bad ? imx_fail(ctx, IMX_ERR_NOMEM, "input covariance %d x %d", n, n) : IMX_OK;
 *      if (!e) e = imx_rsum_create(ctx, l->mode, 1, n, 0, &rn);  // may fail on one rank
 *      e = imx_agree(ctx, e);                                   // every rank gets here
 *    An early return is safe only on a value every rank holds identically
 *    (the config, the replicated theta): then all ranks take it together.
 *    Where some rank cannot reach the next agreement at all, MPI_Abort is the
 *    only exit that does not hang.
 *
 * 3. A function that owns resources unwinds through labels named after what
 *    they release, in reverse order of acquisition, so every exit frees
 *    exactly what was taken and nothing twice:
 *      s->cov = calloc((size_t)d * d, sizeof *s->cov);
 *      if (!s->cov) goto out_free_s;
 *      ...
 *    out_free_s:
 *      free(s);
 *      return imx_fail(ctx, IMX_ERR_NOMEM, "stats for d=%d", d);
 *
 * Messages state the fact with the numbers ("logdet: pdpotrf INFO=17 (not
 * SPD), n=4096"). IMX_TRY and IMX_MPI are the only macros that hide a return.
 * No assert on anything that depends on input, data or the number of ranks.
 * In callbacks given to PETSc/TAO use PetscCall, so PETSc's traceback stays
 * whole.
 */
#ifndef IMX_CTX_H
#define IMX_CTX_H

#include <mpi.h>
#include <stdarg.h>

typedef enum {
  IMX_OK = 0,
  IMX_ERR_USAGE = 2,     /* bad command line */
  IMX_ERR_CONFIG = 3,    /* bad configuration file or override */
  IMX_ERR_IO = 4,        /* file missing, unreadable or unwritable */
  IMX_ERR_DATA = 5,      /* malformed or unusable data (header, NaN, N < P) */
  IMX_ERR_NUMERIC = 6,   /* not SPD, non-finite objective, collapse */
  IMX_ERR_NOMEM = 7,     /* allocation failed */
  IMX_ERR_MPI = 8,       /* an MPI call failed */
  IMX_ERR_PETSC = 9,     /* a PETSc call failed */
  IMX_ERR_INTERNAL = 10, /* a bug: please report */
  IMX_DIVERGED = 11,     /* the optimizer gave up before converging (line search failure,
                          * NaN, ...; not the iteration limit): the last accepted weights,
                          * their measures and a checkpoint are written (not an error) */
  IMX_STOPPED = 75       /* stopped by a signal at an iteration boundary, checkpoint written
                          * (not an error: resume with --resume; EX_TEMPFAIL) */
} imx_err;

/* An ending that is an error (not IMX_OK, IMX_STOPPED or IMX_DIVERGED, which
 * keep their results). Local. */
static inline int imx_failed(imx_err e) { return e && e != IMX_STOPPED && e != IMX_DIVERGED; }

#define IMX_MSG_LEN 1024

typedef struct imx_ctx {
  MPI_Comm comm;         /* our duplicate of the world communicator */
  int rank, size;        /* rank in comm, number of ranks */
  imx_err code;          /* last recorded error, IMX_OK if none */
  int err_rank;          /* rank that recorded it (after imx_agree: the lowest failing rank) */
  char msg[IMX_MSG_LEN]; /* "what failed, with the numbers" */
  char where[160];       /* "function (file:line)" */
  double sent_bytes;     /* bytes this rank sent in the counted collectives (imx_comm_sent) */
} imx_ctx;

/* The bytes a rank sends in a collective whose payload (the whole vector,
 * summed over ranks for a gather) is `bytes`, under the bandwidth-optimal
 * ring algorithms: (P-1)/P of it for an all-gather, a reduce-scatter or a
 * broadcast (all = 0), twice that for an all-reduce (all = 1); added to
 * ctx->sent_bytes. Called where the layer, the objective, linalg and the
 * reductions call MPI collectives (docs/performance.md, "Bytes per
 * evaluation"): a model of the traffic, not a measurement of MPI's own
 * algorithm. Local. */
static inline void imx_comm_sent(imx_ctx *ctx, double bytes, int all) {
  if (ctx->size > 1) ctx->sent_bytes += (all ? 2 : 1) * bytes * (ctx->size - 1) / ctx->size;
}

#define IMX_TRY(call)    \
  do {                   \
    imx_err e_ = (call); \
    if (e_) return e_;   \
  } while (0)

/* Record an error on this rank and return its code. Local. */
#define imx_fail(ctx, code, ...) \
  imx_fail_at((ctx), (code), __func__, __FILE__, __LINE__, __VA_ARGS__)
imx_err imx_fail_at(imx_ctx *ctx, imx_err code, const char *func, const char *file, int line,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Create the context on a duplicate of comm (errors return, not abort). Collective. */
imx_err imx_ctx_init(imx_ctx *ctx, MPI_Comm comm);
/* Free the duplicated communicator. Collective. */
void imx_ctx_finalize(imx_ctx *ctx);

/* Agree on an error: every rank passes its local status; all ranks return the
 * highest code, and the error record of the lowest rank with that code is
 * copied to every rank. Collective. */
imx_err imx_agree(imx_ctx *ctx, imx_err local);

/* Print the recorded error once (rank 0), as "infomax: error: MSG" (with the
 * failing rank when P > 1) plus, if IMX_DEBUG is set in the environment, the
 * function and file:line that recorded it. Local. */
void imx_report(const imx_ctx *ctx);

/* malloc for the row matrices (the data shard, the layer's per-row buffers,
 * the measures' outputs): a block of IMX_HUGE_MIN bytes or more is marked for
 * transparent huge pages (Linux madvise MADV_HUGEPAGE; nothing elsewhere, and
 * a refusal is ignored), so that its first touch takes one page fault per
 * 2 MiB instead of per 4 KiB. The same memory and the same results. Free
 * with free(). Local. */
#define IMX_HUGE_MIN ((size_t)32 << 20)
void *imx_malloc_rows(size_t bytes);

/* Check an MPI return code; on failure record IMX_ERR_MPI with the MPI error
 * string and the call's name. Local. */
#define IMX_MPI(ctx, call)                                                      \
  do {                                                                          \
    int mpi_rc_ = (call);                                                       \
    if (mpi_rc_ != MPI_SUCCESS)                                                 \
      return imx_fail_mpi((ctx), mpi_rc_, #call, __func__, __FILE__, __LINE__); \
  } while (0)
imx_err imx_fail_mpi(imx_ctx *ctx, int rc, const char *call, const char *func, const char *file,
                     int line);
/* The same check as a value, for code that must go on to an agreement:
 * IMX_OK, or IMX_ERR_MPI recorded with the MPI error string and `what`. Local. */
#define IMX_MPI_ERR(ctx, rc, what) \
  ((rc) == MPI_SUCCESS ? IMX_OK : imx_fail_mpi((ctx), (rc), (what), __func__, __FILE__, __LINE__))

#endif
