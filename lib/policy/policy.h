/* lib/policy: the MaskingPolicy model (maskmesh.io/v1alpha1). Parses YAML (one object, a
 * list, or a multi-document file) and JSON (as the Kubernetes API returns it) into one
 * validated model; owns the JSONPath subset grammar and the list of built-in detectors;
 * matches label selectors.
 * Depends on: lib/common, libyaml, json-c, PCRE2 (only to check that regexes compile),
 * OpenSSL (SHA-256 of spec.streams in the rendered Deployment).
 *
 * The model structs are plain data, read-only once parsed, owned by their mm_policy_set
 * (or by the mm_policy returned from mm_policy_from_json). */
#ifndef MM_POLICY_H
#define MM_POLICY_H

#include "common/common.h"

struct json_object;

/* Bounds on what a policy may hold; exceeding one is a validation error. */
#define MM_POLICY_FILE_MAX   (4u << 20) /* a policy file */
#define MM_POLICY_MAX_RULES  256        /* rules per policy */
/* The CRD's bounds (crds/): its CEL rules compare every header with every other and every
 * rule named in exemptions and reveal with spec.rules, and the API server refuses a CRD whose
 * estimated cost exceeds its budget; the same caps here, so a policy the webhook or maskctl
 * accepts is one the API server stores. */
#define MM_POLICY_MAX_HEADERS         128 /* spec.headers */
#define MM_POLICY_MAX_EXEMPTION_RULES 16  /* spec.exemptions[].rules */
#define MM_POLICY_MAX_GRANTS          16  /* spec.reveal */
#define MM_POLICY_MAX_GRANT_RULES     32  /* spec.reveal[].rules */
#define MM_POLICY_MAX_PATHS  256        /* fields per rule */
#define MM_POLICY_MAX_KEEP   64         /* keepFirst / keepLast */
#define MM_POLICY_WS_MSG_DEFAULT (1L << 20) /* spec.websocket.maxMessageBytes */
#define MM_POLICY_WS_MSG_MAX     (64L << 20)
#define MM_POLICY_NAME_MAX   253

/* ---- JSONPath subset: $ .name ['name'] [*] .* [N] ..name ..['name'] ..* ------------------ */

typedef enum {
    MM_STEP_NAME,     /* .name / ['name'] */
    MM_STEP_INDEX,    /* [N] */
    MM_STEP_WILDCARD, /* [*] / .* : every member or element */
} mm_step_kind;

typedef struct {
    mm_step_kind kind;
    bool descendant; /* reached with "..": this step may match at any depth below */
    char *name;      /* MM_STEP_NAME: the unescaped member name */
    size_t name_len;
    long index;      /* MM_STEP_INDEX */
} mm_path_step;

typedef struct {
    char *text; /* as written, for messages and findings */
    mm_path_step *steps;
    size_t n_steps; /* 0 means "$": the whole document */
} mm_path;

/* Parses one path. On error the message says the byte offset in the path and what was
 * expected, e.g. `offset 9: expected a member name after "."`. */
mm_err mm_path_parse(const char *text, mm_path *out, mm_errbuf *eb);
void mm_path_clear(mm_path *p);

/* ---- the model ------------------------------------------------------------------------ */

typedef enum {
    MM_ACTION_REDACT,   /* fixed replacement, default "[REDACTED]" */
    MM_ACTION_MASK,     /* keepFirst/keepLast, char, preserveFormat */
    MM_ACTION_HASH,     /* SHA-256 hex; HMAC-SHA256 when key is set */
    MM_ACTION_TOKENIZE, /* "tok_" + base32(HMAC-SHA256(key, value)); key required */
    MM_ACTION_REMOVE,   /* drops the JSON member / array element (text: the match) */
    MM_ACTION_REPLACE,  /* a constant value */
    MM_ACTION_ENCRYPT,  /* reversible: FF1 (format-preserving) or AES-SIV tokens; key and
                           keyVersion required (docs/encrypt.md) */
} mm_action_type;

typedef enum { MM_ENC_FF1, MM_ENC_SIV } mm_enc_mode;
/* encrypt of a card number (mode ff1): NONE treats the digits as any number; INVALID (the
 * default for rules naming credit_card) makes a valid card's ciphertext fail the Luhn
 * check, VALID keeps it passing (a value that failed still fails, so reveal inverts it). */
typedef enum { MM_LUHN_NONE, MM_LUHN_INVALID, MM_LUHN_VALID } mm_luhn;
#define MM_POLICY_MAX_KEY_VERSION 9999

typedef struct {
    mm_action_type type;
    char *replacement;    /* redact; never NULL after parse */
    int keep_first;       /* mask */
    int keep_last;        /* mask */
    char *mask_char;      /* mask: one UTF-8 character, default "*" */
    bool preserve_format; /* mask: characters that are not letters or digits stay */
    char *key;            /* hash (optional), tokenize (required): a key name in maskmesh-keys */
    char *value;          /* replace */
    /* encrypt: key (above) names the Secret entries <key>.v<N>; keepFirst/keepLast (ff1) */
    mm_enc_mode enc_mode;
    int key_version;      /* N of the entry encrypt writes with */
    char *tweak;          /* ff1 tweak / siv associated data; "" none; the rule name for
                             tweak: {fromRule: true} */
    mm_luhn luhn;
    char *surrogate;
    bool tweak_from_rule; /* tweak: {fromRule: true} or {field: ...} (tweak then holds the
                             rule's name, "defaultDeny" in spec.defaultDeny) */
    char *tweak_field;    /* tweak: {field: NAME}: the tweak is the value of member NAME of
                             the object holding the value (JSON; NULL none); `tweak` is
                             what a value takes when its object has no such scalar member */
    bool luhn_set;        /* luhn written (else credit_card rules default to INVALID) */      /* ff1: a prefix "<surrogate>.v<N>:" naming the version; NULL none */
} mm_action;

#define MM_TWEAK_FIELD_MAX 256 /* bytes of a tweak: {field: NAME}, and of the tweak it reads */

typedef struct {
    char *name;
    char *regex; /* PCRE2 syntax; checked to compile */
} mm_pattern;

typedef struct {
    char *name;
    mm_path *fields;
    size_t n_fields;
    char **detectors; /* built-in detector names, checked against mm_detector_names */
    size_t n_detectors;
    mm_pattern *patterns;
    size_t n_patterns;
    char **content_types; /* extra body types that detectors read as text */
    /* useMemberNames: a whole JSON value under a member name that names what it is ("ssn",
     * "phone", ...) is a finding when the detector's validator accepts it, even in a form
     * the detector refuses in free text (bare 9 or 10 digits) */
    bool use_member_names;
    size_t n_content_types;
    mm_action action;
} mm_rule;

typedef struct {
    char *name; /* header name as written; compared case-insensitively */
    mm_action action;
} mm_header_rule;

typedef struct {
    char **principals;
    size_t n_principals;
    char **rules; /* names of rules of this policy */
    size_t n_rules;
} mm_exemption;

/* Graded reveal: these principals get, for each named rule, another action in place of
 * the rule's (e.g. a mask keeping the last four) or, with `clear`, the value unchanged. */
typedef struct {
    char *rule;
    bool clear;
    mm_action action; /* when !clear */
} mm_grant_rule;

typedef struct {
    char **principals;
    size_t n_principals;
    mm_grant_rule *rules;
    size_t n_rules;
} mm_grant;
/* spec.defaultDeny: mask everything that is not allowed (the model of the OpenTelemetry
 * collector's redaction processor, applied to values). Rules come first; see docs/default-deny.md
 * "Default deny" for the exact precedence. */
typedef struct {
    bool set;        /* spec.defaultDeny.body is present */
    mm_path *fields; /* the values that pass (and everything inside a selected container) */
    size_t n_fields;
    mm_action action; /* every other string and number, text line and SSE data line */
} mm_deny_body;

typedef struct {
    bool set;     /* spec.defaultDeny.headers is present */
    char **names; /* header names that pass, compared case-insensitively */
    size_t n_names;
    mm_action action; /* every other header (remove drops it) */
} mm_deny_headers;

/* The name exemptions use for a policy's default deny (not a valid rule name, so it cannot
 * clash with one) and findings carry as their rule. */
#define MM_DENY_RULE "defaultDeny"

typedef enum { MM_SEL_IN, MM_SEL_NOT_IN, MM_SEL_EXISTS, MM_SEL_DOES_NOT_EXIST } mm_sel_op;

typedef struct {
    char *key;
    mm_sel_op op;
    char **values;
    size_t n_values;
} mm_sel_expr;

typedef struct {
    char **label_keys; /* matchLabels, parallel arrays */
    char **label_values;
    size_t n_labels;
    mm_sel_expr *exprs; /* matchExpressions */
    size_t n_exprs;
} mm_selector;

/* spec.streams: Kafka topics this policy protects (maskmesh-stream, lib/kafka): records of
 * the input topics are masked into the output topic, exactly once, by a consumer group. */
#define MM_POLICY_MAX_TOPICS   64
#define MM_POLICY_MAX_REPLICAS 256
typedef enum { MM_STREAMS_ONERR_STOP, MM_STREAMS_ONERR_DEAD_LETTER } mm_streams_on_error;
typedef struct {
    char *bootstrap; /* bootstrapServers: host:port[,host:port...] */
    char **inputs;   /* inputTopics */
    size_t n_inputs;
    char *output;      /* outputTopic: never one of the inputs */
    char *dead_letter; /* deadLetterTopic; NULL when absent */
    char *group;       /* consumerGroup; NULL: maskmesh-<namespace>-<policy> */
    long replicas;     /* maskers in the group; default 1 */
    char *content_type; /* for records without a content-type header; NULL: application/json */
    bool mask_keys;     /* keys: mask (record keys go through the detectors as text) */
    mm_streams_on_error on_error; /* a record that cannot be masked: stop its partition
                                     (default) or go, without its value, to deadLetterTopic */
    char *security_protocol; /* PLAINTEXT (NULL), SSL, SASL_PLAINTEXT, SASL_SSL */
    char *sasl_mechanism;    /* PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 */
    char *secret; /* credentialsSecret: a Secret with ca.crt, tls.crt, tls.key, username,
                     password (those the protocol needs) */
} mm_policy_streams;

/* spec.grpc: gRPC bodies are masked as protobuf messages by field name, with the
 * FileDescriptorSet in a ConfigMap key (mounted into the sidecar like the policies). */
typedef struct {
    char *configmap;  /* descriptorSet.configMapKeyRef.name */
    char *key;        /* descriptorSet.configMapKeyRef.key */
    bool scan_bytes;  /* scanBytes: detectors read bytes fields too (else strings only) */
} mm_policy_grpc;

typedef enum { MM_MODE_ENFORCE, MM_MODE_AUDIT } mm_mode;
typedef enum { MM_ONERR_BLOCK, MM_ONERR_REDACT_ALL, MM_ONERR_PASSTHROUGH } mm_on_error;
typedef enum { MM_DIR_RESPONSE = 1, MM_DIR_REQUEST = 2, MM_DIR_BOTH = 3 } mm_direction;
/* spec.unlistedTypes: a body whose content type no rule or built-in kind covers is refused
 * (block), read with the text detectors (detect, the default), or passed unread (pass).
 * Ordered strictest first. */
typedef enum { MM_UNLISTED_BLOCK, MM_UNLISTED_DETECT, MM_UNLISTED_PASS } mm_unlisted;

typedef struct {
    char *name;
    char *ns;               /* metadata.namespace; NULL when absent */
    char *uid;              /* metadata.uid; NULL when absent (files) */
    char *resource_version; /* opaque */
    long generation;        /* 0 when absent */
    mm_selector selector;
    char *port; /* spec.port as written (number or name); NULL when absent */
    mm_mode mode;
    mm_on_error on_error;
    mm_unlisted unlisted;
    mm_direction direction;
    mm_rule *rules;
    size_t n_rules;
    mm_header_rule *headers;
    size_t n_headers;
    mm_exemption *exemptions;
    size_t n_exemptions;
    mm_grant *grants; /* spec.reveal */
    size_t n_grants;
    mm_deny_body deny_body;
    mm_deny_headers deny_headers;
    char *allow_from_json; /* spec.network.allowFrom as compact JSON, NULL when absent */
    /* spec.websocket, for the directions the policy covers: binary messages pass (else
     * they are refused, close 1003: they cannot be masked); a text message masked is at
     * most ws_max_message bytes (else close 1009) */
    bool ws_binary_pass;
    long ws_max_message;
    mm_policy_streams *streams; /* spec.streams; NULL when absent */
    mm_policy_grpc *grpc;       /* spec.grpc; NULL when absent */
} mm_policy;

/* The built-in detectors, NULL-terminated, from lib/mask/detectors.def (the registry). */
extern const char *const mm_detector_names[];
bool mm_detector_known(const char *name);

/* ---- diagnostics ---------------------------------------------------------------------- */

/* Errors and warnings collected while parsing or linting, each one line of the form
 * `FILE:LINE:COL: spec.rules[2].action.type: unknown action type "x" (expected ...)`
 * (JSON input has no line: `FILE: spec.rules[2]...`). Never holds a data value. */
typedef struct mm_diags mm_diags;
mm_err mm_diags_new(mm_diags **out);
void mm_diags_free(mm_diags *d);
size_t mm_diags_errors(const mm_diags *d);
size_t mm_diags_warnings(const mm_diags *d);
size_t mm_diags_count(const mm_diags *d);
const char *mm_diags_get(const mm_diags *d, size_t i, bool *is_warning);

/* ---- parsing -------------------------------------------------------------------------- */

typedef struct mm_policy_set mm_policy_set; /* owns its policies, in input order */

/* `filename` is only used in messages. `diags` (optional) collects every error; `eb` gets
 * the first. A set is returned only when every policy in the input is valid. */
mm_err mm_policy_parse_yaml(const char *text, size_t len, const char *filename,
                            mm_policy_set **out, mm_diags *diags, mm_errbuf *eb);
/* JSON: one MaskingPolicy, a JSON array of them, or a List ({"items": [...]}). */
mm_err mm_policy_parse_json(const char *text, size_t len, const char *filename,
                            mm_policy_set **out, mm_diags *diags, mm_errbuf *eb);
/* Reads `path` (at most MM_POLICY_FILE_MAX) and parses it as JSON when its first non-blank
 * byte is '{' or '[', else as YAML. "-" reads standard input. */
mm_err mm_policy_load(const char *path, mm_policy_set **out, mm_diags *diags, mm_errbuf *eb);

size_t mm_policy_set_count(const mm_policy_set *set);
const mm_policy *mm_policy_set_get(const mm_policy_set *set, size_t i); /* borrowed */
void mm_policy_set_free(mm_policy_set *set);

/* One policy from a json-c object as the API server sends it (controller, webhook).
 * `where` prefixes messages (e.g. "shop/payments-api"). Caller frees with mm_policy_free. */
mm_err mm_policy_from_json(const struct json_object *obj, const char *where, mm_policy **out,
                           mm_diags *diags, mm_errbuf *eb);
void mm_policy_free(mm_policy *p);

/* Warnings for policies that parse but break PCI DSS practice (a card mask keeping more
 * than the first six and last four digits; an unkeyed hash of cards or SSNs) or will break
 * clients (a default deny of headers that does not allow Content-Type). Adds to diags;
 * returns how many it added. */
size_t mm_policy_lint(const mm_policy *p, const char *filename, mm_diags *diags);

/* ---- rendering (the controller, maskctl render) ---------------------------------------- */

#define MM_POLICY_CONFIGMAP     "maskmesh-policies"
#define MM_POLICY_CONFIGMAP_KEY "policies.yaml"
/* A policy's spec.grpc descriptor set, copied by the controller from the user's ConfigMap
 * into maskmesh-policies' binaryData under "<policy name>.protoset" (a name no policies key
 * takes), so the sidecar reads it beside policies.yaml and kubelet swaps both at once. */
#define MM_POLICY_GRPC_SUFFIX ".protoset"
/* The key (and mounted file name) for policy `name`; false when it does not fit a ConfigMap
 * key (253 characters). */
bool mm_policy_grpc_file(const char *name, char *out, size_t size);
#define MM_MANAGED_BY_LABEL     "app.kubernetes.io/managed-by"
#define MM_MANAGED_BY_VALUE     "maskmesh"
#define MM_POLICY_LABEL         "maskmesh.io/policy"
#define MM_SIDECAR_PORT         15480
#define MM_ADMIN_PORT           15481
/* The named port an iptables-mode sidecar declares for the app's port (lib/admission). A
 * NetworkPolicy sees a packet before the pod's own REDIRECT to the sidecar, so it must allow
 * that port on those pods; on a named-port pod the name resolves to nothing. */
#define MM_SIDECAR_REDIRECT_PORT_NAME "maskmesh-redir"

/* The ConfigMap maskmesh-policies of namespace `ns` for `n` MaskingPolicy objects as the API
 * returns them (valid ones: the caller leaves invalid policies out). policies.yaml holds them
 * as a list sorted by name, each reduced to apiVersion, kind, metadata {name, namespace, uid,
 * generation} and spec, written as canonical JSON (sorted keys, fixed indentation: valid
 * YAML, and byte-stable so an unchanged set renders identically). ownerReferences name every
 * policy (none is the controller), so the ConfigMap is collected when the last one goes.
 * The caller owns *out (json_object_put). */
mm_err mm_policy_render_configmap(struct json_object *const *policies, size_t n, const char *ns,
                                  struct json_object **out, mm_errbuf *eb);

/* Adds a policy's spec.grpc descriptor set (set[0..len), checked by the caller) to a
 * rendered maskmesh-policies ConfigMap: binaryData["<policy>.protoset"], base64
 * (mm_policy_grpc_file names it; MM_EINVAL when the name does not fit a key). */
mm_err mm_policy_render_grpc(struct json_object *cm, const char *policy, const void *set,
                             size_t len, mm_errbuf *eb);

/* The NetworkPolicy maskmesh-<name> for one policy object: the pods its selector matches
 * accept ingress only on the sidecar port from spec.network.allowFrom (any source when
 * absent or empty) and on the admin port from `monitoring_from` (a NetworkPolicyPeer array;
 * NULL or empty: no admin ingress). A controller ownerReference points at the policy. */
mm_err mm_policy_render_networkpolicy(const struct json_object *policy,
                                      const struct json_object *monitoring_from,
                                      struct json_object **out, mm_errbuf *eb);

/* For a policy object with spec.streams: the ConfigMap maskmesh-stream-<name> (policies.yaml:
 * that policy alone, as in maskmesh-policies) and the Deployment maskmesh-stream-<name> of
 * spec.streams.replicas maskmesh-stream pods reading it, with the maskmesh-keys Secret and
 * the credentialsSecret mounted. The pod template's annotation maskmesh.io/streams-hash is
 * the SHA-256 of spec.streams, so a change of topics or servers rolls the pods; a change of
 * rules reaches them through the ConfigMap without a restart. Both are owned (controller)
 * by the policy when it has a uid. The caller owns both outputs. */
typedef struct {
    const char *image;       /* NULL: maskmesh/maskmesh-stream:latest */
    const char *pull_policy; /* NULL: IfNotPresent */
} mm_stream_render_opts;
#define MM_STREAM_PREFIX "maskmesh-stream-"
/* On the Deployment: 40 hex digits of the SHA-256 of its rendered spec. */
#define MM_STREAM_RENDERED_LABEL "maskmesh.io/rendered"
mm_err mm_policy_render_stream(const struct json_object *policy, const mm_stream_render_opts *o,
                               struct json_object **cm_out, struct json_object **deploy_out,
                               mm_errbuf *eb);

/* Canonical JSON of any json-c value: keys sorted, two-space indentation, "\n" at the end. */
mm_err mm_policy_canonical_json(const struct json_object *obj, mm_buf *out);

/* ---- selection ------------------------------------------------------------------------ */

/* A pod's labels (parallel arrays), as the downward API file writes them: key="value" lines,
 * values in Go %q quoting. */
typedef struct {
    char **keys;
    char **values;
    size_t n;
} mm_labels;

mm_err mm_labels_parse(const char *text, size_t len, const char *filename, mm_labels *out,
                       mm_errbuf *eb);
void mm_labels_clear(mm_labels *l);
const char *mm_labels_get(const mm_labels *l, const char *key);

/* Kubernetes LabelSelector semantics: every matchLabels pair and every expression must hold;
 * an empty selector matches every pod. */
bool mm_selector_matches(const mm_selector *sel, const mm_labels *labels);

#endif
