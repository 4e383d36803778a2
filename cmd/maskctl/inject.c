/* maskctl inject: the webhook's injection, offline (like istioctl kube-inject). Reads Pods,
 * Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Lists of them or a
 * multi-document YAML stream, injects every pod template with lib/admission's function, and
 * prints the YAML; --explain says instead why each would or would not be injected. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "admission/admission.h"
#include "maskctl.h"

#define INJECT_INPUT_MAX (32u << 20)

static const char inject_usage[] =
    "usage: maskctl inject -f FILE [options]\n"
    "\n"
    "Injects the maskmesh-proxy sidecar into the pod templates of FILE (\"-\": stdin) exactly as\n"
    "the webhook would, and prints the result as YAML. Kinds: Pod, Deployment, StatefulSet,\n"
    "DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, List; other objects pass\n"
    "through unchanged. A template injected by an older version or config is re-injected\n"
    "cleanly (maskmesh.io/status); one that is up to date is left as is.\n"
    "\n"
    "options:\n"
    "  -f, --filename FILE    the manifests (YAML or JSON; several documents allowed)\n"
    "  --config FILE          sidecar defaults, as the webhook's --config\n"
    "  --sidecar-image IMAGE  the proxy image (overrides --config)\n"
    "  --require-label        inject only templates labelled maskmesh.io/inject=\"true\" (by\n"
    "                         default every template not opted out with \"false\" is injected,\n"
    "                         as if its namespace had opted in)\n"
    "  --explain              print why each template would or would not be injected, and what\n"
    "                         would be added, instead of the YAML\n"
    "  -h, --help             this text\n";

typedef struct {
    const mm_adm_config *cfg;
    mm_adm_opts opts;
    bool explain;
    mm_buf *report; /* --explain text */
    int status;
} inject_ctx;

static const char *object_name(json_object *obj, char *buf, size_t n)
{
    json_object *meta = NULL, *v;
    const char *kind = "object", *ns = NULL, *name = NULL;
    if (json_object_object_get_ex(obj, "kind", &v) && json_object_is_type(v, json_type_string))
        kind = json_object_get_string(v);
    if (json_object_object_get_ex(obj, "metadata", &meta) && json_object_is_type(meta, json_type_object)) {
        if (json_object_object_get_ex(meta, "namespace", &v) && json_object_is_type(v, json_type_string))
            ns = json_object_get_string(v);
        if (json_object_object_get_ex(meta, "name", &v) && json_object_is_type(v, json_type_string))
            name = json_object_get_string(v);
        else if (json_object_object_get_ex(meta, "generateName", &v) &&
                 json_object_is_type(v, json_type_string))
            name = json_object_get_string(v);
    }
    snprintf(buf, n, "%s %s%s%s", kind, ns ? ns : "", ns ? "/" : "", name ? name : "(unnamed)");
    return buf;
}

static mm_err inject_object(inject_ctx *c, json_object *obj, mm_errbuf *eb)
{
    json_object *tmpl = mm_adm_pod_template(obj), *kind;
    mm_adm_result r = {0};
    char name[300];
    mm_err rc = MM_OK;

    object_name(obj, name, sizeof(name));
    if (json_object_object_get_ex(obj, "kind", &kind) && json_object_is_type(kind, json_type_string) &&
        strcmp(json_object_get_string(kind), "List") == 0) {
        json_object *items;
        if (json_object_object_get_ex(obj, "items", &items) && json_object_is_type(items, json_type_array))
            for (size_t i = 0; i < json_object_array_length(items); i++)
                if ((rc = inject_object(c, json_object_array_get_idx(items, i), eb)) != MM_OK)
                    return rc;
        return MM_OK;
    }
    if (!tmpl) {
        if (c->explain)
            rc = mm_buf_printf(c->report, "%s:\nunchanged: not a workload with a pod template\n\n", name);
        return rc;
    }
    if ((rc = mm_adm_inject(tmpl, c->cfg, &c->opts, &r, eb)) != MM_OK)
        return rc;
    if (c->explain) {
        rc = mm_buf_printf(c->report, "%s:\n%s\n", name, r.explain);
        goto out;
    }
    for (size_t i = 0; i < r.n_warnings; i++)
        fprintf(stderr, "maskctl inject: %s: %s\n", name, r.warnings[i]);
    if (!r.allowed) {
        fprintf(stderr, "maskctl inject: %s: %s\n", name, r.message);
        c->status = MASKCTL_EINPUT;
        goto out;
    }
    if (r.patch && (rc = mm_adm_patch_apply(&tmpl, r.patch, eb)) != MM_OK)
        mm_errprefix(eb, "%s", name);
out:
    mm_adm_result_clear(&r);
    return rc;
}

static mm_err read_input(const char *path, char **out, size_t *len, mm_errbuf *eb)
{
    mm_buf b;
    char chunk[65536];
    size_t n;

    if (strcmp(path, "-") != 0)
        return mm_read_file(path, INJECT_INPUT_MAX, out, len, eb);
    mm_buf_init(&b, INJECT_INPUT_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        mm_err rc = mm_buf_append(&b, chunk, n);
        if (rc != MM_OK) {
            mm_buf_free(&b);
            return mm_errf(eb, rc, "stdin: %s", rc == MM_ELIMIT ? "input larger than 32 MiB"
                                                                : "out of memory");
        }
    }
    if (ferror(stdin)) {
        mm_buf_free(&b);
        return mm_errf(eb, MM_EIO, "stdin: read error");
    }
    mm_buf_cstr(&b);
    *len = b.len;
    *out = mm_buf_steal(&b, NULL);
    return *out ? MM_OK : MM_ENOMEM;
}

int maskctl_inject(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"filename", required_argument, NULL, 'f'},
        {"config", required_argument, NULL, 'c'},
        {"sidecar-image", required_argument, NULL, 'i'},
        {"require-label", no_argument, NULL, 'r'},
        {"explain", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *config = NULL, *image = NULL;
    mm_adm_config cfg;
    inject_ctx c = {.opts = {.namespace_opted_in = true, .reinject = true}};
    mm_buf out, report;
    mm_errbuf eb = {{0}};
    char *text = NULL;
    size_t len = 0;
    json_object *docs = NULL;
    int opt, status = MASKCTL_EINPUT;

    mm_buf_init(&out, 0);
    mm_buf_init(&report, 0);
    if (mm_adm_config_init(&cfg) != MM_OK) {
        fputs("maskctl inject: out of memory\n", stderr);
        return MASKCTL_EINPUT;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "f:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': file = optarg; break;
        case 'c': config = optarg; break;
        case 'i': image = optarg; break;
        case 'r': c.opts.namespace_opted_in = false; break;
        case 'e': c.explain = true; break;
        case 'h':
            fputs(inject_usage, stdout);
            mm_adm_config_clear(&cfg);
            return MASKCTL_OK;
        default:
            fputs(inject_usage, stderr);
            mm_adm_config_clear(&cfg);
            return MASKCTL_EUSAGE;
        }
    }
    if (!file || optind < argc) {
        fprintf(stderr, "maskctl inject: %s\n%s", file ? "unexpected argument" : "-f FILE is required",
                inject_usage);
        mm_adm_config_clear(&cfg);
        return MASKCTL_EUSAGE;
    }
    if (config && mm_adm_config_load(&cfg, config, &eb) != MM_OK)
        goto fail;
    if (image && mm_adm_config_set(&cfg.image, image) != MM_OK)
        goto fail;
    c.cfg = &cfg;
    c.report = &report;
    c.status = MASKCTL_OK;
    if (read_input(file, &text, &len, &eb) != MM_OK ||
        mm_adm_yaml_parse(text, len, strcmp(file, "-") == 0 ? "stdin" : file, &docs, &eb) != MM_OK)
        goto fail;
    for (size_t i = 0; i < json_object_array_length(docs); i++) {
        json_object *d = json_object_array_get_idx(docs, i);
        if (!json_object_is_type(d, json_type_object))
            continue;
        if (inject_object(&c, d, &eb) != MM_OK)
            goto fail;
    }
    if (c.status != MASKCTL_OK) {
        status = c.status;
        goto out;
    }
    if (c.explain) {
        fwrite(report.data ? report.data : "", 1, report.len, stdout);
    } else {
        if (mm_adm_yaml_emit(docs, &out, &eb) != MM_OK)
            goto fail;
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
    }
    if (fflush(stdout) != 0) {
        fputs("maskctl inject: cannot write the output\n", stderr);
        goto out;
    }
    status = MASKCTL_OK;
    goto out;
fail:
    fprintf(stderr, "maskctl inject: %s\n", eb.msg[0] ? eb.msg : "out of memory");
out:
    json_object_put(docs);
    mm_free(text);
    mm_buf_free(&out);
    mm_buf_free(&report);
    mm_adm_config_clear(&cfg);
    return status;
}
