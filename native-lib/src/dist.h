/*
 * dist.h — engine-level expert parallelism (dist.c): the open-time
 * handshake between ranks and teardown. The public entry points
 * (ds4j_engine_rank, ..._allsum_drain) are declared in ds4j.h.
 */
#ifndef DS4J_DIST_H
#define DS4J_DIST_H

#include <stdint.h>

struct ds4j_engine;
typedef struct ds4j_dist ds4j_dist;

/*
 * Collective, called by every rank right after loading (ok = 1) or after a
 * local failure (ok = 0, so that peers are not left waiting): checks that
 * all ranks opened the same model, sets this rank's expert range (exp_lo <
 * 0: an even split of E over the ranks), checks that the ranges partition
 * [0, E), and installs the all-reduce hook. With ok = 0 it returns
 * DS4J_ERR_STATE and keeps the caller's error message.
 */
int ds4j_dist_handshake(struct ds4j_engine *e, int ok, int64_t exp_lo, int64_t exp_hi);
/* Removes the hook, frees the statistics and closes the communicator. */
void ds4j_dist_close(struct ds4j_engine *e);

#endif
