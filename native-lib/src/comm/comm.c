/*
 * comm.c — the communicator behind expert parallelism: the built-in
 * single-rank "local" backend, the plugin loader (dlopen of
 * libds4j_comm_<name>.so — mpi, nccl — found next to libds4j, or an
 * explicit path, handed the engine's comm_options string), and
 * the wrappers that turn backend failures into DS4J_ERR_COMM and make a
 * failed communicator fail fast afterwards.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "common.h"

struct ds4j_comm {
    const ds4j_comm_vtable *vt;
    void *self;
    int rank, size;
    int broken;
    char broken_msg[256];
};

/* ------------------------------------------------------------ local */

static int local_rank(void *s) { (void)s; return 0; }
static int local_size(void *s) { (void)s; return 1; }
static int local_all_sum(void *s, float *b, int64_t n) { (void)s; (void)b; (void)n; return 0; }
/* one rank: the sum is its own value as the 16-bit payload carries it */
static int local_all_sum16(void *s, float *b, int64_t n, int bf16) {
    (void)s;
    for (int64_t i = 0; i < n; i++) b[i] = ds4j_comm_from16(ds4j_comm_to16(b[i], bf16), bf16);
    return 0;
}
/* the split sum of one rank: all the work (16-bit rounding) at the start */
static int local_start(void *s, float *b, int64_t n, int dtype) { return dtype ? local_all_sum16(s, b, n, dtype == 2) : 0; }
static int local_test(void *s, int *done) { (void)s; *done = 1; return 0; }
static int local_nop(void *s) { (void)s; return 0; }
static int local_bcast(void *s, int32_t *b, int64_t n, int root) { (void)s; (void)b; (void)n; return root == 0 ? 0 : 1; }
static int local_barrier(void *s) { (void)s; return 0; }
static void local_close(void *s) { (void)s; }
static const char *local_error(void *s) { (void)s; return "root rank out of range (one rank)"; }

static const ds4j_comm_vtable LOCAL_VT = {
    .abi = DS4J_COMM_PLUGIN_ABI, .name = "local", .rank = local_rank, .size = local_size,
    .all_sum_f32 = local_all_sum, .broadcast_i32 = local_bcast, .barrier = local_barrier,
    .all_sum_f32_as16 = local_all_sum16,
    .close = local_close, .last_error = local_error, .respawn = NULL,
    .all_sum_start = local_start, .all_sum_test = local_test, .all_sum_wait = local_nop,
};

/* ------------------------------------------------------------ loader */

static int self_dir(char *out, size_t cap);

/* Directory holding the code of libds4j (the shared library, or the
 * executable that links it statically), so plugins are found beside it. */
int ds4j_comm_lib_dir(char *out, size_t cap) { return self_dir(out, cap); }

static int self_dir(char *out, size_t cap) {
    Dl_info info;
    char path[PATH_MAX];
    path[0] = 0;
    if (dladdr((void *)&ds4j_comm_open, &info) && info.dli_fname && strchr(info.dli_fname, '/'))
        snprintf(path, sizeof path, "%s", info.dli_fname);
    else {
        ssize_t k = readlink("/proc/self/exe", path, sizeof path - 1);
        if (k <= 0) return -1;
        path[k] = 0;
    }
    char *slash = strrchr(path, '/');
    if (!slash) return -1;
    *slash = 0;
    snprintf(out, cap, "%s", path[0] ? path : "/");
    return 0;
}

/* What the build says about a plugin that could not be found. */
static const char *missing_hint(const char *name) {
    if (!strcmp(name, "nccl")) {
#ifdef DS4J_HAVE_NCCL_PLUGIN
        return "This libds4j was built with NCCL: is libds4j_comm_nccl.so installed beside it, and are libnccl and "
               "the CUDA runtime on the loader path?";
#else
        return "This libds4j was built without NCCL (the plugin needs the CUDA runtime, NCCL and MPI at build time: "
               "cmake -DDS4J_WITH_NCCL=ON, NCCL_HOME or DS4J_NCCL_ROOT naming NCCL's folder).";
#endif
    }
    return "Was libds4j built with MPI (DS4J_WITH_MPI=ON and an MPI C library installed)?";
}

static int load_plugin(const char *name, const char *plugin_path, ds4j_comm_plugin_open_fn *fn) {
    char tried[2][PATH_MAX + 64];
    char errs[2][256];
    int n_tried = 0;
    void *h = NULL;
    char file[64];
    snprintf(file, sizeof file, "libds4j_comm_%s.so", name);
    if (plugin_path && *plugin_path) {
        snprintf(tried[0], sizeof tried[0], "%s", plugin_path);
        n_tried = 1;
    } else {
        char dir[PATH_MAX];
        if (self_dir(dir, sizeof dir) == 0) snprintf(tried[n_tried++], sizeof tried[0], "%s/%s", dir, file);
        snprintf(tried[n_tried++], sizeof tried[0], "%s", file); /* the dynamic loader's search path */
    }
    for (int i = 0; i < n_tried && !h; i++) {
        dlerror();
        /* RTLD_GLOBAL: MPI implementations dlopen their own components, which
         * resolve libmpi symbols globally. NODELETE: the plugin may register
         * exit handlers (MPI_Finalize at process exit). */
        h = dlopen(tried[i], RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
        const char *de = dlerror();
        snprintf(errs[i], sizeof errs[i], "%s", h ? "" : (de ? de : "unknown dlopen error"));
    }
    if (!h) {
        if (n_tried == 1)
            return ds4j_fail(DS4J_ERR_COMM, "comm=%s: cannot load backend plugin %s: %s", name, tried[0], errs[0]);
        return ds4j_fail(DS4J_ERR_COMM,
                         "comm=%s: backend plugin %s not found (tried %s: %s; and the loader path: %s). %s",
                         name, file, tried[0], errs[0], errs[1], missing_hint(name));
    }
    *(void **)fn = dlsym(h, DS4J_COMM_PLUGIN_SYMBOL);
    if (!*fn) return ds4j_fail(DS4J_ERR_COMM, "comm=%s: %s does not export %s", name, file, DS4J_COMM_PLUGIN_SYMBOL);
    return 0;
}

int ds4j_comm_open(ds4j_comm **out, const char *name, const char *plugin_path) {
    return ds4j_comm_open_opts(out, name, plugin_path, NULL);
}

int ds4j_comm_open_opts(ds4j_comm **out, const char *name, const char *plugin_path, const char *options) {
    *out = NULL;
    if (!name || !*name) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "comm: empty backend name");
    const ds4j_comm_vtable *vt = NULL;
    void *self = NULL;
    if (!strcmp(name, "local")) {
        vt = &LOCAL_VT;
    } else if (!strcmp(name, "jaccl")) {
        /* A recognised name: its plugin will follow the same ABI. Until it
         * exists, an explicit comm_plugin= path may still provide one. */
        if (!plugin_path || !*plugin_path)
            return ds4j_fail(DS4J_ERR_COMM, "comm=%s: backend not built in this build (available: local, mpi, nccl)", name);
    } else if (strcmp(name, "mpi") != 0 && strcmp(name, "nccl") != 0) {
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "comm=%s: unknown backend (expected local, mpi, nccl or jaccl)", name);
    }
    if (!vt) {
        ds4j_comm_plugin_open_fn fn;
        int rc = load_plugin(name, plugin_path, &fn);
        if (rc) return rc;
        char err[512] = {0};
        if (fn(DS4J_COMM_PLUGIN_ABI, options ? options : "", &vt, &self, err, sizeof err) || !vt)
            return ds4j_fail(DS4J_ERR_COMM, "comm=%s: backend failed to start: %s", name, err[0] ? err : "no reason given");
        if (vt->abi != DS4J_COMM_PLUGIN_ABI || !vt->rank || !vt->size || !vt->all_sum_f32 || !vt->broadcast_i32 ||
            !vt->barrier || !vt->close || !vt->last_error || !vt->all_sum_f32_as16) {
            if (vt->close) vt->close(self);
            return ds4j_fail(DS4J_ERR_COMM, "comm=%s: plugin ABI %d does not match libds4j's %d", name, vt->abi,
                             DS4J_COMM_PLUGIN_ABI);
        }
    }
    ds4j_comm *c = calloc(1, sizeof *c);
    if (!c) {
        vt->close(self);
        return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    }
    c->vt = vt;
    c->self = self;
    c->rank = vt->rank(self);
    c->size = vt->size(self);
    if (c->size < 1 || c->rank < 0 || c->rank >= c->size) {
        int r = c->rank, s = c->size;
        ds4j_comm_close(c);
        return ds4j_fail(DS4J_ERR_COMM, "comm=%s: backend reported rank %d of %d", name, r, s);
    }
    *out = c;
    return 0;
}

void ds4j_comm_close(ds4j_comm *c) {
    if (!c) return;
    c->vt->close(c->self);
    free(c);
}

const char *ds4j_comm_name(const ds4j_comm *c) { return c ? c->vt->name : "none"; }
int ds4j_comm_rank(const ds4j_comm *c) { return c ? c->rank : 0; }
int ds4j_comm_size(const ds4j_comm *c) { return c ? c->size : 1; }

static int comm_failed(ds4j_comm *c, const char *op) {
    if (!c->broken) {
        c->broken = 1;
        snprintf(c->broken_msg, sizeof c->broken_msg, "%s", c->vt->last_error(c->self));
        return ds4j_fail(DS4J_ERR_COMM, "%s %s failed on rank %d of %d: %s", c->vt->name, op, c->rank, c->size,
                         c->broken_msg);
    }
    return ds4j_fail(DS4J_ERR_COMM, "%s %s: the communicator is unusable after an earlier failure (%s)", c->vt->name,
                     op, c->broken_msg);
}

int ds4j_comm_all_sum_16(ds4j_comm *c, float *buf, int64_t n, int bf16) {
    if (!c || n < 0 || (n && !buf)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "all_sum: bad arguments");
    if (c->broken || c->vt->all_sum_f32_as16(c->self, buf, n, bf16 != 0)) return comm_failed(c, "all_sum");
    return 0;
}

int ds4j_comm_all_sum_f32(ds4j_comm *c, float *buf, int64_t n) {
    if (!c || n < 0 || (n && !buf)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "all_sum: bad arguments");
    if (c->broken || c->vt->all_sum_f32(c->self, buf, n)) return comm_failed(c, "all_sum");
    return 0;
}

int ds4j_comm_can_split(const ds4j_comm *c) {
    return c && c->vt->all_sum_start && c->vt->all_sum_test && c->vt->all_sum_wait;
}

int ds4j_comm_all_sum_start(ds4j_comm *c, float *buf, int64_t n, int dtype) {
    if (!ds4j_comm_can_split(c) || n < 0 || (n && !buf) || dtype < 0 || dtype > 2)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "all_sum_start: bad arguments");
    if (c->broken || c->vt->all_sum_start(c->self, buf, n, dtype)) return comm_failed(c, "all_sum");
    return 0;
}

int ds4j_comm_all_sum_test(ds4j_comm *c, int *done) {
    *done = 0;
    if (!ds4j_comm_can_split(c)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "all_sum_test: no split all_sum");
    if (c->broken || c->vt->all_sum_test(c->self, done)) return comm_failed(c, "all_sum");
    return 0;
}

int ds4j_comm_all_sum_wait(ds4j_comm *c) {
    if (!ds4j_comm_can_split(c)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "all_sum_wait: no split all_sum");
    if (c->broken || c->vt->all_sum_wait(c->self)) return comm_failed(c, "all_sum");
    return 0;
}

int ds4j_comm_broadcast_i32(ds4j_comm *c, int32_t *buf, int64_t n, int root) {
    if (!c || n < 0 || (n && !buf)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "broadcast: bad arguments");
    if (root < 0 || root >= c->size)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "broadcast: root %d out of range [0, %d)", root, c->size);
    if (c->broken || c->vt->broadcast_i32(c->self, buf, n, root)) return comm_failed(c, "broadcast");
    return 0;
}

int ds4j_comm_barrier(ds4j_comm *c) {
    if (!c) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "barrier: no communicator");
    if (c->broken || c->vt->barrier(c->self)) return comm_failed(c, "barrier");
    return 0;
}

int ds4j_comm_respawn(ds4j_comm *c, const char *command, char *const *const *argv) {
    if (!c || !command || !argv) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "respawn: bad arguments");
    if (c->rank != 0) return ds4j_fail(DS4J_ERR_STATE, "respawn: only rank 0 rebuilds the group (this is rank %d)", c->rank);
    if (c->size < 2) return ds4j_fail(DS4J_ERR_STATE, "respawn: a one-rank communicator has nobody to replace");
    if (!c->vt->respawn)
        return ds4j_fail(DS4J_ERR_STATE, "comm=%s: this backend cannot rebuild its group after a failure (recovery "
                         "is supported with comm=mpi); restart every rank", c->vt->name);
    if (c->vt->respawn(c->self, command, c->size - 1, argv)) {
        if (!c->broken) c->broken = 1;
        snprintf(c->broken_msg, sizeof c->broken_msg, "%s", c->vt->last_error(c->self));
        return ds4j_fail(DS4J_ERR_COMM, "%s: rebuilding the group failed: %s", c->vt->name, c->broken_msg);
    }
    int size = c->vt->size(c->self), rank = c->vt->rank(c->self);
    if (size != c->size || rank != 0) {
        c->broken = 1;
        snprintf(c->broken_msg, sizeof c->broken_msg, "the rebuilt group has rank %d of %d instead of 0 of %d", rank,
                 size, c->size);
        return ds4j_fail(DS4J_ERR_COMM, "%s: %s", c->vt->name, c->broken_msg);
    }
    c->broken = 0;
    c->broken_msg[0] = 0;
    return 0;
}

int ds4j_comm_broken(const ds4j_comm *c) { return c ? c->broken : 0; }

void ds4j_comm_mark_broken(ds4j_comm *c, const char *why) {
    if (!c || c->broken) return;
    c->broken = 1;
    snprintf(c->broken_msg, sizeof c->broken_msg, "%s", why ? why : "marked broken");
}
