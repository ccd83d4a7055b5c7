/* cli: the commands of the infomax program. Each returns the process exit
 * code (an imx_err value) and reports its own errors on rank 0. */
#ifndef IMX_CLI_H
#define IMX_CLI_H

#include "imx/ctx.h"

/* The command line, split: our own words and options, PETSc's options. */
typedef struct imx_args {
  const char *command; /* train, eval, transform, info, bench, config */
  int npos;            /* positional arguments after the command */
  char **pos;
  int nset; /* --set section.key=value overrides, in order */
  char **set;
  const char *out;      /* --out DIR (train: output.dir) */
  const char *data;     /* --data PATH (eval, transform) */
  const char *labels;   /* --labels PATH (transform) */
  const char *features; /* --features z|activation|r|winner (transform) */
  const char *layer;    /* --layer L (transform) */
  int force;            /* --force (transform): replace an existing output file */
  const char *weights;  /* --weights W.npy (eval) */
  const char *bias;     /* --bias b.npy (eval) */
  const char *resume;   /* --resume RUN_DIR (train) */
  int allow_changes;    /* --allow-changes (train --resume): continue with other settings or data */
  int help, version, reference;
} imx_args;

int imx_cmd_train(imx_ctx *ctx, const imx_args *a);
int imx_cmd_eval(imx_ctx *ctx, const imx_args *a);
int imx_cmd_transform(imx_ctx *ctx, const imx_args *a);
int imx_cmd_info(imx_ctx *ctx, const imx_args *a);
int imx_cmd_bench(imx_ctx *ctx, const imx_args *a);

#endif
