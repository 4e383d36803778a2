/* libFuzzer target for lib/k8s kubeconfig parsing (YAML, contexts, clusters, users, base64
 * -data fields, booleans); relative file names resolve under a folder that does not exist,
 * so no file outside the input is read. What parses is copied and freed, as a client does.
 * Also fuzzes the MicroTime parser on the same bytes. */
#include <stdint.h>
#include <string.h>

#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_k8s_config *c = NULL;
    mm_errbuf eb;

    if (size > 1 << 16)
        return 0;
    if (mm_k8s_config_parse_kubeconfig((const char *)data, size, "/nonexistent-mm-fuzz/config",
                                       NULL, &c, &eb) == MM_OK) {
        if (!mm_k8s_config_server(c) || !mm_k8s_config_namespace(c))
            __builtin_trap();
        mm_k8s_config_free(c);
    }
    char *s = mm_strndup((const char *)data, size < 64 ? size : 64);
    if (s) {
        int64_t us;
        char buf[MM_K8S_MICROTIME_LEN + 1];
        if (mm_k8s_parse_time(s, &us) == MM_OK)
            mm_k8s_format_microtime(us, buf);
        mm_free(s);
    }
    return 0;
}
