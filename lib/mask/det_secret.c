/* lib/mask: detectors of secrets: aws_access_key, jwt, bearer_token, github_token,
 * gitlab_token, slack_token, stripe_key, google_api_key, private_key, url_password,
 * conn_password. */
#include "mask/detect_int.h"

#include <strings.h>
#include <zlib.h>

/* The end of a run of bytes of class `c` from i. */
static size_t run_of(const scan *s, size_t i, unsigned char c)
{
    while (i < s->n && (det_cls[s->t[i]] & c))
        i++;
    return i;
}

static bool word_is(const scan *s, size_t i, size_t w, const char *lit)
{
    size_t n = strlen(lit);
    return w - i == n && memcmp(s->t + i, lit, n) == 0;
}

/* ---- aws_access_key ------------------------------------------------------------------- */

bool aws_shape(const scan *s, size_t i, size_t w)
{
    return w - i == 20 && s->t[i] == 'A';
}

void aws_find(scan *s, size_t i, size_t w)
{
    static const char prefixes[][5] = {"AKIA", "ASIA", "AGPA", "AIDA", "AROA",
                                       "AIPA", "ANPA", "ANVA", "ABIA", "ACCA"};
    const unsigned char *t = s->t + i;
    bool ok = false;

    MM_UNUSED(w);
    for (size_t k = 0; k < MM_ARRAY_LEN(prefixes) && !ok; k++)
        ok = memcmp(t, prefixes[k], 4) == 0;
    if (!ok)
        return;
    for (size_t k = 4; k < 20; k++)
        if (!is_upper(t[k]) && !(t[k] >= '2' && t[k] <= '7'))
            return;
    det_found(s, DET_AWS_ACCESS_KEY, i, i + 20);
}

/* ---- jwt ------------------------------------------------------------------------------ */

static int b64u_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

bool jwt_shape(const scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    return w - i >= 3 && t[i] == 'e' && t[i + 1] == 'y' && t[i + 2] == 'J';
}

/* At "eyJ" (base64 of '{"'). */
void jwt_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j = i, seg[3], len[3], hn = 0;
    char hdr[192];
    uint32_t acc = 0;
    int bits = 0;

    MM_UNUSED(w);
    if (i > 0 && (det_cls[t[i - 1]] & C_B64U)) /* inside a longer base64url run */
        return;
    for (int k = 0; k < 3; k++) {
        seg[k] = j;
        j = run_of(s, j, C_B64U);
        len[k] = j - seg[k];
        if (k < 2) {
            if (at(s, j) != '.')
                return;
            j++;
        }
    }
    if (len[0] < 10 || len[1] < 2 || at(s, j) == '=' ||
        (at(s, j) == '.' && (det_cls[at(s, j + 1)] & C_B64U))) /* a sentence's stop is fine */
        return;
    /* the header (its first bytes) must be a JSON object naming "alg" */
    for (size_t k = 0; k < len[0] && hn < sizeof(hdr) - 1; k++) {
        acc = acc << 6 | (uint32_t)b64u_val(t[seg[0] + k]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            hdr[hn++] = (char)((acc >> bits) & 0xFF);
        }
    }
    hdr[hn] = '\0';
    if (hdr[0] != '{' || !strstr(hdr, "\"alg\""))
        return;
    det_found(s, DET_JWT, i, j);
}

/* ---- bearer_token --------------------------------------------------------------------- */

bool bearer_shape(const scan *s, size_t i, size_t w)
{
    return w - i == 6 && at(s, w) == ' ' && (s->t[i] | 0x20) == 'b';
}

/* "Bearer" (any case), spaces, then a token of at least 16 token characters and optional
 * '=' padding; a token of only lowercase letters is a word. The match is the token only. */
void bearer_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j = w, start;
    bool lower_only = true;

    if (strncasecmp((const char *)t + i, "bearer", 6) != 0 || alnum_before(s, i))
        return;
    while (j < s->n && t[j] == ' ')
        j++;
    start = j;
    while (j < s->n && (det_cls[t[j]] & C_TOKEN)) {
        lower_only &= (det_cls[t[j]] & C_LOWER) != 0;
        j++;
    }
    if (j - start < 16 || lower_only)
        return;
    while (j < s->n && t[j] == '=')
        j++;
    det_found(s, DET_BEARER_TOKEN, start, j);
}

/* ---- github_token --------------------------------------------------------------------- */

/* The checksum of the 2021 formats: the last 6 characters are the CRC32 of the 30 before
 * them in base62 (0-9A-Za-z), left-padded with '0'. */
bool github_valid(const unsigned char *d, size_t n)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uLong crc;
    char want[6];

    if (n != 36)
        return false;
    for (size_t k = 0; k < n; k++)
        if (!is_alnum(d[k]))
            return false;
    crc = crc32(0L, d, 30);
    for (int k = 5; k >= 0; k--) {
        want[k] = b62[crc % 62];
        crc /= 62;
    }
    return crc == 0 && memcmp(want, d + 30, 6) == 0;
}

bool github_shape(const scan *s, size_t i, size_t w)
{
    unsigned char nx = at(s, w);
    return nx == '_' && ((w - i == 3 && s->t[i] == 'g' && s->t[i + 1] == 'h') ||
                         word_is(s, i, w, "github"));
}

/* ghp_, gho_, ghu_, ghs_, ghr_ and 36 base62 characters with a valid checksum; or
 * github_pat_ and 82 characters of [A-Za-z0-9_] (22, '_', 59: no published checksum). */
void github_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j;

    if (i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '_'))
        return;
    if (w - i == 3) {
        if (!strchr("pousr", t[i + 2]))
            return;
        j = w + 1;
        while (j < s->n && is_alnum(t[j]))
            j++;
        if (j - (w + 1) == 36 && at(s, j) != '_' && github_valid(t + w + 1, 36))
            det_found(s, DET_GITHUB_TOKEN, i, j);
        return;
    }
    if (!(s->n - i > 11 && memcmp(t + i, "github_pat_", 11) == 0))
        return;
    j = i + 11;
    while (j < s->n && (is_alnum(t[j]) || t[j] == '_'))
        j++;
    if (j - (i + 11) >= 82 && j - (i + 11) <= 255)
        det_found(s, DET_GITHUB_TOKEN, i, j);
}

/* ---- gitlab_token --------------------------------------------------------------------- */

bool gitlab_shape(const scan *s, size_t i, size_t w)
{
    return at(s, w) == '-' && s->t[i] == 'g' && s->t[i + 1] == 'l' && w - i >= 4 && w - i <= 6;
}

/* A GitLab prefix, '-', and at least 20 characters of [A-Za-z0-9_-] (personal, deploy,
 * runner, pipeline-trigger, feed and OAuth application secrets). */
void gitlab_find(scan *s, size_t i, size_t w)
{
    static const char *const prefixes[] = {"glpat", "gldt", "glrt", "glptt", "glft", "glsoat"};
    const unsigned char *t = s->t;
    bool ok = false;
    size_t j;

    if (alnum_before(s, i))
        return;
    for (size_t k = 0; k < MM_ARRAY_LEN(prefixes) && !ok; k++)
        ok = word_is(s, i, w, prefixes[k]);
    if (!ok)
        return;
    j = w + 1;
    while (j < s->n && (is_alnum(t[j]) || t[j] == '-' || t[j] == '_'))
        j++;
    if (j - (w + 1) >= 20 && j - (w + 1) <= 255)
        det_found(s, DET_GITLAB_TOKEN, i, j);
}

/* ---- slack_token ---------------------------------------------------------------------- */

bool slack_shape(const scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    return w - i == 4 && at(s, w) == '-' && t[i] == 'x' && t[i + 1] == 'o' && t[i + 2] == 'x' &&
           strchr("bpars", t[i + 3]);
}

/* xox[bpars]- then at least three dash-separated parts, the first all digits (the team or
 * workspace id) and the last at least 16 alphanumerics (the secret), as Slack's bot, user,
 * app and refresh tokens are written. */
void slack_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j = w, parts = 0, last = 0;
    bool first_digits = false;

    if (alnum_before(s, i))
        return;
    while (at(s, j) == '-' && is_alnum(at(s, j + 1))) {
        size_t k = j + 1;
        bool digits = true;
        while (k < s->n && is_alnum(t[k])) {
            digits &= is_digit(t[k]);
            k++;
        }
        if (parts == 0)
            first_digits = digits;
        parts++;
        last = k - (j + 1);
        j = k;
    }
    if (parts >= 3 && first_digits && last >= 16)
        det_found(s, DET_SLACK_TOKEN, i, j);
}

/* ---- stripe_key ----------------------------------------------------------------------- */

bool stripe_shape(const scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    return w - i == 2 && (t[i] == 's' || t[i] == 'r') && t[i + 1] == 'k' && at(s, w) == '_';
}

/* sk_live_ or rk_live_ and at least 24 alphanumerics (test-mode keys are not secrets). */
void stripe_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j;

    if (i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '_'))
        return;
    if (s->n - w < 6 || memcmp(t + w, "_live_", 6) != 0)
        return;
    j = w + 6;
    while (j < s->n && is_alnum(t[j]))
        j++;
    if (j - (w + 6) >= 24 && j - (w + 6) <= 247 && at(s, j) != '_')
        det_found(s, DET_STRIPE_KEY, i, j);
}

/* ---- google_api_key ------------------------------------------------------------------- */

bool google_shape(const scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    return w - i >= 4 && t[i] == 'A' && t[i + 1] == 'I' && t[i + 2] == 'z' && t[i + 3] == 'a';
}

/* AIza and exactly 35 characters of [A-Za-z0-9_-]. */
void google_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j = i + 4;

    MM_UNUSED(w);
    if (i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '_' || t[i - 1] == '-'))
        return;
    while (j < s->n && (is_alnum(t[j]) || t[j] == '_' || t[j] == '-'))
        j++;
    if (j - i == 39)
        det_found(s, DET_GOOGLE_API_KEY, i, j);
}

/* ---- private_key ---------------------------------------------------------------------- */

bool pem_shape(const scan *s, size_t i, size_t w)
{
    MM_UNUSED(w);
    return s->n - i >= 10 && memcmp(s->t + i, "-----BEGIN", 10) == 0 &&
           (i == 0 || s->t[i - 1] != '-');
}

/* -----BEGIN [X ]PRIVATE KEY----- to the first -----END after it, the END line's dashes
 * included. A BEGIN without an END masks to the end of the value: the value was cut (a line
 * limit, a truncated log) and the key is in it. */
void pem_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j = i + 10, e;

    MM_UNUSED(w);
    while (j < s->n && (is_upper(t[j]) || t[j] == ' ') && j - i < 64)
        j++;
    if (j - i < 10 + 12 || memcmp(t + j - 12, " PRIVATE KEY", 12) != 0 || s->n - j < 5 ||
        memcmp(t + j, "-----", 5) != 0)
        return;
    e = j + 5;
    for (;;) {
        const unsigned char *p = memchr(t + e, '-', s->n - e);
        if (!p) {
            e = s->n;
            break;
        }
        e = (size_t)(p - t);
        if (s->n - e >= 8 && memcmp(t + e, "-----END", 8) == 0) {
            e += 8;
            while (e < s->n && t[e] != '-' && t[e] != '\n' && e - i < (1u << 20))
                e++;
            while (e < s->n && t[e] == '-')
                e++;
            break;
        }
        e++;
    }
    det_found(s, DET_PRIVATE_KEY, i, e);
}

/* ---- url_password --------------------------------------------------------------------- */

bool urlpw_shape(const scan *s, size_t i, size_t w)
{
    MM_UNUSED(w);
    return i > 0 && s->t[i - 1] != ' ';
}


/* At '@': scheme://user:password@ -- the password between the first ':' after "//" and the
 * '@' is the match (the user name stays, so logs still say who). */
void urlpw_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t a = i, colon = 0;

    MM_UNUSED(w);
    while (a > 0 && (det_cls[t[a - 1]] & C_USERINFO) && i - a < 512)
        a--;
    if (a < 3 || t[a - 1] != '/' || t[a - 2] != '/' || t[a - 3] != ':')
        return;
    for (size_t k = a; k < i && !colon; k++)
        if (t[k] == ':')
            colon = k;
    if (colon && colon + 1 < i)
        det_found(s, DET_URL_PASSWORD, colon + 1, i);
}

/* ---- conn_password -------------------------------------------------------------------- */

bool connpw_shape(const scan *s, size_t i, size_t w)
{
    size_t len = w - i;
    unsigned char nx = at(s, w);
    return (len == 8 || len == 3) && (nx == '=' || nx == ' ');
}

/* Password=value or Pwd=value (any case, spaces around '=' allowed) up to ';', the end of
 * the value, or a line end; a value in double or single quotes up to its closing quote. */
void connpw_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t j = w, start, end;

    if (!(w - i == 8 && strncasecmp((const char *)t + i, "password", 8) == 0) &&
        !(w - i == 3 && strncasecmp((const char *)t + i, "pwd", 3) == 0))
        return;
    if (i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '_'))
        return;
    while (at(s, j) == ' ')
        j++;
    if (at(s, j) != '=')
        return;
    j++;
    while (at(s, j) == ' ')
        j++;
    start = j;
    if (at(s, j) == '"' || at(s, j) == '\'') {
        const unsigned char *q = memchr(t + j + 1, t[j], s->n - j - 1);
        end = q ? (size_t)(q - t) + 1 : s->n;
    } else {
        end = j;
        while (end < s->n && t[end] != ';' && t[end] != '\n' && t[end] != '\r' &&
               t[end] != '&' && t[end] != '"')
            end++;
        while (end > start && t[end - 1] == ' ')
            end--;
    }
    if (end > start)
        det_found(s, DET_CONN_PASSWORD, start, end);
}
