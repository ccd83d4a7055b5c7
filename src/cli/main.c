/* infomax: train wide layers of prototypes with InfoMax objectives over MPI.
 *
 * main reads as prolog (split the command line, start MPI and PETSc),
 * the command, epilog (finalize, exit with the command's code).
 */
#include <limits.h>
#include <malloc.h>
#include <petscsys.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imx/cli.h"
#include "imx/config.h"
#include "imx/data.h"
#include "imx/log.h"
#include "imx/objective.h"
#include "imx/signals.h"
#include "imx/timer.h"
#include "imx/train.h"
#include "imx/version.h"

/* The general usage around the table of commands (print_usage). */
static const char usage_head[] =
    "usage: infomax <command> [arguments] [PETSc options]\n"
    "\n"
    "commands:\n";
static const char usage_tail[] =
    "\n"
    "options:\n"
    "  --set SECTION.KEY=VALUE  override one config key (repeatable)\n"
    "  --out DIR                train: the run directory (output.dir); eval: where to save\n"
    "                           eval.json and arrays\n"
    "  --help, --version        this text; `infomax COMMAND --help` (or `infomax help\n"
    "                           COMMAND`) describes one command\n"
    "\n"
    "Options with one dash go to PETSc: -tao_type lmvm|bncg|cg|nm|..., -tao_monitor,\n"
    "-tao_test_gradient, -log_view.\n";

static const char train_help[] =
    "usage: mpiexec -n P infomax train CONFIG.yaml [--set SECTION.KEY=VALUE]... [--out DIR]\n"
    "                                  [PETSc/TAO options]\n"
    "       mpiexec -n P infomax train --resume RUN_DIR [--set SECTION.KEY=VALUE]...\n"
    "\n"
    "Trains one InfoMax layer z = W x + b, a = phi(z) on the data of CONFIG.yaml\n"
    "(with model.layers, a stack: layer L on the features of layer L-1),\n"
    "distributed over P MPI ranks, with PETSc TAO as the optimizer. Rank 0 prints one\n"
    "line per iteration; results go to a run directory: --out DIR (output.dir) as\n"
    "given, new or empty (one holding a run is refused: --resume it), else runs/<config\n"
    "name>, -2, -3, ... never overwriting an earlier run; one process at a time (a\n"
    "second one exits 4 naming the holder of DIR/.lock):\n"
    "  config.yaml  metrics.jsonl  layer1_W.npy  layer1_b.npy  summary.json  checkpoint.bin\n"
    "  optimizer_log.bin  model.h5 (the whole model, for `infomax transform`; every key of\n"
    "  summary.json and metrics.jsonl, and model.h5's layout: docs/guide.md);\n"
    "  layer L >= 2 of a stack: layerL_W.npy ... layerL_checkpoint.bin\n"
    "\n"
    "A checkpoint is written every output.checkpoint_every iterations and at the end.\n"
    "SIGUSR1, SIGTERM or ^C stop every rank at the next iteration boundary with a\n"
    "checkpoint (exit code 75); --resume RUN_DIR continues it, with any number of ranks.\n"
    "\n"
    "  --set SECTION.KEY=VALUE  override one key (see `infomax config --reference`)\n"
    "  --out DIR                same as --set output.dir=DIR\n"
    "  --resume RUN_DIR         continue from RUN_DIR's checkpoint (its config.yaml; in a\n"
    "                           stack, the layer in progress); refused when the data or a\n"
    "                           setting that shapes the result differs from the checkpoint's\n"
    "  --allow-changes          with --resume: continue anyway (the run is then not exact)\n"
    "  -tao_type TYPE           lmvm (default), blmvm, bncg, cg, bqnls, owlqn, nm, ...\n"
    "  -tao_monitor, -tao_max_it N, -tao_gatol X, -tao_test_gradient, -log_view, ...\n"
    "\n"
    "Exit codes: 0 ok (converged or max_it), 2 usage, 3 config, 4 I/O, 5 data,\n"
    "6 numerical (not SPD, NaN), 7 out of memory, 8 MPI, 9 PETSc, 10 internal error,\n"
    "11 diverged (TAO gave up: line search failure, ...; results written), 75 stopped\n"
    "by a signal (checkpoint written: resume).\n";

static const char eval_help[] =
    "usage: mpiexec -n P infomax eval RUN_DIR [--weights W.npy] [--bias b.npy] [--data PATH]\n"
    "                                 [--out DIR] [--set SECTION.KEY=VALUE]... [-probe_tao_* ...]\n"
    "       mpiexec -n P infomax eval CONFIG.yaml --weights W.npy [--bias b.npy] ...\n"
    "\n"
    "Judges the layer of RUN_DIR (its config.yaml, layer1_W.npy, layer1_b.npy) on the\n"
    "data of its config (the train split), or on PATH (.npy, FILE.h5:/DATASET, or IDX\n"
    "images) with --data.\n"
    "Standard output gets one JSON document:\n"
    "  terms, loss, dead_units, max_abs_corr, ...  every objective term alone and the loss\n"
    "  measures       dead units, winner counts and entropy (bits), max and mean |corr|,\n"
    "                 Gaussian total correlation (nats), effective rank, regions (distinct\n"
    "                 sign patterns of z), ||W W^T - I||_F, Amari distance (synthetic ICA)\n"
    "  measures_test  the same on the test split (eval.test_path, eval.test_labels),\n"
    "                 preprocessed with the train split's statistics\n"
    "  probe          with labels and eval.probe: multinomial logistic regression (TAO) on\n"
    "                 eval.features, trained on the train split; train and test accuracy\n"
    "  baselines      with eval.baselines: raw input, PCA-K, K random hyperplanes, k-means\n"
    "                 with K centers (soft assignments, triangle features) and GMM-EM\n"
    "                 (diagonal; responsibilities), with the same measures and probe\n"
    "Standard error gets progress lines and the numbers as tables.\n"
    "\n"
    "  --out DIR        also write DIR/eval.json, correlation.npy, winners.npy,\n"
    "                   eigenvalues.npy (python3 tools/plot_run.py RUN_DIR reads RUN_DIR/eval),\n"
    "                   features.h5 (what the probe saw: train, test, train_labels,\n"
    "                   test_labels), probe.h5 (mean, scale, V, c), and with\n"
    "                   eval.baselines kmeans_centers.npy and gmm_means.npy\n"
    "  --set eval.test_path=P --set eval.test_labels=L   a test split\n"
    "  --set eval.baselines=true                         the baselines\n"
    "  -probe_tao_type TYPE, -probe_tao_max_it N, ...    the probe's TAO (its monitors print\n"
    "                   on standard output, before the JSON)\n";

static const char transform_help[] =
    "usage: mpiexec -n P infomax transform RUN_DIR --data PATH --out FEATURES.npy|.h5\n"
    "                                      [--labels PATH] [--features z|activation|r|winner]\n"
    "                                      [--layer L] [--force]\n"
    "\n"
    "Applies the model of RUN_DIR (its model.h5: the preprocessing of the train split and\n"
    "every layer) to the rows of PATH, read as train reads data.path (the format from\n"
    "the name: .npy, IDX, ...; data.scale and the format's keys from the model), each\n"
    "rank its rows, and writes each row's features, each rank its rows: the same bits for\n"
    "any P, and those `infomax eval --out` writes to features.h5 for the same rows.\n"
    "\n"
    "  --features WHAT  z = W u + b, activation = phi(z) (default), r = softmax(-z/tau),\n"
    "                   or winner (the winning unit of each row, int32)\n"
    "  --layer L        the outputs of layer L of a stack (default: the last present)\n"
    "  --labels PATH    the rows' labels, written beside the features (.h5 only)\n"
    "  --force          replace FEATURES if it exists (else refused, exit 2)\n"
    "FEATURES.npy holds one array (N x K float64, or N int32 winners); FEATURES.h5 the\n"
    "datasets features and labels. Written under a temporary name and renamed at the end:\n"
    "a failed transform leaves no file.\n"
    "\n"
    "Exit codes: 0 ok, 2 usage (also --layer beyond the model, an existing FEATURES),\n"
    "4 I/O (no RUN_DIR/model.h5, unreadable data, unwritable FEATURES), 5 data (a width\n"
    "other than the model's, not an infomax model, a newer format_version), 7 out of\n"
    "memory, 8 MPI.\n";

static const char bench_help[] =
    "usage: mpiexec -n P infomax bench [CONFIG.yaml] [SECTION.KEY=V1,V2,...]... [SETTING=N]...\n"
    "                                  [--set SECTION.KEY=VALUE]... [--out FILE.csv]\n"
    "\n"
    "Times objective-and-gradient evaluations by phase (forward, moments, reduce, linalg,\n"
    "backward, optimizer) on the data of CONFIG.yaml (or the defaults and --set), for\n"
    "every combination of the swept keys, e.g. model.units=64,256,1024\n"
    "parallel.reduction=reproducible,fast. Prints a table on rank 0 and writes a CSV\n"
    "(--out FILE.csv; else printed after the table). Settings:\n"
    "  evals=5       timed evaluations per run (the best is reported)\n"
    "  warmup=1      untimed evaluations first\n"
    "  iterations=3  TAO iterations for TAO's own time per iteration (0: skip)\n"
    "  dgemm=2000    size of the square DGEMM that measures each rank's rate (0: skip)\n"
    "  blas=1        time the layer's BLAS-3 calls alone at its shapes\n"
    "  reduce=1      time the reproducible reduction's parts against MPI_Allreduce\n"
    "  allreduce=0   1: MPI_Allreduce times from 8 bytes to 3 K^2 doubles (FILE.csv.allreduce.csv)\n"
    "  weights=PREFIX  write the first run's W and b to PREFIX_W.npy, PREFIX_b.npy\n"
    "Example (a scaling study: run with P = 1, 2, 4, ... and concatenate the CSVs):\n"
    "  mpiexec -n 4 infomax bench configs/fashion-mnist.yaml model.units=64,256,1024 --out b.csv\n";

static const char info_help[] =
    "usage: mpiexec -n P infomax info\n"
    "\n"
    "Prints the build and runtime environment on rank 0: the infomax version and git\n"
    "commit, the build type and compiler, the MPI library and the number of ranks, the\n"
    "PETSc version and index size, ScaLAPACK, HDF5 (version, parallel or serial), zlib,\n"
    "libyaml, the BLAS library actually loaded (resolved through symlinks and\n"
    "alternatives) and, for OpenBLAS, its build, core and threads per rank\n"
    "(OPENBLAS_NUM_THREADS). Run it under the same launcher and environment as a job to\n"
    "see what the job will use.\n";

static const char config_help[] =
    "usage: infomax config --reference\n"
    "       mpiexec -n P infomax config --check CONFIG.yaml [--set SECTION.KEY=VALUE]...\n"
    "\n"
    "  --reference  print every configuration key with its type, default, allowed\n"
    "               values and meaning, as Markdown (docs/config.md is this output)\n"
    "  --check      load and validate CONFIG.yaml and the --set overrides exactly as\n"
    "               train does before it reads data (keys, TAO type and options, each layer's\n"
    "               objective where n is known: data.dim of synthetic data; a data file's\n"
    "               n is known only when train reads it): prints \"CONFIG.yaml: valid\" and\n"
    "               exits 0, or the error (file:line:column) and exits 3\n"
    "  --set SECTION.KEY=VALUE  override one key after the file is read (repeatable)\n";

/* What train checks before it reads data, beyond the keys: the TAO type and
 * options, and each layer's objective against its number of inputs n where
 * the config knows it (synthetic data: data.dim; layer i >= 2: the units of
 * layer i-1); for a data file n and N are known only when it is read
 * (*file_n = 1). Collective. */
static imx_err check_layers(imx_ctx *ctx, const imx_config *top, int *file_n) {
  int layers = top->model.nlayers > 1 ? top->model.nlayers : 1;
  *file_n = imx_sources[top->data.source].file; /* checked against the table */
  long long n = *file_n ? INT_MAX : top->data.dim, N = *file_n ? LLONG_MAX : top->data.samples;
  for (int i = 0; i < layers; i++) {
    imx_config c;
    imx_objective obj;
    IMX_TRY(imx_agree(ctx, imx_config_layer(ctx, top, i, &c)));
    if (i == 0) IMX_TRY(imx_agree(ctx, imx_train_options(ctx, &c)));
    IMX_TRY(imx_agree(ctx, imx_objective_resolve(ctx, &c, (int)n, N, &obj)));
    n = c.model.units; /* the features layer i+1 gets */
  }
  return IMX_OK;
}

/* `infomax config --check CONFIG.yaml` (--reference needs no MPI: main). */
static int cmd_config(imx_ctx *ctx, const imx_args *a) {
  imx_config cfg;
  if (a->npos != 1) {
    if (ctx->rank == 0) fputs("usage: infomax config --reference | --check CONFIG.yaml\n", stderr);
    return IMX_ERR_USAGE;
  }
  int file_n = 0;
  int rc = imx_config_setup(ctx, &cfg, a->pos[0], a->nset, a->set);
  if (!rc) rc = check_layers(ctx, &cfg, &file_n);
  if (rc) imx_report(ctx);
  else if (file_n)
    imx_log(ctx, IMX_INFO,
            "%s: valid (layer 1's objective against the data's dimensions is checked when "
            "train reads %s)",
            a->pos[0], cfg.data.path);
  else imx_log(ctx, IMX_INFO, "%s: valid", a->pos[0]);
  return rc;
}

/* The commands: a new command is one row (and its function in src/cli/). */
static const struct command {
  const char *name;
  int (*run)(imx_ctx *ctx, const imx_args *a);
  const char *args;    /* its arguments in the usage */
  const char *summary; /* one line in the usage */
  const char *help;    /* `infomax NAME --help` */
} commands[] = {
    {"train", imx_cmd_train, "CONFIG.yaml",
     "train a layer, or a stack (model.layers); results go to a new run directory", train_help},
    {"eval", imx_cmd_eval, "RUN_DIR",
     "judge a trained layer: terms, measures, linear probe, baselines (JSON)", eval_help},
    {"transform", imx_cmd_transform, "RUN_DIR --data PATH --out FEATURES",
     "apply a trained model to new rows: features (.npy or .h5)", transform_help},
    {"info", imx_cmd_info, "", "build and runtime: MPI, PETSc, BLAS, threads", info_help},
    {"bench", imx_cmd_bench, "[CONFIG.yaml] [KEY=V1,V2,...]",
     "time evaluations by phase (table and CSV)", bench_help},
    {"config", cmd_config, "--reference | --check CONFIG.yaml",
     "every configuration key (docs/config.md); validate a configuration", config_help},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* The row of a command, or NULL. */
static const struct command *find_command(const char *name) {
  for (size_t i = 0; name && i < NCOMMANDS; i++)
    if (!strcmp(name, commands[i].name)) return &commands[i];
  return NULL;
}

/* The general usage: one line per command, then the options. */
static void print_usage(FILE *f) {
  fputs(usage_head, f);
  for (size_t i = 0; i < NCOMMANDS; i++) {
    char left[96];
    snprintf(left, sizeof left, "%s%s%s", commands[i].name, commands[i].args[0] ? " " : "",
             commands[i].args);
    fprintf(f, "  %-18s  %s\n", left, commands[i].summary);
  }
  fputs(usage_tail, f);
}

/* Is tok an option for PETSc (one dash, then a letter)? */
static int petsc_option(const char *tok) {
  return tok[0] == '-' && tok[1] != '-' && !(tok[1] >= '0' && tok[1] <= '9') && tok[1] != '.' &&
         tok[1] != 0;
}

/* Split argv into our arguments and PETSc's (argv[0] plus every one-dash
 * option and its values). Returns 0, or 2 with a message on bad usage. */
static int split_args(int argc, char **argv, imx_args *a, int *pargc, char **pargv) {
  memset(a, 0, sizeof *a);
  a->pos = calloc((size_t)argc, sizeof *a->pos);
  a->set = calloc((size_t)argc, sizeof *a->set);
  if (!a->pos || !a->set) {
    fprintf(stderr, "infomax: out of memory parsing the command line\n");
    return IMX_ERR_NOMEM;
  }
  *pargc = 0;
  pargv[(*pargc)++] = argv[0];
  int in_petsc = 0;
  for (int i = 1; i < argc; i++) {
    const char *t = argv[i];
    if (!strncmp(t, "--", 2)) {
      in_petsc = 0;
      const char *need = NULL;
      if (!strcmp(t, "--help")) a->help = 1;
      else if (!strcmp(t, "--version")) a->version = 1;
      else if (!strcmp(t, "--reference")) a->reference = 1;
      else if (!strcmp(t, "--check")) a->reference = 0;
      else if (!strcmp(t, "--allow-changes")) a->allow_changes = 1;
      else if (!strcmp(t, "--force")) a->force = 1;
      else if (!strcmp(t, "--set") || !strcmp(t, "--out") || !strcmp(t, "--data") ||
               !strcmp(t, "--weights") || !strcmp(t, "--bias") || !strcmp(t, "--resume") ||
               !strcmp(t, "--labels") || !strcmp(t, "--features") || !strcmp(t, "--layer"))
        need = t;
      else if (!strncmp(t, "--set=", 6)) a->set[a->nset++] = argv[i] + 6;
      else {
        fprintf(stderr, "infomax: unknown option %s (see infomax --help)\n", t);
        return IMX_ERR_USAGE;
      }
      if (need) {
        if (i + 1 >= argc) {
          fprintf(stderr, "infomax: %s needs a value\n", t);
          return IMX_ERR_USAGE;
        }
        char *v = argv[++i];
        if (!strcmp(need, "--set")) a->set[a->nset++] = v;
        else if (!strcmp(need, "--out")) a->out = v;
        else if (!strcmp(need, "--data")) a->data = v;
        else if (!strcmp(need, "--weights")) a->weights = v;
        else if (!strcmp(need, "--resume")) a->resume = v;
        else if (!strcmp(need, "--labels")) a->labels = v;
        else if (!strcmp(need, "--features")) a->features = v;
        else if (!strcmp(need, "--layer")) a->layer = v;
        else a->bias = v;
      }
    } else if (petsc_option(t)) {
      in_petsc = 1;
      if (!strcmp(t, "-help") || !strcmp(t, "-h")) a->help = 1;
      pargv[(*pargc)++] = argv[i];
    } else if (in_petsc) {
      pargv[(*pargc)++] = argv[i]; /* value of the preceding PETSc option */
      in_petsc = 0;
    } else if (!a->command) {
      a->command = t;
    } else {
      a->pos[a->npos++] = argv[i];
    }
  }
  pargv[*pargc] = NULL;
  return 0;
}

/* Ranks other than 0 keep PETSc's standard output (monitors, -tao_test_gradient)
 * to themselves: every rank runs the same sequential TAO. */
static PetscErrorCode quiet_vfprintf(FILE *f, const char *fmt, va_list ap) {
  if (f == stdout) return 0;
  vfprintf(f, fmt, ap);
  return 0;
}

/* PETSc options nobody read: a typo (-tao_monitr) or an option of another
 * TAO type. Said at the end (the work is done; train's summary.json lists
 * them too). */
static void warn_unused_options(imx_ctx *ctx) {
  char *left = imx_train_options_unused();
  if (left && left[0])
    imx_log(ctx, IMX_WARN,
            "PETSc options nobody read (a typo, or an option of another TAO type?): %s", left);
  free(left);
}

int main(int argc, char **argv) {
  /* Slurm can signal at any time: from the first instruction on, SIGUSR1,
   * SIGTERM and ^C only ask for a stop (include/imx/signals.h). */
  imx_signals_install();
  /* Large MPI reduction buffers: keep them in the heap instead of mmap/munmap
   * per call, whose first-touch page faults dominate on some VMs. */
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);

  imx_args a;
  memset(&a, 0, sizeof a);
  int pargc;
  char **pargv = calloc((size_t)argc + 1, sizeof *pargv);
  int rc = pargv ? split_args(argc, argv, &a, &pargc, pargv) : IMX_ERR_NOMEM;
  /* Usage errors, --version, help and the reference need neither MPI nor PETSc. */
  int done = 1;
  if (rc) {
  } else if (a.version) {
    printf("infomax %s\n", imx_version());
  } else if (!a.command) {
    print_usage(a.help ? stdout : stderr);
    rc = a.help ? 0 : IMX_ERR_USAGE;
  } else if (a.help || !strcmp(a.command, "help")) {
    const char *which = strcmp(a.command, "help") ? a.command : a.npos ? a.pos[0] : NULL;
    const struct command *c = find_command(which);
    if (c) {
      fputs(c->help, stdout);
    } else if (which) {
      fprintf(stderr, "infomax: unknown command \"%s\"\n\n", which);
      print_usage(stderr);
    } else {
      print_usage(stdout);
    }
    rc = c || !which ? 0 : IMX_ERR_USAGE;

  } else if (!strcmp(a.command, "config") && a.reference) {
    imx_config_reference(stdout);
  } else {
    done = 0;
  }
  if (done) {
    free(a.pos), free(a.set), free(pargv);
    return rc;
  }

  /* Held while MPI and PETSc start (PetscInitialize sets SIGTERM to its own
   * handler, which aborts): a signal meanwhile waits for ours. */
  imx_signals_hold(1);
  MPI_Init(&argc, &argv);
  imx_ctx ctx;
  if (imx_ctx_init(&ctx, MPI_COMM_WORLD)) MPI_Abort(MPI_COMM_WORLD, IMX_ERR_MPI);
  if (getenv("IMX_VERBOSE")) imx_log_set_level(IMX_DEBUG);
  PetscErrorCode pe = PetscInitialize(&pargc, &pargv, NULL, NULL);
  if (pe) {
    fprintf(stderr, "infomax: PetscInitialize failed (%d)\n", (int)pe);
    MPI_Abort(MPI_COMM_WORLD, IMX_ERR_PETSC);
  }
  if (ctx.rank != 0) PetscVFPrintf = quiet_vfprintf;
  imx_signals_install();
  imx_signals_hold(0);
  imx_timer_register_petsc();
  imx_timer_start(IMX_T_TOTAL);

  const struct command *c = find_command(a.command);
  if (c) {
    rc = c->run(&ctx, &a);
  } else { /* after MPI_Init, so that only rank 0 says it */
    if (ctx.rank == 0) {
      fprintf(stderr, "infomax: unknown command \"%s\"\n\n", a.command);
      print_usage(stderr);
    }
    rc = IMX_ERR_USAGE;
  }

  if (c) warn_unused_options(&ctx);
  /* PetscFinalize sets SIGTERM back to the default action: a late signal
   * must not kill a finished command, so it stays pending until exit. */
  imx_signals_hold(1);
  PetscFinalize();
  imx_ctx_finalize(&ctx);
  MPI_Finalize();
  free(a.pos), free(a.set), free(pargv);
  return rc;
}
