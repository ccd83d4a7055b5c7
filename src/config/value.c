/* config values: one key's value as YAML scalar text and back (parse with
 * type and range checks, store into imx_config, fetch, format), and the
 * lookups and "did you mean" hints that messages about keys need.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_impl.h"

static int count_names(const char *const *names) {
  int n = 0;
  while (names[n]) n++;
  return n;
}

const char *const *imx_key_names(const key_row *r, const char *buf[IMX_CONFIG_MAX_CHOICES + 1]) {
  int n = 0;
  for (const char *row = r->choices; row && n < IMX_CONFIG_MAX_CHOICES; row += r->stride) {
    const char *name;
    memcpy(&name, row, sizeof name); /* the row's first member */
    if (!name) break;
    buf[n++] = name;
  }
  buf[n] = NULL;
  return buf;
}

static void *field(imx_config *cfg, const key_row *r) { return (char *)cfg + r->offset; }
static const void *cfield(const imx_config *cfg, const key_row *r) {
  return (const char *)cfg + r->offset;
}

/* Edit distance, for "did you mean". Names are short; longer input gets no
 * suggestion rather than a bigger buffer. */
static int levenshtein(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return INT_MAX;
  int row[64];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

/* Is d close enough to count as a typo of a word of length len? */
static int close_enough(int d, size_t len) { return d <= 2 || (size_t)d * 3 <= len; }

/* Write ` (did you mean "X"?)` into buf if some candidate is close to word,
 * else "". Candidates come from a NULL-terminated list, or, with section >= 0,
 * from the keys of that section. Ties go to the earlier candidate. */
void imx_config_suggest(char *buf, size_t n, const char *word, const char *const *list,
                        int section) {
  const char *best = NULL;
  int bestd = INT_MAX;
  if (list) {
    for (int i = 0; list[i]; i++) {
      int d = levenshtein(word, list[i]);
      if (d < bestd) bestd = d, best = list[i];
    }
  } else {
    for (int i = 0; i < imx_config_nkeys; i++) {
      if (imx_config_keys[i].section != section) continue;
      int d = levenshtein(word, imx_config_keys[i].key);
      if (d < bestd) bestd = d, best = imx_config_keys[i].key;
    }
  }
  if (best && bestd > 0 && close_enough(bestd, strlen(word)))
    snprintf(buf, n, " (did you mean \"%s\"?)", best);
  else buf[0] = '\0';
}

/* "a, b, c" from a NULL-terminated list. */
void imx_config_join(char *buf, size_t n, const char *const *names, const char *quote) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; names[i] && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%s%s%s", i ? ", " : "", quote, names[i],
                             quote);
}

int imx_section_find(const char *name) {
  for (int s = 0; s < NSECTIONS; s++)
    if (strcmp(imx_config_sections[s], name) == 0) return s;
  return -1;
}

int imx_key_find(int section, const char *key) {
  for (int i = 0; i < imx_config_nkeys; i++)
    if (imx_config_keys[i].section == section && strcmp(imx_config_keys[i].key, key) == 0) return i;
  return -1;
}

/* The forms of YAML's null. Only plain (unquoted) scalars can be null. */
int imx_yaml_is_null(const char *s) {
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* YAML 1.2 core schema float syntax, which is what strtod should be allowed to
 * see: this keeps out strtod's own "inf", "nan", hex floats and leading space.
 * Returns 1 for a number, 2 for YAML's .inf and .nan (never valid here, but
 * worth a precise message), 0 for anything else. */
static int number_syntax(const char *s) {
  const char *p = s;
  if (*p == '-' || *p == '+') p++;
  if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) return 2;
  if (p == s && (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN"))) return 2;
  int digits = 0;
  while (isdigit((unsigned char)*p)) p++, digits++;
  if (*p == '.') {
    p++;
    while (isdigit((unsigned char)*p)) p++, digits++;
  }
  if (!digits) return 0;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '-' || *p == '+') p++;
    if (!isdigit((unsigned char)*p)) return 0;
    while (isdigit((unsigned char)*p)) p++;
  }
  return *p == '\0';
}

static int integer_syntax(const char *s, int allow_sign) {
  const char *p = s;
  if (*p == '+' || (allow_sign && *p == '-')) p++;
  if (!isdigit((unsigned char)*p)) return 0;
  while (isdigit((unsigned char)*p)) p++;
  return *p == '\0';
}

/* "section.key" for messages. */
const char *imx_key_full_name(const key_row *r, char *buf, size_t n) {
  snprintf(buf, n, "%s.%s", imx_config_sections[r->section], r->key);
  return buf;
}

/* The full range of a number, as ">= 1 and <= 100000", for the reference page
 * (an int's implicit INT_MAX bound is left out as noise). */
void imx_key_range_text(const key_row *r, char *buf, size_t n) {
  int integral = (r->type == K_INT || r->type == K_INT64);
  size_t used = 0;
  const char *sep = "";
  buf[0] = '\0';
  if (r->type == K_DOUBLE) used += (size_t)snprintf(buf + used, n - used, "finite"), sep = " and ";
  if (r->flags & F_MIN)
    used += (size_t)snprintf(buf + used, n - used, integral ? "%s%s %.0f" : "%s%s %g", sep,
                             (r->flags & F_MIN_EXCL) ? ">" : ">=", r->min),
        sep = " and ";
  if (r->flags & F_MAX)
    used += (size_t)snprintf(buf + used, n - used, integral ? "%s<= %.0f" : "%s<= %g", sep, r->max),
        sep = " and ";
  if (r->flags & F_NONZERO) snprintf(buf + used, n - used, "%s!= 0", sep);
}

/* Check a number against the row's range. Returns NULL if it is in range,
 * else the violated bound as text (">= 1"), in buf. Integers are compared as
 * integers so that large int64 values are not rounded. */
static const char *violated(const key_row *r, const key_value *v, char *buf, size_t n) {
  int lo_bad, hi_bad = 0, zero_bad;
  if (r->type == K_DOUBLE) {
    double x = v->d;
    if (isnan(x) && (r->flags & F_NULLABLE)) return NULL;
    lo_bad = (r->flags & F_MIN) && ((r->flags & F_MIN_EXCL) ? !(x > r->min) : !(x >= r->min));
    hi_bad = (r->flags & F_MAX) && !(x <= r->max);
    zero_bad = (r->flags & F_NONZERO) && x == 0;
  } else {
    long long x = v->i, lo = (long long)r->min, hi = (long long)r->max;
    lo_bad = (r->flags & F_MIN) && ((r->flags & F_MIN_EXCL) ? x <= lo : x < lo);
    hi_bad = (r->flags & F_MAX) && x > hi;
    if (r->type == K_INT && !(r->flags & F_MAX) && x > INT_MAX) {
      snprintf(buf, n, "<= %d", INT_MAX);
      return buf;
    }
    if (r->type == K_INT && !(r->flags & F_MIN) && x < INT_MIN) {
      snprintf(buf, n, ">= %d", INT_MIN);
      return buf;
    }
    zero_bad = (r->flags & F_NONZERO) && x == 0;
  }
  int integral = (r->type != K_DOUBLE);
  if (lo_bad)
    snprintf(buf, n, integral ? "%s %.0f" : "%s %g", (r->flags & F_MIN_EXCL) ? ">" : ">=", r->min);
  else if (hi_bad) snprintf(buf, n, integral ? "<= %.0f" : "<= %g", r->max);
  else if (zero_bad) snprintf(buf, n, "!= 0");
  else return NULL;
  return buf;
}

/* Every check a value of row r must pass, on an already parsed value. text is
 * what the user wrote (for the message). On failure writes "why" (without the
 * key name) into err and returns 1. Shared by parsing and by validate. */
int imx_key_check(const key_row *r, const key_value *v, const char *text, char *err, size_t n) {
  const char *nb[IMX_CONFIG_MAX_CHOICES + 1];
  const char *const *names = imx_key_names(r, nb);
  char buf[256];
  switch (r->type) {
    case K_INT:
    case K_INT64:
    case K_DOUBLE:
      /* NAN only ever means "from the preset", and only where that exists. */
      if (r->type == K_DOUBLE && !isfinite(v->d) && !(isnan(v->d) && (r->flags & F_NULLABLE))) {
        snprintf(err, n, "expected a finite number, got " SHOWN_FMT, SHOWN(text));
        return 1;
      }
      if (violated(r, v, buf, sizeof buf)) {
        snprintf(err, n, "%.80s is out of range (must be %s)", text, buf);
        return 1;
      }
      return 0;
    case K_BOOL:
      if (v->i != 0 && v->i != 1) {
        snprintf(err, n, "expected true or false (1 or 0), got %lld", v->i);
        return 1;
      }
      return 0;
    case K_SEED:
      return 0;
    case K_ENUM:
      if (v->i < 0 || v->i >= count_names(names)) {
        snprintf(err, n, "%lld is not a valid choice", v->i);
        return 1;
      }
      return 0;
    case K_NAME:
      for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], v->s)) return 0;
      {
        char list[256], hint[96];
        imx_config_join(list, sizeof list, names, "");
        imx_config_suggest(hint, sizeof hint, v->s, names, -1);
        snprintf(err, n, SHOWN_FMT " is not one of %s%s", SHOWN(v->s), list, hint);
      }
      return 1;
    case K_STRING:
      if (strlen(v->s) >= r->size) {
        snprintf(err, n, "too long (%zu characters, at most %zu)", strlen(v->s), r->size - 1);
        return 1;
      }
      if ((r->flags & F_NONEMPTY) && !*v->s) {
        snprintf(err, n, "must not be empty");
        return 1;
      }
      if (r->flags & F_IDENT) {
        const char *p = v->s;
        while (*p && (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_')) p++;
        if (!*v->s || *p) {
          snprintf(err, n, "expected a name of [a-z0-9_], got " SHOWN_FMT, SHOWN(v->s));
          return 1;
        }
      }
      return 0;
  }
  return 0;
}

/* Parse scalar text for row r into *v. quoted: the scalar was quoted or a
 * block scalar in YAML, so it is a string, never a number, bool or null.
 * Returns 1 with the reason in err on failure. */
int imx_key_parse(const key_row *r, const char *text, int quoted, key_value *v, char *err,
                  size_t n) {
  const char *nb[IMX_CONFIG_MAX_CHOICES + 1];
  const char *const *names = imx_key_names(r, nb);
  const char *what = NULL;
  memset(v, 0, sizeof *v);
  switch (r->type) {
    case K_INT:
    case K_INT64:
      what = "an integer";
      if (quoted || !integer_syntax(text, 1)) break;
      errno = 0;
      v->i = strtoll(text, NULL, 10);
      if (errno == ERANGE) {
        /* Beyond long long: name the bound it crossed. */
        if (text[0] == '-')
          snprintf(err, n, "%.80s is out of range (must be >= %lld)", text, LLONG_MIN);
        else snprintf(err, n, "%.80s is out of range (must be <= %lld)", text, LLONG_MAX);
        return 1;
      }
      return imx_key_check(r, v, text, err, n);
    case K_SEED:
      what = "a non-negative integer";
      if (quoted || !integer_syntax(text, 0)) break;
      errno = 0;
      v->u = strtoull(text, NULL, 10);
      if (errno == ERANGE) {
        snprintf(err, n, "%.80s is out of range (must be <= %llu)", text, ULLONG_MAX);
        return 1;
      }
      return 0;
    case K_DOUBLE: {
      what = (r->flags & F_NULLABLE) ? "a number or ~" : "a number";
      if (quoted) break;
      if ((r->flags & F_NULLABLE) && imx_yaml_is_null(text)) {
        v->d = NAN;
        return 0;
      }
      int syn = number_syntax(text);
      if (!syn) break;
      if (syn == 2) {
        snprintf(err, n, "expected a finite number, got " SHOWN_FMT, SHOWN(text));
        return 1;
      }
      /* ERANGE on underflow gives a denormal or 0, the nearest double, which
       * is fine; overflow gives inf, which check_value refuses. */
      v->d = strtod(text, NULL);
      return imx_key_check(r, v, text, err, n);
    }
    case K_BOOL: {
      static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
      what = "true or false";
      if (quoted) break;
      for (int i = 0; i < 3; i++) {
        if (!strcasecmp(text, yes[i])) {
          v->i = 1;
          return 0;
        }
        if (!strcasecmp(text, no[i])) {
          v->i = 0;
          return 0;
        }
      }
      break;
    }
    case K_ENUM: {
      for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], text)) {
          v->i = i;
          return 0;
        }
      char list[256], hint[96];
      imx_config_join(list, sizeof list, names, "");
      imx_config_suggest(hint, sizeof hint, text, names, -1);
      snprintf(err, n, SHOWN_FMT " is not one of %s%s", SHOWN(text), list, hint);
      return 1;
    }
    case K_NAME:
    case K_STRING:
      v->s = (!quoted && imx_yaml_is_null(text)) ? "" : text;
      return imx_key_check(r, v, text, err, n);
  }
  if (quoted) snprintf(err, n, "expected %s, got the quoted string " SHOWN_FMT, what, SHOWN(text));
  else snprintf(err, n, "expected %s, got " SHOWN_FMT, what, SHOWN(text));
  return 1;
}

/* Store a checked value into its field. memcpy keeps us clear of aliasing
 * rules for the enum fields. Strings are zero-filled to their full size so that
 * equal configurations are equal bytes (the struct is broadcast and compared as
 * bytes). */
void imx_key_store(const key_row *r, const key_value *v, imx_config *cfg) {
  void *p = field(cfg, r);
  switch (r->type) {
    case K_INT:
    case K_BOOL:
    case K_ENUM: {
      int x = (int)v->i;
      memcpy(p, &x, sizeof x);
      break;
    }
    case K_INT64:
      memcpy(p, &v->i, sizeof v->i);
      break;
    case K_SEED:
      memcpy(p, &v->u, sizeof v->u);
      break;
    case K_DOUBLE:
      memcpy(p, &v->d, sizeof v->d);
      break;
    case K_STRING:
    case K_NAME:
      memset(p, 0, r->size);
      memcpy(p, v->s, strlen(v->s));
      break;
  }
}

/* Read a field back into a value. Returns 1 if a string field is not
 * NUL-terminated (a struct filled by hand), which nothing else may read. */
int imx_key_fetch(const key_row *r, const imx_config *cfg, key_value *v) {
  const void *p = cfield(cfg, r);
  memset(v, 0, sizeof *v);
  switch (r->type) {
    case K_INT:
    case K_BOOL:
    case K_ENUM: {
      int x;
      memcpy(&x, p, sizeof x);
      v->i = x;
      break;
    }
    case K_INT64:
      memcpy(&v->i, p, sizeof v->i);
      break;
    case K_SEED:
      memcpy(&v->u, p, sizeof v->u);
      break;
    case K_DOUBLE:
      memcpy(&v->d, p, sizeof v->d);
      break;
    case K_STRING:
    case K_NAME:
      if (!memchr(p, '\0', r->size)) return 1;
      v->s = p;
      break;
  }
  return 0;
}

/* The shortest "%.Ng" that reads back as the same double (at most 17 digits,
 * which always does): exact round trip, but 0.1 stays "0.1". */
static void format_double(double x, char *buf, size_t n) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) return;
  }
}

/* A value as YAML scalar text, as parse_value reads it back. Strings are
 * returned as they are (borrowed); buf holds the others. */
const char *imx_key_format(const key_row *r, const key_value *v, char *buf, size_t n) {
  const char *nb[IMX_CONFIG_MAX_CHOICES + 1];
  const char *const *names = imx_key_names(r, nb);
  switch (r->type) {
    case K_INT:
    case K_INT64:
      snprintf(buf, n, "%lld", v->i);
      return buf;
    case K_SEED:
      snprintf(buf, n, "%llu", v->u);
      return buf;
    case K_DOUBLE:
      if (isnan(v->d) && (r->flags & F_NULLABLE)) return "~";
      format_double(v->d, buf, n);
      return buf;
    case K_BOOL:
      return v->i ? "true" : "false";
    case K_ENUM:
      return imx_name_of(names, (int)v->i);
    case K_STRING:
    case K_NAME:
      return v->s;
  }
  return "?";
}
