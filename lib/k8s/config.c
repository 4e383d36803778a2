/* lib/k8s configuration: in-cluster service-account settings and kubeconfig files (clusters,
 * users, contexts; tokens, token files, client certificates as files or base64 -data,
 * certificate authorities, insecure-skip-tls-verify). Errors name the file, the line:column
 * and the kubeconfig field; they never quote a token, password or key. */
#include "k8s/k8s_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount/"

void k8s_free_secret(char *s, size_t len)
{
    if (!s)
        return;
    /* volatile stores so the wipe is not optimised away before free */
    volatile char *v = s;
    for (size_t i = 0; i < len; i++)
        v[i] = 0;
    mm_free(s);
}

static void free_str_secret(char *s)
{
    if (s)
        k8s_free_secret(s, strlen(s));
}

void mm_k8s_config_free(mm_k8s_config *cfg)
{
    if (!cfg)
        return;
    mm_free(cfg->server);
    mm_free(cfg->ns);
    free_str_secret(cfg->token);
    mm_free(cfg->token_file);
    mm_free(cfg->username);
    free_str_secret(cfg->password);
    mm_free(cfg->ca_file);
    mm_free(cfg->ca_data);
    mm_free(cfg->cert_file);
    mm_free(cfg->cert_data);
    mm_free(cfg->key_file);
    k8s_free_secret(cfg->key_data, cfg->key_len);
    mm_free(cfg);
}

const char *mm_k8s_config_server(const mm_k8s_config *cfg) { return cfg->server; }
const char *mm_k8s_config_namespace(const mm_k8s_config *cfg) { return cfg->ns; }
mm_k8s_auth mm_k8s_config_auth(const mm_k8s_config *cfg) { return cfg->auth; }
bool mm_k8s_config_insecure(const mm_k8s_config *cfg) { return cfg->insecure; }

static bool dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return true;
    *out = mm_strdup(s);
    return *out != NULL;
}

static bool dup_bytes(const char *p, size_t n, char **out)
{
    *out = NULL;
    if (!p)
        return true;
    *out = mm_memdup(p, n);
    return *out != NULL;
}

mm_err k8s_config_copy(const mm_k8s_config *src, mm_k8s_config **out)
{
    mm_k8s_config *c = mm_calloc(1, sizeof(*c));
    if (!c)
        return MM_ENOMEM;
    c->auth = src->auth;
    c->insecure = src->insecure;
    c->ca_len = src->ca_len;
    c->cert_len = src->cert_len;
    c->key_len = src->key_len;
    if (!dup_opt(src->server, &c->server) || !dup_opt(src->ns, &c->ns) ||
        !dup_opt(src->token, &c->token) || !dup_opt(src->token_file, &c->token_file) ||
        !dup_opt(src->username, &c->username) || !dup_opt(src->password, &c->password) ||
        !dup_opt(src->ca_file, &c->ca_file) || !dup_bytes(src->ca_data, src->ca_len, &c->ca_data) ||
        !dup_opt(src->cert_file, &c->cert_file) ||
        !dup_bytes(src->cert_data, src->cert_len, &c->cert_data) ||
        !dup_opt(src->key_file, &c->key_file) ||
        !dup_bytes(src->key_data, src->key_len, &c->key_data)) {
        mm_k8s_config_free(c);
        return MM_ENOMEM;
    }
    *out = c;
    return MM_OK;
}

/* ---- in-cluster ------------------------------------------------------------------------ */

static mm_err check_readable(const char *path, const char *what, mm_errbuf *eb)
{
    if (access(path, R_OK) != 0)
        return mm_errf(eb, errno == ENOENT ? MM_ENOTFOUND : MM_EIO, "%s %s: %s", what, path,
                       strerror(errno));
    return MM_OK;
}

mm_err mm_k8s_config_incluster(const mm_k8s_incluster_opts *o, mm_k8s_config **out,
                               mm_errbuf *eb)
{
    static const mm_k8s_incluster_opts none;
    mm_err rc = MM_OK;
    mm_k8s_config *c = NULL;
    char *ns = NULL;
    size_t nslen = 0;
    mm_buf url;

    mm_buf_init(&url, 0);
    if (!o)
        o = &none;
    const char *host = o->host ? o->host : getenv("KUBERNETES_SERVICE_HOST");
    const char *port = o->port ? o->port : getenv("KUBERNETES_SERVICE_PORT");
    const char *token = o->token_path ? o->token_path : SA_DIR "token";
    const char *ca = o->ca_path ? o->ca_path : SA_DIR "ca.crt";
    const char *nsp = o->namespace_path ? o->namespace_path : SA_DIR "namespace";
    long portnum;

    if (!host || !*host || !port || !*port) {
        rc = mm_errf(eb, MM_EINVAL, "in-cluster config: KUBERNETES_SERVICE_HOST and "
                                    "KUBERNETES_SERVICE_PORT must be set (not in a pod?)");
        goto out;
    }
    if (!mm_parse_long(port, 1, 65535, &portnum)) {
        rc = mm_errf(eb, MM_EINVAL, "in-cluster config: KUBERNETES_SERVICE_PORT: not a port");
        goto out;
    }
    if ((rc = check_readable(token, "in-cluster config: service-account token", eb)) != MM_OK ||
        (rc = check_readable(ca, "in-cluster config: service-account CA", eb)) != MM_OK)
        goto out;
    if (!(c = mm_calloc(1, sizeof(*c)))) {
        rc = MM_ENOMEM;
        goto out;
    }
    /* an IPv6 service host is joined in brackets, as net.JoinHostPort does */
    if ((rc = mm_buf_printf(&url, strchr(host, ':') ? "https://[%s]:%ld" : "https://%s:%ld",
                            host, portnum)) != MM_OK)
        goto out;
    c->server = mm_buf_steal(&url, NULL);
    c->token_file = mm_strdup(token);
    c->ca_file = mm_strdup(ca);
    c->auth = MM_K8S_AUTH_TOKEN_FILE;
    if (!c->server || !c->token_file || !c->ca_file) {
        rc = MM_ENOMEM;
        goto out;
    }
    if (access(nsp, R_OK) == 0) {
        if ((rc = mm_read_file(nsp, 4096, &ns, &nslen, eb)) != MM_OK)
            goto out;
        while (nslen && (ns[nslen - 1] == '\n' || ns[nslen - 1] == ' ' || ns[nslen - 1] == '\r'))
            ns[--nslen] = '\0';
    }
    c->ns = mm_strdup(nslen ? ns : "default");
    if (!c->ns) {
        rc = MM_ENOMEM;
        goto out;
    }
    *out = c;
    c = NULL;
out:
    mm_buf_free(&url);
    mm_free(ns);
    mm_k8s_config_free(c);
    return rc;
}

/* ---- base64 ----------------------------------------------------------------------------- */

static int b64val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Standard base64 as Go's []byte fields use; whitespace (line breaks) is skipped, padding
 * optional. Returns false on any other byte or a dangling bit group. */
static mm_err b64_decode(const char *s, size_t n, char **out, size_t *olen)
{
    char *d = mm_malloc(n / 4 * 3 + 4);
    size_t o = 0, pad = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (!d)
        return MM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
            continue;
        if (ch == '=') {
            pad++;
            continue;
        }
        int v = b64val(ch);
        if (v < 0 || pad)
            goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    /* a lone character in the last group carries no whole byte; Go ignores non-zero fill
     * bits (non-strict decoding), so do we */
    if (bits == 6 || pad > 2)
        goto bad;
    d[o] = '\0';
    *out = d;
    *olen = o;
    return MM_OK;
bad:
    mm_free(d);
    return MM_EPARSE;
}

/* ---- kubeconfig ------------------------------------------------------------------------- */

typedef struct {
    yaml_document_t *doc;
    const char *origin;
    mm_errbuf *eb;
} kc;

static mm_err kc_err(kc *k, mm_err e, const yaml_node_t *n, const char *field, const char *what)
{
    if (n)
        return mm_errf(k->eb, e, "%s:%zu:%zu: %s: %s", k->origin, n->start_mark.line + 1,
                       n->start_mark.column + 1, field, what);
    return mm_errf(k->eb, e, "%s: %s: %s", k->origin, field, what);
}

static yaml_node_t *map_get(kc *k, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(k->doc, p->key);
        if (kn && kn->type == YAML_SCALAR_NODE && kn->data.scalar.length == strlen(key) &&
            memcmp(kn->data.scalar.value, key, kn->data.scalar.length) == 0)
            return yaml_document_get_node(k->doc, p->value);
    }
    return NULL;
}

static bool is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* A string field: absent or null leaves *out NULL. A NUL byte inside is refused. */
static mm_err get_str(kc *k, yaml_node_t *map, const char *key, const char *path, char **out)
{
    char field[256];
    yaml_node_t *n = map_get(k, map, key);

    *out = NULL;
    if (is_null(n))
        return MM_OK;
    snprintf(field, sizeof(field), "%s.%s", path, key);
    if (n->type != YAML_SCALAR_NODE)
        return kc_err(k, MM_EPARSE, n, field, "expected a string");
    if (memchr(n->data.scalar.value, '\0', n->data.scalar.length))
        return kc_err(k, MM_EPARSE, n, field, "contains a NUL byte");
    *out = mm_strndup((const char *)n->data.scalar.value, n->data.scalar.length);
    return *out ? MM_OK : MM_ENOMEM;
}

static mm_err get_bool(kc *k, yaml_node_t *map, const char *key, const char *path, bool *out)
{
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "on", "On", NULL};
    static const char *const f[] = {"false", "False", "FALSE", "no", "No", "off", "Off", NULL};
    char field[256];
    yaml_node_t *n = map_get(k, map, key);

    *out = false;
    if (is_null(n))
        return MM_OK;
    snprintf(field, sizeof(field), "%s.%s", path, key);
    if (n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        for (size_t i = 0; t[i]; i++)
            if (strcmp(v, t[i]) == 0) {
                *out = true;
                return MM_OK;
            }
        for (size_t i = 0; f[i]; i++)
            if (strcmp(v, f[i]) == 0)
                return MM_OK;
    }
    return kc_err(k, MM_EPARSE, n, field, "expected true or false");
}

/* Finds the item of the named list (clusters, users, contexts) whose name is `name`; *idx
 * gets its index for messages. */
static mm_err find_named(kc *k, yaml_node_t *root, const char *list, const char *name,
                         yaml_node_t **item, size_t *idx)
{
    yaml_node_t *seq = map_get(k, root, list);

    *item = NULL;
    if (is_null(seq))
        return MM_OK;
    if (seq->type != YAML_SEQUENCE_NODE)
        return kc_err(k, MM_EPARSE, seq, list, "expected a list");
    size_t i = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top; it++, i++) {
        yaml_node_t *n = yaml_document_get_node(k->doc, *it);
        char field[64];
        snprintf(field, sizeof(field), "%s[%zu]", list, i);
        if (!n || n->type != YAML_MAPPING_NODE)
            return kc_err(k, MM_EPARSE, n, field, "expected a mapping with name");
        yaml_node_t *nn = map_get(k, n, "name");
        if (!nn || nn->type != YAML_SCALAR_NODE) {
            snprintf(field, sizeof(field), "%s[%zu].name", list, i);
            return kc_err(k, MM_EPARSE, nn ? nn : n, field, "expected a string");
        }
        if (nn->data.scalar.length == strlen(name) &&
            memcmp(nn->data.scalar.value, name, nn->data.scalar.length) == 0) {
            *item = n;
            *idx = i;
            return MM_OK;
        }
    }
    return MM_OK;
}

/* Makes a path relative to the kubeconfig's folder absolute, as client-go does. */
static mm_err resolve_path(const char *origin, char **p)
{
    if (!*p || (*p)[0] == '/' || !origin)
        return MM_OK;
    const char *slash = strrchr(origin, '/');
    if (!slash)
        return MM_OK;
    mm_buf b;
    mm_buf_init(&b, 0);
    mm_err rc = mm_buf_append(&b, origin, (size_t)(slash - origin) + 1);
    if (rc == MM_OK)
        rc = mm_buf_puts(&b, *p);
    if (rc != MM_OK) {
        mm_buf_free(&b);
        return rc;
    }
    mm_free(*p);
    *p = mm_buf_steal(&b, NULL);
    return MM_OK;
}

/* A field pair: `file` and `file-data` (base64). -data wins when both are set, like
 * client-go. A file must be readable now so the error names the field, not a TLS failure. */
static mm_err get_file_or_data(kc *k, yaml_node_t *map, const char *path, const char *fkey,
                               const char *dkey, char **file, char **data, size_t *dlen)
{
    mm_err rc;
    char *b64 = NULL;
    char field[256];

    *file = *data = NULL;
    *dlen = 0;
    if ((rc = get_str(k, map, dkey, path, &b64)) != MM_OK)
        return rc;
    if (b64) {
        snprintf(field, sizeof(field), "%s.%s", path, dkey);
        rc = b64_decode(b64, strlen(b64), data, dlen);
        mm_free(b64);
        if (rc == MM_EPARSE)
            return kc_err(k, MM_EPARSE, map_get(k, map, dkey), field, "not valid base64");
        if (rc != MM_OK)
            return rc;
        if (*dlen == 0)
            return kc_err(k, MM_EINVAL, map_get(k, map, dkey), field, "empty");
        return MM_OK;
    }
    if ((rc = get_str(k, map, fkey, path, file)) != MM_OK)
        return rc;
    if (*file) {
        if ((rc = resolve_path(k->origin, file)) != MM_OK)
            return rc;
        if (access(*file, R_OK) != 0) {
            snprintf(field, sizeof(field), "%s.%s", path, fkey);
            char what[200];
            snprintf(what, sizeof(what), "cannot read the file: %s", strerror(errno));
            return kc_err(k, MM_EIO, map_get(k, map, fkey), field, what);
        }
    }
    return MM_OK;
}

static mm_err kc_build(kc *k, yaml_node_t *root, const char *context, mm_k8s_config *c)
{
    mm_err rc = MM_OK;
    char *cur = NULL, *cname = NULL, *uname = NULL, *tmp = NULL;
    yaml_node_t *ctx, *cl, *us;
    size_t ci = 0, cli = 0, ui = 0;
    char path[96];

    if (!root || root->type != YAML_MAPPING_NODE)
        return kc_err(k, MM_EPARSE, root, "(document)", "expected a mapping (a kubeconfig)");
    if ((rc = get_str(k, root, "kind", "", &tmp)) != MM_OK)
        goto out;
    if (tmp && strcmp(tmp, "Config") != 0) {
        rc = kc_err(k, MM_EINVAL, map_get(k, root, "kind"), "kind", "expected Config");
        goto out;
    }
    if (!context) {
        if ((rc = get_str(k, root, "current-context", "", &cur)) != MM_OK)
            goto out;
        if (!cur || !*cur) {
            rc = kc_err(k, MM_EINVAL, NULL, "current-context",
                        "not set, and no context was named");
            goto out;
        }
        context = cur;
    }
    if ((rc = find_named(k, root, "contexts", context, &ctx, &ci)) != MM_OK)
        goto out;
    if (!ctx) {
        char what[200];
        snprintf(what, sizeof(what), "no context named \"%.100s\"", context);
        rc = kc_err(k, MM_EINVAL, map_get(k, root, "contexts"), cur ? "current-context" : "contexts",
                    what);
        goto out;
    }
    snprintf(path, sizeof(path), "contexts[%zu].context", ci);
    yaml_node_t *cx = map_get(k, ctx, "context");
    if (!cx || cx->type != YAML_MAPPING_NODE) {
        rc = kc_err(k, MM_EPARSE, cx ? cx : ctx, path, "expected a mapping");
        goto out;
    }
    if ((rc = get_str(k, cx, "cluster", path, &cname)) != MM_OK ||
        (rc = get_str(k, cx, "user", path, &uname)) != MM_OK ||
        (rc = get_str(k, cx, "namespace", path, &c->ns)) != MM_OK)
        goto out;
    if (!cname || !*cname) {
        rc = kc_err(k, MM_EINVAL, cx, path, "cluster: required");
        goto out;
    }

    /* cluster */
    if ((rc = find_named(k, root, "clusters", cname, &cl, &cli)) != MM_OK)
        goto out;
    if (!cl) {
        char what[200];
        snprintf(what, sizeof(what), "cluster: no cluster named \"%.100s\"", cname);
        rc = kc_err(k, MM_EINVAL, cx, path, what);
        goto out;
    }
    snprintf(path, sizeof(path), "clusters[%zu].cluster", cli);
    yaml_node_t *cn = map_get(k, cl, "cluster");
    if (!cn || cn->type != YAML_MAPPING_NODE) {
        rc = kc_err(k, MM_EPARSE, cn ? cn : cl, path, "expected a mapping");
        goto out;
    }
    if ((rc = get_str(k, cn, "server", path, &c->server)) != MM_OK)
        goto out;
    if (!c->server || !*c->server) {
        rc = kc_err(k, MM_EINVAL, cn, path, "server: required");
        goto out;
    }
    if (strncmp(c->server, "https://", 8) != 0 && strncmp(c->server, "http://", 7) != 0) {
        char field[128];
        snprintf(field, sizeof(field), "%s.server", path);
        rc = kc_err(k, MM_EINVAL, map_get(k, cn, "server"), field,
                    "expected an https:// (or http://) URL");
        goto out;
    }
    {
        size_t n = strlen(c->server);
        while (n > 8 && c->server[n - 1] == '/')
            c->server[--n] = '\0';
        const char *hostpart = strstr(c->server, "://") + 3;
        if (!*hostpart || *hostpart == '/' || strpbrk(c->server, "?# \t\r\n")) {
            char field[128];
            snprintf(field, sizeof(field), "%s.server", path);
            rc = kc_err(k, MM_EINVAL, map_get(k, cn, "server"), field,
                        "expected scheme://host[:port][/path] without query or fragment");
            goto out;
        }
    }
    if ((rc = get_bool(k, cn, "insecure-skip-tls-verify", path, &c->insecure)) != MM_OK)
        goto out;
    if ((rc = get_file_or_data(k, cn, path, "certificate-authority", "certificate-authority-data",
                               &c->ca_file, &c->ca_data, &c->ca_len)) != MM_OK)
        goto out;
    if (c->insecure && (c->ca_file || c->ca_data)) {
        rc = kc_err(k, MM_EINVAL, map_get(k, cn, "insecure-skip-tls-verify"),
                    path, "insecure-skip-tls-verify cannot be combined with a "
                          "certificate-authority");
        goto out;
    }

    /* user: none is allowed (an unauthenticated cluster) */
    if (uname && *uname) {
        if ((rc = find_named(k, root, "users", uname, &us, &ui)) != MM_OK)
            goto out;
        snprintf(path, sizeof(path), "contexts[%zu].context", ci);
        if (!us) {
            char what[200];
            snprintf(what, sizeof(what), "user: no user named \"%.100s\"", uname);
            rc = kc_err(k, MM_EINVAL, cx, path, what);
            goto out;
        }
        snprintf(path, sizeof(path), "users[%zu].user", ui);
        yaml_node_t *un = map_get(k, us, "user");
        if (is_null(un))
            goto done;
        if (un->type != YAML_MAPPING_NODE) {
            rc = kc_err(k, MM_EPARSE, un, path, "expected a mapping");
            goto out;
        }
        static const char *const unsupported[] = {"exec", "auth-provider", "as",
                                                  "as-user-extra", NULL};
        for (size_t i = 0; unsupported[i]; i++) {
            yaml_node_t *x = map_get(k, un, unsupported[i]);
            if (!is_null(x)) {
                char field[128];
                snprintf(field, sizeof(field), "%s.%s", path, unsupported[i]);
                rc = kc_err(k, MM_EINVAL, x, field, "not supported by maskmesh (use a token, "
                                                    "tokenFile or client certificate)");
                goto out;
            }
        }
        if ((rc = get_str(k, un, "token", path, &c->token)) != MM_OK ||
            (rc = get_str(k, un, "tokenFile", path, &c->token_file)) != MM_OK ||
            (rc = get_str(k, un, "username", path, &c->username)) != MM_OK ||
            (rc = get_str(k, un, "password", path, &c->password)) != MM_OK)
            goto out;
        if (c->token && !*c->token) {
            free_str_secret(c->token);
            c->token = NULL;
        }
        if (c->token_file) {
            if (c->token) { /* client-go: a literal token wins over tokenFile */
                mm_free(c->token_file);
                c->token_file = NULL;
            } else {
                if ((rc = resolve_path(k->origin, &c->token_file)) != MM_OK)
                    goto out;
                if (access(c->token_file, R_OK) != 0) {
                    char field[128], what[160];
                    snprintf(field, sizeof(field), "%s.tokenFile", path);
                    snprintf(what, sizeof(what), "cannot read the file: %s", strerror(errno));
                    rc = kc_err(k, MM_EIO, map_get(k, un, "tokenFile"), field, what);
                    goto out;
                }
            }
        }
        if ((rc = get_file_or_data(k, un, path, "client-certificate", "client-certificate-data",
                                   &c->cert_file, &c->cert_data, &c->cert_len)) != MM_OK ||
            (rc = get_file_or_data(k, un, path, "client-key", "client-key-data", &c->key_file,
                                   &c->key_data, &c->key_len)) != MM_OK)
            goto out;
        bool has_cert = c->cert_file || c->cert_data, has_key = c->key_file || c->key_data;
        if (has_cert != has_key) {
            char what[128];
            snprintf(what, sizeof(what), "%s: required with %s",
                     has_cert ? "client-key (or client-key-data)"
                              : "client-certificate (or client-certificate-data)",
                     has_cert ? "client-certificate" : "client-key");
            rc = kc_err(k, MM_EINVAL, un, path, what);
            goto out;
        }
        if ((c->username != NULL) != (c->password != NULL)) {
            rc = kc_err(k, MM_EINVAL, un, path, "username and password go together");
            goto out;
        }
        if ((c->token || c->token_file) && c->username) {
            rc = kc_err(k, MM_EINVAL, un, path,
                        "a token and a username/password cannot both be set");
            goto out;
        }
        c->auth = c->token        ? MM_K8S_AUTH_TOKEN
                  : c->token_file ? MM_K8S_AUTH_TOKEN_FILE
                  : c->username   ? MM_K8S_AUTH_BASIC
                  : has_cert      ? MM_K8S_AUTH_CERT
                                  : MM_K8S_AUTH_NONE;
    }
done:
    if (!c->ns || !*c->ns) {
        mm_free(c->ns);
        if (!(c->ns = mm_strdup("default")))
            rc = MM_ENOMEM;
    }
out:
    mm_free(tmp);
    mm_free(cur);
    mm_free(cname);
    mm_free(uname);
    return rc;
}

mm_err mm_k8s_config_parse_kubeconfig(const char *text, size_t len, const char *origin,
                                      const char *context, mm_k8s_config **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_parser = false, have_doc = false;
    mm_k8s_config *c = NULL;
    kc k = {&doc, origin ? origin : "kubeconfig", eb};

    *out = NULL;
    if (len > MM_K8S_KUBECONFIG_MAX) {
        rc = mm_errf(eb, MM_ELIMIT, "%s: larger than %u bytes", k.origin, MM_K8S_KUBECONFIG_MAX);
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = MM_ENOMEM;
        goto out;
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = mm_errf(eb, MM_EPARSE, "%s:%zu:%zu: %s", k.origin, parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "not valid YAML");
        goto out;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        rc = mm_errf(eb, MM_EPARSE, "%s: empty document", k.origin);
        goto out;
    }
    if (!(c = mm_calloc(1, sizeof(*c)))) {
        rc = MM_ENOMEM;
        goto out;
    }
    if ((rc = kc_build(&k, root, context, c)) != MM_OK) {
        if (rc == MM_ENOMEM)
            mm_errf(eb, rc, "%s: out of memory", k.origin);
        goto out;
    }
    *out = c;
    c = NULL;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    mm_k8s_config_free(c);
    return rc;
}

mm_err mm_k8s_config_kubeconfig(const char *path, const char *context, mm_k8s_config **out,
                                mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    char *text = NULL, *list = NULL, *home = NULL;
    size_t len = 0;
    const char *chosen = path;

    if (!chosen) {
        const char *env = getenv("KUBECONFIG");
        if (env && *env) {
            if (!(list = mm_strdup(env)))
                return MM_ENOMEM;
            for (char *p = list, *end; p && !chosen; p = end ? end + 1 : NULL) {
                if ((end = strchr(p, ':')))
                    *end = '\0';
                if (*p && access(p, R_OK) == 0)
                    chosen = p;
            }
            if (!chosen) {
                rc = mm_errf(eb, MM_ENOTFOUND, "KUBECONFIG: none of its files is readable");
                goto out;
            }
        } else {
            const char *h = getenv("HOME");
            mm_buf b;
            mm_buf_init(&b, 0);
            if (!h || !*h) {
                rc = mm_errf(eb, MM_ENOTFOUND, "no kubeconfig: KUBECONFIG and HOME are unset");
                goto out;
            }
            if ((rc = mm_buf_printf(&b, "%s/.kube/config", h)) != MM_OK) {
                mm_buf_free(&b);
                goto out;
            }
            home = mm_buf_steal(&b, NULL);
            chosen = home;
        }
    }
    if ((rc = mm_read_file(chosen, MM_K8S_KUBECONFIG_MAX, &text, &len, eb)) != MM_OK)
        goto out;
    rc = mm_k8s_config_parse_kubeconfig(text, len, chosen, context, out, eb);
out:
    if (text)
        k8s_free_secret(text, len);
    mm_free(list);
    mm_free(home);
    return rc;
}

mm_err mm_k8s_config_load(const char *kubeconfig, mm_k8s_config **out, mm_errbuf *eb)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    if (kubeconfig && *kubeconfig)
        return mm_k8s_config_kubeconfig(kubeconfig, NULL, out, eb);
    if (host && *host)
        return mm_k8s_config_incluster(NULL, out, eb);
    return mm_k8s_config_kubeconfig(NULL, NULL, out, eb);
}
