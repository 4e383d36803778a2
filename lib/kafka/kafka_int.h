/* lib/kafka internals shared by its files: config.c (policy snapshot, file watch, librdkafka
 * configuration), record.c (one record masked into produce calls), run.c (the consume,
 * transact, rebalance loop). */
#ifndef MM_KAFKA_INT_H
#define MM_KAFKA_INT_H

#include "kafka/kafka.h"
#include "mask/mask.h"
#include "policy/policy.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>

#define KAFKA_MAX_STOPPED 1024 /* partitions stopped on an unmaskable record, tracked */

/* What one policy load gives: the policy (its set owns it) and its compiled masker. Only
 * the loop thread reads it, so a reload just swaps the pointer. */
typedef struct {
    mm_policy_set *set;
    const mm_policy *pol; /* borrowed from set: the policy with spec.streams */
    mm_masker *masker;
    mm_body_kind default_kind; /* spec.streams.contentType, else JSON */
    uint64_t gen;
    /* record.c: the stream that masks values into vout, reset for each record of its kind
     * (a new stream and buffer per record: 11% more CPU per record, mostly libc's
     * allocator); freed with the snap, before its masker */
    mm_stream *vstream;
    mm_body_kind vkind;
    mm_buf vout;
} snap;

typedef struct {
    char topic[256];
    int32_t partition;
    int64_t offset; /* the record that could not be masked: committed as the next to read */
} stopped;

typedef struct {
    mm_metric *records, *bytes, *findings, *errors, *lag, *txns, *assigned, *generation,
        *reloads, *stopped;
} kafka_metrics;

struct mm_kafka {
    mm_kafka_opts o;
    char *policy_file, *policy_name, *keys_dir, *cred_dir, *bootstrap, *txn_id, *group;
    snap *cur;
    uint64_t watch_sig, gen;
    rd_kafka_t *consumer, *producer;
    bool txn_open;
    size_t txn_records;
    uint64_t txn_started_ns;
    stopped stop[KAFKA_MAX_STOPPED];
    size_t n_stop;
    volatile sig_atomic_t quit;
    mm_err fatal; /* set by the rebalance callback; the loop returns it */
    mm_errbuf fatal_eb;
    /* the first login or TLS failure librdkafka reported (error_cb, on our thread): start-up
     * stops on it with the setting named instead of waiting for a timeout */
    int conn_err;
    char conn_msg[512], last_err[512];
    kafka_metrics m;
};

/* config.c */
mm_err kafka_snap_load(mm_kafka *k, snap **out, mm_errbuf *eb);
void kafka_snap_free(snap *s);
uint64_t kafka_files_signature(const mm_kafka *k);
/* librdkafka configuration for the consumer (true) or producer (false): bootstrap, the
 * security settings of spec.streams with the credentials directory, and our tuning. */
mm_err kafka_conf(mm_kafka *k, const mm_policy_streams *st, bool consumer,
                  rd_kafka_conf_t **out, mm_errbuf *eb);
/* The error for a connection librdkafka could not make (k->conn_err, else k->last_err), naming
 * the spec.streams settings and credential files that decide it. */
mm_err kafka_conn_error(const mm_kafka *k, const mm_policy_streams *st, mm_errbuf *eb);
/* spec.streams asks for SCRAM and this librdkafka has the nonce flaw 2.6.1 fixed */
bool kafka_scram_flawed(const mm_policy_streams *st);
extern const char kafka_scram_flaw[]; /* what to do about it, for messages */

/* record.c: masks `msg` with s and produces the result (or its dead-letter record) inside
 * the open transaction. *stop_it is set when the partition must stop at this record. */
mm_err kafka_record(mm_kafka *k, snap *s, const rd_kafka_message_t *msg, bool *stop_it,
                    mm_errbuf *eb);

#endif
