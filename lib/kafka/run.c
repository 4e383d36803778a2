/* lib/kafka/run.c: the masker's loop, after librdkafka's examples/transactions.c (KIP-447):
 * one consumer in the group with cooperative-sticky assignment and one transactional
 * producer. Records are masked into the open transaction; every commit_ms or commit_records
 * the consumer's positions are sent to the transaction with the group's metadata and the
 * transaction commits, so output and offsets land together or not at all. Before partitions
 * are revoked the transaction commits; when they are lost it aborts. An abortable error
 * aborts and rewinds to the committed offsets. A stopped partition is paused and its offset
 * held at the record that could not be masked. */
#include "kafka/kafka_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS 50
#define INIT_SLICE_MS 500
#define INIT_TIMEOUT_MS 60000
#define LAG_EVERY_NS (1000ull * 1000 * 1000)

static mm_err rk_err(mm_errbuf *eb, const char *what, rd_kafka_error_t *e)
{
    mm_errf(eb, MM_EIO, "%s: %s: %s", what, rd_kafka_error_name(e), rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return MM_EIO;
}

static void count_txn(mm_kafka *k, const char *result)
{
    mm_metric_add(k->m.txns, (const char *const[]){result}, 1);
}

/* Back to the committed offsets of the assignment (the start of the aborted transaction). */
static mm_err rewind_consumer(mm_kafka *k, mm_errbuf *eb)
{
    rd_kafka_topic_partition_list_t *offs = NULL;
    rd_kafka_error_t *e;
    rd_kafka_resp_err_t err;
    mm_err rc = MM_OK;

    if (rd_kafka_assignment(k->consumer, &offs) || offs->cnt == 0)
        goto out;
    if ((err = rd_kafka_committed(k->consumer, offs, 10000))) {
        rc = mm_errf(eb, MM_EIO, "reading committed offsets: %s", rd_kafka_err2str(err));
        goto out;
    }
    for (int i = 0; i < offs->cnt; i++)
        if (offs->elems[i].offset < 0)
            offs->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    if ((e = rd_kafka_seek_partitions(k->consumer, offs, -1)))
        rc = rk_err(eb, "seeking to committed offsets", e);
out:
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    return rc;
}

static mm_err abort_txn(mm_kafka *k, bool rewind, mm_errbuf *eb)
{
    rd_kafka_error_t *e;

    if (!k->txn_open)
        return MM_OK;
    k->txn_open = false;
    count_txn(k, "aborted");
    if ((e = rd_kafka_abort_transaction(k->producer, -1)))
        return rk_err(eb, "aborting the transaction", e);
    return rewind ? rewind_consumer(k, eb) : MM_OK;
}

static stopped *find_stop(mm_kafka *k, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < k->n_stop; i++)
        if (k->stop[i].partition == partition && strcmp(k->stop[i].topic, topic) == 0)
            return &k->stop[i];
    return NULL;
}

/* Sends the positions of the assignment (a stopped partition's held at its record) and
 * commits. An abortable failure aborts and rewinds; only what cannot be recovered (fenced,
 * a fatal producer error) is returned as an error. */
static mm_err commit_txn(mm_kafka *k, mm_errbuf *eb)
{
    rd_kafka_topic_partition_list_t *offs = NULL;
    rd_kafka_consumer_group_metadata_t *cgmd = NULL;
    rd_kafka_error_t *e = NULL;
    mm_err rc = MM_OK;

    if (!k->txn_open)
        return MM_OK;
    if (rd_kafka_assignment(k->consumer, &offs) || offs->cnt == 0) {
        /* nothing assigned any more: what was produced has no offsets to go with it */
        rc = abort_txn(k, false, eb);
        goto out;
    }
    rd_kafka_position(k->consumer, offs);
    for (int i = 0; i < offs->cnt; i++) {
        stopped *st = find_stop(k, offs->elems[i].topic, offs->elems[i].partition);
        if (st)
            offs->elems[i].offset = st->offset;
    }
    cgmd = rd_kafka_consumer_group_metadata(k->consumer);
    if (!(e = rd_kafka_send_offsets_to_transaction(k->producer, offs, cgmd, -1)))
        e = rd_kafka_commit_transaction(k->producer, -1);
    if (e) {
        if (!rd_kafka_error_txn_requires_abort(e)) {
            rc = rk_err(eb, "committing the transaction", e);
            goto out;
        }
        char m[256];
        snprintf(m, sizeof(m), "%s: %s", rd_kafka_error_name(e), rd_kafka_error_string(e));
        mm_log(MM_LOG_WARN, "transaction failed, aborting and rewinding", "error", m, NULL);
        rd_kafka_error_destroy(e);
        rc = abort_txn(k, true, eb);
        goto out;
    }
    k->txn_open = false;
    count_txn(k, "committed");
out:
    if (cgmd)
        rd_kafka_consumer_group_metadata_destroy(cgmd);
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    return rc;
}

static mm_err begin_txn(mm_kafka *k, mm_errbuf *eb)
{
    rd_kafka_error_t *e;

    if (k->txn_open)
        return MM_OK;
    if ((e = rd_kafka_begin_transaction(k->producer)))
        return rk_err(eb, "beginning a transaction", e);
    k->txn_open = true;
    k->txn_records = 0;
    k->txn_started_ns = mm_now_ns();
    return MM_OK;
}

static void forget_stops(mm_kafka *k, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        stopped *st = find_stop(k, parts->elems[i].topic, parts->elems[i].partition);
        if (st)
            *st = k->stop[--k->n_stop];
    }
}

static void on_rebalance(rd_kafka_t *c, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    mm_kafka *k = opaque;
    rd_kafka_error_t *e = NULL;
    char n[16];
    mm_err rc = MM_OK;

    snprintf(n, sizeof(n), "%d", parts->cnt);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        mm_log(MM_LOG_INFO, "partitions assigned", "count", n, NULL);
        e = rd_kafka_incremental_assign(c, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        bool lost = rd_kafka_assignment_lost(c);
        mm_log(MM_LOG_INFO, lost ? "partitions lost, aborting the transaction"
                                 : "partitions revoked, committing the transaction",
               "count", n, NULL);
        /* the new owner starts from what is committed now: commit what was masked, unless
         * the partitions are already someone else's (then our output must not count) */
        rc = lost ? abort_txn(k, false, &k->fatal_eb) : commit_txn(k, &k->fatal_eb);
        forget_stops(k, parts);
        e = rd_kafka_incremental_unassign(c, parts);
    }
    if (rc != MM_OK && k->fatal == MM_OK)
        k->fatal = rc;
    if (e) {
        if (k->fatal == MM_OK)
            k->fatal = rk_err(&k->fatal_eb, "changing the assignment", e);
        else
            rd_kafka_error_destroy(e);
    }
    mm_metric_add(k->m.assigned, NULL, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? parts->cnt
                                                                                   : -parts->cnt);
}

static mm_err stop_partition(mm_kafka *k, const rd_kafka_message_t *msg, mm_errbuf *eb)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    const char *topic = rd_kafka_topic_name(msg->rkt);
    stopped *st;

    if (!l)
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    rd_kafka_topic_partition_list_add(l, topic, msg->partition);
    rd_kafka_pause_partitions(k->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (!(st = find_stop(k, topic, msg->partition))) {
        if (k->n_stop == KAFKA_MAX_STOPPED)
            return mm_errf(eb, MM_ELIMIT, "more than %d partitions stopped", KAFKA_MAX_STOPPED);
        st = &k->stop[k->n_stop++];
        snprintf(st->topic, sizeof(st->topic), "%s", topic);
        st->partition = msg->partition;
        st->offset = msg->offset;
    }
    mm_metric_set(k->m.stopped, NULL, (double)k->n_stop);
    return MM_OK;
}

/* Lag per assigned partition from the high watermarks the fetches brought (no requests).
 * A stopped partition's lag counts from the record that stopped it: the position may be past
 * it (records fetched before the pause), but none of those is masked until it is resolved. */
static void update_lag(mm_kafka *k)
{
    rd_kafka_topic_partition_list_t *offs = NULL;

    if (rd_kafka_assignment(k->consumer, &offs) || !offs)
        return;
    rd_kafka_position(k->consumer, offs);
    for (int i = 0; i < offs->cnt; i++) {
        int64_t lo, hi;
        char part[16];
        if (rd_kafka_get_watermark_offsets(k->consumer, offs->elems[i].topic,
                                           offs->elems[i].partition, &lo, &hi) ||
            hi < 0)
            continue;
        stopped *st = find_stop(k, offs->elems[i].topic, offs->elems[i].partition);
        int64_t pos = st ? st->offset : offs->elems[i].offset >= 0 ? offs->elems[i].offset : lo;
        snprintf(part, sizeof(part), "%d", (int)offs->elems[i].partition);
        mm_metric_set(k->m.lag, (const char *const[]){offs->elems[i].topic, part},
                      (double)(hi > pos ? hi - pos : 0));
    }
    rd_kafka_topic_partition_list_destroy(offs);
}

static void maybe_reload(mm_kafka *k)
{
    uint64_t sig = kafka_files_signature(k);
    snap *s = NULL;
    mm_errbuf eb = {{0}};
    char gen[24];

    if (sig == k->watch_sig)
        return;
    k->watch_sig = sig; /* the same bad files are not retried until they change again */
    if (kafka_snap_load(k, &s, &eb) != MM_OK) {
        mm_metric_add(k->m.reloads, (const char *const[]){"error"}, 1);
        mm_log(MM_LOG_ERROR, "policy reload failed, keeping the previous one", "error", eb.msg,
               NULL);
        return;
    }
    const mm_policy_streams *a = k->cur->pol->streams, *b = s->pol->streams;
    bool same = strcmp(a->bootstrap, b->bootstrap) == 0 && strcmp(a->output, b->output) == 0 &&
                a->n_inputs == b->n_inputs;
    for (size_t i = 0; same && i < a->n_inputs; i++)
        same = strcmp(a->inputs[i], b->inputs[i]) == 0;
    if (!same) /* topics are the Deployment's identity: the controller rolls it for those */
        mm_log(MM_LOG_WARN, "spec.streams topics or servers changed: they apply at the next "
               "start; the masking rules apply now", NULL);
    kafka_snap_free(k->cur);
    k->cur = s;
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)s->gen);
    mm_metric_set(k->m.generation, NULL, (double)s->gen);
    mm_metric_add(k->m.reloads, (const char *const[]){"ok"}, 1);
    mm_log(MM_LOG_INFO, "policy reloaded", "policy", s->pol->name, "generation", gen, NULL);
}

static mm_err handle(mm_kafka *k, rd_kafka_message_t *msg, mm_errbuf *eb)
{
    bool stop_it = false;
    mm_err rc;

    if (msg->err) {
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            return MM_OK;
        mm_metric_add(k->m.errors, (const char *const[]){"consume"}, 1);
        mm_log(MM_LOG_WARN, "consumer error", "error", rd_kafka_message_errstr(msg), NULL);
        if (rd_kafka_fatal_error(k->consumer, NULL, 0))
            return mm_errf(eb, MM_EIO, "consumer: %s", rd_kafka_message_errstr(msg));
        return MM_OK;
    }
    if (find_stop(k, rd_kafka_topic_name(msg->rkt), msg->partition))
        return MM_OK; /* fetched before the pause took effect */
    if ((rc = begin_txn(k, eb)) != MM_OK)
        return rc;
    if ((rc = kafka_record(k, k->cur, msg, &stop_it, eb)) != MM_OK)
        return rc;
    k->txn_records++;
    return stop_it ? stop_partition(k, msg, eb) : MM_OK;
}

mm_err mm_kafka_run(mm_kafka *k, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_resp_err_t err;
    const mm_policy_streams *st = k->cur->pol->streams;
    uint64_t last_lag = 0, last_watch = mm_now_ns();

    if (!(topics = rd_kafka_topic_partition_list_new((int)st->n_inputs)))
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    for (size_t i = 0; i < st->n_inputs; i++)
        rd_kafka_topic_partition_list_add(topics, st->inputs[i], RD_KAFKA_PARTITION_UA);
    if ((err = rd_kafka_subscribe(k->consumer, topics))) {
        rc = mm_errf(eb, MM_EIO, "subscribing: %s", rd_kafka_err2str(err));
        goto out;
    }
    mm_log(MM_LOG_INFO, "masking", "policy", k->cur->pol->name, "group", k->group, "output",
           st->output, "transactional_id", k->txn_id, "librdkafka", rd_kafka_version_str(), NULL);
    while (!k->quit) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(k->consumer, POLL_MS);
        uint64_t now;
        if (msg) {
            rc = handle(k, msg, eb);
            rd_kafka_message_destroy(msg);
            if (rc != MM_OK)
                goto out;
        }
        if (k->fatal != MM_OK) {
            rc = mm_errf(eb, k->fatal, "%s", k->fatal_eb.msg);
            goto out;
        }
        rd_kafka_poll(k->producer, 0); /* delivery reports */
        now = mm_now_ns();
        if (k->txn_open && (k->txn_records >= k->o.commit_records ||
                            now - k->txn_started_ns >= (uint64_t)k->o.commit_ms * 1000000ull) &&
            (rc = commit_txn(k, eb)) != MM_OK)
            goto out;
        if (now - last_lag >= LAG_EVERY_NS) {
            update_lag(k);
            last_lag = now;
        }
        if (now - last_watch >= (uint64_t)k->o.reload_ms * 1000000ull && !k->txn_open) {
            maybe_reload(k); /* between transactions: one transaction, one policy */
            last_watch = now;
        }
    }
    /* SIGTERM: what was masked commits with its offsets, then the group hears we leave (the
     * revoke callback commits anything left) */
    mm_log(MM_LOG_INFO, "stopping: committing and leaving the group", NULL);
    if ((rc = commit_txn(k, eb)) != MM_OK)
        goto out;
out:
    if (topics)
        rd_kafka_topic_partition_list_destroy(topics);
    if ((err = rd_kafka_consumer_close(k->consumer)) && rc == MM_OK)
        rc = mm_errf(eb, MM_EIO, "leaving the group: %s", rd_kafka_err2str(err));
    if (rc == MM_OK && k->fatal != MM_OK)
        rc = mm_errf(eb, k->fatal, "%s", k->fatal_eb.msg);
    return rc;
}

void mm_kafka_stop(mm_kafka *k) { k->quit = 1; }

static mm_err metrics_init(mm_kafka *k, mm_errbuf *eb)
{
    mm_metrics *r = k->o.metrics;
    kafka_metrics *m = &k->m;
    mm_err rc;

    if ((rc = mm_metrics_counter(r, "maskmesh_stream_records_total",
                                 "Records consumed, by input topic and what became of them "
                                 "(masked, dead_letter, stopped).",
                                 (const char *const[]){"topic", "result", NULL}, &m->records)) ||
        (rc = mm_metrics_counter(r, "maskmesh_stream_bytes_total",
                                 "Record value bytes consumed (in) and produced (out).",
                                 (const char *const[]){"direction", NULL}, &m->bytes)) ||
        (rc = mm_metrics_counter(r, "maskmesh_stream_findings_total",
                                 "Values a rule matched, by policy and rule; applied=false in "
                                 "audit mode.",
                                 (const char *const[]){"policy", "rule", "applied", NULL},
                                 &m->findings)) ||
        (rc = mm_metrics_counter(r, "maskmesh_stream_errors_total",
                                 "Errors by kind: mask (a record could not be masked), "
                                 "consume.", (const char *const[]){"kind", NULL}, &m->errors)) ||
        (rc = mm_metrics_gauge(r, "maskmesh_stream_lag_records",
                               "Records between the masker's position and the end of each "
                               "assigned input partition.",
                               (const char *const[]){"topic", "partition", NULL}, &m->lag)) ||
        (rc = mm_metrics_counter(r, "maskmesh_stream_transactions_total",
                                 "Transactions by result (committed, aborted).",
                                 (const char *const[]){"result", NULL}, &m->txns)) ||
        (rc = mm_metrics_gauge(r, "maskmesh_stream_assigned_partitions",
                               "Input partitions assigned to this masker.", NULL, &m->assigned)) ||
        (rc = mm_metrics_gauge(r, "maskmesh_stream_stopped_partitions",
                               "Partitions stopped at a record that could not be masked.", NULL,
                               &m->stopped)) ||
        (rc = mm_metrics_gauge(r, "maskmesh_stream_config_generation",
                               "How many times the policy was loaded.", NULL, &m->generation)) ||
        (rc = mm_metrics_counter(r, "maskmesh_stream_reloads_total",
                                 "Policy reloads by result (ok, error).",
                                 (const char *const[]){"result", NULL}, &m->reloads)))
        return mm_errf(eb, rc, "registering the masker's metrics failed");
    return MM_OK;
}

static char *dup_opt(const char *s, bool *oom)
{
    char *d = s ? mm_strdup(s) : NULL;
    if (s && !d)
        *oom = true;
    return d;
}

mm_err mm_kafka_new(const mm_kafka_opts *opts, mm_kafka **out, mm_errbuf *eb)
{
    mm_kafka *k = NULL;
    mm_err rc = MM_OK;
    rd_kafka_conf_t *cc = NULL, *pc = NULL;
    rd_kafka_error_t *e;
    const mm_policy *pol;
    char err[512], host[256] = "local";
    bool oom = false;
    mm_buf b;

    mm_buf_init(&b, 0);
    if (!opts->policy_file || !opts->metrics)
        return mm_errf(eb, MM_EINVAL, "the masker needs a policy file and a metrics registry");
    if (!(k = mm_calloc(1, sizeof(*k))))
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    k->o = *opts;
    k->o.commit_ms = opts->commit_ms ? opts->commit_ms : 100;
    k->o.commit_records = opts->commit_records ? opts->commit_records : 10000;
    k->o.reload_ms = opts->reload_ms ? opts->reload_ms : 1000;
    k->o.txn_timeout_ms = opts->txn_timeout_ms ? opts->txn_timeout_ms : 10000;
    k->policy_file = dup_opt(opts->policy_file, &oom);
    k->policy_name = dup_opt(opts->policy_name, &oom);
    k->keys_dir = dup_opt(opts->keys_dir, &oom);
    k->cred_dir = dup_opt(opts->credentials_dir, &oom);
    k->bootstrap = dup_opt(opts->bootstrap, &oom);
    if (oom) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = metrics_init(k, eb)) != MM_OK)
        goto out;
    k->watch_sig = kafka_files_signature(k);
    if ((rc = kafka_snap_load(k, &k->cur, eb)) != MM_OK)
        goto out;
    mm_metric_set(k->m.generation, NULL, (double)k->cur->gen);
    pol = k->cur->pol;
    if (kafka_scram_flawed(pol->streams))
        mm_log(MM_LOG_WARN, "spec.streams.saslMechanism: SCRAM may be refused", "why",
               kafka_scram_flaw, "librdkafka", rd_kafka_version_str(), NULL);
    if (pol->streams->group)
        k->group = mm_strdup(pol->streams->group);
    else if (mm_buf_printf(&b, "maskmesh-%s%s%s", pol->ns ? pol->ns : "", pol->ns ? "-" : "",
                           pol->name) == MM_OK)
        k->group = mm_buf_steal(&b, NULL);
    gethostname(host, sizeof(host) - 1);
    mm_buf_reset(&b);
    if (opts->transactional_id)
        k->txn_id = mm_strdup(opts->transactional_id);
    else if (mm_buf_printf(&b, "%s-%s", k->group ? k->group : "", host) == MM_OK)
        k->txn_id = mm_buf_steal(&b, NULL);
    if (!k->group || !k->txn_id) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = kafka_conf(k, pol->streams, true, &cc, eb)) != MM_OK ||
        (rc = kafka_conf(k, pol->streams, false, &pc, eb)) != MM_OK)
        goto out;
    rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
    if (!(k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err)))) {
        rc = mm_errf(eb, MM_EINVAL, "creating the consumer: %s", err);
        goto out;
    }
    cc = NULL; /* owned by the consumer now */
    rd_kafka_poll_set_consumer(k->consumer);
    if (!(k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err)))) {
        rc = mm_errf(eb, MM_EINVAL, "creating the producer: %s", err);
        goto out;
    }
    pc = NULL;
    /* fences an earlier masker with this transactional id and aborts its open transaction.
     * In slices, serving error_cb between them: a refused login or TLS handshake ends the
     * start at once with the setting named (librdkafka alone would retry until the timeout) */
    for (int waited = 0;; waited += INIT_SLICE_MS) {
        if (!(e = rd_kafka_init_transactions(k->producer, INIT_SLICE_MS)))
            break;
        rd_kafka_poll(k->producer, 0);
        if (k->conn_err || (rd_kafka_error_is_retriable(e) && waited >= INIT_TIMEOUT_MS)) {
            rd_kafka_error_destroy(e);
            rc = kafka_conn_error(k, pol->streams, eb);
            goto out;
        }
        if (!rd_kafka_error_is_retriable(e)) {
            rc = rk_err(eb, "initialising transactions", e);
            goto out;
        }
        rd_kafka_error_destroy(e);
    }
    *out = k;
    k = NULL;
out:
    if (cc)
        rd_kafka_conf_destroy(cc);
    if (pc)
        rd_kafka_conf_destroy(pc);
    mm_buf_free(&b);
    mm_kafka_free(k);
    return rc;
}

void mm_kafka_free(mm_kafka *k)
{
    if (!k)
        return;
    if (k->consumer)
        rd_kafka_destroy(k->consumer);
    if (k->producer) {
        rd_kafka_flush(k->producer, 5000);
        rd_kafka_destroy(k->producer);
    }
    kafka_snap_free(k->cur);
    mm_free(k->policy_file);
    mm_free(k->policy_name);
    mm_free(k->keys_dir);
    mm_free(k->cred_dir);
    mm_free(k->bootstrap);
    mm_free(k->txn_id);
    mm_free(k->group);
    mm_free(k);
}
