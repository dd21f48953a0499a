/* An integer division by zero: SIGFPE. */
__attribute__((noinline)) int average_rows(int total, int segments) { return total / segments; }
int main(int argc, char **argv) { (void)argv; volatile int zero = argc - 1; return average_rows(100, zero); }
