/*
 * safetensors.c — mmap reader for safetensors files and sharded checkpoints.
 *
 * A shard is: u64 little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the data section. Everything in the header is checked against the
 * file size before use; names are looked up through a hash table because a
 * full DeepSeek checkpoint has ~100k tensors.
 */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "json.h"

#define ST_MAX_HEADER ((uint64_t)256 << 20)

typedef struct st_shard {
    char *path;
    void *map;
    size_t size;
} st_shard;

struct st_model {
    st_shard *shards;
    int n_shards;
    st_tensor *tensors;
    int64_t n, cap;
    int64_t *table; /* open addressing: index+1, 0 = empty */
    uint64_t table_cap;
};

static const struct { const char *name; int size; } DTYPES[ST_DTYPE_COUNT] = {
    [ST_F64] = {"F64", 8}, [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E8M0] = {"F8_E8M0", 1},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1}, [ST_BOOL] = {"BOOL", 1},
};

const char *st_dtype_name(int d) { return d >= 0 && d < ST_DTYPE_COUNT ? DTYPES[d].name : "?"; }
int st_dtype_size(int d) { return d >= 0 && d < ST_DTYPE_COUNT ? DTYPES[d].size : 0; }

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ull; }
    return h;
}

void st_close(st_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_shards; i++) {
        if (m->shards[i].map && m->shards[i].map != MAP_FAILED) munmap(m->shards[i].map, m->shards[i].size);
        free(m->shards[i].path);
    }
    for (int64_t i = 0; i < m->n; i++) free((char *)m->tensors[i].name);
    free(m->shards);
    free(m->tensors);
    free(m->table);
    free(m);
}

int64_t st_count(const st_model *m) { return m ? m->n : 0; }
const st_tensor *st_at(const st_model *m, int64_t i) { return m && i >= 0 && i < m->n ? &m->tensors[i] : NULL; }

const st_tensor *st_find(const st_model *m, const char *name) {
    if (!m || !m->table_cap || !name) return NULL;
    uint64_t mask = m->table_cap - 1;
    for (uint64_t h = hash_name(name) & mask;; h = (h + 1) & mask) {
        int64_t v = m->table[h];
        if (!v) return NULL;
        if (!strcmp(m->tensors[v - 1].name, name)) return &m->tensors[v - 1];
    }
}

static int build_table(st_model *m, char *err, size_t cap) {
    uint64_t tc = 16;
    while (tc < (uint64_t)m->n * 2) tc <<= 1;
    m->table = calloc(tc, sizeof *m->table);
    if (!m->table) return DS4J_ERR_NO_MEMORY;
    m->table_cap = tc;
    for (int64_t i = 0; i < m->n; i++) {
        uint64_t h = hash_name(m->tensors[i].name) & (tc - 1);
        while (m->table[h]) {
            if (!strcmp(m->tensors[m->table[h] - 1].name, m->tensors[i].name)) {
                snprintf(err, cap, "tensor '%s' appears twice (in %s and %s)", m->tensors[i].name,
                         m->shards[m->tensors[m->table[h] - 1].file].path, m->shards[m->tensors[i].file].path);
                return DS4J_ERR_FORMAT;
            }
            h = (h + 1) & (tc - 1);
        }
        m->table[h] = i + 1;
    }
    return 0;
}

static int parse_dtype(const char *s) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (!strcmp(s, DTYPES[i].name)) return i;
    return -1;
}

static int add_shard(st_model *m, const char *path, char *err, size_t cap) {
    st_shard *ns = realloc(m->shards, (m->n_shards + 1) * sizeof *ns);
    if (!ns) return DS4J_ERR_NO_MEMORY;
    m->shards = ns;
    st_shard *sh = &m->shards[m->n_shards];
    memset(sh, 0, sizeof *sh);
    sh->path = strdup(path);
    if (!sh->path) return DS4J_ERR_NO_MEMORY;
    int file = m->n_shards++;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return DS4J_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, cap, "%s: not a regular file", path);
        return DS4J_ERR_IO;
    }
    uint64_t fsize = (uint64_t)st.st_size;
    if (fsize < 8) {
        close(fd);
        snprintf(err, cap, "%s: truncated (%llu bytes, no header)", path, (unsigned long long)fsize);
        return DS4J_ERR_FORMAT;
    }
    sh->size = (size_t)fsize;
    sh->map = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (sh->map == MAP_FAILED) {
        sh->map = NULL;
        snprintf(err, cap, "%s: mmap failed: %s", path, strerror(errno));
        return DS4J_ERR_IO;
    }
    const uint8_t *b = sh->map;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
    if (hlen > ST_MAX_HEADER || hlen > fsize - 8) {
        snprintf(err, cap, "%s: header length %llu does not fit the file (%llu bytes): truncated or not safetensors",
                 path, (unsigned long long)hlen, (unsigned long long)fsize);
        return DS4J_ERR_FORMAT;
    }
    uint64_t data_size = fsize - 8 - hlen;
    const uint8_t *data = b + 8 + hlen;

    json_doc *doc;
    char jerr[256];
    if (json_parse(&doc, (const char *)b + 8, (size_t)hlen, jerr, sizeof jerr)) {
        snprintf(err, cap, "%s: bad header: %s", path, jerr);
        return DS4J_ERR_FORMAT;
    }
    const json_value *root = json_root(doc);
    int rc = 0;
    if (root->type != JSON_OBJECT) {
        snprintf(err, cap, "%s: header is not a JSON object", path);
        rc = DS4J_ERR_FORMAT;
        goto out;
    }
    for (size_t i = 0; i < root->u.obj.n && !rc; i++) {
        const char *name = root->u.obj.keys[i].u.str.s;
        const json_value *v = &root->u.obj.vals[i];
        if (!strcmp(name, "__metadata__")) continue;
        if (strlen(name) != root->u.obj.keys[i].u.str.len || !name[0]) {
            snprintf(err, cap, "%s: empty or NUL-containing tensor name", path);
            rc = DS4J_ERR_FORMAT;
            break;
        }
        st_tensor t = {0};
        t.file = file;
        const char *ds = json_get_str(v, "dtype");
        const json_value *shape = json_get(v, "shape");
        const json_value *offs = json_get(v, "data_offsets");
        if (!ds || !shape || shape->type != JSON_ARRAY || !offs || offs->type != JSON_ARRAY || offs->u.arr.n != 2) {
            snprintf(err, cap, "%s: tensor '%s': dtype/shape/data_offsets missing or malformed", path, name);
            rc = DS4J_ERR_FORMAT;
            break;
        }
        t.dtype = parse_dtype(ds);
        if (t.dtype < 0) {
            snprintf(err, cap, "%s: tensor '%s': unsupported dtype %s", path, name, ds);
            rc = DS4J_ERR_FORMAT;
            break;
        }
        if (shape->u.arr.n > ST_MAX_DIMS) {
            snprintf(err, cap, "%s: tensor '%s': %zu dims (max %d)", path, name, shape->u.arr.n, ST_MAX_DIMS);
            rc = DS4J_ERR_FORMAT;
            break;
        }
        t.n_dims = (int)shape->u.arr.n;
        t.numel = 1;
        for (int d = 0; d < t.n_dims; d++) {
            int64_t x;
            if (!json_as_int(&shape->u.arr.items[d], &x) || x < 0 || !ds4j_mul_ok(t.numel, x, &t.numel)) {
                snprintf(err, cap, "%s: tensor '%s': bad shape", path, name);
                rc = DS4J_ERR_FORMAT;
                break;
            }
            t.shape[d] = x;
        }
        if (rc) break;
        int64_t o0, o1, nb;
        if (!json_as_int(&offs->u.arr.items[0], &o0) || !json_as_int(&offs->u.arr.items[1], &o1) || o0 < 0 ||
            o1 < o0 || !ds4j_mul_ok(t.numel, DTYPES[t.dtype].size, &nb)) {
            snprintf(err, cap, "%s: tensor '%s': bad data_offsets", path, name);
            rc = DS4J_ERR_FORMAT;
            break;
        }
        if ((uint64_t)o1 > data_size) {
            snprintf(err, cap, "%s: tensor '%s': data [%lld, %lld) beyond the end of the file (data section %llu bytes): truncated?",
                     path, name, (long long)o0, (long long)o1, (unsigned long long)data_size);
            rc = DS4J_ERR_FORMAT;
            break;
        }
        if (o1 - o0 != nb) {
            snprintf(err, cap, "%s: tensor '%s': %lld bytes for %lld elements of %s", path, name,
                     (long long)(o1 - o0), (long long)t.numel, ds);
            rc = DS4J_ERR_FORMAT;
            break;
        }
        t.nbytes = (uint64_t)nb;
        t.data = data + o0;
        t.name = strdup(name);
        if (!t.name) { rc = DS4J_ERR_NO_MEMORY; break; }
        if (m->n == m->cap) {
            int64_t nc = m->cap ? m->cap * 2 : 256;
            st_tensor *nt = realloc(m->tensors, nc * sizeof *nt);
            if (!nt) { free((char *)t.name); rc = DS4J_ERR_NO_MEMORY; break; }
            m->tensors = nt;
            m->cap = nc;
        }
        m->tensors[m->n++] = t;
    }
out:
    json_free(doc);
    return rc;
}

static int is_dir(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}
static int file_exists(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int open_index(st_model *m, const char *dir, const char *index, char *err, size_t cap) {
    json_doc *doc;
    int rc = json_parse_file(&doc, index, err, cap);
    if (rc) return rc;
    const json_value *wm = json_get(json_root(doc), "weight_map");
    if (!wm || wm->type != JSON_OBJECT) {
        json_free(doc);
        snprintf(err, cap, "%s: no \"weight_map\" object", index);
        return DS4J_ERR_FORMAT;
    }
    /* Distinct shard names, sorted for a deterministic order. */
    char **names = calloc(wm->u.obj.n + 1, sizeof *names);
    size_t nn = 0;
    if (!names) { json_free(doc); return DS4J_ERR_NO_MEMORY; }
    for (size_t i = 0; i < wm->u.obj.n; i++) {
        const char *f = json_as_str(&wm->u.obj.vals[i]);
        if (!f || !f[0] || strchr(f, '/') || !strcmp(f, "..")) {
            snprintf(err, cap, "%s: bad shard file name for '%s'", index, wm->u.obj.keys[i].u.str.s);
            rc = DS4J_ERR_FORMAT;
            goto done;
        }
        size_t j;
        for (j = 0; j < nn; j++) if (!strcmp(names[j], f)) break;
        if (j == nn) names[nn++] = (char *)f;
    }
    qsort(names, nn, sizeof *names, cmp_str);
    for (size_t j = 0; j < nn && !rc; j++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, names[j]);
        rc = add_shard(m, p, err, cap);
    }
    if (!rc) rc = build_table(m, err, cap);
    for (size_t i = 0; i < wm->u.obj.n && !rc; i++) {
        const char *tn = wm->u.obj.keys[i].u.str.s;
        const st_tensor *t = st_find(m, tn);
        const char *f = json_as_str(&wm->u.obj.vals[i]);
        const char *base = t ? strrchr(m->shards[t->file].path, '/') + 1 : NULL;
        if (!t || strcmp(base, f)) {
            snprintf(err, cap, "%s: tensor '%s' is listed in %s but not found there", index, tn, f);
            rc = DS4J_ERR_FORMAT;
        }
    }
done:
    free(names);
    json_free(doc);
    return rc;
}

int st_open(st_model **out, const char *path, char *err, size_t cap) {
    *out = NULL;
    st_model *m = calloc(1, sizeof *m);
    if (!m) return DS4J_ERR_NO_MEMORY;
    int rc = 0;
    if (!is_dir(path)) {
        rc = add_shard(m, path, err, cap);
        if (!rc) rc = build_table(m, err, cap);
    } else {
        char p[4096];
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
        if (file_exists(p)) {
            rc = open_index(m, path, p, err, cap);
        } else {
            DIR *d = opendir(path);
            if (!d) {
                snprintf(err, cap, "%s: %s", path, strerror(errno));
                st_close(m);
                return DS4J_ERR_IO;
            }
            char **names = NULL;
            size_t nn = 0;
            struct dirent *e;
            while ((e = readdir(d))) {
                size_t l = strlen(e->d_name);
                if (l > 12 && !strcmp(e->d_name + l - 12, ".safetensors")) {
                    char **nn2 = realloc(names, (nn + 1) * sizeof *names);
                    if (!nn2) { rc = DS4J_ERR_NO_MEMORY; break; }
                    names = nn2;
                    names[nn++] = strdup(e->d_name);
                }
            }
            closedir(d);
            if (!rc && nn == 0) {
                snprintf(err, cap, "%s: no *.safetensors files", path);
                rc = DS4J_ERR_IO;
            }
            if (names) qsort(names, nn, sizeof *names, cmp_str);
            for (size_t j = 0; j < nn && !rc; j++) {
                if (!names[j]) { rc = DS4J_ERR_NO_MEMORY; break; }
                snprintf(p, sizeof p, "%s/%s", path, names[j]);
                rc = add_shard(m, p, err, cap);
            }
            for (size_t j = 0; j < nn; j++) free(names[j]);
            free(names);
            if (!rc) rc = build_table(m, err, cap);
        }
    }
    if (rc) {
        st_close(m);
        return rc;
    }
    *out = m;
    return 0;
}
