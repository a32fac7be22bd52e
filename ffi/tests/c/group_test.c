/* One member of the C API test: joins group "ctest" over shm through
 * libtutti, multicasts COUNT messages, and checks what it receives.
 *
 *   group_test <dir> <name> <contacts,comma,separated> <members> <role>
 *
 * role "stay": wait for a view of <members>, cast, receive everyone's
 * COUNT messages in FIFO order per sender, then wait for the leaver to go
 * (a view of <members> - 1), then leave.
 * role "leave": the same, but leave once everything is received; it
 * opens its endpoint with TUTTI_DISCARD_OWN, so it counts its own messages
 * as it casts them, and getting one delivered fails the test.
 * Prints "ok ..." lines; exits 0 when every check held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tutti.h"

#define COUNT 200

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *what, int rc) {
    printf("FAIL %s: %s\n", what, tutti_strerror(rc));
    return 1;
}

/* State: how many messages this member delivered (with the state it got). */
static unsigned long long delivered_total = 0;
static unsigned long long from_state = 0;
static char names[16][32];
static unsigned next_idx[16];
static int seen[16];
static size_t nnames = 0, dones = 0;
/* This member's name when its own casts are not delivered (the leaver). */
static const char *discarding = NULL;

/* Every delivery, whatever phase the program is in: FIFO per sender
 * name (ranks change with views). A joiner's state counts the messages
 * the group delivered before it came in: it does not deliver those, so a
 * sender's first message it sees may have an index above 0. */
static int take(const uint8_t *data, size_t len);

static uint16_t own_rank = 0;

static int on_event(const TuttiEvent *ev) {
    if (ev->kind == TUTTI_EVENT_KIND_VIEW) own_rank = ev->rank;
    if (ev->kind != TUTTI_EVENT_KIND_DELIVER) return 0;
    if (discarding && ev->sender == own_rank) {
        printf("FAIL own message delivered with TUTTI_DISCARD_OWN\n");
        return -1;
    }
    return take(ev->data, ev->len);
}

/* A message delivered, or cast by this member when it discards its own. */
static int take(const uint8_t *data, size_t len) {
    if (len == 4 && memcmp(data, "DONE", 4) == 0) {
        dones++;
        return 0;
    }
    char text[64] = {0};
    memcpy(text, data, len < 63 ? len : 63);
    char who[32];
    int idx = -1;
    if (sscanf(text, "%31s %d", who, &idx) != 2) {
        printf("FAIL payload %s\n", text);
        return -1;
    }
    size_t s = 0;
    while (s < nnames && strcmp(names[s], who) != 0) s++;
    if (s == nnames) {
        if (nnames == 16) return -1;
        strcpy(names[nnames++], who);
    }
    if (!seen[s] && from_state == 0 && idx != 0) {
        printf("FAIL fifo: first from %s is %d\n", who, idx);
        return -1;
    }
    if (seen[s] && (unsigned)idx != next_idx[s]) {
        printf("FAIL fifo: from %s got %d, expected %u\n", who, idx, next_idx[s]);
        return -1;
    }
    seen[s] = 1;
    next_idx[s] = (unsigned)idx + 1;
    delivered_total++;
    return 0;
}

static void get_state(void *ctx, TuttiStateWriter *w) {
    (void)ctx;
    tutti_state_write(w, (const uint8_t *)&delivered_total, sizeof delivered_total);
}

static void set_state(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    if (data && len == sizeof delivered_total) memcpy(&delivered_total, data, len);
    from_state = delivered_total;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s dir name contacts members stay|leave\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1], *name = argv[2];
    size_t want = (size_t)atoi(argv[4]);
    int leaver = strcmp(argv[5], "leave") == 0;
    char *list = strdup(argv[3]);
    const char *contacts[16];
    size_t n = 0;
    for (char *t = strtok(list, ","); t && n < 16; t = strtok(NULL, ",")) contacts[n++] = t;

    /* A generous failure detector: this test shares 2 cores between three
     * processes and their polling threads. */
    TuttiConfig cfg = {"shm", name, dir, -1, 0, 1000, leaver ? TUTTI_DISCARD_OWN : 0};
    if (leaver) discarding = name;
    /* Flags it does not know are refused. */
    TuttiConfig bad = cfg;
    bad.flags = 0x80;
    TuttiEndpoint *none = NULL;
    if (tutti_endpoint_open(&bad, &none) != TUTTI_ERR_INVALID) return fail("unknown flag", -1);
    TuttiEndpoint *ep = NULL;
    int rc = tutti_endpoint_open(&cfg, &ep);
    if (rc != TUTTI_OK) return fail("open", rc);
    TuttiStateCallbacks cb = {get_state, set_state, NULL};
    TuttiGroup *g = NULL;
    rc = tutti_join(ep, "ctest", "vsync", contacts, n, &cb, &g);
    if (rc != TUTTI_OK) return fail("join", rc);
    /* Bad input is refused with a code, not a crash. */
    if (tutti_cast(NULL, (const uint8_t *)"x", 1) != TUTTI_ERR_NULL) return fail("null check", -1);
    if (tutti_cast(g, NULL, 5) != TUTTI_ERR_NULL) return fail("null data check", -1);

    TuttiEvent ev;
    memset(&ev, 0, sizeof ev);
    size_t members = 0;
    uint16_t rank = 0;
    long long deadline = now_ms() + 20000;
    /* Wait for the full view. */
    while (members != want) {
        if (now_ms() > deadline) return fail("view of all members", TUTTI_ERR_TIMEOUT);
        rc = tutti_poll(g, 100, &ev);
        if (rc == TUTTI_OK && on_event(&ev)) return 1;
        if (rc == TUTTI_OK && ev.kind == TUTTI_EVENT_KIND_VIEW) {
            members = ev.nmembers;
            rank = ev.rank;
            printf("view %llu of %zu\n", (unsigned long long)ev.view_ltime, members);
        }
    }
    printf("ok view of %zu, rank %u at %lld\n", members, (unsigned)rank, now_ms() % 100000);
    fflush(stdout);
    /* Let the last joiner's state transfer finish before anyone casts:
     * what the state holds a joiner does not deliver again, and this test
     * counts every message from index 0. */
    long long settle = now_ms() + 500;
    while (now_ms() < settle)
        if (tutti_poll(g, 50, &ev) == TUTTI_OK && on_event(&ev)) return 1;
    /* Cast COUNT messages, a third copied, a third zero-copy, a third
     * written in place a few to a frame (a packer); everyone casts
     * DONE once it holds all 3 x COUNT (delivered or in its state), and
     * goes on once it has everyone's DONE. */
    int sent = 0, done_sent = 0;
    while (dones < want) {
        if (now_ms() > deadline) {
            printf("FAIL deliveries: %llu of %zu (state %llu), sent %d, done %zu\n",
                   delivered_total, want * COUNT, from_state, sent, dones);
            return 1;
        }
        if (sent < COUNT && sent % 3 == 2) {
            /* Up to four at once, in place in one frame, cast together. */
            TuttiPacker *p = NULL;
            rc = tutti_packer_take(g, &p);
            if (rc == TUTTI_OK) {
                char msgs[4][64];
                int lens[4], n = 0;
                while (n < 4 && sent + n < COUNT) {
                    uint8_t *data = NULL;
                    lens[n] = snprintf(msgs[n], sizeof msgs[n], "%s %d", name, sent + n);
                    if (tutti_packer_cast(p, (size_t)lens[n], &data) != TUTTI_OK) break;
                    memcpy(data, msgs[n], (size_t)lens[n]);
                    n++;
                }
                if (tutti_packer_count(p) != (size_t)n) return fail("packer count", TUTTI_ERR_INVALID);
                rc = tutti_packer_send(g, p);
                if (rc == TUTTI_ERR_WOULD_BLOCK) tutti_packer_free(p);
                if (rc == TUTTI_OK) {
                    for (int i = 0; i < n; i++)
                        if (discarding && take((const uint8_t *)msgs[i], (size_t)lens[i])) return 1;
                    sent += n;
                }
            }
            if (rc != TUTTI_OK && rc != TUTTI_ERR_WOULD_BLOCK && rc != TUTTI_ERR_NO_BUFFER)
                return fail("packer", rc);
        } else if (sent < COUNT) {
            char msg[64];
            int len = snprintf(msg, sizeof msg, "%s %d", name, sent);
            if (sent % 3 == 0) {
                rc = tutti_cast(g, (const uint8_t *)msg, (size_t)len);
            } else {
                TuttiBuffer *b = NULL;
                uint8_t *data = NULL;
                rc = tutti_buffer_take(g, (size_t)len, &b, &data);
                if (rc == TUTTI_OK) {
                    memcpy(data, msg, (size_t)len);
                    rc = tutti_buffer_cast(g, b);
                    if (rc == TUTTI_ERR_WOULD_BLOCK) tutti_buffer_free(b);
                }
            }
            if (rc == TUTTI_OK) {
                sent++;
                if (discarding && take((const uint8_t *)msg, (size_t)len)) return 1;
            } else if (rc != TUTTI_ERR_WOULD_BLOCK && rc != TUTTI_ERR_NO_BUFFER) {
                return fail("cast", rc);
            }
        } else if (!done_sent && delivered_total == want * COUNT) {
            rc = tutti_cast(g, (const uint8_t *)"DONE", 4);
            if (rc == TUTTI_OK) {
                done_sent = 1;
                if (discarding) take((const uint8_t *)"DONE", 4);
            }
        }
        rc = tutti_poll(g, sent < COUNT ? 0 : 20, &ev);
        if (rc == TUTTI_OK && on_event(&ev)) return 1;
    }
    if (delivered_total != want * COUNT) {
        printf("FAIL count: %llu delivered with the state\n", delivered_total);
        return 1;
    }
    printf("ok delivered %zu in order (%llu of them in the state)\n", want * COUNT, from_state);
    fflush(stdout);
    if (leaver) {
        rc = tutti_leave(g);
        if (rc != TUTTI_OK) return fail("leave", rc);
        while (1) {
            if (now_ms() > deadline) return fail("exit", TUTTI_ERR_TIMEOUT);
            rc = tutti_poll(g, 100, &ev);
            if (rc == TUTTI_OK && ev.kind == TUTTI_EVENT_KIND_EXIT) break;
        }
        printf("ok left\n");
    } else {
        /* The leaver goes: a view of one fewer. */
        while (members != want - 1) {
            if (now_ms() > deadline) return fail("view after the leave", TUTTI_ERR_TIMEOUT);
            rc = tutti_poll(g, 100, &ev);
            if (rc == TUTTI_OK && ev.kind == TUTTI_EVENT_KIND_VIEW) members = ev.nmembers;
        }
        printf("ok view of %zu after the leave\n", members);
        fflush(stdout);
        /* Stay a moment so the other stayer sees the same, then leave. */
        long long until = now_ms() + 300;
        while (now_ms() < until) tutti_poll(g, 50, &ev);
        tutti_leave(g);
        long long end = now_ms() + 5000;
        while (now_ms() < end) {
            rc = tutti_poll(g, 100, &ev);
            if (rc == TUTTI_OK && ev.kind == TUTTI_EVENT_KIND_EXIT) break;
        }
    }
    tutti_event_clear(&ev);
    tutti_group_close(g);
    tutti_endpoint_close(ep);
    free(list);
    printf("ok done\n");
    return 0;
}
