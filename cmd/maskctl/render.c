/* maskctl render: what the controller would write for a policy file — per namespace the
 * ConfigMap maskmesh-policies, and per policy the NetworkPolicy maskmesh-<name> — as YAML or
 * JSON to review or to apply by hand (kubectl apply -f -). */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "admission/admission.h"
#include "maskctl.h"

static const char render_help[] =
    "usage: maskctl render --policy FILE [--namespace NS] [--monitoring-from JSON]\n"
    "                      [--descriptors FILE] [-o yaml|json]\n"
    "\n"
    "Prints the objects maskmesh-controller writes for the MaskingPolicy objects in FILE: per\n"
    "namespace the ConfigMap maskmesh-policies (key policies.yaml, read by the sidecars), and per\n"
    "policy the NetworkPolicy maskmesh-<name>, which admits ingress to the selected pods only on\n"
    "the sidecar port 15480 (from spec.network.allowFrom) and the admin port 15481 (from the\n"
    "monitoring peers). Every policy is validated first.\n"
    "\n"
    "options:\n"
    "  -p, --policy FILE          the policies (YAML or JSON; \"-\" for stdin)\n"
    "  -n, --namespace NS         namespace for policies that name none (default: default)\n"
    "      --monitoring-from JSON NetworkPolicyPeer list allowed to reach 15481, e.g.\n"
    "                             '[{\"namespaceSelector\":{\"matchLabels\":{\"name\":\"monitoring\"}}}]'\n"
    "      --descriptors FILE     the descriptor set (protoc --descriptor_set_out) of the\n"
    "                             policies with spec.grpc, checked against their paths and\n"
    "                             added as binaryData <policy>.protoset, as the controller\n"
    "                             copies it from the ConfigMap the policy names\n"
    "  -o, --output yaml|json     output format (default yaml)\n"
    "  -h, --help                 this text\n"
    "\n"
    "exit codes: 0 ok, 1 input or policy error, 2 usage error\n";

static const char *ns_of(struct json_object *p)
{
    struct json_object *m = NULL, *ns = NULL;
    if (json_object_object_get_ex(p, "metadata", &m) && json_object_object_get_ex(m, "namespace", &ns))
        return json_object_get_string(ns);
    return NULL;
}

int maskctl_render(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},   {"namespace", required_argument, NULL, 'n'},
        {"monitoring-from", required_argument, NULL, 'm'}, {"output", required_argument, NULL, 'o'},
        {"descriptors", required_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *defns = "default", *format = "yaml", *mon_text = NULL,
               *descriptors = NULL;
    char *pbtext = NULL;
    size_t pblen = 0;
    mm_pbdesc *pb = NULL;
    bool *grpc = NULL; /* per policy: it has spec.grpc */
    struct json_object *docs = NULL, *mon = NULL, *out = NULL, **group = NULL;
    char *text = NULL;
    size_t len = 0, n;
    mm_errbuf eb = {{0}};
    mm_buf buf;
    int c, ret = MASKCTL_EINPUT;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:n:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': path = optarg; break;
        case 'n': defns = optarg; break;
        case 'm': mon_text = optarg; break;
        case 'G': descriptors = optarg; break;
        case 'o': format = optarg; break;
        case 'h': fputs(render_help, stdout); return MASKCTL_OK;
        default: fputs(render_help, stderr); return MASKCTL_EUSAGE;
        }
    }
    if (!path || optind < argc || (strcmp(format, "yaml") != 0 && strcmp(format, "json") != 0)) {
        fprintf(stderr, "maskctl render: --policy FILE is required and -o is yaml or json\n\n%s",
                render_help);
        return MASKCTL_EUSAGE;
    }
    mm_buf_init(&buf, 0);
    if (mon_text && (!(mon = json_tokener_parse(mon_text)) || !json_object_is_type(mon, json_type_array))) {
        fprintf(stderr, "maskctl render: --monitoring-from must be a JSON array of NetworkPolicyPeer\n");
        json_object_put(mon);
        return MASKCTL_EUSAGE;
    }
    if (mm_read_file(strcmp(path, "-") == 0 ? "/dev/stdin" : path, MM_POLICY_FILE_MAX, &text,
                     &len, &eb) != MM_OK ||
        mm_adm_yaml_parse(text, len, path, &docs, &eb) != MM_OK) {
        fprintf(stderr, "maskctl render: %s\n", eb.msg);
        goto out;
    }
    /* Lists flatten into their items; every policy is validated as the webhook would. */
    struct json_object *flat = json_object_new_array();
    if (!flat)
        goto nomem;
    for (size_t i = 0; i < json_object_array_length(docs); i++) {
        struct json_object *d = json_object_array_get_idx(docs, i), *items = NULL;
        if (json_object_is_type(d, json_type_array))
            items = d;
        else if (!json_object_object_get_ex(d, "items", &items) ||
                 !json_object_is_type(items, json_type_array))
            items = NULL; /* not a list: validated (and refused) as a policy below */
        size_t k = items ? json_object_array_length(items) : 1;
        for (size_t j = 0; j < k; j++) {
            struct json_object *p = items ? json_object_array_get_idx(items, j) : d;
            json_object_array_add(flat, json_object_get(p));
        }
    }
    json_object_put(docs);
    docs = flat;
    n = json_object_array_length(docs);
    if (descriptors && (mm_read_file(descriptors, MM_PB_MAX_DESCRIPTORS, &pbtext, &pblen, &eb) != MM_OK ||
                        mm_pbdesc_parse(pbtext, pblen, &pb, &eb) != MM_OK)) {
        fprintf(stderr, "maskctl render: %s%s%s\n", pbtext ? descriptors : "", pbtext ? ": " : "",
                eb.msg);
        goto out;
    }
    if (n && !(grpc = mm_calloc(n, sizeof(*grpc))))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        struct json_object *p = json_object_array_get_idx(docs, i), *m = NULL;
        mm_policy *model = NULL;
        if (mm_policy_from_json(p, path, &model, NULL, &eb) != MM_OK) {
            fprintf(stderr, "maskctl render: %s\n", eb.msg);
            goto out;
        }
        grpc[i] = model->grpc != NULL;
        /* the controller copies only a set that fits the policy's paths */
        if (grpc[i] && pb && mm_pbdesc_check_policy(pb, model, &eb) != MM_OK) {
            fprintf(stderr, "maskctl render: %s: %s\n", descriptors, eb.msg);
            mm_policy_free(model);
            goto out;
        }
        if (grpc[i] && !pb)
            fprintf(stderr, "maskctl render: policy %s has spec.grpc: its descriptor set is "
                    "left out (--descriptors FILE adds it)\n", model->name);
        mm_policy_free(model);
        if (!ns_of(p) && json_object_object_get_ex(p, "metadata", &m))
            json_object_object_add(m, "namespace", json_object_new_string(defns));
    }
    if (!n) {
        fprintf(stderr, "maskctl render: %s: no MaskingPolicy in the input\n", path);
        goto out;
    }
    if (!(out = json_object_new_array()) || !(group = mm_calloc(n, sizeof(*group))))
        goto nomem;
    /* one ConfigMap per namespace, in the order namespaces first appear */
    for (size_t i = 0; i < n; i++) {
        const char *ns = ns_of(json_object_array_get_idx(docs, i));
        size_t g = 0;
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= strcmp(ns_of(json_object_array_get_idx(docs, j)), ns) == 0;
        if (seen)
            continue;
        for (size_t j = i; j < n; j++)
            if (strcmp(ns_of(json_object_array_get_idx(docs, j)), ns) == 0)
                group[g++] = json_object_array_get_idx(docs, j);
        struct json_object *cm = NULL;
        if (mm_policy_render_configmap(group, g, ns, &cm, &eb) != MM_OK) {
            fprintf(stderr, "maskctl render: %s\n", eb.msg);
            goto out;
        }
        json_object_array_add(out, cm);
        for (size_t j = i; pb && j < n; j++) {
            struct json_object *p = json_object_array_get_idx(docs, j), *m = NULL, *name = NULL;
            if (!grpc[j] || strcmp(ns_of(p), ns) != 0)
                continue;
            json_object_object_get_ex(p, "metadata", &m);
            json_object_object_get_ex(m, "name", &name);
            if (mm_policy_render_grpc(cm, json_object_get_string(name), pbtext, pblen, &eb) != MM_OK) {
                fprintf(stderr, "maskctl render: %s\n", eb.msg);
                goto out;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct json_object *np = NULL;
        if (mm_policy_render_networkpolicy(json_object_array_get_idx(docs, i), mon, &np, &eb) != MM_OK) {
            fprintf(stderr, "maskctl render: %s\n", eb.msg);
            goto out;
        }
        json_object_array_add(out, np);
    }
    if (strcmp(format, "yaml") == 0) {
        if (mm_adm_yaml_emit(out, &buf, &eb) != MM_OK) {
            fprintf(stderr, "maskctl render: %s\n", eb.msg);
            goto out;
        }
        fputs(mm_buf_cstr(&buf), stdout);
    } else {
        /* a List, as kubectl get -o json prints several objects */
        struct json_object *list = json_object_new_object();
        if (!list)
            goto nomem;
        json_object_object_add(list, "apiVersion", json_object_new_string("v1"));
        json_object_object_add(list, "kind", json_object_new_string("List"));
        json_object_object_add(list, "items", json_object_get(out));
        puts(json_object_to_json_string_ext(list, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
        json_object_put(list);
    }
    ret = fflush(stdout) == 0 ? MASKCTL_OK : MASKCTL_EINPUT;
    goto out;
nomem:
    fprintf(stderr, "maskctl render: out of memory\n");
out:
    mm_free(group);
    mm_free(grpc);
    mm_free(pbtext);
    mm_pbdesc_free(pb);
    mm_free(text);
    mm_buf_free(&buf);
    json_object_put(out);
    json_object_put(docs);
    json_object_put(mon);
    return ret;
}
