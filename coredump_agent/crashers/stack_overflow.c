/* Unbounded recursion: SIGSEGV on the stack guard page after tens of thousands of frames. */
__attribute__((noinline)) int descend(int depth) {
    volatile char pad[64];
    pad[0] = (char)depth;
    return descend(depth + 1) + pad[0];
}
int main(void) { return descend(0); }
