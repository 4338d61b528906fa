/*
 * comm_mpi.c — the MPI backend plugin (libds4j_comm_mpi.so) for ds4j's
 * expert parallelism, loaded by libds4j with dlopen (src/comm/comm.h describes
 * the ABI). Collectives run on a duplicate of MPI_COMM_WORLD with
 * MPI_ERRORS_RETURN, so a failing peer becomes an error code where the MPI
 * implementation allows it rather than an abort of this process. MPI's
 * start-up and shutdown: mpi_boot.h.
 *
 * A dead or stopped peer: Open MPI 4.1 without ULFM never completes (nor
 * fails) a blocking collective whose peer was SIGKILLed or SIGSTOPped; it
 * just waits. So every collective is started non-blocking (MPI_Iallreduce,
 * ...) and polled: it fails after timeout_ms (comm_options timeout_ms=N,
 * env DS4J_MPI_TIMEOUT_MS, default 30000, 0 = no bound), and, because a
 * stall bound must be long, a peer on the same host that no longer exists
 * (its pid, exchanged at open, is gone) fails it within ~100 ms. Receiving
 * a broadcast (a follower waiting for the leader's next request) is never
 * timed out, only the liveness check applies. Whether this process survives
 * a peer's death at all is up to the launcher: plain mpirun kills the whole
 * job; mpirun --enable-recovery leaves the survivors running
 * (docs/distributed.md, "A dead or stalled rank").
 *
 * Recovery (m_respawn): under --enable-recovery rank 0 outlives a dead
 * peer, and Open MPI 4.1 still lets it MPI_Comm_spawn new processes on
 * MPI_COMM_SELF and merge them into a fresh communicator (measured: 0.2-0.4
 * s on one host). The spawned followers find their parent at open
 * (MPI_Comm_get_parent) and use the merged communicator instead of
 * MPI_COMM_WORLD. The abandoned communicator is never freed or finalised:
 * that would wait for the dead peer.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "comm.h"
#include "mpi_boot.h"

typedef struct mpi_comm {
    MPI_Comm comm;
    int rank, size;
    uint16_t *h16;   /* 16-bit payloads: this rank's, then everyone's */
    size_t h16_cap;
    int64_t timeout_ms; /* bound of a collective this rank waits for; 0 = none */
    int *local_pid;     /* [size]: the rank's pid when it runs on this host, else 0 */
    int64_t grace_until_ms; /* > 0 after a respawn: waits are bounded by this time at least (the new ranks
                             * load the model before they answer), until the first all_sum completes */
    int64_t spawn_timeout_ms; /* that bound (comm_options spawn_timeout_ms, default 600000) */
    /* the split all_sum in flight (m_start .. m_wait) */
    MPI_Request pend;
    int pending;     /* 1 between a start and its wait */
    int pend_dtype;  /* 0 f32 (in place in pend_buf), 1 f16, 2 bf16 (gathered into h16) */
    float *pend_buf;
    int64_t pend_n;
    char err[512];
} mpi_comm;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A peer of this host whose process no longer exists, or -1. */
static int dead_local_peer(mpi_comm *c) {
    for (int r = 0; r < c->size; r++)
        if (r != c->rank && c->local_pid[r] > 0 && kill((pid_t)c->local_pid[r], 0) != 0 && errno == ESRCH) return r;
    return -1;
}

/* A same-host peer that the kernel reports stopped (SIGSTOP, a debugger)
 * or -1: names the culprit of a timeout where it can. Linux /proc only. */
static int stopped_local_peer(mpi_comm *c) {
    for (int r = 0; r < c->size; r++) {
        if (r == c->rank || c->local_pid[r] <= 0) continue;
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/%d/stat", c->local_pid[r]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = 0;
        const char *p = strrchr(buf, ')'); /* "pid (comm) S ...": the state follows the last ')' */
        if (p && (p[2] == 'T' || p[2] == 't')) return r;
    }
    return -1;
}

/* Poll a started collective to completion. Spins first (a balanced
 * all_sum completes in microseconds), then yields, then sleeps briefly so
 * that a long wait (a follower idle between requests, a slow peer) does not
 * hold a core. bounded = 0: no timeout (receiving the leader's broadcast). */
static int mpi_wait(mpi_comm *c, MPI_Request *q, const char *op, int bounded) {
    int64_t t0 = mono_ms(), next_check = t0 + 100;
    for (long spins = 0;; spins++) {
        int done = 0;
        int rc = MPI_Test(q, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING];
            int len = 0;
            if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
            snprintf(c->err, sizeof c->err, "%s: %s", op, msg);
            return 1;
        }
        if (done) return 0;
        if (spins < 20000) continue;
        int64_t now = mono_ms();
        if (now >= next_check) {
            next_check = now + 100;
            int dead = dead_local_peer(c);
            if (dead >= 0) {
                mpi_boot_peer_lost = 1;
                snprintf(c->err, sizeof c->err, "%s: rank %d (pid %d on this host) is gone; waited %lld ms", op, dead,
                         c->local_pid[dead], (long long)(now - t0));
                return 1;
            }
            int64_t bound = c->timeout_ms;
            if (bound > 0 && c->grace_until_ms - t0 > bound) bound = c->grace_until_ms - t0;
            if (bounded && bound > 0 && now - t0 >= bound) {
                mpi_boot_peer_lost = 1;
                int st = stopped_local_peer(c);
                if (st >= 0)
                    snprintf(c->err, sizeof c->err,
                             "%s did not complete within %lld ms (timeout_ms): rank %d (pid %d on this host) is stopped",
                             op, (long long)bound, st, c->local_pid[st]);
                else
                    snprintf(c->err, sizeof c->err,
                             "%s did not complete within %lld ms (timeout_ms): a peer is dead or stalled", op,
                             (long long)bound);
                return 1;
            }
        }
        if (now - t0 < 5) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}

static int mpi_failed(mpi_comm *c, const char *op, int rc) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    snprintf(c->err, sizeof c->err, "%s: %s", op, msg);
    return 1;
}

static int m_rank(void *s) { return ((mpi_comm *)s)->rank; }
static int m_size(void *s) { return ((mpi_comm *)s)->size; }
static const char *m_error(void *s) { return ((mpi_comm *)s)->err; }

static int m_all_sum(void *s, float *buf, int64_t n) {
    mpi_comm *c = s;
    /* MPI counts are int: large buffers go in pieces */
    for (int64_t off = 0; off < n;) {
        int k = n - off > INT_MAX / 2 ? INT_MAX / 2 : (int)(n - off);
        MPI_Request q;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, c->comm, &q);
        if (rc != MPI_SUCCESS) return mpi_failed(c, "MPI_Iallreduce", rc);
        if (mpi_wait(c, &q, "MPI_Allreduce", 1)) return 1;
        off += k;
    }
    c->grace_until_ms = 0; /* every rank answered: the new ones are up */
    return 0;
}

/* 16-bit payload: every rank's rounded values are gathered (half the bytes
 * of an f32 all-reduce per value sent) and summed in rank order, so every
 * rank forms bit-identical f32 sums. Buffers grow, never shrink. Split in
 * two for the overlapped all_sum: start (round, post the gather) and
 * finish (the sums). */
static int sum16_start(mpi_comm *c, float *buf, int64_t n, int bf16, MPI_Request *q) {
    if (n > INT_MAX / 2) return mpi_failed(c, "all_sum (16-bit): too many values", MPI_ERR_COUNT);
    size_t need = (size_t)n * (size_t)(c->size + 1);
    if (need > c->h16_cap) {
        uint16_t *nb = realloc(c->h16, need * sizeof(uint16_t));
        if (!nb) {
            snprintf(c->err, sizeof c->err, "all_sum (16-bit): out of memory");
            return 1;
        }
        c->h16 = nb;
        c->h16_cap = need;
    }
    uint16_t *mine = c->h16, *all = c->h16 + n;
    for (int64_t i = 0; i < n; i++) mine[i] = ds4j_comm_to16(buf[i], bf16);
    int rc = MPI_Iallgather(mine, (int)n, MPI_UINT16_T, all, (int)n, MPI_UINT16_T, c->comm, q);
    if (rc != MPI_SUCCESS) return mpi_failed(c, "MPI_Iallgather", rc);
    return 0;
}

static void sum16_finish(mpi_comm *c, float *buf, int64_t n, int bf16) {
    const uint16_t *all = c->h16 + n;
    for (int64_t i = 0; i < n; i++) {
        float acc = 0;
        for (int r = 0; r < c->size; r++) acc += ds4j_comm_from16(all[(int64_t)r * n + i], bf16);
        buf[i] = acc;
    }
}

static int m_all_sum16(void *s, float *buf, int64_t n, int bf16) {
    mpi_comm *c = s;
    if (n <= 0) return 0;
    MPI_Request q;
    if (sum16_start(c, buf, n, bf16, &q)) return 1;
    if (mpi_wait(c, &q, "MPI_Allgather", 1)) return 1;
    sum16_finish(c, buf, n, bf16);
    return 0;
}

/* The split all_sum (comm.h): the same collectives as m_all_sum /
 * m_all_sum16, posted at the start and completed at the wait, so the
 * engine computes the shared expert meanwhile. Open MPI moves a posted
 * collective only inside MPI calls, hence m_test between the engine's
 * steps. The wait's bound (timeout_ms) counts from the wait. */
static int m_start(void *s, float *buf, int64_t n, int dtype) {
    mpi_comm *c = s;
    if (c->pending) {
        snprintf(c->err, sizeof c->err, "all_sum_start: a split all_sum is already in flight");
        return 1;
    }
    c->pend = MPI_REQUEST_NULL;
    c->pend_dtype = dtype;
    c->pend_buf = buf;
    c->pend_n = n;
    if (n <= 0) {
        c->pending = 1;
        return 0;
    }
    if (dtype) {
        if (sum16_start(c, buf, n, dtype == 2, &c->pend)) return 1;
    } else if (n > INT_MAX / 2) {
        /* beyond one MPI count: the blocking path's pieces, done here */
        if (m_all_sum(c, buf, n)) return 1;
    } else {
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, c->comm, &c->pend);
        if (rc != MPI_SUCCESS) return mpi_failed(c, "MPI_Iallreduce", rc);
    }
    c->pending = 1;
    return 0;
}

static int m_test(void *s, int *done) {
    mpi_comm *c = s;
    *done = 1;
    if (!c->pending || c->pend == MPI_REQUEST_NULL) return 0;
    int rc = MPI_Test(&c->pend, done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        c->pending = 0;
        return mpi_failed(c, c->pend_dtype ? "MPI_Allgather" : "MPI_Allreduce", rc);
    }
    return 0;
}

static int m_wait(void *s) {
    mpi_comm *c = s;
    if (!c->pending) {
        snprintf(c->err, sizeof c->err, "all_sum_wait: no split all_sum in flight");
        return 1;
    }
    c->pending = 0;
    if (c->pend != MPI_REQUEST_NULL && mpi_wait(c, &c->pend, c->pend_dtype ? "MPI_Allgather" : "MPI_Allreduce", 1))
        return 1;
    if (c->pend_dtype && c->pend_n > 0) sum16_finish(c, c->pend_buf, c->pend_n, c->pend_dtype == 2);
    if (!c->pend_dtype) c->grace_until_ms = 0; /* every rank answered, like m_all_sum */
    return 0;
}

static int m_bcast(void *s, int32_t *buf, int64_t n, int root) {
    mpi_comm *c = s;
    for (int64_t off = 0; off < n;) {
        int k = n - off > INT_MAX / 2 ? INT_MAX / 2 : (int)(n - off);
        MPI_Request q;
        int rc = MPI_Ibcast(buf + off, k, MPI_INT32_T, root, c->comm, &q);
        if (rc != MPI_SUCCESS) return mpi_failed(c, "MPI_Ibcast", rc);
        /* the root's side is bounded; a receiver may wait for the leader's
         * next request for as long as the server is idle */
        if (mpi_wait(c, &q, "MPI_Bcast", c->rank == root)) return 1;
        off += k;
    }
    return 0;
}

static int m_barrier(void *s) {
    mpi_comm *c = s;
    MPI_Request q;
    int rc = MPI_Ibarrier(c->comm, &q);
    if (rc != MPI_SUCCESS) return mpi_failed(c, "MPI_Ibarrier", rc);
    return mpi_wait(c, &q, "MPI_Barrier", 1);
}

/* Which ranks share this host, by processor name, and their pids: a peer
 * that vanishes is then noticed in ~100 ms instead of at timeout_ms.
 * Blocking collectives: called right after the communicator is formed,
 * when every member is known to be alive. */
static int exchange_hosts(mpi_comm *c, char *err, size_t err_cap) {
    free(c->local_pid);
    c->local_pid = calloc((size_t)c->size, sizeof(int));
    char *names = calloc((size_t)c->size, MPI_MAX_PROCESSOR_NAME);
    int *pids = calloc((size_t)c->size, sizeof(int));
    char me[MPI_MAX_PROCESSOR_NAME] = "";
    int me_len = 0, rc = 0;
    if (!c->local_pid || !names || !pids) {
        snprintf(err, err_cap, "out of memory");
        rc = 1;
        goto out;
    }
    MPI_Get_processor_name(me, &me_len);
    int my_pid = (int)getpid();
    if (MPI_Allgather(me, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, c->comm) != MPI_SUCCESS ||
        MPI_Allgather(&my_pid, 1, MPI_INT, pids, 1, MPI_INT, c->comm) != MPI_SUCCESS) {
        snprintf(err, err_cap, "comm=mpi: exchanging host names failed");
        rc = 1;
        goto out;
    }
    for (int r = 0; r < c->size; r++)
        if (r != c->rank && !strncmp(names + (size_t)r * MPI_MAX_PROCESSOR_NAME, me, MPI_MAX_PROCESSOR_NAME))
            c->local_pid[r] = pids[r];
out:
    free(names);
    free(pids);
    return rc;
}

static int m_respawn(void *s, const char *command, int n_new, char *const *const *argv) {
    mpi_comm *c = s;
    if (c->rank != 0 || n_new < 1) {
        snprintf(c->err, sizeof c->err, "respawn: rank 0 only, at least one new rank");
        return 1;
    }
    /* The abandoned group's members on this host that still exist (a
     * stopped one, or a survivor of a larger group waiting for the leader)
     * would hold their memory and slot forever: stop them for good. */
    int killed = 0;
    for (int r = 1; r < c->size; r++)
        if (c->local_pid[r] > 0 && kill((pid_t)c->local_pid[r], 0) == 0 && kill((pid_t)c->local_pid[r], SIGKILL) == 0)
            killed++;
    /* mpirun frees a killed process's slot only once it has reaped it
     * (measured: a spawn right after the SIGKILL finds "All nodes which are
     * allocated for this job are already filled", and within a second of
     * such a refused spawn mpirun ended this process too, --enable-recovery
     * or not), so wait until the killed ones are gone (not even zombies),
     * 5 s at most, and give mpirun a moment to update its books */
    for (int64_t until = mono_ms() + 5000; killed && mono_ms() < until;) {
        int left = 0;
        for (int r = 1; r < c->size; r++)
            if (c->local_pid[r] > 0 && kill((pid_t)c->local_pid[r], 0) == 0) left++;
        struct timespec ts = {0, left ? 20000000 : 200000000};
        nanosleep(&ts, NULL);
        if (!left) break;
    }
    char **cmds = calloc((size_t)n_new, sizeof(char *));
    int *maxprocs = calloc((size_t)n_new, sizeof(int)), *codes = calloc((size_t)n_new, sizeof(int));
    MPI_Info *infos = calloc((size_t)n_new, sizeof(MPI_Info));
    if (!cmds || !maxprocs || !codes || !infos) {
        free(cmds); free(maxprocs); free(codes); free(infos);
        snprintf(c->err, sizeof c->err, "respawn: out of memory");
        return 1;
    }
    for (int i = 0; i < n_new; i++) {
        cmds[i] = (char *)command;
        maxprocs[i] = 1;
        infos[i] = MPI_INFO_NULL;
    }
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
    MPI_Comm inter = MPI_COMM_NULL, merged = MPI_COMM_NULL;
    int rc = MPI_Comm_spawn_multiple(n_new, cmds, (char ***)argv, maxprocs, infos, 0, MPI_COMM_SELF, &inter, codes);
    int bad = -1;
    for (int i = 0; i < n_new && rc == MPI_SUCCESS; i++)
        if (codes[i] != MPI_SUCCESS) bad = i;
    free(cmds); free(maxprocs); free(infos);
    if (rc != MPI_SUCCESS || bad >= 0) {
        char msg[MPI_MAX_ERROR_STRING] = "";
        int len = 0;
        int code = rc != MPI_SUCCESS ? rc : codes[bad];
        if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", code);
        snprintf(c->err, sizeof c->err, "MPI_Comm_spawn of %d x %s failed: %s (does mpirun have free slots: "
                 "--enable-recovery and a hostfile or --oversubscribe?)", n_new, command, msg);
        free(codes);
        return 1;
    }
    free(codes);
    /* the parent group is "low": this process stays rank 0, the new ones
     * follow in spawn order as ranks 1..n_new */
    MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
    rc = MPI_Intercomm_merge(inter, 0, &merged);
    if (rc != MPI_SUCCESS) {
        mpi_failed(c, "MPI_Intercomm_merge after spawning", rc);
        return 1;
    }
    MPI_Comm_set_errhandler(merged, MPI_ERRORS_RETURN);
    /* the old communicator is abandoned, not freed: a collective on it never
     * completed and freeing it could wait for the dead peer */
    c->comm = merged;
    MPI_Comm_rank(merged, &c->rank);
    MPI_Comm_size(merged, &c->size);
    c->err[0] = 0;
    char err[256];
    if (exchange_hosts(c, err, sizeof err)) {
        snprintf(c->err, sizeof c->err, "respawn: %s", err);
        return 1;
    }
    c->grace_until_ms = mono_ms() + c->spawn_timeout_ms;
    return 0;
}

static void m_close(void *s) {
    mpi_comm *c = s;
    if (!c) return;
    int fin = 0;
    MPI_Finalized(&fin);
    /* a communicator with a collective that never completed (dead peer) is
     * left alone: freeing it could wait for that peer */
    if (!fin && c->comm != MPI_COMM_NULL && !c->err[0]) MPI_Comm_free(&c->comm);
    free(c->h16);
    free(c->local_pid);
    free(c);
}

static const ds4j_comm_vtable MPI_VT = {
    .abi = DS4J_COMM_PLUGIN_ABI, .name = "mpi", .rank = m_rank, .size = m_size, .all_sum_f32 = m_all_sum,
    .broadcast_i32 = m_bcast, .barrier = m_barrier, .close = m_close, .last_error = m_error,
    .all_sum_f32_as16 = m_all_sum16, .respawn = m_respawn,
    .all_sum_start = m_start, .all_sum_test = m_test, .all_sum_wait = m_wait,
};

__attribute__((visibility("default"))) int ds4j_comm_plugin_open(int abi, const char *options,
                                                                 const ds4j_comm_vtable **vt, void **self,
                                                                 char *err, size_t err_cap) {
    if (abi != DS4J_COMM_PLUGIN_ABI) {
        snprintf(err, err_cap, "plugin built for ABI %d, caller uses %d", DS4J_COMM_PLUGIN_ABI, abi);
        return 1;
    }
    int64_t timeout_ms = 30000;
    const char *env = getenv("DS4J_MPI_TIMEOUT_MS");
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        if (*end || v < 0) {
            snprintf(err, err_cap, "DS4J_MPI_TIMEOUT_MS=%s: expected milliseconds >= 0", env);
            return 1;
        }
        timeout_ms = v;
    }
    /* comm_options: timeout_ms, spawn_timeout_ms; anything else is an error
     * rather than a silently ignored typo */
    int64_t spawn_ms = 600000;
    for (const char *p = options ? options : ""; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char kv[128];
        if (len >= sizeof kv) len = sizeof kv - 1;
        memcpy(kv, p, len);
        kv[len] = 0;
        char *eq = strchr(kv, '='), *num_end = NULL;
        int is_t = !strncmp(kv, "timeout_ms=", 11), is_s = !strncmp(kv, "spawn_timeout_ms=", 17);
        long long v = eq && (is_t || is_s) ? strtoll(eq + 1, &num_end, 10) : -1;
        if (len && (!eq || !(is_t || is_s) || !eq[1] || *num_end || v < 0)) {
            snprintf(err, err_cap, "comm=mpi: comm_options '%s': the options are timeout_ms=N (milliseconds, 0 = "
                     "no bound) and spawn_timeout_ms=N (recovery: how long new ranks may take to load the model)", kv);
            return 1;
        }
        if (len && is_t) timeout_ms = v;
        if (len && is_s) spawn_ms = v;
        p = end ? end + 1 : p + strlen(p);
    }
    if (mpi_boot("comm=mpi", err, err_cap)) return 1;
    mpi_comm *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_cap, "out of memory");
        return 1;
    }
    /* A process spawned by a leader's recovery (m_respawn) joins the
     * leader's new group, not its own MPI_COMM_WORLD (which holds only the
     * processes spawned with it). "high": after the leader, in spawn order. */
    MPI_Comm parent = MPI_COMM_NULL;
    MPI_Comm_get_parent(&parent);
    int rc;
    if (parent != MPI_COMM_NULL) {
        MPI_Comm_set_errhandler(parent, MPI_ERRORS_RETURN);
        rc = MPI_Intercomm_merge(parent, 1, &c->comm);
        /* its peers may fail later like any: never finalise (the leader's
         * world holds dead ranks, and MPI_Finalize would wait for them) */
        mpi_boot_peer_lost = 1;
    } else {
        rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
    }
    if (rc != MPI_SUCCESS) {
        snprintf(err, err_cap, "%s failed (error %d)", parent != MPI_COMM_NULL ? "MPI_Intercomm_merge with the "
                 "spawning leader" : "MPI_Comm_dup", rc);
        free(c);
        return 1;
    }
    MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->comm, &c->rank);
    MPI_Comm_size(c->comm, &c->size);
    c->timeout_ms = timeout_ms;
    c->spawn_timeout_ms = spawn_ms;
    if (exchange_hosts(c, err, err_cap)) {
        m_close(c);
        return 1;
    }
    *vt = &MPI_VT;
    *self = c;
    return 0;
}
