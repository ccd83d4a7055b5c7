/* names: the name tables of enums. Each module's header keeps its enum and a
 * NULL-terminated table of their names in the enum's order; the config key
 * table accepts and writes exactly those names. */
#ifndef IMX_NAMES_H
#define IMX_NAMES_H

#include <stddef.h> /* NULL, which ends every table */

/* names[i] of a NULL-terminated table, or "?" for a value outside it. Local. */
static inline const char *imx_name_of(const char *const *names, int i) {
  for (int j = 0; names[j]; j++)
    if (j == i) return names[j];
  return "?";
}

#endif
