/*
 * comm_mpi.c — the MPI backend plugin (libds4j_comm_mpi.so) for ds4j's
 * expert parallelism, loaded by libds4j with dlopen (src/comm/comm.h describes
 * the ABI). Collectives run on a duplicate of MPI_COMM_WORLD with
 * MPI_ERRORS_RETURN, so a failing peer becomes an error code where the MPI
 * implementation allows it rather than an abort of this process. MPI's
 * start-up and shutdown: mpi_boot.h.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm.h"
#include "mpi_boot.h"

typedef struct mpi_comm {
    MPI_Comm comm;
    int rank, size;
    uint16_t *h16;   /* 16-bit payloads: this rank's, then everyone's */
    size_t h16_cap;
    char err[512];
} mpi_comm;

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
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, c->comm);
        if (rc != MPI_SUCCESS) return mpi_failed(c, "MPI_Allreduce", rc);
        off += k;
    }
    return 0;
}

/* 16-bit payload: every rank's rounded values are gathered (half the bytes
 * of an f32 all-reduce per value sent) and summed in rank order, so every
 * rank forms bit-identical f32 sums. Buffers grow, never shrink. */
static int m_all_sum16(void *s, float *buf, int64_t n, int bf16) {
    mpi_comm *c = s;
    if (n <= 0) return 0;
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
    int rc = MPI_Allgather(mine, (int)n, MPI_UINT16_T, all, (int)n, MPI_UINT16_T, c->comm);
    if (rc != MPI_SUCCESS) return mpi_failed(c, "MPI_Allgather", rc);
    for (int64_t i = 0; i < n; i++) {
        float acc = 0;
        for (int r = 0; r < c->size; r++) acc += ds4j_comm_from16(all[(int64_t)r * n + i], bf16);
        buf[i] = acc;
    }
    return 0;
}

static int m_bcast(void *s, int32_t *buf, int64_t n, int root) {
    mpi_comm *c = s;
    for (int64_t off = 0; off < n;) {
        int k = n - off > INT_MAX / 2 ? INT_MAX / 2 : (int)(n - off);
        int rc = MPI_Bcast(buf + off, k, MPI_INT32_T, root, c->comm);
        if (rc != MPI_SUCCESS) return mpi_failed(c, "MPI_Bcast", rc);
        off += k;
    }
    return 0;
}

static int m_barrier(void *s) {
    mpi_comm *c = s;
    int rc = MPI_Barrier(c->comm);
    return rc != MPI_SUCCESS ? mpi_failed(c, "MPI_Barrier", rc) : 0;
}

static void m_close(void *s) {
    mpi_comm *c = s;
    if (!c) return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin && c->comm != MPI_COMM_NULL) MPI_Comm_free(&c->comm);
    free(c->h16);
    free(c);
}

static const ds4j_comm_vtable MPI_VT = {
    .abi = DS4J_COMM_PLUGIN_ABI, .name = "mpi", .rank = m_rank, .size = m_size, .all_sum_f32 = m_all_sum,
    .broadcast_i32 = m_bcast, .barrier = m_barrier, .close = m_close, .last_error = m_error,
    .all_sum_f32_as16 = m_all_sum16,
};

__attribute__((visibility("default"))) int ds4j_comm_plugin_open(int abi, const char *options,
                                                                 const ds4j_comm_vtable **vt, void **self,
                                                                 char *err, size_t err_cap) {
    if (abi != DS4J_COMM_PLUGIN_ABI) {
        snprintf(err, err_cap, "plugin built for ABI %d, caller uses %d", DS4J_COMM_PLUGIN_ABI, abi);
        return 1;
    }
    if (options && *options) {
        /* nothing to configure: say so rather than ignore a typo'd backend */
        snprintf(err, err_cap, "comm=mpi takes no comm_options (got '%s')", options);
        return 1;
    }
    if (mpi_boot("comm=mpi", err, err_cap)) return 1;
    mpi_comm *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_cap, "out of memory");
        return 1;
    }
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
    if (rc != MPI_SUCCESS) {
        snprintf(err, err_cap, "MPI_Comm_dup failed (error %d)", rc);
        free(c);
        return 1;
    }
    MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->comm, &c->rank);
    MPI_Comm_size(c->comm, &c->size);
    *vt = &MPI_VT;
    *self = c;
    return 0;
}
