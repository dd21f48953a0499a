/* A stand-in for a crashing Milvus process: logs like a query node, prints a panic line, then
 * dereferences NULL a few frames deep (SIGSEGV), so that its core has a stack worth a signature. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct segment {
    const char *name;
    long *rows;
};

static long __attribute__((noinline)) segment_rows(const struct segment *segment) {
    return segment->rows[0];
}

static long __attribute__((noinline)) load_segment(const char *name) {
    struct segment segment = {name, NULL};
    fprintf(stderr, "[querynode] loading segment %s\n", name);
    fprintf(stderr, "panic: segment %s has no row data\n", name);
    return segment_rows(&segment);
}

int main(int argc, char **argv) {
    int delay = argc > 1 ? atoi(argv[1]) : 10;
    fprintf(stderr, "[querynode] milvus crash test: crashing in %d s\n", delay);
    sleep((unsigned)delay);
    return (int)load_segment("crash-test-segment");
}
