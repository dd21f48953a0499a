/* A failed assert(): SIGABRT with glibc's message in __abort_msg. */
#include <assert.h>
__attribute__((noinline)) void check_segment(int sealed) { assert(sealed == 1 && "segment must be sealed"); }
int main(int argc, char **argv) { (void)argv; check_segment(argc - 1); return 0; }
