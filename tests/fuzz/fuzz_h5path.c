/* fuzz_h5path: the HDF5 path syntax "FILE.h5:/DATASET" on arbitrary strings.
 *
 * The HDF5 file format itself is libhdf5's (not ours, and not fuzzed here);
 * what is ours and takes outside input is the split of data.path,
 * data.labels, eval.test_path and eval.test_labels into a file and a dataset
 * (imx_h5_path_parse, src/data/h5path.c) and the suffix that picks the source
 * (imx_source_of_path, src/data/source.c). Each input, cut at its first NUL,
 * is one such string. Invariants checked besides "no crash, no sanitizer
 * report":
 *   - an error is IMX_ERR_CONFIG, recorded in the context, with a message;
 *   - an accepted split puts the string back together: the file is a
 *     non-empty prefix; without a dataset it is the whole string, else it
 *     ends in ".h5" or ".hdf5" and is followed by ':' and the dataset (its
 *     leading '/' optional in the input);
 *   - a dataset starts with '/', has no empty or "." component, no trailing
 *     '/' and no control character;
 *   - a string with a dataset is named hdf5 by imx_source_of_path when its
 *     file is longer than the suffix, unless the suffix of another format
 *     followed by ':' comes first ("a.npy:b.h5:/x" is npy).
 */
#include "fuzz_common.h" /* first: it defines _GNU_SOURCE */

#include <stdint.h>
#include <string.h>

#include "../../src/data/data_impl.h"

static int ends_with(const char *s, const char *x) {
  size_t L = strlen(s), n = strlen(x);
  return L >= n && !strcmp(s + L - n, x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char spec[IMX_PATH_LEN + 64];
  size_t n = size < sizeof spec - 1 ? size : sizeof spec - 1;
  memcpy(spec, data, n);
  spec[n] = '\0';
  imx_ctx ctx;
  fuzz_ctx(&ctx);
  imx_h5_path p;
  imx_err err = imx_h5_path_parse(&ctx, spec, &p);
  if (err) {
    FUZZ_CHECK(err == IMX_ERR_CONFIG && ctx.code == err, "code %d", (int)err);
    FUZZ_CHECK(ctx.msg[0] != '\0', "no message");
    return 0;
  }
  size_t fl = strlen(p.file), L = strlen(spec);
  FUZZ_CHECK(fl > 0 && fl < sizeof p.file && !strncmp(spec, p.file, fl), "file %s of %s", p.file,
             spec);
  if (!p.dataset[0]) {
    FUZZ_CHECK(fl == L, "no dataset but the file %s is not the whole %s", p.file, spec);
    return 0;
  }
  FUZZ_CHECK(ends_with(p.file, ".h5") || ends_with(p.file, ".hdf5"), "file %s", p.file);
  FUZZ_CHECK(spec[fl] == ':', "no ':' after the file in %s", spec);
  const char *rest = spec + fl + 1 + (spec[fl + 1] == '/');
  FUZZ_CHECK(p.dataset[0] == '/' && !strcmp(p.dataset + 1, rest), "dataset %s of %s", p.dataset,
             spec);
  const char *ds = p.dataset;
  for (size_t i = 0; ds[i]; i++) {
    unsigned char c = (unsigned char)ds[i];
    FUZZ_CHECK(c >= 0x20 && c != 0x7f, "control character in %s", ds);
    if (c == '/') {
      FUZZ_CHECK(ds[i + 1] != '\0' && ds[i + 1] != '/', "empty component in %s", ds);
      FUZZ_CHECK(!(ds[i + 1] == '.' && (ds[i + 2] == '/' || ds[i + 2] == '\0')),
                 "'.' component in %s", ds);
    }
  }
  /* The source: hdf5, unless another format's suffix followed by ':' comes
   * first ("a.npy:b.h5:/x" is npy; read as hdf5 only when data.source says so). */
  imx_source src = imx_source_of_path(spec);
  if (fl > strlen(ends_with(p.file, ".h5") ? ".h5" : ".hdf5") && src != IMX_SRC_HDF5) {
    const char *x = imx_sources[src].suffix;
    FUZZ_CHECK(x && imx_sources[src].file, "%s is named %s", spec, imx_sources[src].name);
    int earlier = 0;
    for (const char *c = strchr(spec, ':'); c && (size_t)(c - spec) < fl; c = strchr(c + 1, ':'))
      earlier |= (size_t)(c - spec) > strlen(x) && !strncmp(c - strlen(x), x, strlen(x));
    FUZZ_CHECK(earlier, "%s is named %s, not hdf5", spec, imx_sources[src].name);
  }
  return 0;
}
