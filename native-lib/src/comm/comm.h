/*
 * comm.h — collectives for expert-parallel inference: a small backend
 * interface (rank, size, all_sum_f32, broadcast_i32, barrier, close) and the
 * loader that finds a backend. Backends that need an external library (MPI,
 * NCCL, later JACCL) are plugins, shared objects dlopen()ed at run time,
 * so libds4j itself never links them: the JVM loads libds4j in processes
 * that have no MPI (or CUDA) at all.
 *
 * Plugin ABI (the only thing a plugin includes from ds4j is this header; it
 * must not call libds4j functions): the plugin exports
 *     int ds4j_comm_plugin_open(int abi, const char *options,
 *                               const ds4j_comm_vtable **vt, void **self,
 *                               char *err, size_t err_cap);
 * returning 0 and filling *vt / *self, or non-zero with a message in err.
 * Every vtable function returns 0 on success or non-zero on failure, with
 * the reason available from last_error(self).
 */
#ifndef DS4J_COMM_H
#define DS4J_COMM_H

#include <stddef.h>
#include <stdint.h>

#define DS4J_COMM_PLUGIN_ABI 4
#define DS4J_COMM_PLUGIN_SYMBOL "ds4j_comm_plugin_open"

typedef struct ds4j_comm_vtable {
    int abi;           /* DS4J_COMM_PLUGIN_ABI */
    const char *name;  /* "mpi", ... */
    int (*rank)(void *self);
    int (*size)(void *self);
    /* In-place element-wise sum over all ranks; every rank must end up with
     * bit-identical results (the ranks replay the same model state). */
    int (*all_sum_f32)(void *self, float *buf, int64_t n);
    /* Root's n ints replace everyone else's. */
    int (*broadcast_i32)(void *self, int32_t *buf, int64_t n, int root);
    int (*barrier)(void *self);
    void (*close)(void *self);
    const char *(*last_error)(void *self);
    /* all_sum_f32 with a 16-bit payload (all_sum_dtype=f16|bf16): every rank
     * rounds its values to f16 (bf16 = 1) for the wire and ends with the same
     * f32 sums of the rounded values (ABI 2). */
    int (*all_sum_f32_as16)(void *self, float *buf, int64_t n, int bf16);
    /* Recovery (ABI 3; NULL: the backend cannot recover). Rank 0 only, after
     * a failure: abandons the current communicator and starts n_new new
     * processes, process i running `command` with the NULL-terminated
     * argv[i] (arguments after the program name); they join as ranks
     * 1..n_new of a fresh communicator whose rank 0 is this process, and
     * find it themselves at their own open (the MPI plugin: through
     * MPI_Comm_get_parent). The backend stops what it can of the abandoned
     * group first (MPI: its peers on this host that still exist, a stopped
     * one included). 0 = the new communicator is in place and every later
     * collective uses it. */
    int (*respawn)(void *self, const char *command, int n_new, char *const *const *argv);
    /* Split all_sum (ABI 4; optional: all three NULL = the backend only has
     * the blocking calls, and the engine does not overlap). all_sum_start
     * begins the sum all_sum_f32 (dtype 0) or all_sum_f32_as16 (dtype 1 f16,
     * 2 bf16) would compute on buf and returns at once; the caller leaves
     * buf alone until all_sum_wait returned. all_sum_test lets the backend
     * advance it without waiting (MPI has no progress thread by default: a
     * started collective moves only inside MPI calls) and sets *done to 1 once
 * the sum is complete (0 while it travels). all_sum_wait
     * finishes it, bounded and liveness-checked like the blocking call; the
     * result is bit-identical to the blocking call's. One split all_sum at a
     * time, and no other collective between its start and its wait. */
    int (*all_sum_start)(void *self, float *buf, int64_t n, int dtype);
    int (*all_sum_test)(void *self, int *done);
    int (*all_sum_wait)(void *self);
} ds4j_comm_vtable;

/* 16-bit payload conversions shared by libds4j and the plugins (round to
 * nearest even; NaN stays NaN, overflow becomes inf). */
static inline uint16_t ds4j_comm_to16(float f, int bf16) {
    union { float f; uint32_t u; } v = {f};
    uint32_t x = v.u;
    if (bf16) {
        if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u);
        x += 0x7FFFu + ((x >> 16) & 1u);
        return (uint16_t)(x >> 16);
    }
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return sign | 0x7E00u;
    if (ax >= 0x477FF000u) return sign | 0x7C00u;
    if (ax < 0x38800000u) {
        union { uint32_t u; float f; } t = {ax};
        t.f += 0.5f;
        return sign | (uint16_t)(t.u - 0x3F000000u);
    }
    ax += 0xC8000FFFu + ((ax >> 13) & 1u);
    return sign | (uint16_t)(ax >> 13);
}
static inline float ds4j_comm_from16(uint16_t h, int bf16) {
    union { uint32_t u; float f; } v;
    if (bf16) { v.u = (uint32_t)h << 16; return v.f; }
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0) { v.f = (float)man * 0x1p-24f; v.u |= sign; return v.f; }
    if (exp == 31) { v.u = sign | 0x7F800000u | (man << 13); return v.f; }
    v.u = sign | ((exp + 112) << 23) | (man << 13);
    return v.f;
}

typedef int (*ds4j_comm_plugin_open_fn)(int abi, const char *options, const ds4j_comm_vtable **vt, void **self,
                                        char *err, size_t err_cap);

/* ---- libds4j side (not visible to plugins) ---- */

typedef struct ds4j_comm ds4j_comm;

/*
 * Open backend `name`: "local" (built in: one rank, identity collectives),
 * "mpi" (plugin libds4j_comm_mpi.so), "nccl" (plugin libds4j_comm_nccl.so,
 * present when libds4j was built with CUDA + NCCL + MPI), "jaccl"
 * (recognised, not built). plugin_path, if not NULL/empty, names the plugin
 * file to load instead of searching next to libds4j. Returns 0 or a negative
 * DS4J_ERR_* with a ds4j_fail() message.
 */
int ds4j_comm_open(ds4j_comm **out, const char *name, const char *plugin_path);
/* The same, with a backend-specific option string handed to the plugin's
 * open (NULL = ""; comm=nccl: "device=N,timeout_ms=N"). */
int ds4j_comm_open_opts(ds4j_comm **out, const char *name, const char *plugin_path, const char *options);
void ds4j_comm_close(ds4j_comm *c);
const char *ds4j_comm_name(const ds4j_comm *c);
int ds4j_comm_rank(const ds4j_comm *c);
int ds4j_comm_size(const ds4j_comm *c);
/* Collectives: 0 or DS4J_ERR_COMM (message names the operation and the
 * backend's reason). After the first failure the communicator is broken and
 * every later call fails fast: peers may be gone or out of step. */
int ds4j_comm_all_sum_f32(ds4j_comm *c, float *buf, int64_t n);
/* The same with a 16-bit payload (f16, or bf16 when bf16 = 1). */
int ds4j_comm_all_sum_16(ds4j_comm *c, float *buf, int64_t n, int bf16);
/* The split all_sum (see the vtable): 1 when the backend has it. */
int ds4j_comm_can_split(const ds4j_comm *c);
/* Start (dtype 0 f32, 1 f16, 2 bf16), advance without waiting, finish:
 * 0 or DS4J_ERR_COMM like the blocking calls; a failed start or test
 * breaks the communicator, and the pending sum is abandoned (no wait). */
int ds4j_comm_all_sum_start(ds4j_comm *c, float *buf, int64_t n, int dtype);
int ds4j_comm_all_sum_test(ds4j_comm *c, int *done);
int ds4j_comm_all_sum_wait(ds4j_comm *c);
int ds4j_comm_broadcast_i32(ds4j_comm *c, int32_t *buf, int64_t n, int root);
int ds4j_comm_barrier(ds4j_comm *c);
/* Recovery, rank 0 only: replace a broken (or any) communicator by a fresh
 * one of the same size whose ranks 1.. are new processes running `command`
 * with argv[i] (see the vtable's respawn). On success the communicator is
 * usable again (not broken); on failure it stays or becomes broken and the
 * message says why (DS4J_ERR_STATE: the backend cannot recover). */
int ds4j_comm_respawn(ds4j_comm *c, const char *command, char *const *const *argv);
/* The folder holding libds4j (or the executable linking it statically):
 * where plugins, and ds4j-tool for recovery, are looked for. 0 or -1. */
int ds4j_comm_lib_dir(char *out, size_t cap);
/* 1 after a collective failed. */
int ds4j_comm_broken(const ds4j_comm *c);
/* Declare the communicator unusable for a reason found above it (e.g. the
 * ranks computed on different data): later collectives fail fast with it. */
void ds4j_comm_mark_broken(ds4j_comm *c, const char *why);

#endif
