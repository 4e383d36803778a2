/* lib/kafka/record.c: one consumed record into the open transaction. The value is masked as
 * its content-type header says (else as spec.streams.contentType); the key as text when
 * spec.streams.keys is mask; headers pass through the policy's header rules. The record goes
 * to the output topic with the same key and partition number, so per-key order holds. A
 * record that cannot be masked never reaches the output: its dead-letter record carries the
 * error and where the record was, not its value, key or headers. */
#include "kafka/kafka_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CTYPE_HDR_MAX 256

/* ctx: the mm_kafka */
static void on_finding(void *ctx, const mm_finding *f)
{
    mm_kafka *k = ctx;
    if (f->rule)
        mm_metric_add(k->m.findings,
                      (const char *const[]){f->policy, f->rule, f->applied ? "true" : "false"}, 1);
}

/* The record's content type: its last content-type header (any case), NUL-terminated. */
static bool content_type(const rd_kafka_message_t *msg, char *out, size_t n)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v;
    size_t len;
    bool found = false;

    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    for (size_t i = 0;; i++) {
        const char *name;
        if (rd_kafka_header_get_all(hdrs, i, &name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (strcasecmp(name, "content-type") == 0 && v && len < n) {
            memcpy(out, v, len);
            out[len] = '\0';
            found = true;
        }
    }
    return found;
}

/* The headers to produce: each one through the policy's header rules. Caller destroys. */
static mm_err headers_out(mm_kafka *k, const snap *s, const rd_kafka_message_t *msg,
                          rd_kafka_headers_t **out, mm_errbuf *eb)
{
    rd_kafka_headers_t *in = NULL, *h;
    mm_err rc = MM_OK;
    mm_buf nv;

    mm_buf_init(&nv, MM_MASK_MAX_VALUE);
    if (rd_kafka_message_headers(msg, &in) != RD_KAFKA_RESP_ERR_NO_ERROR)
        in = NULL;
    if (!(h = rd_kafka_headers_new(in ? rd_kafka_header_cnt(in) : 0)))
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    for (size_t i = 0; in; i++) {
        const char *name;
        const void *v;
        size_t len;
        mm_hdr_result res;
        if (rd_kafka_header_get_all(in, i, &name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        mm_buf_reset(&nv);
        if (!v) { /* a null header value has nothing to mask */
            rd_kafka_header_add(h, name, -1, NULL, 0);
            continue;
        }
        if ((rc = mm_masker_header(s->masker, MM_DIR_RESPONSE, NULL, name, v, len, &nv, &res,
                                   on_finding, k)) != MM_OK) {
            mm_errf(eb, rc, "header %.64s: masking failed", name);
            goto out;
        }
        if (res == MM_HDR_KEEP)
            rd_kafka_header_add(h, name, -1, v, (ssize_t)len);
        else if (res == MM_HDR_REWRITE)
            rd_kafka_header_add(h, name, -1, nv.data ? nv.data : "", (ssize_t)nv.len);
    }
    *out = h;
    h = NULL;
out:
    if (h)
        rd_kafka_headers_destroy(h);
    mm_buf_free(&nv);
    return rc;
}

static mm_err produce(mm_kafka *k, const char *topic, int32_t partition, const void *key,
                      size_t klen, const void *val, size_t vlen, rd_kafka_headers_t *hdrs,
                      mm_errbuf *eb)
{
    rd_kafka_resp_err_t err;

    /* RD_KAFKA_MSG_F_COPY: our buffers are reused for the next record */
    while ((err = rd_kafka_producev(k->producer, RD_KAFKA_V_TOPIC(topic),
                                    RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
                                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(k->producer, 50); /* the local queue drains as the broker acks */
    if (err) {
        rd_kafka_headers_destroy(hdrs); /* owned by the message only on success */
        return mm_errf(eb, MM_EIO, "producing to %s [%d]: %s", topic, (int)partition,
                       rd_kafka_err2str(err));
    }
    mm_metric_add(k->m.bytes, (const char *const[]){"out"}, (double)vlen);
    return MM_OK;
}

/* The dead-letter record: JSON naming the source record and the error (mm_errbuf messages
 * name places, never values) and a header saying so. */
static mm_err dead_letter(mm_kafka *k, const snap *s, const rd_kafka_message_t *msg,
                          const char *why, mm_errbuf *eb)
{
    mm_buf b;
    mm_err rc;
    rd_kafka_headers_t *h = NULL;
    const char *topic = rd_kafka_topic_name(msg->rkt);

    mm_buf_init(&b, 0);
    if ((rc = mm_buf_puts(&b, "{\"topic\":")) || (rc = mm_buf_put_json_str(&b, topic, strlen(topic))) ||
        (rc = mm_buf_printf(&b, ",\"partition\":%d,\"offset\":%lld,\"policy\":", (int)msg->partition,
                            (long long)msg->offset)) ||
        (rc = mm_buf_put_json_str(&b, s->pol->name, strlen(s->pol->name))) ||
        (rc = mm_buf_puts(&b, ",\"error\":")) || (rc = mm_buf_put_json_str(&b, why, strlen(why))) ||
        (rc = mm_buf_puts(&b, "}"))) {
        rc = mm_errf(eb, rc, "out of memory");
        goto out;
    }
    if (!(h = rd_kafka_headers_new(2))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
    rd_kafka_header_add(h, "maskmesh-error", -1, "unmaskable", -1);
    rc = produce(k, s->pol->streams->dead_letter, RD_KAFKA_PARTITION_UA, NULL, 0, b.data, b.len,
                 h, eb);
out:
    mm_buf_free(&b);
    return rc;
}

/* The record's value masked as `kind` into s->vout, by the snap's stream, made on first use
 * and again when the kind changes, else reset. */
static mm_err mask_value(mm_kafka *k, snap *s, mm_body_kind kind, const void *in, size_t len,
                         mm_errbuf *eb)
{
    mm_err rc = MM_OK;

    mm_buf_reset(&s->vout);
    if (s->vstream && s->vkind != kind) {
        mm_stream_free(s->vstream);
        s->vstream = NULL;
    }
    if (s->vstream) {
        mm_stream_reset(s->vstream);
    } else {
        mm_stream_opts so = {.kind = kind, .direction = MM_DIR_RESPONSE,
                             .on_finding = on_finding, .finding_ctx = k};
        if ((rc = mm_stream_new(s->masker, &so, mm_stream_buf_write, &s->vout, &s->vstream)) != MM_OK)
            rc = mm_errf(eb, rc, "out of memory");
        s->vkind = kind;
    }
    if (rc == MM_OK && (rc = mm_stream_push(s->vstream, in, len, eb)) == MM_OK)
        rc = mm_stream_finish(s->vstream, eb);
    if (rc != MM_OK)
        mm_errprefix(eb, "value (%s)", mm_body_kind_name(kind));
    return rc;
}

/* The record's key masked as text into out (only with spec.streams.keys: mask). */
static mm_err mask_key(mm_kafka *k, const snap *s, const void *in, size_t len, mm_buf *out,
                       mm_errbuf *eb)
{
    mm_stream_opts so = {.kind = MM_BODY_TEXT, .direction = MM_DIR_RESPONSE,
                         .on_finding = on_finding, .finding_ctx = k};
    mm_err rc = mm_mask_buffer(s->masker, &so, in, len, out, eb);
    if (rc != MM_OK)
        mm_errprefix(eb, "key (%s)", mm_body_kind_name(MM_BODY_TEXT));
    return rc;
}

mm_err kafka_record(mm_kafka *k, snap *s, const rd_kafka_message_t *msg, bool *stop_it,
                    mm_errbuf *eb)
{
    const mm_policy_streams *st = s->pol->streams;
    const char *topic = rd_kafka_topic_name(msg->rkt);
    mm_body_kind kind = s->default_kind;
    char ctype[CTYPE_HDR_MAX];
    mm_buf key;
    mm_errbuf why = {{0}};
    rd_kafka_headers_t *hdrs = NULL;
    mm_err rc = MM_OK, mrc = MM_OK;

    *stop_it = false;
    mm_buf_init(&key, 0);
    mm_metric_add(k->m.bytes, (const char *const[]){"in"}, (double)msg->len);
    if (content_type(msg, ctype, sizeof(ctype)) &&
        (kind = mm_body_kind_for(s->masker, ctype)) == MM_BODY_OPAQUE) {
        /* the sidecar passes such bodies; a topic's output promises masked records */
        mrc = mm_errf(&why, MM_EINVAL, "content type \"%.64s\" is not one maskmesh masks", ctype);
        goto failed;
    }
    if (msg->payload && (mrc = mask_value(k, s, kind, msg->payload, msg->len, &why)) != MM_OK)
        goto failed;
    if (st->mask_keys && msg->key &&
        (mrc = mask_key(k, s, msg->key, msg->key_len, &key, &why)) != MM_OK)
        goto failed;
    if ((mrc = headers_out(k, s, msg, &hdrs, &why)) != MM_OK)
        goto failed;
    rc = produce(k, st->output, msg->partition,
                 st->mask_keys && msg->key ? (key.data ? key.data : "") : msg->key,
                 st->mask_keys && msg->key ? key.len : msg->key_len,
                 msg->payload ? (s->vout.data ? s->vout.data : "") : NULL,
                 msg->payload ? s->vout.len : 0,
                 hdrs, eb);
    if (rc == MM_OK)
        mm_metric_add(k->m.records, (const char *const[]){topic, "masked"}, 1);
    goto out;
failed:
    mm_metric_add(k->m.errors, (const char *const[]){"mask"}, 1);
    if (mrc == MM_ENOMEM) { /* not the record's fault: retry it after a restart */
        rc = mm_errf(eb, MM_ENOMEM, "%s", why.msg);
        goto out;
    }
    if (st->on_error == MM_STREAMS_ONERR_DEAD_LETTER) {
        char off[24];
        snprintf(off, sizeof(off), "%lld", (long long)msg->offset);
        mm_log(MM_LOG_WARN, "record sent to the dead-letter topic", "topic", topic, "offset",
               off, "error", why.msg, NULL);
        rc = dead_letter(k, s, msg, why.msg, eb);
        if (rc == MM_OK)
            mm_metric_add(k->m.records, (const char *const[]){topic, "dead_letter"}, 1);
    } else {
        char off[24], part[16];
        snprintf(off, sizeof(off), "%lld", (long long)msg->offset);
        snprintf(part, sizeof(part), "%d", (int)msg->partition);
        mm_log(MM_LOG_ERROR, "partition stopped at a record that cannot be masked", "topic",
               topic, "partition", part, "offset", off, "error", why.msg, NULL);
        mm_metric_add(k->m.records, (const char *const[]){topic, "stopped"}, 1);
        *stop_it = true;
    }
out:
    mm_buf_free(&key);
    return rc;
}
