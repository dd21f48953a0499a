/* Dereferences a NULL pointer three calls deep: SIGSEGV. */
#include <stdio.h>
#include <stdlib.h>
struct segment { int rows; struct segment *next; };
__attribute__((noinline)) int segment_rows(struct segment *s) { return s->next->rows; }
__attribute__((noinline)) int load_segment(struct segment *s) { return segment_rows(s) + 1; }
int main(int argc, char **argv) {
    struct segment s = {argc, NULL};
    printf("%d\n", load_segment(&s));
    return 0;
}
