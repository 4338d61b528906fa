/*
 * cmd_follow.c — `ds4j-tool follow`: a follower rank of a distributed
 * engine. Opens the model with comm=mpi (collectively with the leader) and
 * replays the session operations the leader announces (ds4j_engine_follow)
 * until the leader closes its engine. Launched next to a leader that only
 * uses the public API, e.g. the Java server:
 *     mpirun -np 1 <leader> : -np N-1 ds4j-tool follow --model M.gguf
 * The leader's recovery (ds4j_engine_recover) also starts it, through
 * MPI_Comm_spawn, with its own options plus the lost rank's expert_range;
 * the MPI plugin then joins the leader's new group instead of its own world.
 * --die-after N (test hook) kills this process with SIGKILL when it starts
 * its forward pass N + 1, to simulate a crashed peer in the middle of a
 * request (ds4j_dist_fault_kill_after). --diverge-after N (test hook) makes
 * this rank evaluate token + 1 instead of the leader's token at the N + 1-th
 * single-token step, a real divergence the ranks' guard must report
 * (ds4j_dist_fault_diverge_after). --stop-after N stops this process with
 * SIGSTOP instead of killing it: a stalled peer (ds4j_dist_fault_stop_after).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "ds4j.h"
#include "tool.h"
#include "tool_util.h"

int tool_follow_engine(ds4j_engine *e, const char *who, int die_after) {
    if (die_after >= 0) ds4j_dist_fault_kill_after(e, die_after);
    int rc = ds4j_engine_follow(e);
    if (rc < 0) {
        fprintf(stderr, "ds4j-tool %s (rank %d): %s\n", who, ds4j_engine_rank(e), ds4j_last_error());
        return 1;
    }
    return 0;
}

int cmd_follow(int argc, char **argv) {
    const char *model = NULL, *opts = "comm=mpi";
    int threads = 0, die_after = -1, diverge_after = -1, stop_after = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--options") && i + 1 < argc) opts = argv[++i];
        else if (!strcmp(a, "--die-after") && i + 1 < argc) die_after = atoi(argv[++i]);
        else if (!strcmp(a, "--diverge-after") && i + 1 < argc) diverge_after = atoi(argv[++i]);
        else if (!strcmp(a, "--stop-after") && i + 1 < argc) stop_after = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: ds4j-tool follow --model M.gguf [--threads N] [--options comm=mpi;K=V;...]\n"
                            "  (run under mpirun as ranks 1..N-1 next to a leader at rank 0; exits 0 when the\n"
                            "   leader closes its engine)\n");
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "ds4j-tool follow: --model is required\n");
        return 2;
    }
    if (!strstr(opts, "comm=")) {
        fprintf(stderr, "ds4j-tool follow: --options must select a backend (comm=mpi)\n");
        return 2;
    }
    /* prefill_chunk is adopted from the leader at open */
    ds4j_engine *e = tool_open_engine(model, threads, 0, opts);
    if (!e) return 1;
    if (diverge_after >= 0) ds4j_dist_fault_diverge_after(e, diverge_after);
    if (stop_after >= 0) ds4j_dist_fault_stop_after(e, stop_after);
    int rc = tool_follow_engine(e, "follow", die_after);
    ds4j_engine_close(e);
    return rc;
}
