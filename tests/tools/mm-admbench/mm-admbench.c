/* mm-admbench: answers one AdmissionReview file N times the way maskmesh-webhook's
 * /mutate-pods does (parse, decide, write the response), without the HTTP server, so that
 * `valgrind --tool=callgrind` counts the instructions of lib/admission alone: the count of
 * N=101 minus that of N=1, over 100, is the cost of one review (bench/webhook.sh prints it).
 *   mm-admbench FILE [N]   prints the last response's length and a checksum of it */
#include <stdio.h>
#include <stdlib.h>

#include "admission/admission.h"

int main(int argc, char **argv)
{
    mm_adm_config cfg;
    mm_errbuf eb = {{0}};
    char *body = NULL;
    size_t len = 0, out_len = 0;
    unsigned long sum = 0;
    long n = 1;
    int status = 1;

    if (argc < 2 || argc > 3 || (argc == 3 && !mm_parse_long(argv[2], 1, 100000000, &n))) {
        fputs("usage: mm-admbench FILE [N]\n", stderr);
        return 2;
    }
    if (mm_adm_config_init(&cfg) != MM_OK) {
        fputs("mm-admbench: out of memory\n", stderr);
        return 1;
    }
    if (mm_read_file(argv[1], MM_ADM_REVIEW_MAX, &body, &len, &eb) != MM_OK) {
        fprintf(stderr, "mm-admbench: %s\n", eb.msg);
        goto out;
    }
    for (long i = 0; i < n; i++) {
        mm_adm_review rv;
        mm_adm_reason reason;
        mm_buf resp;
        mm_buf_init(&resp, 0);
        if (mm_adm_review_parse_pod(body, len, &rv, &eb) != MM_OK ||
            mm_adm_mutate(&rv, &cfg, false, &resp, &reason, &eb) != MM_OK) {
            fprintf(stderr, "mm-admbench: %s: %s\n", argv[1], eb.msg);
            mm_adm_review_clear(&rv);
            mm_buf_free(&resp);
            goto out;
        }
        out_len = resp.len;
        for (size_t k = 0; i == n - 1 && k < resp.len; k++) /* the last only: not counted per review */
            sum = sum * 31 + (unsigned char)resp.data[k];
        mm_adm_review_clear(&rv);
        mm_buf_free(&resp);
    }
    printf("%zu bytes, checksum %lx\n", out_len, sum);
    status = 0;
out:
    mm_free(body);
    mm_adm_config_clear(&cfg);
    return status;
}
