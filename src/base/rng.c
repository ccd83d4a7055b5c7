/* rng: counter-based random numbers (see include/imx/rng.h). */
#include "imx/rng.h"

#include <math.h>

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t imx_rng_bits(uint64_t seed, uint64_t stream, uint64_t index) {
  /* Three rounds keep (seed, stream, index) triples that differ in one word apart. */
  uint64_t h = mix(seed + 0x9e3779b97f4a7c15ULL);
  h = mix(h ^ (stream + 0x632be59bd9b4e019ULL));
  return mix(h ^ (index * 0x9e3779b97f4a7c15ULL + 0xd1b54a32d192ed03ULL));
}

double imx_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  /* 53 random bits, offset by half a unit: never 0, never 1. */
  return ((double)(imx_rng_bits(seed, stream, index) >> 11) + 0.5) * 0x1.0p-53;
}

double imx_rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  double u1 = imx_rng_uniform(seed, stream, 2 * index);
  double u2 = imx_rng_uniform(seed, stream, 2 * index + 1);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double imx_rng_laplace(uint64_t seed, uint64_t stream, uint64_t index) {
  /* Inverse CDF; scale 1/sqrt(2) gives unit variance. */
  double u = imx_rng_uniform(seed, stream, index) - 0.5;
  double s = u < 0 ? -1.0 : 1.0;
  return -s * 0.7071067811865476 * log(1.0 - 2.0 * fabs(u));
}
