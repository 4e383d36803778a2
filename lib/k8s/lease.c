/* lib/k8s leader election on a coordination.k8s.io/v1 Lease (client-go's leaderelection:
 * acquire or take over an expired lease, renew, release on stop, step down past the renew
 * deadline), and metav1.MicroTime. */
#include "k8s/k8s_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct mm_k8s_leader {
    mm_k8s_client *c; /* our own: renewals never queue behind the caller's requests */
    char *ns, *name, *identity;
    long lease_ms, renew_deadline_ms, retry_ms;
    bool release_on_stop;
    mm_k8s_leader_opts cb; /* the callbacks and ud */
    mm_k8s_ref ref, coll;

    pthread_mutex_t lock; /* guards leading */
    bool leading;

    /* only the elector's thread touches these */
    uint64_t last_renew_ns;   /* monotonic time of the last successful acquire/renew */
    char *observed_rv;        /* the Lease's resourceVersion when last read */
    char *observed_holder;
    uint64_t observed_change_ns; /* monotonic time the record was last seen changing */
    uint64_t rng;

    atomic_bool stop;
    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;
    pthread_t thread;
    bool running;
};

/* ---- time -------------------------------------------------------------------------------- */

int64_t mm_k8s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void mm_k8s_format_microtime(int64_t us, char buf[MM_K8S_MICROTIME_LEN + 1])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    if (!gmtime_r(&secs, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        memcpy(buf, "1970-01-01T00:00:00.000000Z", MM_K8S_MICROTIME_LEN + 1);
        return;
    }
    char tmp[96]; /* the year is 0..9999 (checked), so this is always 27 characters */
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    memcpy(buf, tmp, MM_K8S_MICROTIME_LEN);
    buf[MM_K8S_MICROTIME_LEN] = '\0';
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

mm_err mm_k8s_parse_time(const char *s, int64_t *us)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    long frac = 0;
    size_t i = 19;

    memset(&tm, 0, sizeof(tm));
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return MM_EPARSE;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return MM_EPARSE;
    if (s[i] == '.') {
        int nd = 0;
        i++;
        while (s[i] >= '0' && s[i] <= '9') {
            if (nd < 6)
                frac = frac * 10 + (s[i] - '0');
            nd++;
            i++;
        }
        if (nd == 0 || nd > 9)
            return MM_EPARSE;
        for (; nd < 6; nd++)
            frac *= 10;
    }
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (!digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || !digits(s + i + 4, 2, &om) ||
            oh > 23 || om > 59)
            return MM_EPARSE;
        if (s[i] == '-') {
            oh = -oh;
            om = -om;
        }
        i += 6;
    } else {
        return MM_EPARSE;
    }
    if (s[i])
        return MM_EPARSE;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *us = ((int64_t)t - (int64_t)oh * 3600 - (int64_t)om * 60) * 1000000 + frac;
    return MM_OK;
}

/* ---- the Lease record ---------------------------------------------------------------------- */

mm_err mm_k8s_lease_spec_from_json(struct json_object *lease, mm_k8s_lease_spec *out,
                                   mm_errbuf *eb)
{
    struct json_object *spec, *v;

    memset(out, 0, sizeof(*out));
    if (!(spec = k8s_json_get(lease, "spec", json_type_object)))
        return mm_errf(eb, MM_EPARSE, "Lease: spec: expected an object");
    if (json_object_object_get_ex(spec, "holderIdentity", &v) && v) {
        if (!json_object_is_type(v, json_type_string))
            return mm_errf(eb, MM_EPARSE, "Lease: spec.holderIdentity: expected a string");
    }
    if (json_object_object_get_ex(spec, "leaseDurationSeconds", &v) && v) {
        if (!json_object_is_type(v, json_type_int))
            return mm_errf(eb, MM_EPARSE, "Lease: spec.leaseDurationSeconds: expected an "
                                          "integer");
        int64_t n = json_object_get_int64(v);
        out->lease_duration_s = n < 0 ? 0 : n > 86400 * 365 ? 86400 * 365 : (long)n;
    }
    if (json_object_object_get_ex(spec, "leaseTransitions", &v) && v) {
        if (!json_object_is_type(v, json_type_int))
            return mm_errf(eb, MM_EPARSE, "Lease: spec.leaseTransitions: expected an integer");
        int64_t n = json_object_get_int64(v);
        out->transitions = n < 0 ? 0 : n > INT32_MAX ? INT32_MAX : (long)n;
    }
    static const char *const times[] = {"acquireTime", "renewTime"};
    for (int i = 0; i < 2; i++) {
        int64_t *dst = i == 0 ? &out->acquire_us : &out->renew_us;
        if (!json_object_object_get_ex(spec, times[i], &v) || !v)
            continue;
        if (!json_object_is_type(v, json_type_string) ||
            mm_k8s_parse_time(json_object_get_string(v), dst) != MM_OK)
            return mm_errf(eb, MM_EPARSE, "Lease: spec.%s: expected a MicroTime "
                                          "(2006-01-02T15:04:05.000000Z)",
                           times[i]);
    }
    const char *holder = k8s_json_str(spec, "holderIdentity");
    if (!(out->holder = mm_strdup(holder ? holder : "")))
        return MM_ENOMEM;
    return MM_OK;
}

/* Writes spec into lease (replacing it): holder, duration, times, transitions. */
static mm_err put_spec(struct json_object *lease, const char *holder, long dur_s,
                       int64_t acquire_us, int64_t renew_us, long transitions)
{
    char at[MM_K8S_MICROTIME_LEN + 1], rt[MM_K8S_MICROTIME_LEN + 1];
    struct json_object *spec = json_object_new_object();
    if (!spec)
        return MM_ENOMEM;
    mm_k8s_format_microtime(acquire_us, at);
    mm_k8s_format_microtime(renew_us, rt);
    if (k8s_json_add(spec, "holderIdentity", json_object_new_string(holder)) ||
        k8s_json_add(spec, "leaseDurationSeconds", json_object_new_int64(dur_s)) ||
        k8s_json_add(spec, "acquireTime", json_object_new_string(at)) ||
        k8s_json_add(spec, "renewTime", json_object_new_string(rt)) ||
        k8s_json_add(spec, "leaseTransitions", json_object_new_int64(transitions))) {
        json_object_put(spec);
        return MM_ENOMEM;
    }
    return k8s_json_add(lease, "spec", spec) ? MM_ENOMEM : MM_OK;
}

/* ---- elector ------------------------------------------------------------------------------- */

static uint64_t le_rand(mm_k8s_leader *le)
{
    le->rng ^= le->rng >> 12;
    le->rng ^= le->rng << 25;
    le->rng ^= le->rng >> 27;
    return le->rng * 2685821657736338717ULL;
}

static mm_err make_identity(char **out)
{
    char host[256];
    uint8_t r[16];
    mm_buf b;
    uint64_t a = k8s_random64(), z = k8s_random64();

    if (gethostname(host, sizeof(host)) != 0)
        memcpy(host, "unknown", 8);
    host[sizeof(host) - 1] = '\0';
    memcpy(r, &a, 8);
    memcpy(r + 8, &z, 8);
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* a version 4 UUID, like controller-runtime's */
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    mm_buf_init(&b, 0);
    mm_err rc = mm_buf_printf(&b, "%s_%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                              host, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                              r[10], r[11], r[12], r[13], r[14], r[15]);
    if (rc != MM_OK) {
        mm_buf_free(&b);
        return rc;
    }
    *out = mm_buf_steal(&b, NULL);
    return *out ? MM_OK : MM_ENOMEM;
}

mm_err mm_k8s_leader_new(mm_k8s_client *c, const mm_k8s_leader_opts *o, mm_k8s_leader **out,
                         mm_errbuf *eb)
{
    mm_k8s_leader *le = NULL;
    mm_err rc = MM_OK;
    int locks = 0;

    *out = NULL;
    if (!o || !o->ns || !*o->ns || !o->name || !*o->name)
        return mm_errf(eb, MM_EINVAL, "leader election: the Lease's namespace and name are "
                                      "required");
    if (!(le = mm_calloc(1, sizeof(*le))))
        return MM_ENOMEM;
    if ((rc = k8s_client_clone(c, &le->c, eb)) != MM_OK) {
        mm_errprefix(eb, "leader election");
        goto out;
    }
    le->cb = *o;
    le->lease_ms = o->lease_duration_ms > 0 ? o->lease_duration_ms : 15000;
    le->renew_deadline_ms = o->renew_deadline_ms > 0 ? o->renew_deadline_ms : 10000;
    le->retry_ms = o->retry_period_ms > 0 ? o->retry_period_ms : 2000;
    le->release_on_stop = !o->no_release_on_stop;
    if (le->renew_deadline_ms >= le->lease_ms || le->retry_ms >= le->renew_deadline_ms) {
        rc = mm_errf(eb, MM_EINVAL, "leader election: need retry period < renew deadline < "
                                    "lease duration");
        goto out;
    }
    if (!(le->ns = mm_strdup(o->ns)) || !(le->name = mm_strdup(o->name))) {
        rc = MM_ENOMEM;
        goto out;
    }
    if (o->identity && *o->identity) {
        if (!(le->identity = mm_strdup(o->identity))) {
            rc = MM_ENOMEM;
            goto out;
        }
    } else if ((rc = make_identity(&le->identity)) != MM_OK) {
        goto out;
    }
    le->cb.identity = le->identity;
    le->cb.ns = le->ns;
    le->cb.name = le->name;
    le->ref = (mm_k8s_ref){.group = "coordination.k8s.io", .version = "v1", .resource = "leases",
                           .ns = le->ns, .name = le->name};
    le->coll = le->ref;
    le->coll.name = NULL;
    le->rng = k8s_random64() | 1;
    atomic_init(&le->stop, false);
    if (pthread_mutex_init(&le->lock, NULL) != 0)
        goto nolock;
    locks++;
    if (pthread_mutex_init(&le->wait_lock, NULL) != 0)
        goto nolock;
    locks++;
    if (pthread_cond_init(&le->wait_cond, NULL) != 0)
        goto nolock;
    *out = le;
    return MM_OK;
nolock:
    rc = mm_errf(eb, MM_ENOMEM, "leader election: cannot create a lock");
out:
    if (locks > 1)
        pthread_mutex_destroy(&le->wait_lock);
    if (locks > 0)
        pthread_mutex_destroy(&le->lock);
    mm_free(le->ns);
    mm_free(le->name);
    mm_free(le->identity);
    mm_k8s_client_free(le->c);
    mm_free(le);
    return rc;
}

bool mm_k8s_leader_is_leader(mm_k8s_leader *le)
{
    pthread_mutex_lock(&le->lock);
    bool l = le->leading;
    pthread_mutex_unlock(&le->lock);
    return l;
}

const char *mm_k8s_leader_identity(const mm_k8s_leader *le) { return le->identity; }

static void set_leading(mm_k8s_leader *le, bool leading)
{
    pthread_mutex_lock(&le->lock);
    bool was = le->leading;
    le->leading = leading;
    pthread_mutex_unlock(&le->lock);
    if (leading && !was) {
        mm_log(MM_LOG_INFO, "k8s: became leader", "lease", le->name, "identity", le->identity,
               NULL);
        if (le->cb.on_started_leading)
            le->cb.on_started_leading(le->cb.ud);
    } else if (!leading && was) {
        mm_log(MM_LOG_WARN, "k8s: stopped leading", "lease", le->name, "identity", le->identity,
               NULL);
        if (le->cb.on_stopped_leading)
            le->cb.on_stopped_leading(le->cb.ud);
    }
}

static long lease_seconds(const mm_k8s_leader *le)
{
    long s = (le->lease_ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

/* Notes a newly read record: when its resourceVersion changes the clock restarts, and a new
 * holder is reported. */
static mm_err observe(mm_k8s_leader *le, const char *rv, const char *holder)
{
    if (!le->observed_rv || !rv || strcmp(le->observed_rv, rv) != 0) {
        char *d = rv ? mm_strdup(rv) : NULL;
        if (rv && !d)
            return MM_ENOMEM;
        /* a first sighting is not a change we saw happen: the renewTime decides then */
        if (le->observed_rv)
            le->observed_change_ns = mm_now_ns();
        mm_free(le->observed_rv);
        le->observed_rv = d;
    }
    if (!le->observed_holder || strcmp(le->observed_holder, holder) != 0) {
        char *d = mm_strdup(holder);
        if (!d)
            return MM_ENOMEM;
        mm_free(le->observed_holder);
        le->observed_holder = d;
        if (*holder && le->cb.on_new_leader)
            le->cb.on_new_leader(le->cb.ud, holder);
    }
    return MM_OK;
}

/* One attempt: *acquired tells whether we hold the lease after it. */
static mm_err try_acquire_or_renew(mm_k8s_leader *le, bool *acquired, mm_errbuf *eb)
{
    mm_err rc;
    mm_k8s_result res = {0};
    mm_k8s_lease_spec spec = {0};
    struct json_object *lease = NULL;
    int64_t now = mm_k8s_now_us();
    /* a round trip must not outlast the renew deadline, nor sleep on Retry-After or the
     * client's rate limit */
    k8s_tuning tune = {.timeout_ms = le->renew_deadline_ms, .max_retries = 0, .unlimited = true};

    *acquired = false;
    rc = k8s_request(le->c, "GET", &le->ref, NULL, NULL, NULL, 0, &tune, &res, eb);
    if (rc == MM_ENOTFOUND) {
        struct json_object *meta = json_object_new_object();
        if (!(lease = json_object_new_object()) ||
            k8s_json_add(lease, "apiVersion", json_object_new_string("coordination.k8s.io/v1")) ||
            k8s_json_add(lease, "kind", json_object_new_string("Lease")) ||
            k8s_json_add(lease, "metadata", json_object_get(meta))) {
            json_object_put(meta);
            rc = MM_ENOMEM;
            goto out;
        }
        json_object_put(meta); /* lease holds it */
        if (k8s_json_add(meta, "name", json_object_new_string(le->name)) ||
            k8s_json_add(meta, "namespace", json_object_new_string(le->ns)) ||
            put_spec(lease, le->identity, lease_seconds(le), now, now, 0) != MM_OK) {
            rc = MM_ENOMEM;
            goto out;
        }
        size_t len = 0;
        const char *body = json_object_to_json_string_length(
            lease, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!body) {
            rc = MM_ENOMEM;
            goto out;
        }
        rc = k8s_request(le->c, "POST", &le->coll, NULL, "application/json", body, len, &tune,
                         &res, eb);
        if (rc == MM_OK) {
            *acquired = true;
            if ((rc = observe(le, k8s_meta_str(res.body, "resourceVersion"), le->identity)) != MM_OK)
                goto out;
        } else if (rc == MM_ECONFLICT) {
            rc = MM_OK; /* AlreadyExists: another candidate created it first */
        }
        goto out;
    }
    if (rc != MM_OK)
        goto out;
    if ((rc = mm_k8s_lease_spec_from_json(res.body, &spec, eb)) != MM_OK)
        goto out;
    if ((rc = observe(le, k8s_meta_str(res.body, "resourceVersion"), spec.holder)) != MM_OK)
        goto out;
    bool mine = strcmp(spec.holder, le->identity) == 0;
    int64_t dur_us = (int64_t)spec.lease_duration_s * 1000000;
    bool expired = spec.renew_us == 0 || spec.renew_us + dur_us < now;
    /* our clock may run ahead of the holder's: a record we saw change within its duration
     * is still held, whatever renewTime says */
    if (le->observed_change_ns &&
        mm_now_ns() - le->observed_change_ns < (uint64_t)dur_us * 1000)
        expired = false;
    if (!mine && *spec.holder && !expired)
        goto out; /* held by another */
    lease = json_object_get(res.body);
    if ((rc = put_spec(lease, le->identity, lease_seconds(le), mine ? spec.acquire_us : now, now,
                       mine ? spec.transitions : spec.transitions + 1)) != MM_OK)
        goto out;
    size_t len = 0;
    const char *body = json_object_to_json_string_length(
        lease, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!body) {
        rc = MM_ENOMEM;
        goto out;
    }
    /* metadata.resourceVersion from the GET makes this a compare-and-swap */
    rc = k8s_request(le->c, "PUT", &le->ref, NULL, "application/json", body, len, &tune, &res, eb);
    if (rc == MM_OK) {
        *acquired = true;
        rc = observe(le, k8s_meta_str(res.body, "resourceVersion"), le->identity);
    } else if (rc == MM_ECONFLICT) {
        rc = MM_OK; /* someone else wrote it between our read and write */
    }
out:
    json_object_put(lease);
    mm_free(spec.holder);
    mm_k8s_result_clear(&res);
    return rc;
}

mm_err mm_k8s_leader_step(mm_k8s_leader *le, long *delay_ms, mm_errbuf *eb)
{
    bool acquired = false;
    mm_err rc = try_acquire_or_renew(le, &acquired, eb);
    bool was = mm_k8s_leader_is_leader(le);

    if (acquired) {
        le->last_renew_ns = mm_now_ns();
        set_leading(le, true);
    } else if (was) {
        bool lost = rc == MM_OK; /* read fine, but someone else holds it now */
        if (!lost && mm_now_ns() - le->last_renew_ns >= (uint64_t)le->renew_deadline_ms * 1000000)
            lost = true; /* could not renew within the deadline: step down, safely */
        if (lost)
            set_leading(le, false);
    }
    /* the leader renews every retry period; candidates add up to 120% jitter like
     * client-go's JitterUntil(retryPeriod, 1.2) */
    if (mm_k8s_leader_is_leader(le))
        *delay_ms = le->retry_ms;
    else
        *delay_ms = le->retry_ms + (long)(le_rand(le) % (uint64_t)(le->retry_ms * 6 / 5 + 1));
    return rc;
}

mm_err mm_k8s_leader_release(mm_k8s_leader *le, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_k8s_result res = {0};
    mm_k8s_lease_spec spec = {0};
    k8s_tuning tune = {.timeout_ms = le->renew_deadline_ms, .max_retries = 0, .unlimited = true};

    if (!mm_k8s_leader_is_leader(le))
        return MM_OK;
    if ((rc = k8s_request(le->c, "GET", &le->ref, NULL, NULL, NULL, 0, &tune, &res, eb)) != MM_OK)
        goto out;
    if ((rc = mm_k8s_lease_spec_from_json(res.body, &spec, eb)) != MM_OK)
        goto out;
    if (strcmp(spec.holder, le->identity) == 0) {
        /* client-go ReleaseOnCancel: empty holder, 1 s duration, transitions kept */
        int64_t now = mm_k8s_now_us();
        struct json_object *lease = json_object_get(res.body);
        size_t len = 0;
        const char *body = NULL;
        if ((rc = put_spec(lease, "", 1, now, now, spec.transitions)) == MM_OK &&
            !(body = json_object_to_json_string_length(
            lease, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len)))
            rc = MM_ENOMEM;
        mm_k8s_result put = {0};
        if (rc == MM_OK)
            rc = k8s_request(le->c, "PUT", &le->ref, NULL, "application/json", body, len, &tune,
                             &put, eb);
        mm_k8s_result_clear(&put);
        json_object_put(lease);
    }
out:
    set_leading(le, false);
    mm_free(spec.holder);
    mm_k8s_result_clear(&res);
    return rc;
}

static void *run(void *arg)
{
    mm_k8s_leader *le = arg;
    while (!atomic_load(&le->stop)) {
        long delay = 0;
        mm_errbuf eb = {{0}};
        if (mm_k8s_leader_step(le, &delay, &eb) != MM_OK && !atomic_load(&le->stop))
            mm_log(MM_LOG_WARN, "k8s: leader election", "lease", le->name, "error", eb.msg, NULL);
        k8s_wait_stop(&le->wait_lock, &le->wait_cond, &le->stop, delay);
    }
    return NULL;
}

mm_err mm_k8s_leader_start(mm_k8s_leader *le, mm_errbuf *eb)
{
    if (le->running)
        return mm_errf(eb, MM_EINVAL, "leader election: already running");
    atomic_store(&le->stop, false);
    if (pthread_create(&le->thread, NULL, run, le) != 0)
        return mm_errf(eb, MM_EIO, "leader election: cannot start a thread");
    le->running = true;
    return MM_OK;
}

void mm_k8s_leader_stop(mm_k8s_leader *le)
{
    if (le->running) {
        pthread_mutex_lock(&le->wait_lock);
        atomic_store(&le->stop, true);
        pthread_cond_broadcast(&le->wait_cond);
        pthread_mutex_unlock(&le->wait_lock);
        pthread_join(le->thread, NULL);
        le->running = false;
    }
    if (le->release_on_stop) {
        mm_errbuf eb;
        if (mm_k8s_leader_release(le, &eb) != MM_OK)
            mm_log(MM_LOG_WARN, "k8s: could not release the lease", "lease", le->name, "error",
                   eb.msg, NULL);
    } else {
        set_leading(le, false);
    }
}

void mm_k8s_leader_free(mm_k8s_leader *le)
{
    if (!le)
        return;
    mm_k8s_leader_stop(le);
    pthread_cond_destroy(&le->wait_cond);
    pthread_mutex_destroy(&le->wait_lock);
    pthread_mutex_destroy(&le->lock);
    mm_free(le->observed_rv);
    mm_free(le->observed_holder);
    mm_free(le->ns);
    mm_free(le->name);
    mm_free(le->identity);
    mm_k8s_client_free(le->c);
    mm_free(le);
}
