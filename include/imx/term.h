/* term: the objective's terms and presets, by name (the objective module,
 * src/objective/; the config key table has one weight key per term). */
#ifndef IMX_TERM_H
#define IMX_TERM_H

/* Objective terms, in this order everywhere (weights, metrics, summary). */
typedef enum {
  IMX_TERM_LOGDET = 0,
  IMX_TERM_OFFDIAG,
  IMX_TERM_VARIANCE,
  IMX_TERM_GAUSSIAN_TC,
  IMX_TERM_DECORRELATION,
  IMX_TERM_WEIGHT_REDUNDANCY,
  IMX_TERM_LSE,
  IMX_TERM_SUPERVISED, /* cross-entropy of a linear softmax head (include/imx/supervised.h) */
  IMX_TERM_ENTROPY,
  IMX_TERM_HSIC,
  IMX_NTERMS
} imx_term;
extern const char *const imx_term_names[IMX_NTERMS]; /* "logdet", "offdiag", ... */
/* Names of the objective presets (their weights: src/objective/terms.c), NULL-terminated. */
extern const char *const imx_preset_names[];

#endif
