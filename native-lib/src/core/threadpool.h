/*
 * threadpool.h — a persistent pool of worker threads. The calling thread
 * takes part as worker 0, so a pool of n threads starts n-1 pthreads once
 * and reuses them for every parallel region (no thread creation or
 * allocation per call).
 */
#ifndef DS4J_THREADPOOL_H
#define DS4J_THREADPOOL_H

#include <stdint.h>

typedef struct ds4j_pool ds4j_pool;

/* fn(ctx, ith, nth) is called once per worker, ith in [0, nth). */
typedef void (*ds4j_pool_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 means the number of online CPUs. NULL on failure. */
ds4j_pool *ds4j_pool_new(int n_threads);
void ds4j_pool_free(ds4j_pool *pool);
int ds4j_pool_size(const ds4j_pool *pool);
/* Runs fn on min(nth, size) workers and returns when all are done.
 * nth <= 0 means all workers. A NULL pool runs fn(ctx, 0, 1) inline. */
void ds4j_pool_run(ds4j_pool *pool, ds4j_pool_fn fn, void *ctx, int nth);
/* Online CPU count (>= 1). */
int ds4j_cpu_count(void);

#endif
