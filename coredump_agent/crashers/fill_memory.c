/* Fills MB megabytes (argv[1]) with data shaped like a heap, then crashes: a large core. */
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
__attribute__((noinline)) void crash_after_fill(volatile int *p) { *p = 1; }
int main(int argc, char **argv) {
    size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 64;
    size_t n = mb << 20;
    unsigned char *buf = malloc(n);
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < n; i += 4096) {
        size_t kind = (i >> 12) % 4;
        if (kind == 0) { memset(buf + i, 0, 4096); }
        else if (kind == 1) { for (size_t j = 0; j < 4096; j++) buf[i + j] = (unsigned char)(j % 61); }
        else if (kind == 2) { for (size_t j = 0; j < 4096; j += 8) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; memcpy(buf + i + j, &x, 8); } }
        else { for (size_t j = 0; j < 4096; j += 8) { uint64_t v = i + j; memcpy(buf + i + j, &v, 8); } }
    }
    crash_after_fill(NULL);
    return buf[0];
}
