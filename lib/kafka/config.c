/* lib/kafka/config.c: the masker's configuration. The policy file (and the keys directory)
 * load into a snapshot that a reload replaces whole; the files are watched by a signature of
 * their stat() results, following kubelet's ..data symlinks as the sidecar does; the
 * librdkafka configuration is built from spec.streams and the mounted credentials. */
#include "kafka/kafka_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define CRED_MAX 4096 /* a username or password file */
/* librdkafka before 2.6.1 repeats the client nonce in its SCRAM client-final message
 * (confluentinc/librdkafka#4895); brokers with the CVE-2024-56128 fix (Kafka 3.8.1, 3.9, 4.x)
 * check the nonce strictly and refuse every such login, whatever the password */
#define SCRAM_FIXED_VERSION 0x020601ff
#define SCRAM_FLAW " (librdkafka before 2.6.1 sends SCRAM logins that Kafka 3.8.1 and later " \
                   "refuse, confluentinc/librdkafka#4895: use PLAIN over SASL_SSL or SSL client " \
                   "certificates, or a librdkafka of 2.6.1 or later)"

const char kafka_scram_flaw[] = SCRAM_FLAW;

bool kafka_scram_flawed(const mm_policy_streams *st)
{
    return st->sasl_mechanism && strncmp(st->sasl_mechanism, "SCRAM-", 6) == 0 &&
           rd_kafka_version() < SCRAM_FIXED_VERSION;
}

void kafka_snap_free(snap *s)
{
    if (!s)
        return;
    mm_stream_free(s->vstream);
    mm_buf_free(&s->vout);
    mm_masker_free(s->masker);
    mm_policy_set_free(s->set);
    mm_free(s);
}

uint64_t kafka_files_signature(const mm_kafka *k)
{
    uint64_t h = mm_fsig_file(MM_FSIG_INIT, k->policy_file);
    return k->keys_dir ? mm_fsig_dir(h, k->keys_dir) : h;
}

/* The policy the masker serves: the named one, else the only one with spec.streams. */
static mm_err pick(mm_kafka *k, const mm_policy_set *set, const mm_policy **out, mm_errbuf *eb)
{
    const mm_policy *found = NULL;

    for (size_t i = 0; i < mm_policy_set_count(set); i++) {
        const mm_policy *p = mm_policy_set_get(set, i);
        if (k->policy_name ? strcmp(p->name, k->policy_name) != 0 : !p->streams)
            continue;
        if (found)
            return mm_errf(eb, MM_EINVAL, "%s: more than one policy has spec.streams (%s, %s): "
                           "name one with --name", k->policy_file, found->name, p->name);
        found = p;
    }
    if (!found)
        return mm_errf(eb, MM_EINVAL, k->policy_name ? "%s: no policy named %s" :
                       "%s: no policy has spec.streams%s", k->policy_file,
                       k->policy_name ? k->policy_name : "");
    if (!found->streams)
        return mm_errf(eb, MM_EINVAL, "%s: policy %s has no spec.streams", k->policy_file,
                       found->name);
    *out = found;
    return MM_OK;
}

mm_err kafka_snap_load(mm_kafka *k, snap **out, mm_errbuf *eb)
{
    mm_err rc;
    snap *s = NULL;
    mm_keys *keys = NULL;
    struct stat st;

    if (!(s = mm_calloc(1, sizeof(*s))))
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    if ((rc = mm_policy_load(k->policy_file, &s->set, NULL, eb)) != MM_OK ||
        (rc = pick(k, s->set, &s->pol, eb)) != MM_OK)
        goto out;
    /* an absent keys directory is an absent (optional) Secret; anything else must load */
    if (k->keys_dir && stat(k->keys_dir, &st) == 0 &&
        (rc = mm_keys_load_dir(k->keys_dir, &keys, eb)) != MM_OK)
        goto out;
    if ((rc = mm_masker_new(&s->pol, 1, keys, NULL, &s->masker, eb)) != MM_OK)
        goto out;
    s->default_kind = mm_body_kind_for(s->masker, s->pol->streams->content_type
                                                      ? s->pol->streams->content_type
                                                      : "application/json");
    if (s->default_kind == MM_BODY_OPAQUE) {
        rc = mm_errf(eb, MM_EINVAL, "%s: spec.streams.contentType: \"%.64s\" is not a type "
                     "maskmesh masks (JSON, NDJSON, text, or one a rule lists in contentTypes)",
                     k->policy_file, s->pol->streams->content_type);
        goto out;
    }
    s->gen = ++k->gen;
    *out = s;
    s = NULL;
out:
    mm_keys_free(keys);
    kafka_snap_free(s);
    return rc;
}

static mm_err set(rd_kafka_conf_t *c, const char *name, const char *value, mm_errbuf *eb)
{
    char err[256];
    if (rd_kafka_conf_set(c, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        return mm_errf(eb, MM_EINVAL, "librdkafka %s: %s", name, err);
    return MM_OK;
}

/* A credential file's content without the trailing newline kubectl create secret keeps. */
static mm_err cred(const mm_kafka *k, const char *name, char **out, mm_errbuf *eb)
{
    char path[4096];
    size_t len = 0;
    mm_err rc;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", k->cred_dir, name) >= sizeof(path))
        return mm_errf(eb, MM_ELIMIT, "credentials path too long");
    if ((rc = mm_read_file(path, CRED_MAX, out, &len, eb)) != MM_OK) {
        char why[sizeof(eb->msg)];
        snprintf(why, sizeof(why), "%s", eb->msg);
        return mm_errf(eb, rc, "spec.streams.saslMechanism needs %s in the credentialsSecret: %s",
                       name, why);
    }
    while (len && ((*out)[len - 1] == '\n' || (*out)[len - 1] == '\r'))
        (*out)[--len] = '\0';
    return MM_OK;
}

static bool file_exists(const mm_kafka *k, const char *name, char *path, size_t n)
{
    struct stat st;
    return (size_t)snprintf(path, n, "%s/%s", k->cred_dir, name) < n && stat(path, &st) == 0;
}

static mm_err security(mm_kafka *k, const mm_policy_streams *st, rd_kafka_conf_t *c,
                       mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    const char *proto = st->security_protocol ? st->security_protocol : "PLAINTEXT";
    char *user = NULL, *pass = NULL, path[4096];

    if ((rc = set(c, "security.protocol", proto, eb)) != MM_OK)
        goto out;
    if (strcmp(proto, "PLAINTEXT") == 0)
        goto out;
    if (!k->cred_dir) {
        rc = mm_errf(eb, MM_EINVAL, "spec.streams.securityProtocol %s needs the credentials "
                     "(--credentials DIR, the mounted credentialsSecret)", proto);
        goto out;
    }
    if (strstr(proto, "SSL")) {
        if (file_exists(k, "ca.crt", path, sizeof(path)) &&
            (rc = set(c, "ssl.ca.location", path, eb)) != MM_OK)
            goto out;
        if (file_exists(k, "tls.crt", path, sizeof(path)) &&
            (rc = set(c, "ssl.certificate.location", path, eb)) != MM_OK)
            goto out;
        if (file_exists(k, "tls.key", path, sizeof(path)) &&
            (rc = set(c, "ssl.key.location", path, eb)) != MM_OK)
            goto out;
    }
    if (strncmp(proto, "SASL_", 5) == 0) {
        if ((rc = cred(k, "username", &user, eb)) != MM_OK ||
            (rc = cred(k, "password", &pass, eb)) != MM_OK ||
            (rc = set(c, "sasl.mechanism", st->sasl_mechanism, eb)) != MM_OK ||
            (rc = set(c, "sasl.username", user, eb)) != MM_OK ||
            (rc = set(c, "sasl.password", pass, eb)) != MM_OK)
            goto out;
    }
out:
    if (pass)
        memset(pass, 0, strlen(pass)); /* the secret stays in librdkafka's copy only */
    mm_free(user);
    mm_free(pass);
    return rc;
}

/* librdkafka's own logs as our JSON lines (its messages name brokers and states, never
 * record contents). Called on librdkafka's threads; mm_log writes one line per call. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    mm_log_level l = level <= 3 ? MM_LOG_ERROR : level == 4 ? MM_LOG_WARN
                   : level <= 6 ? MM_LOG_INFO : MM_LOG_DEBUG;
    mm_log(l, buf, "librdkafka", rd_kafka_name(rk), "facility", fac, NULL);
}

/* Broker connection errors, served by rd_kafka_poll on the caller's thread. A failed login
 * and a failed TLS handshake are kept (the first of them) for kafka_conn_error; librdkafka
 * retries anything else on its own, so that is only logged. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    mm_kafka *k = opaque;
    bool tls = err == RD_KAFKA_RESP_ERR__SSL ||
               (err == RD_KAFKA_RESP_ERR__TRANSPORT && strstr(reason, "SSL"));
    if (!k->conn_err && (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || tls)) {
        k->conn_err = tls ? RD_KAFKA_RESP_ERR__SSL : err;
        snprintf(k->conn_msg, sizeof(k->conn_msg), "%s", reason);
    }
    snprintf(k->last_err, sizeof(k->last_err), "%s", reason);
    mm_log(MM_LOG_WARN, "broker connection error", "client", rd_kafka_name(rk), "error", reason,
           NULL);
}

mm_err kafka_conn_error(const mm_kafka *k, const mm_policy_streams *st, mm_errbuf *eb)
{
    const char *proto = st->security_protocol ? st->security_protocol : "PLAINTEXT";
    const char *dir = k->cred_dir ? k->cred_dir : "(no --credentials)";
    const char *servers = k->bootstrap ? k->bootstrap : st->bootstrap;

    if (k->conn_err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        return mm_errf(eb, MM_EINVAL, "spec.streams.saslMechanism %s: the broker refused the login "
                       "with username and password of the credentialsSecret (%s)%s: %s",
                       st->sasl_mechanism ? st->sasl_mechanism : "?", dir,
                       kafka_scram_flawed(st) ? SCRAM_FLAW : "", k->conn_msg);
    if (k->conn_err == RD_KAFKA_RESP_ERR__SSL && !strstr(proto, "SSL"))
        return mm_errf(eb, MM_ETLS, "spec.streams.securityProtocol %s: the connection to %s "
                       "failed; does the listener want TLS (SSL or SASL_SSL)?: %s", proto,
                       servers, k->conn_msg);
    if (k->conn_err == RD_KAFKA_RESP_ERR__SSL)
        return mm_errf(eb, MM_ETLS, "spec.streams.securityProtocol %s: the TLS connection to %s "
                       "failed (the broker's certificate is checked against %s/ca.crt; the "
                       "client's is tls.crt and tls.key there, if the listener asks for one): %s",
                       proto, servers, dir, k->conn_msg);
    return mm_errf(eb, MM_ETIMEOUT, "spec.streams.bootstrapServers %s (securityProtocol %s): no "
                   "transaction coordinator answered; last broker error: %s", servers, proto,
                   k->last_err[0] ? k->last_err : "none");
}

mm_err kafka_conf(mm_kafka *k, const mm_policy_streams *st, bool consumer,
                  rd_kafka_conf_t **out, mm_errbuf *eb)
{
    mm_err rc;
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char num[32];

    if (!c)
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    rd_kafka_conf_set_log_cb(c, log_cb);
    rd_kafka_conf_set_error_cb(c, error_cb);
    rd_kafka_conf_set_opaque(c, k);
    if ((rc = set(c, "bootstrap.servers", k->bootstrap ? k->bootstrap : st->bootstrap, eb)) ||
        (rc = set(c, "client.id", "maskmesh-stream", eb)) || (rc = security(k, st, c, eb)))
        goto out;
    if (consumer) {
        /* offsets are committed only inside transactions; read only committed input, so an
         * upstream transactional producer's aborted records are never masked and emitted */
        if ((rc = set(c, "group.id", k->group, eb)) ||
            (rc = set(c, "enable.auto.commit", "false", eb)) ||
            (rc = set(c, "enable.auto.offset.store", "false", eb)) ||
            (rc = set(c, "isolation.level", "read_committed", eb)) ||
            (rc = set(c, "auto.offset.reset", "earliest", eb)) ||
            /* incremental rebalancing: a joining masker takes partitions without stopping the
             * others (KIP-429) */
            (rc = set(c, "partition.assignment.strategy", "cooperative-sticky", eb)) ||
            (rc = set(c, "enable.partition.eof", "false", eb)) ||
            /* prefetch 64 MB (librdkafka's default), not less: once the queue is over it,
             * librdkafka before 2.3 (Debian 12 has 2.0.2) fetches a partition again only a
             * second later (its issue #2879; 2.3's fetch.queue.backoff.ms sets that wait),
             * so the queue must hold more than a second of masking. With 16 MB the masker
             * polled an empty queue half the time: 27-31k records/s at 66 MB peak RSS,
             * 59-80k at 148-173 MB with 64 (bench/stream.py's records, one masker). */
            (rc = set(c, "queued.max.messages.kbytes", "65536", eb)) ||
            /* one fetch at a time goes to a broker: 8 MB per partition, not 1, takes a
             * transaction's worth in one round trip (a 4-partition topic, 64 MB prefetch:
             * 75-80k records/s against 66-72k, 148 MB peak RSS against 121);
             * fetch.max.bytes (50 MB) still bounds a response however many partitions a
             * masker holds */
            (rc = set(c, "max.partition.fetch.bytes", "8388608", eb)) ||
            /* a killed masker's partitions move to the others after 10 s, not 45 */
            (rc = set(c, "session.timeout.ms", "10000", eb)))
            goto out;
    } else {
        char linger[16];
        /* a read_committed reader sees a record only when its transaction commits, every
         * commit_ms, and the commit sends what waits: lingering that long delays nobody and
         * sends each partition's records of a transaction in one batch, not one per 5 ms
         * (Kafka Streams' producer lingers 100 ms for the same reason). librdkafka refuses
         * every produce unless linger.ms is under message.timeout.ms (--commit-ms 600000
         * stopped the masker at its first record): at most half the transaction timeout
         * and a second, under any message timeout a transactional producer can have. */
        unsigned linger_ms = k->o.commit_ms;
        if (linger_ms > k->o.txn_timeout_ms / 2)
            linger_ms = k->o.txn_timeout_ms / 2;
        if (linger_ms > 1000)
            linger_ms = 1000;
        snprintf(num, sizeof(num), "%u", k->o.txn_timeout_ms);
        snprintf(linger, sizeof(linger), "%u", linger_ms);
        if ((rc = set(c, "transactional.id", k->txn_id, eb)) ||
            (rc = set(c, "transaction.timeout.ms", num, eb)) ||
            (rc = set(c, "linger.ms", linger, eb)))
            goto out;
    }
    *out = c;
    c = NULL;
out:
    if (c)
        rd_kafka_conf_destroy(c);
    return rc;
}
