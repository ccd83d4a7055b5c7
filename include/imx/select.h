/* select: the k-th smallest of an array (Hoare's selection with a
 * median-of-three pivot: deterministic, expected linear time). Shared by
 * topk (include/imx/activation.h) and hsic's median heuristic. */
#ifndef IMX_SELECT_H
#define IMX_SELECT_H

#include <stdint.h>

/* The k-th smallest (0-based, k < n) of v[0 .. n); v is reordered. Local. */
double imx_select_kth(double *v, int64_t n, int64_t k);

#endif
