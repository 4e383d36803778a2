/* lib/kafka: maskmesh-stream's core. Consumes a policy's spec.streams input topics as a
 * consumer group, masks each record with lib/mask, and produces it to the output topic in
 * Kafka transactions that also carry the consumed offsets (KIP-447 exactly-once: one
 * transactional producer per masker, offsets sent with the group's metadata, the output read
 * with isolation.level=read_committed). Keys, partition numbers and headers are kept (header
 * rules of the policy apply); a record that cannot be masked stops its partition or goes,
 * without its value, to the dead-letter topic. The policy and keys are re-read when their
 * files change.
 * Depends on: lib/mask, lib/policy, lib/metrics, lib/common, librdkafka. */
#ifndef MM_KAFKA_H
#define MM_KAFKA_H

#include "common/common.h"
#include "metrics/metrics.h"

typedef struct mm_kafka mm_kafka;

typedef struct {
    const char *policy_file; /* YAML or JSON holding the policy (a mounted ConfigMap) */
    const char *policy_name; /* which policy of the file; NULL: the only one with streams */
    const char *keys_dir;    /* mounted maskmesh-keys; NULL or absent: no keys */
    const char *credentials_dir; /* mounted credentialsSecret: ca.crt, tls.crt, tls.key,
                                    username, password; NULL: none */
    const char *bootstrap;       /* overrides spec.streams.bootstrapServers when set */
    const char *transactional_id; /* NULL: maskmesh-<group>-<hostname> */
    unsigned commit_ms;      /* a transaction commits after this long (default 100) */
    unsigned commit_records; /* or after this many records (default 10000) */
    unsigned reload_ms;      /* how often the files are checked (default 1000) */
    unsigned txn_timeout_ms; /* transaction.timeout.ms: how long a killed masker's open
                                transaction holds read_committed readers (default 10000) */
    mm_metrics *metrics;     /* borrowed; the masker registers its families here */
} mm_kafka_opts;

/* Loads and checks the policy, creates the consumer and the transactional producer and
 * initialises transactions. An error names the file, the field or the broker's answer. */
mm_err mm_kafka_new(const mm_kafka_opts *opts, mm_kafka **out, mm_errbuf *eb);
/* Runs until mm_kafka_stop, then commits the open transaction and leaves the group. An
 * error return is fatal (fenced, a partition stopped is NOT an error). */
mm_err mm_kafka_run(mm_kafka *k, mm_errbuf *eb);
/* Async-signal-safe: asks mm_kafka_run to finish. */
void mm_kafka_stop(mm_kafka *k);
void mm_kafka_free(mm_kafka *k); /* NULL is fine */

#endif
