/* config writer: the resolved configuration as YAML (loadable again) and the
 * reference page of every key (`infomax config --reference`, docs/config.md),
 * both generated from the key table.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "config_impl.h"

static int emit_scalar(yaml_emitter_t *em, const char *text, yaml_scalar_style_t style) {
  yaml_event_t ev;
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1,
                                    style))
    return 0;
  return yaml_emitter_emit(em, &ev); /* takes the event, also on failure */
}

static int emit_mapping_start(yaml_emitter_t *em) {
  yaml_event_t ev;
  if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE)) return 0;
  return yaml_emitter_emit(em, &ev);
}

static int emit_mapping_end(yaml_emitter_t *em) {
  yaml_event_t ev;
  if (!yaml_mapping_end_event_initialize(&ev)) return 0;
  return yaml_emitter_emit(em, &ev);
}

/* A list key (model.layers, optimizer.stages), when given: one flow mapping
 * per entry of its assignments. */
static int emit_list(yaml_emitter_t *em, const char *key, int count,
                     const char (*set)[IMX_OPTS_LEN]) {
  yaml_event_t ev;
  if (!count) return 1;
  if (!emit_scalar(em, key, YAML_PLAIN_SCALAR_STYLE) ||
      !yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
      !yaml_emitter_emit(em, &ev))
    return 0;
  for (int i = 0; i < count; i++) {
    if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_MAPPING_STYLE) ||
        !yaml_emitter_emit(em, &ev))
      return 0;
    char lines[IMX_OPTS_LEN];
    snprintf(lines, sizeof lines, "%s", set[i]);
    for (char *p = lines, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
      *nl = '\0';
      char *eq = strchr(p, '=');
      if (!eq) return 0;
      *eq = '\0';
      if (!emit_scalar(em, p, YAML_PLAIN_SCALAR_STYLE) ||
          !emit_scalar(
              em, eq + 1,
              imx_yaml_is_null(eq + 1) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE))
        return 0;
    }
    if (!emit_mapping_end(em)) return 0;
  }
  return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
}

/* All events of the resolved config; 0 on the first failure. */
static int emit_config(yaml_emitter_t *em, const imx_config *cfg) {
  yaml_event_t ev;
  if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || !yaml_emitter_emit(em, &ev))
    return 0;
  if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
      !yaml_emitter_emit(em, &ev))
    return 0;
  if (!emit_mapping_start(em)) return 0;
  for (int s = 0; s < NSECTIONS; s++) {
    if (!emit_scalar(em, imx_config_sections[s], YAML_PLAIN_SCALAR_STYLE) ||
        !emit_mapping_start(em))
      return 0;
    for (int i = 0; i < imx_config_nkeys; i++) {
      const key_row *r = &imx_config_keys[i];
      if (r->section != s) continue;
      key_value v;
      char buf[64];
      imx_key_fetch(r, cfg, &v);
      const char *text = imx_key_format(r, &v, buf, sizeof buf);
      /* Let the emitter choose (plain where it can), except that a string
       * which would read back as null ("", "~", "null") must be quoted. */
      int is_string = (r->type == K_STRING || r->type == K_NAME);
      yaml_scalar_style_t style = (is_string && imx_yaml_is_null(text))
                                      ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                  : is_string ? YAML_ANY_SCALAR_STYLE
                                              : YAML_PLAIN_SCALAR_STYLE;
      if (!emit_scalar(em, r->key, YAML_PLAIN_SCALAR_STYLE) || !emit_scalar(em, text, style))
        return 0;
    }
    if (s == SEC_MODEL && !emit_list(em, "layers", cfg->model.nlayers,
                                     (const char(*)[IMX_OPTS_LEN])cfg->model.layer_set))
      return 0;
    if (s == SEC_OPTIMIZER && !emit_list(em, "stages", cfg->optimizer.nstages,
                                         (const char(*)[IMX_OPTS_LEN])cfg->optimizer.stage_set))
      return 0;
    if (!emit_mapping_end(em)) return 0;
  }
  if (!emit_mapping_end(em)) return 0;
  if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(em, &ev)) return 0;
  if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev)) return 0;
  return yaml_emitter_flush(em);
}

/* Write the resolved configuration as YAML, every key, in table order; it
 * loads back to the same bytes (except cfg->file). Local. Errors: IMX_ERR_IO
 * (write failed), IMX_ERR_CONFIG (a field fails its per-key check),
 * IMX_ERR_INTERNAL (the emitter refused our events). */
imx_err imx_config_write(imx_ctx *ctx, const imx_config *cfg, FILE *f) {
  /* Refuse what would not load back (only a struct edited in code can hold it). */
  IMX_TRY(imx_config_check_fields(ctx, cfg, ""));
  yaml_emitter_t em;
  if (!yaml_emitter_initialize(&em)) return imx_fail(ctx, IMX_ERR_NOMEM, "YAML emitter");
  yaml_emitter_set_output_file(&em, f);
  yaml_emitter_set_unicode(&em, 1);
  yaml_emitter_set_width(&em, -1); /* never fold long strings (optimizer.options) */
  imx_err err = IMX_OK;
  if (!emit_config(&em, cfg)) {
    if (em.error == YAML_WRITER_ERROR) /* errno is from the failed fwrite */
      err = imx_fail(ctx, IMX_ERR_IO, "cannot write the configuration: %s", strerror(errno));
    else if (em.error == YAML_MEMORY_ERROR) err = imx_fail(ctx, IMX_ERR_NOMEM, "YAML emitter");
    else err = imx_fail(ctx, IMX_ERR_INTERNAL, "YAML emitter: %s", em.problem ? em.problem : "?");
  }
  yaml_emitter_delete(&em);
  if (!err && (fflush(f) != 0 || ferror(f)))
    err = imx_fail(ctx, IMX_ERR_IO, "cannot write the configuration: %s", strerror(errno));
  return err;
}

/* ---- reference page ------------------------------------------------------ */

/* Text for a markdown table cell: '|' would end the cell. */
static void put_cell(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputc('\\', f);
    fputc(*s, f);
  }
}

static const char *type_text(const key_row *r) {
  switch (r->type) {
    case K_INT:
    case K_INT64:
      return "integer";
    case K_DOUBLE:
      return (r->flags & F_NULLABLE) ? "number or ~" : "number";
    case K_BOOL:
      return "bool";
    case K_STRING:
      return "string";
    case K_ENUM:
    case K_NAME:
      return "choice";
    case K_SEED:
      return "seed";
  }
  return "?";
}

/* Print every key of the table as a markdown page (docs/config.md). Local.
 * Deterministic: the same bytes on every call. */
void imx_config_reference(FILE *f) {
  fprintf(f, "# Configuration reference\n\n");
  fprintf(f,
          "Generated by `infomax config --reference` from the schema in src/config/keys.c; do not "
          "edit by hand.\nA config file is YAML with the sections below, each a mapping of "
          "`key: value`; every key is optional and\nunknown keys are errors. "
          "`--set section.key=value` overrides one key after the file is read.\n");
  for (int s = 0; s < NSECTIONS; s++) {
    fprintf(f, "\n## %s\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n",
            imx_config_sections[s]);
    for (int i = 0; i < imx_config_nkeys; i++) {
      const key_row *r = &imx_config_keys[i];
      if (r->section != s) continue;
      char allowed[512];
      const char *nb[IMX_CONFIG_MAX_CHOICES + 1];
      switch (r->type) {
        case K_INT:
        case K_INT64:
        case K_DOUBLE:
          imx_key_range_text(r, allowed, sizeof allowed);
          break;
        case K_BOOL:
          snprintf(allowed, sizeof allowed, "true, false (also yes/no, on/off)");
          break;
        case K_SEED:
          snprintf(allowed, sizeof allowed, "0 to %llu", ULLONG_MAX);
          break;
        case K_ENUM:
        case K_NAME:
          imx_config_join(allowed, sizeof allowed, imx_key_names(r, nb), "`");
          break;
        case K_STRING:
          snprintf(allowed, sizeof allowed, "%s",
                   (r->flags & F_IDENT)      ? "a name of a-z, 0-9, _"
                   : (r->flags & F_NONEMPTY) ? "non-empty text"
                                             : "any text");
          break;
      }
      fprintf(f, "| `%s` | %s | ", r->key, type_text(r));
      if (r->flags & F_NULLABLE) fputs("preset", f);
      else if (!r->def[0]) fputs("`\"\"`", f);
      else fprintf(f, "`%s`", r->def);
      fputs(" | ", f);
      put_cell(f, allowed);
      fputs(" | ", f);
      put_cell(f, r->meaning);
      fputs(" |\n", f);
    }
    if (s == SEC_MODEL)
      fprintf(f,
              "| `layers` | list | `[]` | up to %d mappings of `key: value` | stacked layers, "
              "trained greedily: one entry per layer, each the settings of model, objective and "
              "optimizer that differ from the rest of the file (`units: 32`, `objective.preset: "
              "decorrelation`, `optimizer.max_it: 50`); [] = one layer |\n",
              IMX_MAX_LAYERS);
    if (s == SEC_OPTIMIZER)
      fprintf(f,
              "| `stages` | list | `[]` | up to %d mappings of `key: value` | one layer trained in "
              "stages, each from the previous one's weights (the optimizer starts over): one "
              "entry per stage, each the keys that differ from the rest of the file, of those "
              "that keep the parameter vector: the objective's weights and settings but "
              "`supervised` and `label_fraction`, `optimizer.type`, `max_it`, `gatol`, `grtol`, "
              "`precondition`, the mini-batch keys, `parallel.precision` (`hsic_bandwidth: 0.5`, "
              "`max_it: 1000`; `type: adam, max_it: 70`); not with model.layers; [] = one stage "
              "(docs/guide.md) |\n",
              IMX_MAX_STAGES);
  }
}

size_t imx_config_lines(const imx_config *cfg, const char *const *prefixes, const char *const *skip,
                        char *buf, size_t n) {
  size_t off = 0;
  if (n) buf[0] = 0;
  for (int i = 0; i < imx_config_nkeys; i++) {
    const key_row *r = &imx_config_keys[i];
    char name[96], val[64];
    imx_key_full_name(r, name, sizeof name);
    int take = 0;
    for (const char *const *p = prefixes; *p && !take; p++) take = !strncmp(name, *p, strlen(*p));
    for (const char *const *s = skip; s && *s && take; s++) take = strcmp(name, *s) != 0;
    if (!take) continue;
    key_value v;
    imx_key_fetch(r, cfg, &v);
    int w = snprintf(buf + off, off < n ? n - off : 0, "%s: %s\n", name,
                     imx_key_format(r, &v, val, sizeof val));
    off += w > 0 ? (size_t)w : 0;
  }
  return off;
}
