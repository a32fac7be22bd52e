// The header works from C++: it compiles, and the API can be called.
#include "tutti.h"
#include <cstdio>

int main() {
    std::printf("libtutti %s: %s\n", tutti_version(), tutti_strerror(TUTTI_ERR_WOULD_BLOCK));
    TuttiEvent ev{};
    tutti_event_clear(&ev);
    return tutti_cast(nullptr, nullptr, 0) == TUTTI_ERR_NULL ? 0 : 1;
}
