/* config YAML: reading a config file (model.layers and optimizer.stages
 * included) and the
 * `--set section.key=value` overrides, with the same per-key checks; errors
 * name file:line:column from the parser's marks.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_impl.h"

/* The parser state of one file; errors are recorded in ctx with file:line:col. */
typedef struct {
  imx_ctx *ctx;
  const char *file;
  FILE *fp;
  yaml_parser_t parser;
  yaml_event_t ev; /* the current event, valid while have_ev */
  int have_ev;
  int key_line[IMX_CONFIG_MAX_KEYS]; /* line where each key was set (0 = not yet), for duplicates */
  int section_line[NSECTIONS];
  int layers_line; /* line of model.layers (0 = not yet) */
  int stages_line; /* line of optimizer.stages (0 = not yet) */
} reader;

/* Record IMX_ERR_CONFIG at a parser mark (0-based in libyaml, 1-based for people). */
static imx_err fail_mark(reader *rd, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static imx_err fail_mark(reader *rd, yaml_mark_t m, const char *fmt, ...) {
  char what[IMX_MSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return imx_fail(rd->ctx, IMX_ERR_CONFIG, "%s:%zu:%zu: %s", rd->file, m.line + 1, m.column + 1,
                  what);
}

/* Turn the parser's error record into ours. */
static imx_err syntax_error(reader *rd) {
  int read_errno = errno; /* from the failed read, if that is what happened */
  const yaml_parser_t *p = &rd->parser;
  if (p->error == YAML_MEMORY_ERROR)
    return imx_fail(rd->ctx, IMX_ERR_NOMEM, "%s: out of memory while parsing", rd->file);
  if (p->error == YAML_READER_ERROR) {
    /* Reader errors (bad UTF-8, read failure) have a byte offset, no mark. */
    if (ferror(rd->fp))
      return imx_fail(rd->ctx, IMX_ERR_IO, "cannot read config %s: %s", rd->file,
                      strerror(read_errno));
    return imx_fail(rd->ctx, IMX_ERR_CONFIG, "%s: byte %zu: %s", rd->file, p->problem_offset,
                    p->problem ? p->problem : "cannot decode");
  }
  const char *problem = p->problem ? p->problem : "YAML syntax error";
  if (p->context)
    return fail_mark(rd, p->problem_mark, "%s (%s, started at %zu:%zu)", problem, p->context,
                     p->context_mark.line + 1, p->context_mark.column + 1);
  return fail_mark(rd, p->problem_mark, "%s", problem);
}

/* Advance to the next event. Anchors, aliases and tags are refused here, once,
 * for every node: a config is plain data and they would only hide what it says. */
static imx_err next_event(reader *rd) {
  if (rd->have_ev) yaml_event_delete(&rd->ev);
  rd->have_ev = 0;
  if (!yaml_parser_parse(&rd->parser, &rd->ev)) return syntax_error(rd);
  rd->have_ev = 1;
  const yaml_event_t *e = &rd->ev;
  const yaml_char_t *anchor = NULL, *tag = NULL;
  switch (e->type) {
    case YAML_ALIAS_EVENT:
      return fail_mark(rd, e->start_mark, "aliases (*%s) are not supported",
                       (const char *)e->data.alias.anchor);
    case YAML_SCALAR_EVENT:
      anchor = e->data.scalar.anchor, tag = e->data.scalar.tag;
      break;
    case YAML_MAPPING_START_EVENT:
      anchor = e->data.mapping_start.anchor, tag = e->data.mapping_start.tag;
      break;
    case YAML_SEQUENCE_START_EVENT:
      anchor = e->data.sequence_start.anchor, tag = e->data.sequence_start.tag;
      break;
    default:
      break;
  }
  if (anchor)
    return fail_mark(rd, e->start_mark, "anchors (&%s) are not supported", (const char *)anchor);
  if (tag) {
    /* Show "!!int" as written, not libyaml's expanded "tag:yaml.org,2002:int". */
    const char *t = (const char *)tag, *std = "tag:yaml.org,2002:";
    int is_std = !strncmp(t, std, strlen(std));
    return fail_mark(rd, e->start_mark, "tags (%s%s) are not supported", is_std ? "!!" : "",
                     is_std ? t + strlen(std) : t);
  }
  return IMX_OK;
}

static const char *node_kind(yaml_event_type_t t) {
  switch (t) {
    case YAML_MAPPING_START_EVENT:
      return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
      return "a sequence";
    case YAML_SCALAR_EVENT:
      return "a scalar";
    default:
      return "something else";
  }
}

/* The current event is a plain null scalar ("model:" with nothing after it). */
static int event_is_null(const yaml_event_t *e) {
  return e->type == YAML_SCALAR_EVENT && e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
         imx_yaml_is_null((const char *)e->data.scalar.value);
}

/* The text of the current scalar event; refuses embedded NULs, which a C
 * string would silently cut. */
static imx_err scalar_text(reader *rd, const char **text) {
  const yaml_event_t *e = &rd->ev;
  *text = (const char *)e->data.scalar.value;
  if (strlen(*text) != e->data.scalar.length)
    return fail_mark(rd, e->start_mark, "a NUL character is not allowed here");
  return IMX_OK;
}

/* ---- model.layers and optimizer.stages -------------------------------------
 * Lists of mappings, one per layer (stage), of settings that differ from the
 * rest of the file for that layer (stage): `section.key: value`, or a bare
 * key. Stored as the assignment lines of imx_config_set, which checks each
 * value.
 *
 * model.layers: keys of the model, objective and optimizer sections; a bare
 * key is the model's (`units: 32`).
 * optimizer.stages: the keys imx_config_stage_key_ok allows (those that keep
 * the parameter vector); a bare key is the allowed key of that name
 * (`max_it: 300`, `hsic_bandwidth: 0.5`). */

/* One list key: its name and where its entries go. */
typedef struct {
  const char *name; /* "model.layers" */
  int max;          /* entries at most */
  int *count;       /* entries given */
  char (*set)[IMX_OPTS_LEN];
  int stages; /* 1: optimizer.stages's rules, 0: model.layers's */
} list_key;

/* The sections an entry of model.layers may set. */
static int layer_section_ok(int s) {
  return s == SEC_MODEL || s == SEC_OBJECTIVE || s == SEC_OPTIMIZER;
}

/* The full name of an entry's key into full: as given, or for a bare name the
 * list's section (layers) or the one allowed key of that name (stages). */
static void entry_key(const list_key *lk, const char *name, char *full, size_t n) {
  if (strchr(name, '.') || !lk->stages) {
    snprintf(full, n, "%s%.80s", strchr(name, '.') ? "" : "model.", name);
    return;
  }
  snprintf(full, n, "%.80s", name);
  for (int s = 0; s < NSECTIONS; s++) {
    char try[96];
    snprintf(try, sizeof try, "%s.%.80s", imx_config_sections[s], name);
    if (imx_config_stage_key_ok(try)) {
      snprintf(full, n, "%s", try);
      return;
    }
  }
}

/* Does the entry's key pass the list's rule? Fills why when it does not. */
static int entry_key_ok(const list_key *lk, const char *full, char *why, size_t n) {
  if (lk->stages) {
    if (imx_config_stage_key_ok(full)) return 1;
    snprintf(why, n,
             "a stage sets the objective's weights and settings (not objective.supervised or "
             "label_fraction), optimizer.type, max_it, gatol, grtol, precondition, the "
             "mini-batch keys and parallel.precision only: keys that keep the parameter vector "
             "and the run's data and layer");
    return 0;
  }
  int s = -1;
  if (strchr(full, '.')) {
    char sec[96];
    snprintf(sec, sizeof sec, "%.*s", (int)(strchr(full, '.') - full), full);
    s = imx_section_find(sec);
  }
  if (s >= 0 && layer_section_ok(s) && strcmp(full, "model.layers") &&
      strcmp(full, "optimizer.stages"))
    return 1;
  snprintf(why, n,
           "a layer sets keys of model, objective and optimizer only (data, parallel, eval and "
           "output are the run's)");
  return 0;
}

/* One assignment "section.key=value" of entry i into cfg, checked like --set
 * (the error names the list's entry i+1 at mark). */
static imx_err entry_assign(reader *rd, const list_key *lk, yaml_mark_t key_mark, yaml_mark_t mark,
                            int i, const char *name, const char *text, imx_config *cfg) {
  char full[96], why[400];
  entry_key(lk, name, full, sizeof full);
  if (!entry_key_ok(lk, full, why, sizeof why))
    return fail_mark(rd, key_mark, "%s[%d]: \"%.80s\": %s", lk->name, i + 1, name, why);
  char line[IMX_OPTS_LEN];
  int len = snprintf(line, sizeof line, "%s=%s\n", full, text);
  size_t used = strlen(lk->set[i]);
  if (len >= (int)sizeof line || used + (size_t)len >= IMX_OPTS_LEN)
    return fail_mark(rd, mark, "%s[%d]: more than %d characters of settings", lk->name, i + 1,
                     IMX_OPTS_LEN - 1);
  imx_config scratch = *cfg;
  line[len - 1] = '\0';
  if (imx_config_set(rd->ctx, &scratch, line)) {
    const char *msg = rd->ctx->msg + strlen("--set ") + strlen(line);
    return fail_mark(rd, mark, "%s[%d]: %s", lk->name, i + 1, *msg == ':' ? msg + 2 : rd->ctx->msg);
  }
  line[len - 1] = '\n';
  memcpy(lk->set[i] + used, line, (size_t)len + 1);
  return IMX_OK;
}

/* A list key (model.layers, optimizer.stages): the key has been read; *line
 * is where it was first given (0 = not yet). */
static imx_err parse_list(reader *rd, const list_key *lk, int *line, imx_config *cfg) {
  yaml_mark_t key_mark = rd->ev.start_mark;
  if (*line)
    return fail_mark(rd, key_mark, "duplicate key %s (first given at line %d)", lk->name, *line);
  *line = (int)key_mark.line + 1;
  IMX_TRY(next_event(rd));
  *lk->count = 0;
  memset(lk->set, 0, (size_t)lk->max * IMX_OPTS_LEN);
  if (event_is_null(&rd->ev)) return IMX_OK;
  if (rd->ev.type != YAML_SEQUENCE_START_EVENT)
    return fail_mark(rd, rd->ev.start_mark, "%s: expected a list of %s (- {...}), got %s", lk->name,
                     lk->stages ? "stages" : "layers", node_kind(rd->ev.type));
  for (int i = 0;; i++) {
    IMX_TRY(next_event(rd));
    if (rd->ev.type == YAML_SEQUENCE_END_EVENT) return IMX_OK;
    if (i == lk->max)
      return fail_mark(rd, rd->ev.start_mark, "%s: at most %d %s", lk->name, lk->max,
                       lk->stages ? "stages" : "layers");
    *lk->count = i + 1;
    if (event_is_null(&rd->ev)) continue; /* "- ~": the file's settings */
    if (rd->ev.type != YAML_MAPPING_START_EVENT)
      return fail_mark(rd, rd->ev.start_mark,
                       "%s[%d]: expected a mapping of key: "
                       "value, got %s",
                       lk->name, i + 1, node_kind(rd->ev.type));
    for (;;) {
      IMX_TRY(next_event(rd));
      if (rd->ev.type == YAML_MAPPING_END_EVENT) break;
      yaml_mark_t mark = rd->ev.start_mark;
      if (rd->ev.type != YAML_SCALAR_EVENT)
        return fail_mark(rd, mark, "%s[%d]: keys must be names, got %s", lk->name, i + 1,
                         node_kind(rd->ev.type));
      const char *name;
      IMX_TRY(scalar_text(rd, &name));
      char key[96];
      snprintf(key, sizeof key, "%s", name);
      IMX_TRY(next_event(rd));
      if (rd->ev.type != YAML_SCALAR_EVENT)
        return fail_mark(rd, rd->ev.start_mark,
                         "%s[%d].%s: expected a single value, "
                         "got %s",
                         lk->name, i + 1, key, node_kind(rd->ev.type));
      const char *text;
      IMX_TRY(scalar_text(rd, &text));
      IMX_TRY(entry_assign(rd, lk, mark, rd->ev.start_mark, i, key, text, cfg));
    }
  }
}

/* One section's mapping: the MAPPING_START has been read. */
static imx_err parse_section(reader *rd, int s, imx_config *cfg) {
  for (;;) {
    IMX_TRY(next_event(rd));
    if (rd->ev.type == YAML_MAPPING_END_EVENT) return IMX_OK;
    if (rd->ev.type != YAML_SCALAR_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "keys in %s must be names, got %s",
                       imx_config_sections[s], node_kind(rd->ev.type));
    const char *name;
    IMX_TRY(scalar_text(rd, &name));
    if (s == SEC_MODEL && !strcmp(name, "layers")) {
      list_key lk = {"model.layers", IMX_MAX_LAYERS, &cfg->model.nlayers, cfg->model.layer_set, 0};
      IMX_TRY(parse_list(rd, &lk, &rd->layers_line, cfg));
      continue;
    }
    if (s == SEC_OPTIMIZER && !strcmp(name, "stages")) {
      list_key lk = {"optimizer.stages", IMX_MAX_STAGES, &cfg->optimizer.nstages,
                     cfg->optimizer.stage_set, 1};
      IMX_TRY(parse_list(rd, &lk, &rd->stages_line, cfg));
      continue;
    }
    int k = imx_key_find(s, name);
    yaml_mark_t key_mark = rd->ev.start_mark;
    if (k < 0) {
      char hint[96];
      imx_config_suggest(hint, sizeof hint, name, NULL, s);
      return fail_mark(rd, key_mark, "unknown key \"%.80s\" in %s%s", name, imx_config_sections[s],
                       hint);
    }
    if (rd->key_line[k])
      return fail_mark(rd, key_mark, "duplicate key %s.%s (first given at line %d)",
                       imx_config_sections[s], imx_config_keys[k].key, rd->key_line[k]);
    rd->key_line[k] = (int)key_mark.line + 1;

    IMX_TRY(next_event(rd));
    char full[96];
    imx_key_full_name(&imx_config_keys[k], full, sizeof full);
    if (rd->ev.type != YAML_SCALAR_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "%s: expected a single value, got %s", full,
                       node_kind(rd->ev.type));
    const char *text;
    IMX_TRY(scalar_text(rd, &text));
    key_value v;
    char err[512];
    int quoted = rd->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (imx_key_parse(&imx_config_keys[k], text, quoted, &v, err, sizeof err))
      return fail_mark(rd, rd->ev.start_mark, "%s: %s", full, err);
    imx_key_store(&imx_config_keys[k], &v, cfg);
  }
}

/* The top-level mapping of sections: the MAPPING_START has been read. */
static imx_err parse_sections(reader *rd, imx_config *cfg) {
  for (;;) {
    IMX_TRY(next_event(rd));
    if (rd->ev.type == YAML_MAPPING_END_EVENT) return IMX_OK;
    if (rd->ev.type != YAML_SCALAR_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "section names must be names, got %s",
                       node_kind(rd->ev.type));
    const char *name;
    IMX_TRY(scalar_text(rd, &name));
    int s = imx_section_find(name);
    yaml_mark_t mark = rd->ev.start_mark;
    if (s < 0) {
      char hint[192], list[128];
      imx_config_suggest(hint, sizeof hint, name, imx_config_sections, -1);
      if (!hint[0]) {
        imx_config_join(list, sizeof list, imx_config_sections, "");
        snprintf(hint, sizeof hint, " (sections are %s)", list);
      }
      return fail_mark(rd, mark, "unknown section \"%.80s\"%s", name, hint);
    }
    if (rd->section_line[s])
      return fail_mark(rd, mark, "duplicate section %s (first given at line %d)",
                       imx_config_sections[s], rd->section_line[s]);
    rd->section_line[s] = (int)mark.line + 1;

    IMX_TRY(next_event(rd));
    if (event_is_null(&rd->ev)) continue; /* "model:" alone: an empty section */
    if (rd->ev.type != YAML_MAPPING_START_EVENT)
      return fail_mark(rd, rd->ev.start_mark, "section %s must be a mapping of key: value, got %s",
                       imx_config_sections[s], node_kind(rd->ev.type));
    IMX_TRY(parse_section(rd, s, cfg));
  }
}

/* The whole stream: nothing (an empty file or only comments), or one document
 * that is empty or a mapping of sections. */
static imx_err parse_stream(reader *rd, imx_config *cfg) {
  IMX_TRY(next_event(rd)); /* STREAM-START */
  IMX_TRY(next_event(rd));
  if (rd->ev.type == YAML_STREAM_END_EVENT) return IMX_OK;
  IMX_TRY(next_event(rd)); /* after DOCUMENT-START: the root node */
  if (rd->ev.type == YAML_MAPPING_START_EVENT) {
    IMX_TRY(parse_sections(rd, cfg));
  } else if (!event_is_null(&rd->ev)) {
    return fail_mark(rd, rd->ev.start_mark,
                     "the top level must be a mapping of sections (data, model, ...), got %s",
                     node_kind(rd->ev.type));
  }
  IMX_TRY(next_event(rd)); /* DOCUMENT-END */
  IMX_TRY(next_event(rd));
  if (rd->ev.type != YAML_STREAM_END_EVENT)
    return fail_mark(rd, rd->ev.start_mark,
                     "a config file holds one YAML document, found a second");
  return IMX_OK;
}

/* Parse the open stream fp (named `name` in messages) into cfg. */
static imx_err load_stream(imx_ctx *ctx, imx_config *cfg, const char *name, FILE *fp) {
  reader *rd = calloc(1, sizeof *rd);
  if (!rd) return imx_fail(ctx, IMX_ERR_NOMEM, "config reader for %s", name);
  imx_err err;
  rd->ctx = ctx;
  rd->file = name;
  rd->fp = fp;
  if (!yaml_parser_initialize(&rd->parser)) {
    err = imx_fail(ctx, IMX_ERR_NOMEM, "YAML parser for %s", name);
    goto out_free_rd;
  }
  yaml_parser_set_input_file(&rd->parser, rd->fp);

  /* Parse into a copy so that a failed load leaves cfg as it was. */
  imx_config next = *cfg;
  err = parse_stream(rd, &next);
  if (!err) {
    memset(next.file, 0, sizeof next.file);
    memcpy(next.file, name, strlen(name));
    *cfg = next;
  }

  if (rd->have_ev) yaml_event_delete(&rd->ev);
  yaml_parser_delete(&rd->parser);
out_free_rd:
  free(rd);
  return err;
}

/* Read a YAML file into cfg. Local. cfg is changed only on success; on success
 * cfg->file = path. Errors: IMX_ERR_IO (cannot open or read), IMX_ERR_CONFIG
 * (syntax, unknown or duplicate key, bad value; message starts with
 * path:line:col), IMX_ERR_NOMEM. Cross-field checks are left to
 * imx_config_validate, since overrides may still complete the config. */
imx_err imx_config_load(imx_ctx *ctx, imx_config *cfg, const char *path) {
  if (!path) return imx_fail(ctx, IMX_ERR_INTERNAL, "imx_config_load: no path given");
  if (strlen(path) >= IMX_PATH_LEN)
    return imx_fail(ctx, IMX_ERR_CONFIG, "config path too long (%zu characters, at most %d)",
                    strlen(path), IMX_PATH_LEN - 1);
  FILE *fp = fopen(path, "rb");
  if (!fp) return imx_fail(ctx, IMX_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
  imx_err err = load_stream(ctx, cfg, path, fp);
  fclose(fp);
  return err;
}

imx_err imx_config_load_text(imx_ctx *ctx, imx_config *cfg, const char *name, const char *text) {
  if (strlen(name) >= IMX_PATH_LEN)
    return imx_fail(ctx, IMX_ERR_CONFIG, "config name too long (%zu characters, at most %d)",
                    strlen(name), IMX_PATH_LEN - 1);
  FILE *fp = fmemopen((void *)text, strlen(text), "r");
  if (!fp) return imx_fail(ctx, IMX_ERR_NOMEM, "config text of %s", name);
  imx_err err = load_stream(ctx, cfg, name, fp);
  fclose(fp);
  return err;
}

/* ---- overrides ----------------------------------------------------------- */

/* Copy s[0..n) without surrounding blanks into a new string (caller frees). */
static char *trimmed(const char *s, size_t n) {
  while (n && isspace((unsigned char)*s)) s++, n--;
  while (n && isspace((unsigned char)s[n - 1])) n--;
  char *t = malloc(n + 1);
  if (t) {
    memcpy(t, s, n);
    t[n] = '\0';
  }
  return t;
}

/* Apply "section.key=value" to cfg. Local. The value is plain YAML scalar
 * text taken literally (no quotes needed, none removed); it gets the same
 * checks as in a file. Errors: IMX_ERR_CONFIG with "--set ASSIGNMENT: ...",
 * IMX_ERR_NOMEM. */
imx_err imx_config_set(imx_ctx *ctx, imx_config *cfg, const char *assignment) {
  const char *eq = strchr(assignment, '=');
  if (!eq)
    return imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: expected section.key=value", assignment);
  char *name = trimmed(assignment, (size_t)(eq - assignment));
  char *text = trimmed(eq + 1, strlen(eq + 1));
  imx_err err = IMX_OK;
  if (!name || !text) {
    err = imx_fail(ctx, IMX_ERR_NOMEM, "--set %.200s", assignment);
    goto out_free;
  }

  char *dot = strchr(name, '.');
  if (!dot) {
    /* "lambda=0.5": point at the section if the key name is unique. */
    int found = -1, nfound = 0;
    for (int i = 0; i < imx_config_nkeys; i++)
      if (!strcmp(imx_config_keys[i].key, name)) found = i, nfound++;
    char hint[128] = "";
    if (nfound == 1)
      snprintf(hint, sizeof hint, " (did you mean \"%s.%s\"?)",
               imx_config_sections[imx_config_keys[found].section], imx_config_keys[found].key);
    err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: expected section.key=value%s", assignment,
                   hint);
    goto out_free;
  }
  *dot = '\0';
  const char *key = dot + 1;
  int s = imx_section_find(name);
  if (s < 0) {
    char hint[96];
    imx_config_suggest(hint, sizeof hint, name, imx_config_sections, -1);
    err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: unknown section \"%.80s\"%s", assignment,
                   name, hint);
    goto out_free;
  }
  if (s == SEC_MODEL && !strcmp(key, "layers")) {
    /* A list is set in the file; --set can only remove it (back to one layer). */
    if (imx_yaml_is_null(text) || !strcmp(text, "[]")) {
      cfg->model.nlayers = 0;
      memset(cfg->model.layer_set, 0, sizeof cfg->model.layer_set);
    } else {
      err = imx_fail(ctx, IMX_ERR_CONFIG,
                     "--set %.200s: model.layers is a list: give it in the "
                     "config file (--set model.layers=[] removes it)",
                     assignment);
    }
    goto out_free;
  }
  if (s == SEC_OPTIMIZER && !strcmp(key, "stages")) {
    /* As model.layers: --set can only remove the list (one stage). */
    if (imx_yaml_is_null(text) || !strcmp(text, "[]")) {
      cfg->optimizer.nstages = 0;
      memset(cfg->optimizer.stage_set, 0, sizeof cfg->optimizer.stage_set);
    } else {
      err = imx_fail(ctx, IMX_ERR_CONFIG,
                     "--set %.200s: optimizer.stages is a list: give it in the "
                     "config file (--set optimizer.stages=[] removes it)",
                     assignment);
    }
    goto out_free;
  }
  int k = imx_key_find(s, key);
  if (k < 0) {
    char hint[96];
    imx_config_suggest(hint, sizeof hint, key, NULL, s);
    err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: unknown key \"%.80s\" in %s%s", assignment,
                   key, imx_config_sections[s], hint);
    goto out_free;
  }
  key_value v;
  char why[512], full[96];
  if (imx_key_parse(&imx_config_keys[k], text, 0, &v, why, sizeof why)) {
    err = imx_fail(ctx, IMX_ERR_CONFIG, "--set %.200s: %s: %s", assignment,
                   imx_key_full_name(&imx_config_keys[k], full, sizeof full), why);
    goto out_free;
  }
  imx_key_store(&imx_config_keys[k], &v, cfg);

out_free:
  free(name);
  free(text);
  return err;
}
