/* A chat member in C over libtutti: joins group "chat" over shared memory,
 * multicasts every line typed on stdin, prints views and messages, leaves
 * at end of input.
 *
 *   cc -O2 -I ffi/include ffi/examples/chat.c target/release/libtutti.a \
 *      -lpthread -ldl -lm -lrt -lutil -o chat
 *   ./chat alice alice,bob       (and ./chat bob alice,bob in another terminal)
 *
 * (or: cc ... $(pkg-config --cflags --libs tutti) with ffi/tutti.pc installed) */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tutti.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <name> <contacts,comma,separated>\n", argv[0]);
        return 2;
    }
    const char *contacts[16];
    size_t n = 0;
    for (char *t = strtok(argv[2], ","); t && n < 16; t = strtok(NULL, ",")) contacts[n++] = t;

    TuttiConfig cfg = {"shm", argv[1], NULL, -1, 0, 0, 0};
    TuttiEndpoint *ep;
    int rc = tutti_endpoint_open(&cfg, &ep);
    if (rc) { fprintf(stderr, "open: %s\n", tutti_strerror(rc)); return 1; }
    TuttiGroup *g;
    rc = tutti_join(ep, "chat", "vsync", contacts, n, NULL, &g);
    if (rc) { fprintf(stderr, "join: %s\n", tutti_strerror(rc)); return 1; }

    TuttiEvent ev;
    memset(&ev, 0, sizeof ev);
    int leaving = 0;
    char line[512];
    for (;;) {
        struct pollfd in = {0, POLLIN, 0};
        if (!leaving && poll(&in, 1, 0) > 0) {
            if (!fgets(line, sizeof line, stdin)) {
                tutti_leave(g);
                leaving = 1;
            } else {
                size_t len = strcspn(line, "\n");
                while ((rc = tutti_cast(g, (const uint8_t *)line, len)) == TUTTI_ERR_WOULD_BLOCK)
                    tutti_poll(g, 10, &ev);
            }
        }
        if (tutti_poll(g, 50, &ev) != TUTTI_OK) continue;
        if (ev.kind == TUTTI_EVENT_KIND_VIEW) {
            printf("* view %llu: %zu members, I am rank %u\n",
                   (unsigned long long)ev.view_ltime, ev.nmembers, (unsigned)ev.rank);
        } else if (ev.kind == TUTTI_EVENT_KIND_DELIVER) {
            printf("[%u] %.*s\n", (unsigned)ev.sender, (int)ev.len, (const char *)ev.data);
        } else if (ev.kind == TUTTI_EVENT_KIND_EXIT) {
            break;
        }
        fflush(stdout);
    }
    tutti_event_clear(&ev);
    tutti_group_close(g);
    tutti_endpoint_close(ep);
    return 0;
}
