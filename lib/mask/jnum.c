/* lib/mask: the JSON number grammar as tables, which json.c's machine steps through a byte
 * at a time (stream_int.h says what the states and classes are). */
#include "mask/stream_int.h"

const unsigned char num_class[256] = {
    ['0'] = NC_ZERO, ['1' ... '9'] = NC_DIGIT, ['-'] = NC_MINUS, ['+'] = NC_PLUS,
    ['.'] = NC_DOT, ['e'] = NC_E, ['E'] = NC_E, /* everything else NC_OTHER */
};
const unsigned char num_next[9][7] = {
    /*      other    0        1-9      -        +        .        e */
    /* 0 */ {NUM_ERR, 2, 3, 1, NUM_ERR, NUM_ERR, NUM_ERR},
    /* 1 */ {NUM_ERR, 2, 3, NUM_ERR, NUM_ERR, NUM_ERR, NUM_ERR},
    /* 2 */ {NUM_END, NUM_ERR, NUM_ERR, NUM_END, NUM_END, 4, 6},
    /* 3 */ {NUM_END, 3, 3, NUM_END, NUM_END, 4, 6},
    /* 4 */ {NUM_ERR, 5, 5, NUM_ERR, NUM_ERR, NUM_ERR, NUM_ERR},
    /* 5 */ {NUM_END, 5, 5, NUM_END, NUM_END, NUM_END, 6},
    /* 6 */ {NUM_ERR, 8, 8, 7, 7, NUM_ERR, NUM_ERR},
    /* 7 */ {NUM_ERR, 8, 8, NUM_ERR, NUM_ERR, NUM_ERR, NUM_ERR},
    /* 8 */ {NUM_END, 8, 8, NUM_END, NUM_END, NUM_END, NUM_END},
};
const char *const num_err[9] = {
    "expected a number",
    "expected a digit after '-'",
    "a number cannot have a leading zero",
    "expected a digit or the end of the number",
    "expected a digit after '.'",
    "expected a digit or the end of the number",
    "expected a digit in the exponent",
    "expected a digit in the exponent",
    "expected a digit or the end of the number",
};
