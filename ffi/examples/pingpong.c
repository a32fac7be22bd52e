/* Round trips between two processes over shm through the C API: the twin
 * of examples/api_pingpong.rs (the Rust API), with the same stack
 * ("reliable"), endpoint settings (adaptive idle) and 64-byte payload, so
 * their medians compare. Forks its echoing peer itself. Prints one JSON
 * line.
 *
 *   pingpong <dir> <count> [pin]
 *
 * With "pin", each process (its application thread and the polling thread
 * it starts) runs on one core of its own: 0 for the measuring side, 1 for
 * the echo (fewer scheduling accidents on a small machine). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tutti.h"

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static TuttiGroup *member(const char *dir, const char *name, TuttiEndpoint **ep) {
    TuttiConfig cfg = {"shm", name, dir, -1, 0, 0, 0};
    if (tutti_endpoint_open(&cfg, ep)) return NULL;
    const char *members[2] = {"pa", "pb"};
    TuttiGroup *g = NULL;
    if (tutti_join(*ep, "pp", "reliable", members, 2, NULL, &g)) return NULL;
    return g;
}

static void pin_to(int core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    sched_setaffinity(0, sizeof set, &set);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s <dir> <count> [pin]\n", argv[0]);
        return 2;
    }
    int pin = argc == 4 && strcmp(argv[3], "pin") == 0;
    const char *dir = argv[1];
    int count = atoi(argv[2]), warm = 1000;
    if (count < 1) return 2;
    uint8_t msg[64] = {0};
    TuttiEvent ev;
    memset(&ev, 0, sizeof ev);
    pid_t kid = fork();
    if (kid == 0) {
        if (pin) pin_to(1);
        TuttiEndpoint *ep;
        TuttiGroup *g = member(dir, "pb", &ep);
        if (!g) return 1;
        for (int n = 0; n < count + warm;) {
            if (tutti_poll(g, 5000, &ev) != TUTTI_OK) return 1;
            if (ev.kind == TUTTI_EVENT_KIND_DELIVER && ev.sender == 0) {
                while (tutti_cast(g, msg, sizeof msg) == TUTTI_ERR_WOULD_BLOCK) {}
                n++;
            }
        }
        tutti_event_clear(&ev);
        tutti_group_close(g);
        tutti_endpoint_close(ep);
        return 0;
    }
    if (pin) pin_to(0);
    TuttiEndpoint *ep;
    TuttiGroup *g = member(dir, "pa", &ep);
    if (!g) return 1;
    usleep(300000); /* the peer comes up */
    long long *rtt = malloc(sizeof(long long) * (size_t)count);
    for (int i = 0; i < count + warm; i++) {
        long long t0 = now_ns();
        while (tutti_cast(g, msg, sizeof msg) == TUTTI_ERR_WOULD_BLOCK) {}
        for (;;) {
            if (tutti_poll(g, 5000, &ev) != TUTTI_OK) {
                fprintf(stderr, "no answer to %d\n", i);
                return 1;
            }
            if (ev.kind == TUTTI_EVENT_KIND_DELIVER && ev.sender == 1) break;
        }
        if (i >= warm) rtt[i - warm] = now_ns() - t0;
    }
    qsort(rtt, (size_t)count, sizeof *rtt, cmp);
    printf("{\"api\":\"c\",\"count\":%d,\"pinned\":%s,\"p50_ns\":%lld,\"p99_ns\":%lld}\n",
           count, pin ? "true" : "false", rtt[count / 2], rtt[count * 99 / 100]);
    tutti_event_clear(&ev);
    tutti_group_close(g);
    tutti_endpoint_close(ep);
    waitpid(kid, NULL, 0);
    free(rtt);
    return 0;
}
