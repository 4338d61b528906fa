/*
 * comm_nccl.c — the NCCL backend plugin (libds4j_comm_nccl.so) for ds4j's
 * expert parallelism, loaded by libds4j with dlopen (src/comm/comm.h describes
 * the ABI). One GPU per rank; NCCL does the collectives, MPI only
 * bootstraps: it gives rank and size, chooses the GPU from the node-local
 * rank and carries rank 0's ncclUniqueId to the others (one MPI_Bcast).
 *
 * The engine's forward runs on the CPU, so every collective stages the
 * host buffer through pinned host memory and a device buffer that are
 * allocated at open and only grow (never shrink) when a larger call comes,
 * copies in, runs the NCCL collective on a private stream, copies back and
 * waits. In steady state (decode: n_embd floats per MoE layer) nothing is
 * allocated.
 *
 * Failures never abort the process: every CUDA, NCCL or MPI error becomes
 * a last_error() string and a non-zero return. Waits are bounded: after
 * enqueueing, the plugin polls the stream and NCCL's asynchronous error
 * instead of blocking in cudaStreamSynchronize, so all_sum and barrier,
 * where all ranks are in lockstep, give up after timeout_ms (default
 * 600000; 0 = wait forever), abort the communicator with ncclCommAbort and
 * report that a peer is dead or stuck. Receiving a broadcast waits without
 * a bound, because followers sit in one between requests for as long as
 * the leader is idle; it still fails as soon as NCCL reports an
 * asynchronous error (the root of a broadcast keeps the bound).
 * The communicator is blocking by default: NCCL's non-blocking mode
 * (nonblocking=1) also bounds initialisation, but it launches every
 * collective from a new thread, which costs tens of microseconds per call.
 * The first collective (connection setup, which waits for every peer)
 * runs inside open, where all ranks are known to be present. Under mpirun
 * a dead rank normally ends the whole job first.
 *
 * NVLink multicast (NVLS) is always disabled (NCCL_NVLS_ENABLE=0, forced
 * before the first NCCL call): on shared multi-GPU hosts it can take the
 * GPUs out of service.
 *
 * Options (the engine's comm_options=, comma-separated key=value; the
 * environment variables are read first and the options override them):
 *   device=N       CUDA device index (env DS4J_NCCL_DEVICE); default: the
 *                  node-local rank modulo the number of visible devices
 *   timeout_ms=N   bound for all_sum/barrier (env DS4J_NCCL_TIMEOUT_MS)
 *   nonblocking=1  NCCL non-blocking communicator (also bounds init; slower)
 * DS4J_NCCL_VERBOSE=1 prints each rank's GPU and NCCL version at open.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include "comm.h"
#include "mpi_boot.h"

#define DEFAULT_TIMEOUT_MS 600000LL
#define INITIAL_BYTES ((size_t)1 << 18) /* 256 KiB: a 64-token prefill chunk at H = 1024 */

typedef struct nccl_comm {
    ncclComm_t comm;
    cudaStream_t stream;
    int rank, size, device, local_rank;
    long long timeout_ms;
    void *dev;   /* device staging buffer */
    void *host;  /* pinned host staging buffer, same size */
    size_t cap;  /* bytes of each */
    uint16_t *h16; /* 16-bit payload (all_sum_dtype=f16|bf16), grow-only */
    size_t h16_cap;
    int aborted;
    char err[512];
} nccl_comm;

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int fail(nccl_comm *c, const char *fmt, const char *a, const char *b) {
    snprintf(c->err, sizeof c->err, fmt, a, b);
    return 1;
}

static int cuda_failed(nccl_comm *c, const char *op, cudaError_t e) {
    return fail(c, "%s: %s", op, cudaGetErrorString(e));
}

/* The error string NCCL keeps for the communicator is more specific than
 * the code's generic text ("remote process exited ..."). */
static int nccl_failed(nccl_comm *c, const char *op, ncclResult_t r) {
    const char *last = c->comm ? ncclGetLastError(c->comm) : NULL;
    snprintf(c->err, sizeof c->err, "%s: %s%s%s (GPU %d)", op, ncclGetErrorString(r), last && *last ? ": " : "",
             last && *last ? last : "", c->device);
    return 1;
}

/* After a timeout or an asynchronous error the communicator cannot be
 * trusted: abort it so that its kernels and proxy threads stop. */
static void abort_comm(nccl_comm *c) {
    if (c->comm && !c->aborted) {
        ncclCommAbort(c->comm);
        c->aborted = 1;
    }
}

/* Spin briefly (the expected wait of an all_sum is microseconds), then
 * yield, then sleep, so an idle follower does not burn a core at 100%. */
static void backoff(long long waited_ms, int spins) {
    if (spins < 2000) return;
    if (waited_ms < 5) { sched_yield(); return; }
    struct timespec ts = {0, waited_ms < 1000 ? 20000 : 200000};
    nanosleep(&ts, NULL);
}

static int timed_out(nccl_comm *c, const char *op, long long timeout_ms) {
    snprintf(c->err, sizeof c->err,
             "%s timed out after %lld ms on rank %d of %d (GPU %d): a peer is dead or stuck; communicator "
             "aborted (comm_options=timeout_ms=N raises the bound if ranks are legitimately this slow)",
             op, timeout_ms, c->rank, c->size, c->device);
    abort_comm(c);
    return 1;
}

/* A non-blocking communicator may answer a call with ncclInProgress: the
 * work is accepted (enqueued on the stream) only once the asynchronous
 * state turns to ncclSuccess. Wait for that. timeout_ms <= 0: no bound. */
static int wait_accepted(nccl_comm *c, const char *op, ncclResult_t enq, long long timeout_ms) {
    if (enq == ncclSuccess) return 0;
    if (enq != ncclInProgress) {
        nccl_failed(c, op, enq);
        abort_comm(c);
        return 1;
    }
    long long t0 = now_ms();
    for (int spins = 0;; spins++) {
        ncclResult_t st = ncclInProgress;
        ncclResult_t r = ncclCommGetAsyncError(c->comm, &st);
        if (r != ncclSuccess) st = r;
        if (st == ncclSuccess) return 0;
        if (st != ncclInProgress) {
            nccl_failed(c, op, st);
            abort_comm(c);
            return 1;
        }
        long long waited = now_ms() - t0;
        if (timeout_ms > 0 && waited > timeout_ms) return timed_out(c, op, timeout_ms);
        backoff(waited, spins);
    }
}

/* Wait for the stream to drain, checking NCCL's asynchronous error all the
 * while (a peer that vanished shows up there when NCCL can tell). */
static int wait_stream(nccl_comm *c, const char *op, long long timeout_ms) {
    long long t0 = now_ms();
    for (int spins = 0;; spins++) {
        cudaError_t q = cudaStreamQuery(c->stream);
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) {
            cuda_failed(c, op, q);
            abort_comm(c);
            return 1;
        }
        ncclResult_t st = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(c->comm, &st);
        if (r != ncclSuccess) st = r;
        if (st != ncclSuccess && st != ncclInProgress) {
            nccl_failed(c, op, st);
            abort_comm(c);
            return 1;
        }
        long long waited = now_ms() - t0;
        if (timeout_ms > 0 && waited > timeout_ms) return timed_out(c, op, timeout_ms);
        backoff(waited, spins);
    }
}

/* Grow the staging buffers to at least `bytes` (rounded up to a power of
 * two so that a slowly growing size does not reallocate every call). */
static int reserve(nccl_comm *c, size_t bytes) {
    if (bytes <= c->cap) return 0;
    size_t cap = c->cap ? c->cap : INITIAL_BYTES;
    while (cap < bytes) {
        if (cap > SIZE_MAX / 2) return fail(c, "%s%s", "staging buffer size overflow", "");
        cap *= 2;
    }
    /* the stream is idle here: every collective waits before returning */
    if (c->dev) cudaFree(c->dev);
    if (c->host) cudaFreeHost(c->host);
    c->dev = c->host = NULL;
    c->cap = 0;
    cudaError_t e = cudaMalloc(&c->dev, cap);
    if (e != cudaSuccess) return cuda_failed(c, "cudaMalloc (staging buffer)", e);
    e = cudaMallocHost(&c->host, cap);
    if (e != cudaSuccess) {
        cudaFree(c->dev);
        c->dev = NULL;
        return cuda_failed(c, "cudaMallocHost (staging buffer)", e);
    }
    c->cap = cap;
    return 0;
}

static int n_rank(void *s) { return ((nccl_comm *)s)->rank; }
static int n_size(void *s) { return ((nccl_comm *)s)->size; }
static const char *n_error(void *s) { return ((nccl_comm *)s)->err; }

static int usable(nccl_comm *c) {
    if (c->aborted) {
        if (!c->err[0]) snprintf(c->err, sizeof c->err, "the NCCL communicator was aborted");
        return 0;
    }
    return 1;
}

/* host -> pinned -> device, one collective, device -> pinned -> host.
 * op 0: all-reduce sum of floats; op 1: broadcast of int32 from root;
 * op 2 / 3: all-reduce sum of f16 / bf16 values. */
static int staged(nccl_comm *c, void *buf, int64_t n, size_t elem, int op, int root, long long timeout_ms) {
    if (!usable(c)) return 1;
    if (n <= 0) return 0;
    if ((uint64_t)n > SIZE_MAX / elem) return fail(c, "%s%s", "buffer too large", "");
    size_t bytes = (size_t)n * elem;
    const char *name = op == 1 ? "ncclBroadcast" : "ncclAllReduce";
    /* The CUDA device is per thread, and the engine's owner thread need not
     * be the one that opened the communicator. */
    cudaError_t e = cudaSetDevice(c->device);
    if (e != cudaSuccess) goto cuda_fail;
    if (reserve(c, bytes)) goto fail_abort;
    int sends = op != 1 || c->rank == root;
    if (sends) {
        memcpy(c->host, buf, bytes);
        e = cudaMemcpyAsync(c->dev, c->host, bytes, cudaMemcpyHostToDevice, c->stream);
        if (e != cudaSuccess) goto cuda_fail;
    }
    ncclDataType_t dt = op == 2 ? ncclFloat16 : op == 3 ? ncclBfloat16 : ncclFloat32;
    ncclResult_t r = op != 1 ? ncclAllReduce(c->dev, c->dev, (size_t)n, dt, ncclSum, c->comm, c->stream)
                             : ncclBroadcast(c->dev, c->dev, (size_t)n, ncclInt32, root, c->comm, c->stream);
    /* the copy back must be queued behind the collective, so NCCL must
     * have accepted it first */
    if (wait_accepted(c, name, r, timeout_ms)) return 1;
    e = cudaMemcpyAsync(c->host, c->dev, bytes, cudaMemcpyDeviceToHost, c->stream);
    if (e != cudaSuccess) goto cuda_fail;
    if (wait_stream(c, name, timeout_ms)) return 1;
    memcpy(buf, c->host, bytes);
    return 0;
cuda_fail:
    cuda_failed(c, name, e);
fail_abort:
    /* the peers may now wait for us inside the collective: make this
     * communicator unusable at once rather than half-consistent */
    abort_comm(c);
    return 1;
}

static int n_all_sum(void *s, float *buf, int64_t n) {
    nccl_comm *c = s;
    return staged(c, buf, n, sizeof(float), 0, 0, c->timeout_ms);
}

/* 16-bit payload: NCCL sums the rounded values in f16 / bf16 (the same
 * result on every rank); they come back widened to f32. */
static int n_all_sum16(void *s, float *buf, int64_t n, int bf16) {
    nccl_comm *c = s;
    if (n <= 0) return 0;
    if ((size_t)n > c->h16_cap) {
        uint16_t *nb = realloc(c->h16, (size_t)n * sizeof(uint16_t));
        if (!nb) return fail(c, "%s%s", "all_sum (16-bit): out of memory", "");
        c->h16 = nb;
        c->h16_cap = (size_t)n;
    }
    for (int64_t i = 0; i < n; i++) c->h16[i] = ds4j_comm_to16(buf[i], bf16);
    if (staged(c, c->h16, n, sizeof(uint16_t), bf16 ? 3 : 2, 0, c->timeout_ms)) return 1;
    for (int64_t i = 0; i < n; i++) buf[i] = ds4j_comm_from16(c->h16[i], bf16);
    return 0;
}

static int n_bcast(void *s, int32_t *buf, int64_t n, int root) {
    nccl_comm *c = s;
    if (root < 0 || root >= c->size) {
        snprintf(c->err, sizeof c->err, "broadcast root %d out of range [0, %d)", root, c->size);
        return 1;
    }
    /* The receivers of a broadcast may wait for the leader's next request
     * indefinitely; the root only waits for its data to leave, so it keeps
     * the bound (a dead receiver eventually stops taking data). */
    return staged(c, buf, n, sizeof(int32_t), 1, root, c->rank == root ? c->timeout_ms : 0);
}

/* A one-element all-reduce: NCCL has no barrier of its own, and this one
 * also proves that the GPUs made progress. */
static int n_barrier(void *s) {
    float one = 1;
    nccl_comm *c = s;
    if (staged(c, &one, 1, sizeof(float), 0, 0, c->timeout_ms)) return 1;
    if (one != (float)c->size) {
        snprintf(c->err, sizeof c->err, "barrier: %g ranks answered, expected %d", one, c->size);
        return 1;
    }
    return 0;
}

static void n_close(void *s) {
    nccl_comm *c = s;
    if (!c) return;
    if (c->comm) {
        if (c->aborted) {
            /* already freed by ncclCommAbort */
        } else {
            /* Finalize flushes outstanding work (none: every call waited).
             * NCCL treats finalize/destroy as collective among the ranks of a
             * node, so this expects the peers to close too (the engine's
             * close is announced to every rank first, and a failed announce
             * has already aborted the communicator). Only a non-blocking
             * communicator lets the wait below be bounded. */
            long long t = c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS;
            cudaSetDevice(c->device);
            ncclResult_t r = ncclCommFinalize(c->comm);
            if (wait_accepted(c, "ncclCommFinalize", r, t) == 0 && wait_stream(c, "ncclCommFinalize", t) == 0)
                ncclCommDestroy(c->comm);
        }
    }
    if (c->stream) cudaStreamDestroy(c->stream);
    if (c->dev) cudaFree(c->dev);
    if (c->host) cudaFreeHost(c->host);
    free(c->h16);
    free(c);
}

static const ds4j_comm_vtable NCCL_VT = {
    .abi = DS4J_COMM_PLUGIN_ABI, .name = "nccl", .rank = n_rank, .size = n_size, .all_sum_f32 = n_all_sum,
    .broadcast_i32 = n_bcast, .barrier = n_barrier, .close = n_close, .last_error = n_error,
    .all_sum_f32_as16 = n_all_sum16,
    .respawn = NULL, /* recovery is MPI-only for now: ds4j_comm_respawn reports "cannot rebuild" */
    /* no split all_sum yet (the engine keeps the blocking call): with
     * backend=cuda the shared expert runs on the GPU, and overlapping would
     * mean enqueueing the NCCL sum on its own stream */
    .all_sum_start = NULL, .all_sum_test = NULL, .all_sum_wait = NULL,
};

/* ------------------------------------------------------------ open */

static int parse_ll(const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return 1;
    *out = x;
    return 0;
}

/* "device=N,timeout_ms=N,nonblocking=0|1" (also accepts an empty string). */
static int parse_options(const char *options, long long *device, long long *timeout_ms, long long *nonblocking,
                         char *err, size_t cap) {
    const char *env = getenv("DS4J_NCCL_DEVICE");
    if (env && *env && parse_ll(env, 0, INT_MAX, device)) {
        snprintf(err, cap, "DS4J_NCCL_DEVICE=%s: expected a CUDA device index >= 0", env);
        return 1;
    }
    env = getenv("DS4J_NCCL_TIMEOUT_MS");
    if (env && *env && parse_ll(env, 0, LLONG_MAX / 2, timeout_ms)) {
        snprintf(err, cap, "DS4J_NCCL_TIMEOUT_MS=%s: expected milliseconds >= 0 (0 = no bound)", env);
        return 1;
    }
    if (!options) return 0;
    char buf[512];
    if (strlen(options) >= sizeof buf) {
        snprintf(err, cap, "comm_options too long");
        return 1;
    }
    snprintf(buf, sizeof buf, "%s", options);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        char *eq = strchr(tok, '=');
        if (!eq) {
            snprintf(err, cap, "comm_options: '%s' is not key=value (keys: device, timeout_ms, nonblocking)", tok);
            return 1;
        }
        *eq = 0;
        const char *v = eq + 1;
        if (!strcmp(tok, "device")) {
            if (parse_ll(v, 0, INT_MAX, device)) {
                snprintf(err, cap, "comm_options: device=%s: expected a CUDA device index >= 0", v);
                return 1;
            }
        } else if (!strcmp(tok, "timeout_ms")) {
            if (parse_ll(v, 0, LLONG_MAX / 2, timeout_ms)) {
                snprintf(err, cap, "comm_options: timeout_ms=%s: expected milliseconds >= 0 (0 = no bound)", v);
                return 1;
            }
        } else if (!strcmp(tok, "nonblocking")) {
            if (parse_ll(v, 0, 1, nonblocking)) {
                snprintf(err, cap, "comm_options: nonblocking=%s: expected 0 or 1", v);
                return 1;
            }
        } else {
            snprintf(err, cap, "comm_options: unknown option '%s' for comm=nccl (keys: device, timeout_ms, nonblocking)", tok);
            return 1;
        }
    }
    return 0;
}

/* Every rank's verdict on a step of the setup: 1 if all succeeded. A rank
 * that failed locally still joins, so that no peer waits for it forever. */
static int all_ok(MPI_Comm world, int ok, int *n_bad) {
    int bad = !ok, total = 0;
    if (MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, world) != MPI_SUCCESS) total = -1;
    *n_bad = total;
    return total == 0;
}

__attribute__((visibility("default"))) int ds4j_comm_plugin_open(int abi, const char *options,
                                                                 const ds4j_comm_vtable **vt, void **self,
                                                                 char *err, size_t err_cap) {
    if (abi != DS4J_COMM_PLUGIN_ABI) {
        snprintf(err, err_cap, "plugin built for ABI %d, caller uses %d", DS4J_COMM_PLUGIN_ABI, abi);
        return 1;
    }
    /* Before any NCCL call: NCCL reads its environment once. */
    const char *nvls = getenv("NCCL_NVLS_ENABLE");
    if (nvls && strcmp(nvls, "0") != 0)
        fprintf(stderr, "ds4j comm=nccl: NCCL_NVLS_ENABLE=%s overridden to 0 (NVLink multicast stays off)\n", nvls);
    setenv("NCCL_NVLS_ENABLE", "0", 1);

    long long want_dev = -1, timeout_ms = DEFAULT_TIMEOUT_MS, nonblocking = 0;
    char opt_err[256] = {0};
    int opt_bad = parse_options(options, &want_dev, &timeout_ms, &nonblocking, opt_err, sizeof opt_err);

    if (mpi_boot("comm=nccl (bootstrapping through MPI)", err, err_cap)) return 1;
    MPI_Comm world = MPI_COMM_NULL, node = MPI_COMM_NULL;
    if (MPI_Comm_dup(MPI_COMM_WORLD, &world) != MPI_SUCCESS) {
        snprintf(err, err_cap, "MPI_Comm_dup failed");
        return 1;
    }
    MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN);
    nccl_comm *c = calloc(1, sizeof *c);
    int n_bad = 0;
    if (!all_ok(world, c != NULL && !opt_bad, &n_bad)) {
        if (!c) snprintf(err, err_cap, "out of memory");
        else if (opt_bad) snprintf(err, err_cap, "%s", opt_err);
        else snprintf(err, err_cap, "%d other rank(s) rejected their comm=nccl options or ran out of memory", n_bad);
        free(c);
        MPI_Comm_free(&world);
        return 1;
    }
    c->timeout_ms = timeout_ms;
    c->device = -1;
    MPI_Comm_rank(world, &c->rank);
    MPI_Comm_size(world, &c->size);

    /* The GPU: node-local rank modulo the visible devices, unless named. */
    int local_ok = 1;
    if (MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &c->local_rank);
        MPI_Comm_free(&node);
    } else {
        c->local_rank = c->rank;
    }
    int ndev = 0;
    cudaError_t ce = cudaGetDeviceCount(&ndev);
    if (ce != cudaSuccess || ndev < 1) {
        snprintf(c->err, sizeof c->err, "no usable CUDA device on rank %d (cudaGetDeviceCount: %s, %d device(s))",
                 c->rank, ce != cudaSuccess ? cudaGetErrorString(ce) : "ok", ndev);
        local_ok = 0;
    } else if (want_dev >= ndev) {
        snprintf(c->err, sizeof c->err, "device=%lld out of range on rank %d: %d CUDA device(s) visible", want_dev,
                 c->rank, ndev);
        local_ok = 0;
    } else {
        c->device = want_dev >= 0 ? (int)want_dev : c->local_rank % ndev;
        ce = cudaSetDevice(c->device);
        if (ce == cudaSuccess) ce = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
        if (ce != cudaSuccess) {
            snprintf(c->err, sizeof c->err, "GPU %d on rank %d: %s", c->device, c->rank, cudaGetErrorString(ce));
            local_ok = 0;
        } else if (reserve(c, INITIAL_BYTES)) {
            local_ok = 0;
        }
    }
    if (!all_ok(world, local_ok, &n_bad)) {
        if (local_ok) snprintf(err, err_cap, "%d other rank(s) could not set up a GPU (see their errors)", n_bad);
        else snprintf(err, err_cap, "%s", c->err);
        n_close(c);
        MPI_Comm_free(&world);
        return 1;
    }

    /* rank 0's unique id to everyone, then the communicator */
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r = ncclSuccess;
    if (c->rank == 0) r = ncclGetUniqueId(&id);
    if (!all_ok(world, r == ncclSuccess, &n_bad)) {
        snprintf(err, err_cap, "ncclGetUniqueId failed on rank 0: %s", ncclGetErrorString(r));
        n_close(c);
        MPI_Comm_free(&world);
        return 1;
    }
    if (MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, world) != MPI_SUCCESS) {
        snprintf(err, err_cap, "MPI_Bcast of the NCCL unique id failed");
        n_close(c);
        MPI_Comm_free(&world);
        return 1;
    }
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = nonblocking ? 0 : 1;
    r = ncclCommInitRankConfig(&c->comm, c->size, id, c->rank, &cfg);
    int init_ok = 1;
    if (r != ncclSuccess && r != ncclInProgress) {
        nccl_failed(c, "ncclCommInitRankConfig", r);
        if (c->comm) abort_comm(c);
        init_ok = 0;
    } else if (wait_accepted(c, "ncclCommInitRankConfig", r, timeout_ms)) {
        init_ok = 0;
    }
    if (!all_ok(world, init_ok, &n_bad)) {
        if (init_ok) {
            snprintf(err, err_cap, "NCCL initialisation failed on %d other rank(s) (see their errors)", n_bad);
            abort_comm(c);
        } else {
            snprintf(err, err_cap, "%s", c->err);
        }
        n_close(c);
        MPI_Comm_free(&world);
        return 1;
    }
    /* Connection setup happens at the first collective and waits for every
     * peer: do it now, while all ranks are known to be here. */
    float one = 1;
    int warm_ok = staged(c, &one, 1, sizeof(float), 0, 0, timeout_ms) == 0 && one == (float)c->size;
    if (!all_ok(world, warm_ok, &n_bad)) {
        if (warm_ok) snprintf(err, err_cap, "the first NCCL all-reduce failed on %d other rank(s) (see their errors)", n_bad);
        else snprintf(err, err_cap, "first NCCL all-reduce: %s", c->err[0] ? c->err : "wrong sum");
        abort_comm(c);
        n_close(c);
        MPI_Comm_free(&world);
        return 1;
    }
    if (getenv("DS4J_NCCL_VERBOSE") && *getenv("DS4J_NCCL_VERBOSE") && strcmp(getenv("DS4J_NCCL_VERBOSE"), "0")) {
        int ver = 0;
        ncclGetVersion(&ver);
        fprintf(stderr, "ds4j comm=nccl: rank %d of %d (node-local %d) on GPU %d, NCCL %d, %s communicator, timeout %lld ms\n",
                c->rank, c->size, c->local_rank, c->device, ver, nonblocking ? "non-blocking" : "blocking", timeout_ms);
    }
    MPI_Comm_free(&world);
    *vt = &NCCL_VT;
    *self = c;
    return 0;
}
