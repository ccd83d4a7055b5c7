/* dmat: K x K matrices in ScaLAPACK's 2-D block-cyclic layout on a BLACS
 * process grid, and the communication patterns the layer needs on them.
 *
 * The grid is pr x pc = P ranks of the context's communicator in row-major
 * order: rank = myrow * pc + mycol. The matrix is cut into kt x kt tiles of
 * nb x nb (the last row and column of tiles smaller when nb does not divide
 * K); tile (I, J) lives on the rank at grid position (I mod pr, J mod pc), at
 * local offset ((I / pr) nb, (J / pc) nb) of that rank's column-major local
 * array. Symmetric matrices (C, M, G) are held by their lower triangle: the
 * tiles I >= J, and in diagonal tiles the elements i >= j (the strict upper
 * part of a diagonal tile is scratch unless a function says otherwise).
 *
 * No rank ever holds a K x K array: local arrays are about K^2 / P, and the
 * panel exchanges below move at most one group of tile columns at a time.
 */
#ifndef IMX_DMAT_H
#define IMX_DMAT_H

#include <stddef.h>
#include <stdint.h>

#include "imx/ctx.h"

/* A BLACS process grid over ctx->comm. */
typedef struct imx_grid {
  MPI_Comm comm;       /* borrowed: the communicator of the context it was made in */
  MPI_Comm blacs_comm; /* owned: a duplicate of comm, the BLACS' own (one handle per grid) */
  int handle;          /* BLACS system handle of comm */
  int ctxt;            /* BLACS context of the grid */
  int pr, pc;          /* grid rows x columns, pr * pc = P */
  int myrow, mycol;    /* this rank's grid coordinates */
} imx_grid;

/* The grid shape for P ranks: rows x cols as given, one of them 0 = derived
 * from the other, both 0 = the most square shape with pr <= pc. Returns 0
 * and sets *pr, *pc, or -1 if the shape does not multiply to P. Local. */
int imx_grid_shape(int P, int rows, int cols, int *pr, int *pc);

/* Create the grid (rows, cols as for imx_grid_shape; a shape that does not
 * fit P ranks is IMX_ERR_CONFIG). Collective. Free with imx_grid_free
 * (collective) before the communicator goes away. */
imx_err imx_grid_create(imx_ctx *ctx, int rows, int cols, imx_grid **out);
void imx_grid_free(imx_grid **g);

/* A distributed K x K matrix. Fields are read-only for users. */
typedef struct imx_dmat {
  const imx_grid *grid; /* borrowed; must outlive the matrix */
  int K;                /* global order */
  int nb;               /* tile size */
  int kt;               /* tiles per dimension, ceil(K / nb) */
  int mloc, nloc;       /* local rows and columns */
  int lld;              /* local leading dimension, max(1, mloc) */
  int desc[9];          /* ScaLAPACK array descriptor */
  double *a;            /* mloc x nloc local array, column-major, owned */
} imx_dmat;

/* Create a K x K matrix with nb x nb tiles on g (contents undefined).
 * A local array beyond ScaLAPACK's 32-bit indexing is IMX_ERR_CONFIG
 * (use more ranks). Collective (agreed). Free with imx_dmat_free (local). */
imx_err imx_dmat_create(imx_ctx *ctx, const imx_grid *g, int K, int nb, imx_dmat **out);
void imx_dmat_free(imx_dmat **m);

/* (Tile indices are ti, tj here: complex.h, pulled in by PETSc, defines I.) */
/* Rows (or columns) of tile ti. Local. */
static inline int imx_dmat_tile_rows(const imx_dmat *m, int ti) {
  int r = m->K - ti * m->nb;
  return r < m->nb ? r : m->nb;
}
/* Rank that owns tile (ti, tj). Local. */
static inline int imx_dmat_owner(const imx_dmat *m, int ti, int tj) {
  return (ti % m->grid->pr) * m->grid->pc + tj % m->grid->pc;
}
/* Does this rank own tile (ti, tj)? Local. */
static inline int imx_dmat_mine(const imx_dmat *m, int ti, int tj) {
  return ti % m->grid->pr == m->grid->myrow && tj % m->grid->pc == m->grid->mycol;
}
/* The local storage of an owned tile (leading dimension m->lld). Local. */
static inline double *imx_dmat_tile(const imx_dmat *m, int ti, int tj) {
  return m->a + (size_t)(ti / m->grid->pr) * m->nb +
         (size_t)(tj / m->grid->pc) * m->nb * (size_t)m->lld;
}

/* d[K] = the diagonal of m, on every rank (each entry comes from its owner
 * alone, so the sum that gathers it is exact: same bits everywhere).
 * Collective. */
imx_err imx_dmat_diag(imx_ctx *ctx, const imx_dmat *m, double *d);

/* Copy the lower triangle of every owned diagonal tile to its upper triangle. Local. */
void imx_dmat_mirror_diag_tiles(imx_dmat *m);

/* Local array bytes. Local. */
size_t imx_dmat_bytes(const imx_dmat *m);

/* ---- Panels: the lower tiles (I >= J) of a range of tile columns ----
 *
 * A panel of tile columns [jt0, jt1) is packed rank by rank (rank 0's
 * tiles first), and within a rank column by column, top to bottom; each
 * tile is column-major with leading dimension its row count. This is the
 * layout of the reduce-scatter of partial sums to the owners and of the
 * all-gather of G's columns. */
typedef struct imx_dpanel {
  int jt0, jt1;       /* tile columns [jt0, jt1) */
  int64_t total;      /* elements of the packed panel */
  int64_t *off;       /* (jt1 - jt0) * kt: offset of tile (i, j) at [(j - jt0) kt + i], i >= j */
  int *count, *displ; /* P: elements per rank and their offsets */
  int64_t *pos;       /* P: scratch of imx_dpanel_set */
  int max_cols;       /* capacity in tile columns */
} imx_dpanel;

/* Allocate the layout for panels of up to max_cols tile columns. Local. */
imx_err imx_dpanel_create(imx_ctx *ctx, const imx_dmat *m, int max_cols, imx_dpanel **out);
void imx_dpanel_free(imx_dpanel **p);
/* Lay out tile columns [jt0, jt1) (jt1 - jt0 <= max_cols). Local. */
void imx_dpanel_set(imx_dpanel *p, const imx_dmat *m, int jt0, int jt1);

/* Reduce-scatter a packed panel of partial sums: send (nbins * total
 * doubles, each tile as nbins consecutive tile-sized bins) is summed over all
 * ranks and this rank's part (nbins * count[rank]) lands in recv.
 * Collective. */
imx_err imx_dpanel_reduce_scatter(imx_ctx *ctx, const imx_dpanel *p, int nbins, const double *send,
                                  double *recv);

/* Pack the owned tiles of panel p of m into send (this rank's part), then
 * all-gather every rank's part into packed (total doubles). Collective. */
imx_err imx_dpanel_allgather(imx_ctx *ctx, const imx_dpanel *p, const imx_dmat *m, double *send,
                             double *packed);

#endif
