/* dmat: block-cyclic K x K matrices on a BLACS grid and their panel
 * exchanges (see include/imx/dmat.h). */
#include "imx/dmat.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/scalapack.h"

int imx_grid_shape(int P, int rows, int cols, int *pr, int *pc) {
  if (rows > 0 && cols > 0) {
    *pr = rows, *pc = cols;
  } else if (rows > 0) {
    *pr = rows, *pc = P / rows;
  } else if (cols > 0) {
    *pc = cols, *pr = P / cols;
  } else {
    /* The most square shape, rows <= cols: the largest divisor <= sqrt(P). */
    int r = (int)sqrt((double)P);
    while (r > 1 && P % r) r--;
    *pr = r, *pc = P / r;
  }
  return (*pr > 0 && *pc > 0 && *pr * *pc == P) ? 0 : -1;
}

imx_err imx_grid_create(imx_ctx *ctx, int rows, int cols, imx_grid **out) {
  *out = NULL;
  int pr, pc;
  if (imx_grid_shape(ctx->size, rows, cols, &pr, &pc))
    return imx_agree(ctx, imx_fail(ctx, IMX_ERR_CONFIG,
                                   "parallel.grid_rows x parallel.grid_cols = %d x %d does not "
                                   "make a grid of the %d ranks of this run (0 = derive from "
                                   "the other, both 0 = automatic)",
                                   rows, cols, ctx->size));
  imx_grid *g = calloc(1, sizeof *g);
  if (!g) return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "BLACS grid"));
  int me, np;
  Cblacs_pinfo(&me, &np); /* initializes the BLACS on top of the running MPI */
  g->comm = ctx->comm;
  /* The BLACS give one system handle per communicator: two grids at once
   * (the layer's and the measures') on ctx->comm would share it, and the
   * first freed would free the other's. Each grid has its own duplicate. */
  int rc = MPI_Comm_dup(ctx->comm, &g->blacs_comm);
  if (rc != MPI_SUCCESS) {
    free(g);
    return imx_agree(ctx, IMX_MPI_ERR(ctx, rc, "MPI_Comm_dup(BLACS grid)"));
  }
  g->handle = Csys2blacs_handle(g->blacs_comm);
  g->ctxt = g->handle;
  g->pr = pr, g->pc = pc;
  Cblacs_gridinit(&g->ctxt, "Row", pr, pc);
  int r, c;
  Cblacs_gridinfo(g->ctxt, &r, &c, &g->myrow, &g->mycol);
  /* Our tile owners are computed as rank = myrow * pc + mycol: check that
   * the BLACS agrees (it does for "Row" order on a system handle). */
  imx_err e = IMX_OK;
  if (r != pr || c != pc || g->myrow * pc + g->mycol != ctx->rank)
    e = imx_fail(ctx, IMX_ERR_INTERNAL,
                 "BLACS grid %d x %d: rank %d got position (%d, %d) of a %d x %d grid", pr, pc,
                 ctx->rank, g->myrow, g->mycol, r, c);
  e = imx_agree(ctx, e);
  if (e) {
    imx_grid_free(&g);
    return e;
  }
  *out = g;
  return IMX_OK;
}

void imx_grid_free(imx_grid **gp) {
  if (!gp || !*gp) return;
  imx_grid *g = *gp;
  if (g->ctxt >= 0) Cblacs_gridexit(g->ctxt);
  Cfree_blacs_system_handle(g->handle);
  MPI_Comm_free(&g->blacs_comm);
  free(g);
  *gp = NULL;
}

imx_err imx_dmat_create(imx_ctx *ctx, const imx_grid *g, int K, int nb, imx_dmat **out) {
  *out = NULL;
  imx_dmat *m = calloc(1, sizeof *m);
  if (!m) return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "distributed matrix"));
  m->grid = g, m->K = K, m->nb = nb, m->kt = (K + nb - 1) / nb;
  int zero = 0, info = 0;
  m->mloc = numroc_(&K, &nb, &g->myrow, &zero, &g->pr);
  m->nloc = numroc_(&K, &nb, &g->mycol, &zero, &g->pc);
  m->lld = m->mloc > 1 ? m->mloc : 1;
  imx_err e = IMX_OK;
  int64_t elems = (int64_t)m->lld * m->nloc;
  if (elems >= INT_MAX)
    e = imx_fail(ctx, IMX_ERR_CONFIG,
                 "K=%d on a %d x %d grid gives a local block of %d x %d = %lld elements, beyond "
                 "the 32-bit indices of ScaLAPACK: use more ranks",
                 K, g->pr, g->pc, m->mloc, m->nloc, (long long)elems);
  if (!e) {
    descinit_(m->desc, &K, &K, &nb, &nb, &zero, &zero, &g->ctxt, &m->lld, &info);
    if (info) e = imx_fail(ctx, IMX_ERR_INTERNAL, "descinit: INFO=%d (K=%d, nb=%d)", info, K, nb);
  }
  if (!e) {
    m->a = malloc((size_t)(elems > 0 ? elems : 1) * sizeof *m->a);
    if (!m->a)
      e = imx_fail(ctx, IMX_ERR_NOMEM, "distributed %d x %d matrix: %.1f MiB local block", K, K,
                   (double)elems * 8 / 1048576);
  }
  e = imx_agree(ctx, e);
  if (e) {
    imx_dmat_free(&m);
    return e;
  }
  *out = m;
  return IMX_OK;
}

void imx_dmat_free(imx_dmat **mp) {
  if (!mp || !*mp) return;
  free((*mp)->a);
  free(*mp);
  *mp = NULL;
}

size_t imx_dmat_bytes(const imx_dmat *m) {
  return (size_t)m->lld * (size_t)m->nloc * sizeof(double);
}

imx_err imx_dmat_diag(imx_ctx *ctx, const imx_dmat *m, double *d) {
  for (int i = 0; i < m->K; i++) d[i] = 0;
  for (int I = 0; I < m->kt; I++) {
    if (!imx_dmat_mine(m, I, I)) continue;
    const double *t = imx_dmat_tile(m, I, I);
    int r = imx_dmat_tile_rows(m, I);
    for (int i = 0; i < r; i++) d[I * m->nb + i] = t[i + (size_t)i * m->lld];
  }
  /* One nonzero contribution per entry: x + 0 + ... + 0 = x, exactly. */
  imx_comm_sent(ctx, 8.0 * m->K, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, d, m->K, MPI_DOUBLE, MPI_SUM, ctx->comm));
  return IMX_OK;
}

void imx_dmat_mirror_diag_tiles(imx_dmat *m) {
  for (int I = 0; I < m->kt; I++) {
    if (!imx_dmat_mine(m, I, I)) continue;
    double *t = imx_dmat_tile(m, I, I);
    int r = imx_dmat_tile_rows(m, I);
    for (int j = 0; j < r; j++)
      for (int i = j + 1; i < r; i++) t[j + (size_t)i * m->lld] = t[i + (size_t)j * m->lld];
  }
}

imx_err imx_dpanel_create(imx_ctx *ctx, const imx_dmat *m, int max_cols, imx_dpanel **out) {
  *out = NULL;
  imx_dpanel *p = calloc(1, sizeof *p);
  int P = m->grid->pr * m->grid->pc;
  if (p) {
    p->max_cols = max_cols;
    p->off = malloc((size_t)max_cols * m->kt * sizeof *p->off);
    p->count = malloc((size_t)P * sizeof *p->count);
    p->displ = malloc((size_t)P * sizeof *p->displ);
    p->pos = malloc((size_t)P * sizeof *p->pos);
  }
  if (!p || !p->off || !p->count || !p->displ || !p->pos) {
    imx_dpanel_free(&p);
    return imx_fail(ctx, IMX_ERR_NOMEM, "panel layout (%d x %d tiles)", m->kt, max_cols);
  }
  *out = p;
  return IMX_OK;
}

void imx_dpanel_free(imx_dpanel **pp) {
  if (!pp || !*pp) return;
  free((*pp)->off), free((*pp)->count), free((*pp)->displ), free((*pp)->pos);
  free(*pp);
  *pp = NULL;
}

void imx_dpanel_set(imx_dpanel *p, const imx_dmat *m, int jt0, int jt1) {
  int P = m->grid->pr * m->grid->pc, kt = m->kt;
  p->jt0 = jt0, p->jt1 = jt1;
  /* Callers keep nbins * total below 2^31 (the panel width is chosen so),
   * so counts and offsets fit MPI's int. */
  int64_t *pos = p->pos;
  for (int r = 0; r < P; r++) pos[r] = 0;
  for (int J = jt0; J < jt1; J++)
    for (int I = J; I < kt; I++)
      pos[imx_dmat_owner(m, I, J)] += (int64_t)imx_dmat_tile_rows(m, I) * imx_dmat_tile_rows(m, J);
  int64_t t = 0;
  for (int r = 0; r < P; r++) {
    int64_t c = pos[r];
    pos[r] = t;
    p->displ[r] = (int)t;
    p->count[r] = (int)c;
    t += c;
  }
  p->total = t;
  for (int J = jt0; J < jt1; J++)
    for (int I = J; I < kt; I++) {
      int r = imx_dmat_owner(m, I, J);
      p->off[(size_t)(J - jt0) * kt + I] = pos[r];
      pos[r] += (int64_t)imx_dmat_tile_rows(m, I) * imx_dmat_tile_rows(m, J);
    }
}

imx_err imx_dpanel_reduce_scatter(imx_ctx *ctx, const imx_dpanel *p, int nbins, const double *send,
                                  double *recv) {
  int P = ctx->size;
  int *counts = malloc((size_t)P * sizeof *counts);
  if (!counts) return imx_fail(ctx, IMX_ERR_NOMEM, "reduce-scatter counts");
  for (int r = 0; r < P; r++) counts[r] = nbins * p->count[r];
  imx_comm_sent(ctx, 8.0 * nbins * p->total, 0);
  int rc = MPI_Reduce_scatter(send, recv, counts, MPI_DOUBLE, MPI_SUM, ctx->comm);
  free(counts);
  IMX_MPI(ctx, rc);
  return IMX_OK;
}

imx_err imx_dpanel_allgather(imx_ctx *ctx, const imx_dpanel *p, const imx_dmat *m, double *send,
                             double *packed) {
  int kt = m->kt;
  int64_t mine = p->displ[ctx->rank];
  for (int J = p->jt0; J < p->jt1; J++)
    for (int I = J; I < kt; I++) {
      if (!imx_dmat_mine(m, I, J)) continue;
      const double *t = imx_dmat_tile(m, I, J);
      int r = imx_dmat_tile_rows(m, I), c = imx_dmat_tile_rows(m, J);
      double *dst = send + (p->off[(size_t)(J - p->jt0) * kt + I] - mine);
      for (int j = 0; j < c; j++)
        memcpy(dst + (size_t)j * r, t + (size_t)j * m->lld, (size_t)r * sizeof *dst);
    }
  imx_comm_sent(ctx, 8.0 * p->total, 0);
  IMX_MPI(ctx, MPI_Allgatherv(send, p->count[ctx->rank], MPI_DOUBLE, packed, p->count, p->displ,
                              MPI_DOUBLE, ctx->comm));
  return IMX_OK;
}
