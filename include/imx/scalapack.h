/* scalapack: the BLACS and ScaLAPACK prototypes we call (libscalapack-openmpi
 * ships no C header). Fortran routines take every argument by pointer and
 * 1-based global indices; matrices are column-major. The BLACS C interface
 * takes values. */
#ifndef IMX_SCALAPACK_H
#define IMX_SCALAPACK_H

#include <mpi.h>

/* BLACS */
void Cblacs_pinfo(int *mypnum, int *nprocs);
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);

/* Descriptors and local sizes */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ctxt, const int *lld, int *info);

/* Cholesky factorization and inverse of a distributed SPD matrix */
void pdpotrf_(const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, int *info);
void pdpotri_(const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, int *info);

/* Eigenvalues (and optionally eigenvectors) of a distributed symmetric matrix
 * (MRRR); W is global output, ascending. */
void pdsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
              const int *ia, const int *ja, const int *desca, const double *vl, const double *vu,
              const int *il, const int *iu, int *m, int *nz, double *w, double *z, const int *iz,
              const int *jz, const int *descz, double *work, const int *lwork, int *iwork,
              const int *liwork, int *info);

/* The library's version (ScaLAPACK 2.0 and later; `infomax info`) */
void pilaver_(int *major, int *minor, int *patch);

/* A BLAS-3 routine only the scalapack backend calls (include/imx/blas.h has the rest). */
void dtrsm_(const char *side, const char *uplo, const char *transa, const char *diag, const int *m,
            const int *n, const double *alpha, const double *a, const int *lda, double *b,
            const int *ldb);

#endif
