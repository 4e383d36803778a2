/* lib/mask: jskim's judged walk (jskim_judged, simd_int.h: sk_names and sk_values
 * together), built from jskim.c in a translation unit of its own so that the compiler
 * gives each walk its own registers (jskim.c's end says what one unit costs). */
#define JSKIM_JUDGED 1
#include "jskim.c"
