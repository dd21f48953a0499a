/* A different bug: a write through a wild pointer in another function: SIGSEGV. */
#include <stdint.h>
__attribute__((noinline)) void flush_index(volatile int *slot) { *slot = 42; }
__attribute__((noinline)) void seal_index(uintptr_t where) { flush_index((volatile int *)where); }
int main(void) { seal_index((uintptr_t)0x10); return 0; }
