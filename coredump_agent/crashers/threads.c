/* Four worker threads wait; one of them crashes: SIGSEGV in one thread of many. */
#include <pthread.h>
#include <unistd.h>
static pthread_barrier_t ready;
__attribute__((noinline)) void process_query(int *result) { *result = 7; }
static void *idle_worker(void *arg) { (void)arg; pthread_barrier_wait(&ready); for (;;) pause(); return NULL; }
static void *crashing_worker(void *arg) { (void)arg; pthread_barrier_wait(&ready); process_query(NULL); return NULL; }
int main(void) {
    pthread_t t[4];
    pthread_barrier_init(&ready, NULL, 5);
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, idle_worker, NULL);
    pthread_create(&t[3], NULL, crashing_worker, NULL);
    pthread_barrier_wait(&ready);
    for (;;) pause();
}
