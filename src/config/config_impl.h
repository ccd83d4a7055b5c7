/* config_impl: the key table's row type and the helpers shared by the files
 * of src/config/ (keys.c: the table, defaults, validation; value.c: one
 * key's value as text and back; yaml.c: files and --set; write.c: the
 * resolved config and the reference page).
 */
#ifndef IMX_CONFIG_IMPL_H
#define IMX_CONFIG_IMPL_H

#include <stddef.h>
#include <string.h>

#include "imx/config.h"

/* Sections, in the order they are written. */
enum {
  SEC_DATA,
  SEC_MODEL,
  SEC_OBJECTIVE,
  SEC_OPTIMIZER,
  SEC_PARALLEL,
  SEC_EVAL,
  SEC_OUTPUT,
  NSECTIONS
};
extern const char *const imx_config_sections[NSECTIONS + 1]; /* "data", ..., NULL */

typedef enum {
  K_INT,    /* int */
  K_INT64,  /* long long */
  K_DOUBLE, /* double, always finite (or NAN with F_NULLABLE) */
  K_BOOL,   /* int, 0 or 1 */
  K_STRING, /* char[size] */
  K_ENUM,   /* int-sized enum, value = index into names */
  K_NAME,   /* char[size] holding one of names (an enum whose users compare by name) */
  K_SEED    /* unsigned long long */
} kind;

/* Range and constraint flags. */
enum {
  F_MIN = 1u << 0, /* value >= min (or > min with F_MIN_EXCL) */
  F_MIN_EXCL = 1u << 1,
  F_MAX = 1u << 2,      /* value <= max */
  F_NONZERO = 1u << 3,  /* value != 0 */
  F_NULLABLE = 1u << 4, /* null (~) is allowed and stored as NAN */
  F_IDENT = 1u << 5,    /* string must match [a-z0-9_]+ */
  F_NONEMPTY = 1u << 6  /* string must not be empty */
};

/* One YAML key: a row of imx_config_keys (keys.c). */
typedef struct {
  int section;     /* SEC_* */
  const char *key; /* name inside the section */
  kind type;
  size_t offset;       /* offsetof(imx_config, ...) */
  size_t size;         /* sizeof the field (string capacity including NUL) */
  const char *def;     /* default, as YAML scalar text ("" and "~" are null) */
  double min, max;     /* bounds, used as flagged */
  unsigned flags;      /* F_* */
  const void *choices; /* K_ENUM / K_NAME: rows that start with a name, the last NULL */
  size_t stride;       /* bytes from one row of choices to the next */
  const char *meaning; /* one line for the reference page */
} key_row;

/* The table, in the order of the reference page and the writer. */
extern const key_row imx_config_keys[];
extern const int imx_config_nkeys;
/* An upper bound of imx_config_nkeys, for per-key arrays (keys.c checks it). */
#define IMX_CONFIG_MAX_KEYS 128

/* A parsed scalar, before range checks and before it is stored. */
typedef struct {
  long long i;          /* K_INT, K_INT64, K_BOOL, K_ENUM */
  unsigned long long u; /* K_SEED */
  double d;             /* K_DOUBLE */
  const char *s;        /* K_STRING, K_NAME: borrowed from the caller's text */
} key_value;

/* The text of a value, for messages: long strings (options) are cut. */
#define SHOWN_FMT "\"%.80s%s\""
#define SHOWN(s) (s), (strlen(s) > 80 ? "..." : "")

/* ---- value.c: one key's value ---- */

/* The most choices a K_ENUM / K_NAME key may have. */
#define IMX_CONFIG_MAX_CHOICES 32

/* The names of row r's choices as a NULL-terminated list, in buf. */
const char *const *imx_key_names(const key_row *r, const char *buf[IMX_CONFIG_MAX_CHOICES + 1]);
/* Index of a section or of a key of section s by name, or -1. */
int imx_section_find(const char *name);
int imx_key_find(int section, const char *key);
/* Write ` (did you mean "X"?)` into buf if some candidate is close to word,
 * else "". Candidates come from a NULL-terminated list, or, with section >= 0,
 * from the keys of that section. */
void imx_config_suggest(char *buf, size_t n, const char *word, const char *const *list,
                        int section);
/* "a, b, c" from a NULL-terminated list, each name between quote. */
void imx_config_join(char *buf, size_t n, const char *const *names, const char *quote);
/* Is s one of the forms of YAML's null ("", "~", "null", ...)? */
int imx_yaml_is_null(const char *s);
/* "section.key" of row r, in buf. */
const char *imx_key_full_name(const key_row *r, char *buf, size_t n);
/* The full range of a number, as ">= 1 and <= 100000", for the reference page. */
void imx_key_range_text(const key_row *r, char *buf, size_t n);
/* Every check a parsed value of row r must pass; text is what the user wrote.
 * Returns 1 with the reason (without the key name) in err. */
int imx_key_check(const key_row *r, const key_value *v, const char *text, char *err, size_t n);
/* Parse scalar text for row r (quoted: a YAML string, never a number, bool or
 * null) and check it. Returns 1 with the reason in err. */
int imx_key_parse(const key_row *r, const char *text, int quoted, key_value *v, char *err,
                  size_t n);
/* Store a checked value into its field of cfg / read a field back (returns 1
 * if a string field is not NUL-terminated). */
void imx_key_store(const key_row *r, const key_value *v, imx_config *cfg);
int imx_key_fetch(const key_row *r, const imx_config *cfg, key_value *v);
/* A value as YAML scalar text, as imx_key_parse reads it back (strings
 * borrowed, others in buf). */
const char *imx_key_format(const key_row *r, const key_value *v, char *buf, size_t n);

/* ---- keys.c: checks of a whole configuration ---- */

/* The per-key checks of parsing, applied to the values in cfg; messages
 * start with prefix. */
imx_err imx_config_check_fields(imx_ctx *ctx, const imx_config *cfg, const char *prefix);
/* The checks of one layer's configuration (imx_config_validate without the
 * list of layers). */
imx_err imx_config_validate_one(imx_ctx *ctx, const imx_config *cfg);

#endif
