/* lib/mask: detectors of network identifiers: email, ipv4, ipv6. */
#include "mask/detect_int.h"

#include <arpa/inet.h>

/* ---- email ---------------------------------------------------------------------------- */

bool email_shape(const scan *s, size_t i, size_t w)
{
    MM_UNUSED(w);
    return i > 0 && (det_cls[s->t[i - 1]] & C_LOCAL);
}

/* Is the label [a, b) a TLD: two or more letters, or a punycode A-label "xn--" and at least
 * one more letter, digit or dash (an internationalized TLD such as xn--p1ai)? */
static bool tld_ok(const unsigned char *t, size_t a, size_t b)
{
    if (b - a > 4 && (t[a] | 0x20) == 'x' && (t[a + 1] | 0x20) == 'n' && t[a + 2] == '-' &&
        t[a + 3] == '-')
        return true; /* the label's characters were checked by the caller */
    if (b - a < 2)
        return false;
    for (size_t k = a; k < b; k++)
        if (!(det_cls[t[k]] & (C_UPPER | C_LOWER)))
            return false;
    return true;
}

/* At '@'. The local part is read backwards from it, never before the end of the previous
 * email (so "a@b.co@c.de" is one email and a remainder, not two overlapping ones). */
void email_find(scan *s, size_t at_i, size_t w)
{
    const unsigned char *t = s->t;
    size_t a = at_i, j = at_i + 1, labels = 0, last = 0, lend = 0, floor = det_next(s, DET_EMAIL);

    MM_UNUSED(w);
    while (a > floor && (det_cls[t[a - 1]] & C_LOCAL) &&
           !(t[a - 1] == '.' && a - 1 > floor && t[a - 2] == '.')) {
        if (at_i - a == 64)
            return; /* longer than RFC 5321 allows: not an address */
        a--;
    }
    while (a < at_i && t[a] == '.')
        a++;
    if (a == at_i || t[at_i - 1] == '.')
        return;
    for (;;) {
        size_t ls = j;
        while (j < s->n && (is_alnum(t[j]) || t[j] == '-'))
            j++;
        if (j - at_i - 1 > 253)
            return;
        if (j == ls || t[ls] == '-' || t[j - 1] == '-')
            break;
        labels++;
        last = ls;
        lend = j;
        if (at(s, j) == '.' && is_alnum(at(s, j + 1))) {
            j++;
            continue;
        }
        break;
    }
    if (labels < 2 || !tld_ok(t, last, lend))
        return;
    det_found(s, DET_EMAIL, a, lend);
}

/* ---- ipv4 ----------------------------------------------------------------------------- */

bool ipv4_shape(const scan *s, size_t i, size_t w)
{
    return w - i <= 3 && at(s, w) == '.';
}

void ipv4_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j = i;

    MM_UNUSED(w);
    if (i > 0 && t[i - 1] == '.') /* a later part of a dotted run */
        return;
    for (int oct = 0; oct < 4; oct++) {
        unsigned v = 0;
        size_t k = 0;
        if (oct && at(s, j++) != '.')
            return;
        while (j < s->n && is_digit(t[j]) && k < 4) {
            v = v * 10 + (unsigned)(t[j] - '0');
            j++;
            k++;
        }
        if (k == 0 || k > 3 || v > 255 || (k > 1 && t[j - k] == '0'))
            return;
    }
    if (is_alnum(at(s, j)) || (at(s, j) == '.' && is_alnum(at(s, j + 1))))
        return;
    det_found(s, DET_IPV4, i, j);
}

/* ---- ipv6 ----------------------------------------------------------------------------- */

/* A hex word of at most 4 before ':', or "::". */
bool ipv6_shape(const scan *s, size_t i, size_t w)
{
    if (s->t[i] == ':')
        return at(s, i + 1) == ':';
    if (w - i > 4 || at(s, w) != ':')
        return false;
    for (size_t k = i; k < w; k++)
        if (!(det_cls[s->t[k]] & C_HEX))
            return false;
    return true;
}

void ipv6_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j = i, colons = 0;
    char buf[48];
    unsigned char addr[16];

    MM_UNUSED(w);
    if (i > 0 && (t[i - 1] == ':' || t[i - 1] == '.' || is_alnum(t[i - 1])))
        return;
    while (j < s->n && ((det_cls[t[j]] & C_HEX) || t[j] == ':' || t[j] == '.')) {
        colons += t[j] == ':';
        if (++j - i > 45)
            return;
    }
    if (is_alnum(at(s, j)))
        return;
    while (j > i && t[j - 1] == '.') /* a sentence's full stop */
        j--;
    if (j - i >= 2 && t[j - 1] == ':' && t[j - 2] != ':') { /* "addr 2001:db8::1: refused" */
        j--;
        colons--;
    }
    if (colons < 2)
        return;
    memcpy(buf, t + i, j - i);
    buf[j - i] = '\0';
    if (inet_pton(AF_INET6, buf, addr) == 1)
        det_found(s, DET_IPV6, i, j);
}
