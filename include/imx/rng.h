/* rng: counter-based random numbers. A value depends only on (seed, stream,
 * index), never on which rank draws it or in which order, so generated data and
 * initial weights are the same for any number of ranks. Local, thread-safe. */
#ifndef IMX_RNG_H
#define IMX_RNG_H

#include <stdint.h>

/* 64 random bits for (seed, stream, index): a splitmix64-style mix. */
uint64_t imx_rng_bits(uint64_t seed, uint64_t stream, uint64_t index);
/* Uniform in the open interval (0, 1). */
double imx_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);
/* Standard normal (Box-Muller on the uniforms at 2*index and 2*index+1). */
double imx_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);
/* Laplace with zero mean and unit variance. */
double imx_rng_laplace(uint64_t seed, uint64_t stream, uint64_t index);

#endif
