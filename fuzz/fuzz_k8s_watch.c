/* libFuzzer target for the lib/k8s watch framing: the input (after two control bytes) is a
 * watch stream fed in two chunks split where the first byte says, with a line bound the
 * second byte picks; each event's object goes through the Status and Lease readers, as the
 * informer and the elector would. Errors are fine; crashes, leaks and hangs are not. */
#include <stdint.h>
#include <string.h>

#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_event(void *ud, const mm_k8s_event *ev)
{
    mm_k8s_status st;
    mm_k8s_lease_spec ls;
    size_t *n = ud;
    (*n)++;
    if (mm_k8s_status_from_json(ev->object, &st, NULL) == MM_OK) {
        (void)mm_k8s_status_err(&st);
        mm_k8s_status_clear(&st);
    }
    if (mm_k8s_lease_spec_from_json(ev->object, &ls, NULL) == MM_OK)
        mm_free(ls.holder);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_k8s_watch_decoder *d = NULL;
    mm_errbuf eb;
    bool stopped = false;
    size_t events = 0;

    if (size < 2)
        return 0;
    size_t max_line = data[1] < 128 ? (size_t)data[1] * 16 + 16 : 0; /* 0: the default bound */
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    size_t split = n ? data[0] % (n + 1) : 0;
    if (mm_k8s_watch_decoder_new(max_line, &d) != MM_OK)
        return 0;
    if (mm_k8s_watch_decoder_feed(d, s, split, on_event, &events, &stopped, &eb) == MM_OK &&
        mm_k8s_watch_decoder_feed(d, s + split, n - split, on_event, &events, &stopped, &eb) ==
            MM_OK)
        (void)mm_k8s_watch_decoder_finish(d, &eb);
    if (mm_k8s_watch_decoder_events(d) != events)
        __builtin_trap(); /* every parsed event reached the callback */
    mm_k8s_watch_decoder_free(d);

    /* the same bytes as an error response body */
    mm_k8s_status st;
    mm_k8s_status_from_body(410, s, n, 1, &st);
    mm_k8s_status_clear(&st);
    return 0;
}
