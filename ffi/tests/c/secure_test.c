/* A secure group through the C API:
 *
 *   secure_test <dir> <name> <contacts,comma,separated> <key> <authorized> <role> <members>
 *
 * role "member": joins "vsync-secure" with its key, waits for a view of
 * <members>, casts one hello, waits for everyone's hello, then for a
 * REFUSED event (the intruder's join, if it reached this member: the
 * intruder stops at the first refusal) or 3 s, then leaves.
 * role "intruder": joins with a key the others do not authorize; must get
 * REFUSED, then EXIT, and never a view.
 * Prints "ok ..." lines; exits 0 when every check held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tutti.h"

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The application's state: hellos delivered. A joiner gets it with its
 * first view and does not deliver again the hellos it counts. */
static size_t hellos = 0;

static void get_state(void *ctx, TuttiStateWriter *w) {
    (void)ctx;
    unsigned long long n = hellos;
    tutti_state_write(w, (const uint8_t *)&n, sizeof n);
}

static void set_state(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    unsigned long long n = 0;
    if (data && len == sizeof n) memcpy(&n, data, sizeof n);
    hellos = (size_t)n;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: secure_test dir name contacts key authorized role members\n");
        return 2;
    }
    const char *dir = argv[1], *name = argv[2];
    int intruder = strcmp(argv[6], "intruder") == 0;
    size_t members = (size_t)atoi(argv[7]);
    const char *contacts[16];
    size_t ncontacts = 0;
    char *list = strdup(argv[3]);
    for (char *t = strtok(list, ","); t && ncontacts < 16; t = strtok(NULL, ","))
        contacts[ncontacts++] = t;

    TuttiConfig cfg = {"shm", name, dir, -1, 0, 250, 0, argv[4], argv[5]};
    TuttiEndpoint *ep = NULL;
    int rc = tutti_endpoint_open(&cfg, &ep);
    if (rc) { printf("FAIL open: %s\n", tutti_strerror(rc)); return 1; }
    TuttiGroup *g = NULL;
    TuttiStateCallbacks cb = {get_state, set_state, NULL};
    rc = tutti_join(ep, "csecure", "vsync-secure", contacts, ncontacts, &cb, &g);
    if (rc) { printf("FAIL join: %s\n", tutti_strerror(rc)); return 1; }

    TuttiEvent ev;
    memset(&ev, 0, sizeof ev);
    long long deadline = now_ms() + 15000;
    int sent = 0, refused = 0, in_view = 0, left = 0;
    long long all_hellos = 0;
    while (now_ms() < deadline) {
        rc = tutti_poll(g, 50, &ev);
        if (rc && rc != TUTTI_ERR_TIMEOUT) { printf("FAIL poll: %s\n", tutti_strerror(rc)); return 1; }
        if (rc == TUTTI_ERR_TIMEOUT) tutti_event_clear(&ev);
        switch (ev.kind) {
        case TUTTI_EVENT_KIND_VIEW:
            if (intruder) { printf("FAIL the intruder got a view\n"); return 1; }
            in_view = ev.nmembers == members;
            break;
        case TUTTI_EVENT_KIND_DELIVER:
            if (ev.len >= 5 && memcmp(ev.data, "hello", 5) == 0) hellos++;
            break;
        case TUTTI_EVENT_KIND_REFUSED:
            printf("ok refused: %.*s\n", (int)ev.len, (const char *)ev.data);
            refused = 1;
            break;
        case TUTTI_EVENT_KIND_EXIT:
            if (intruder) {
                printf(refused ? "ok intruder refused and out\n" : "FAIL exit without refusal\n");
                tutti_event_clear(&ev);
                tutti_group_close(g);
                tutti_endpoint_close(ep);
                return refused ? 0 : 1;
            }
            if (left) {
                printf("ok left\n");
                tutti_event_clear(&ev);
                tutti_group_close(g);
                tutti_endpoint_close(ep);
                return 0;
            }
            printf("FAIL unexpected exit\n");
            return 1;
        default:
            break;
        }
        if (!intruder && in_view && !sent) {
            char msg[64];
            int n = snprintf(msg, sizeof msg, "hello from %s", name);
            if (tutti_cast(g, (const uint8_t *)msg, (size_t)n) == 0) sent = 1;
        }
        if (!intruder && hellos >= members && !all_hellos) all_hellos = now_ms();
        if (!intruder && !left && all_hellos && (refused || now_ms() - all_hellos > 3000)) {
            printf("ok secure delivered %zu hellos\n", hellos);
            tutti_leave(g);
            left = 1;
        }
    }
    tutti_event_clear(&ev);
    printf("FAIL timed out (hellos %zu, refused %d, in view %d)\n", hellos, refused, in_view);
    return 1;
}
