/*
 * state_file.c — a session's decoder state on disk (ds4j.h "session state
 * on disk"): the file format, writing a snapshot, and a fully verified read.
 *
 * Layout (little-endian):
 *   header   128 bytes: magic "DS4JSTAT", u32 version, u32 header size,
 *            the engine fingerprint (32 hex digits), i64 position, layers,
 *            fixed-part bytes, entry bytes, payload bytes, i32 kv_fp8
 *   payload  tokens[pos] (i32), the fixed-size state (sliding windows,
 *            compressor windows, overlap slices) and, per layer, the first
 *            floor(pos / ratio) compressed entries of the main compressor
 *            then of the indexer, in their storage format
 *   trailer  u64 ds4j_hash64 of header and payload
 * Compressed entries are append-only, so a checkpoint at c plus the first
 * floor(c / ratio) entries is the complete state at c (kv_state.h); that is
 * what lets a session write an older checkpoint while it holds a longer
 * timeline. Nothing read is trusted before it has been checked: sizes
 * against the model's layout, token ids against the vocabulary, the bytes
 * against the checksum; a failed load leaves the session empty.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "session.h"

#define SF_MAGIC "DS4JSTAT"
#define SF_VERSION 1u
#define SF_HEADER 128
#define SF_STAGE ((size_t)4 << 20)

typedef struct sf_header {
    char magic[8];
    uint32_t version, header_bytes;
    char fingerprint[32];
    int64_t pos, n_layer, fixed_bytes, entry_bytes, payload_bytes;
    int32_t kv_fp8, reserved;
    uint8_t pad[SF_HEADER - 96];
} sf_header;
_Static_assert(sizeof(sf_header) == SF_HEADER, "state file header is 128 bytes");

void ds4j_state_fingerprint_init(ds4j_engine *e) {
    e->fingerprint[0] = 0;
    if (!e->model) return;
    uint64_t g[2], out[2];
    gguf_fingerprint(e->gguf, g);
    int32_t v[3] = {(int32_t)SF_VERSION, e->gpu ? 1 : 0, e->kv_fp8};
    for (int k = 0; k < 2; k++) {
        ds4j_hash64 h;
        ds4j_hash64_init(&h, 0x5354415445000000ull + (uint64_t)k);
        ds4j_hash64_feed(&h, g, sizeof g);
        ds4j_hash64_feed(&h, v, sizeof v);
        out[k] = ds4j_hash64_final(&h);
    }
    snprintf(e->fingerprint, sizeof e->fingerprint, "%016llx%016llx", (unsigned long long)out[0],
             (unsigned long long)out[1]);
}

DS4J_API const char *ds4j_engine_fingerprint(const ds4j_engine *e) {
    return e && e->fingerprint[0] ? e->fingerprint : NULL;
}

static int refuse_distributed(const ds4j_engine *e, const char *what) {
    if (!e->comm) return 0;
    return ds4j_fail(DS4J_ERR_STATE, "%s: session state files are not available with comm= (every rank would need "
                     "the same file)", what);
}

/* Entry bytes of the first floor(pos / ratio) entries of every compressor. */
static int64_t entry_bytes(const kv_state *st, int64_t pos) {
    int64_t total = 0;
    for (int64_t l = 0; l < st->n_layer; l++) {
        const kv_comp *c[2] = {&st->layers[l].comp, &st->layers[l].idx};
        for (int k = 0; k < 2; k++)
            if (c[k]->r) total += (pos / c[k]->r) * c[k]->row_bytes;
    }
    return total;
}

static void *entry_base(const kv_comp *c) { return c->entries ? (void *)c->entries : (void *)c->ent8; }

/* ---------------------------------------------------------------- write */

typedef struct sf_writer {
    FILE *f;
    ds4j_hash64 h;
    int failed;
} sf_writer;

static void w_host(sf_writer *w, const void *p, size_t n) {
    if (w->failed || n == 0) return;
    ds4j_hash64_feed(&w->h, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->failed = errno ? errno : EIO;
}

/* n bytes of session memory (host or device) through the staging buffer */
static void w_mem(sf_writer *w, const kv_state *st, uint8_t *stage, const uint8_t *src, size_t n) {
    for (size_t off = 0; off < n && !w->failed; off += SF_STAGE) {
        size_t k = n - off < SF_STAGE ? n - off : SF_STAGE;
        st->mem->to_host(st->mem->user, stage, src + off, k);
        w_host(w, stage, k);
    }
}

DS4J_API int32_t ds4j_session_save(ds4j_session *s, const char *path, int32_t max_pos) {
    ds4j_clear_error();
    if (!s || !path || !*path) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session and path are required");
    ds4j_engine *e = s->eng;
    if (refuse_distributed(e, "ds4j_session_save")) return DS4J_ERR_STATE;
    const void *fixed = NULL;
    int64_t pos = ds4j_session_snapshot(s, max_pos, &fixed);
    if (pos <= 0)
        return ds4j_fail(DS4J_ERR_STATE, "the session holds no state at a position in (0, %d] (it is at %lld)", max_pos,
                         (long long)s->st->pos);
    kv_state *st = s->st;
    sf_header hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, SF_MAGIC, 8);
    hd.version = SF_VERSION;
    hd.header_bytes = SF_HEADER;
    memcpy(hd.fingerprint, e->fingerprint, 32);
    hd.pos = pos;
    hd.n_layer = st->n_layer;
    hd.fixed_bytes = st->fixed_bytes;
    hd.entry_bytes = entry_bytes(st, pos);
    hd.payload_bytes = pos * 4 + hd.fixed_bytes + hd.entry_bytes;
    hd.kv_fp8 = st->kv_fp8;

    uint8_t *stage = malloc(SF_STAGE);
    if (!stage) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for the state file buffer");
    sf_writer w = {.f = fopen(path, "wb")};
    if (!w.f) {
        int err = errno;
        free(stage);
        return ds4j_fail(DS4J_ERR_IO, "cannot create state file '%s': %s", path, strerror(err));
    }
    ds4j_hash64_init(&w.h, SF_VERSION);
    errno = 0;
    w_host(&w, &hd, sizeof hd);
    w_host(&w, s->tokens, (size_t)pos * 4);
    w_mem(&w, st, stage, fixed, (size_t)st->fixed_bytes);
    for (int64_t l = 0; l < st->n_layer; l++) {
        const kv_comp *c[2] = {&st->layers[l].comp, &st->layers[l].idx};
        for (int k = 0; k < 2; k++)
            if (c[k]->r) w_mem(&w, st, stage, entry_base(c[k]), (size_t)((pos / c[k]->r) * c[k]->row_bytes));
    }
    free(stage);
    uint64_t sum = ds4j_hash64_final(&w.h);
    if (!w.failed && fwrite(&sum, 1, 8, w.f) != 8) w.failed = errno ? errno : EIO;
    if (!w.failed && (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0)) w.failed = errno ? errno : EIO;
    if (fclose(w.f) != 0 && !w.failed) w.failed = errno ? errno : EIO;
    if (w.failed) {
        unlink(path);
        return ds4j_fail(DS4J_ERR_IO, "cannot write state file '%s': %s", path, strerror(w.failed));
    }
    return (int32_t)pos;
}

/* ----------------------------------------------------------------- read */

/* Opens path and checks its header against the engine; on success the file
 * is positioned after the header. */
static int read_header(const ds4j_engine *e, const char *path, FILE **out, sf_header *hd) {
    *out = NULL;
    if (!e || !path || !*path) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "engine and path are required");
    if (!e->model) return ds4j_fail(DS4J_ERR_STATE, "engine has no model loaded");
    FILE *f = fopen(path, "rb");
    if (!f) return ds4j_fail(DS4J_ERR_IO, "cannot open state file '%s': %s", path, strerror(errno));
    int rc = 0;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = ds4j_fail(DS4J_ERR_IO, "cannot read state file '%s'", path);
        goto done;
    }
    if (size < SF_HEADER + 8 || fread(hd, 1, sizeof *hd, f) != sizeof *hd || memcmp(hd->magic, SF_MAGIC, 8) != 0) {
        rc = ds4j_fail(DS4J_ERR_FORMAT, "'%s' is not a ds4j state file", path);
        goto done;
    }
    if (hd->version != SF_VERSION || hd->header_bytes != SF_HEADER) {
        rc = ds4j_fail(DS4J_ERR_FORMAT, "'%s': state file version %u is not supported (this engine writes %u)", path,
                       hd->version, SF_VERSION);
        goto done;
    }
    if (memcmp(hd->fingerprint, e->fingerprint, 32) != 0) {
        rc = ds4j_fail(DS4J_ERR_STATE, "'%s' holds state of another model, backend or precision (fingerprint %.32s, "
                       "this engine %s)", path, hd->fingerprint, e->fingerprint);
        goto done;
    }
    int64_t fixed = 0, expect;
    kv_state_bytes(e->model, 1, e->kv_fp8, &fixed);
    if (hd->pos <= 0 || hd->pos > INT32_MAX || hd->n_layer != e->model->hp.n_layer || hd->fixed_bytes != fixed ||
        hd->kv_fp8 != e->kv_fp8 || hd->entry_bytes < 0 || !ds4j_mul_ok(hd->pos, 4, &expect) ||
        !ds4j_add_ok(expect, hd->fixed_bytes, &expect) || !ds4j_add_ok(expect, hd->entry_bytes, &expect) ||
        expect != hd->payload_bytes || !ds4j_add_ok(expect, SF_HEADER + 8, &expect) || expect != (int64_t)size) {
        rc = ds4j_fail(DS4J_ERR_FORMAT, "'%s': inconsistent state file (%ld bytes; header: position %lld, payload %lld "
                       "bytes): truncated or damaged", path, size, (long long)hd->pos, (long long)hd->payload_bytes);
        goto done;
    }
done:
    if (rc) fclose(f);
    else *out = f;
    return rc;
}

DS4J_API int32_t ds4j_state_file_tokens(const ds4j_engine *e, const char *path, int32_t *out, int32_t cap) {
    ds4j_clear_error();
    if (cap < 0 || (cap > 0 && !out)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "invalid output buffer");
    FILE *f;
    sf_header hd;
    int rc = read_header(e, path, &f, &hd);
    if (rc) return rc;
    int64_t n = hd.pos < cap ? hd.pos : cap;
    if (n > 0 && fread(out, 4, (size_t)n, f) != (size_t)n)
        rc = ds4j_fail(DS4J_ERR_FORMAT, "'%s': truncated state file", path);
    fclose(f);
    return rc ? rc : (int32_t)hd.pos;
}

typedef struct sf_reader {
    FILE *f;
    ds4j_hash64 h;
    int short_read;
} sf_reader;

static void r_host(sf_reader *r, void *p, size_t n) {
    if (r->short_read || n == 0) return;
    if (fread(p, 1, n, r->f) != n) r->short_read = 1;
    else ds4j_hash64_feed(&r->h, p, n);
}

static void r_mem(sf_reader *r, const kv_state *st, uint8_t *stage, uint8_t *dst, size_t n) {
    for (size_t off = 0; off < n && !r->short_read; off += SF_STAGE) {
        size_t k = n - off < SF_STAGE ? n - off : SF_STAGE;
        r_host(r, stage, k);
        if (!r->short_read) st->mem->from_host(st->mem->user, dst + off, stage, k);
    }
}

DS4J_API int32_t ds4j_session_load(ds4j_session *s, const char *path) {
    ds4j_clear_error();
    if (!s) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session is NULL");
    ds4j_engine *e = s->eng;
    if (refuse_distributed(e, "ds4j_session_load")) return DS4J_ERR_STATE;
    kv_state *st = s->st;
    FILE *f;
    sf_header hd;
    int rc = read_header(e, path, &f, &hd);
    if (rc) goto wipe;
    if (hd.pos > s->n_ctx) {
        fclose(f);
        rc = ds4j_fail(DS4J_ERR_CONTEXT_FULL, "'%s' holds %lld tokens, more than this session's n_ctx %lld", path,
                       (long long)hd.pos, (long long)s->n_ctx);
        goto wipe;
    }
    if (hd.entry_bytes != entry_bytes(st, hd.pos)) {
        fclose(f);
        rc = ds4j_fail(DS4J_ERR_FORMAT, "'%s': %lld bytes of compressed entries, the model's layout needs %lld", path,
                       (long long)hd.entry_bytes, (long long)entry_bytes(st, hd.pos));
        goto wipe;
    }
    uint8_t *stage = malloc(SF_STAGE);
    if (!stage) {
        fclose(f);
        rc = ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for the state file buffer");
        goto wipe;
    }
    sf_reader r = {.f = f};
    ds4j_hash64_init(&r.h, SF_VERSION);
    ds4j_hash64_feed(&r.h, &hd, sizeof hd);
    r_host(&r, s->tokens, (size_t)hd.pos * 4);
    r_mem(&r, st, stage, st->fixed, (size_t)st->fixed_bytes);
    for (int64_t l = 0; l < st->n_layer; l++) {
        kv_comp *c[2] = {&st->layers[l].comp, &st->layers[l].idx};
        for (int k = 0; k < 2; k++)
            if (c[k]->r) r_mem(&r, st, stage, entry_base(c[k]), (size_t)((hd.pos / c[k]->r) * c[k]->row_bytes));
    }
    free(stage);
    uint64_t stored = 0;
    int trailer_ok = !r.short_read && fread(&stored, 1, 8, f) == 8 && fgetc(f) == EOF;
    fclose(f);
    if (!trailer_ok) {
        rc = ds4j_fail(DS4J_ERR_FORMAT, "'%s': truncated state file", path);
        goto wipe;
    }
    if (stored != ds4j_hash64_final(&r.h)) {
        rc = ds4j_fail(DS4J_ERR_FORMAT, "'%s': checksum mismatch: the state file is corrupt", path);
        goto wipe;
    }
    for (int64_t i = 0; i < hd.pos; i++)
        if (s->tokens[i] < 0 || s->tokens[i] >= e->n_vocab) {
            rc = ds4j_fail(DS4J_ERR_FORMAT, "'%s': token id %d at %lld is outside the vocabulary", path, s->tokens[i],
                           (long long)i);
            goto wipe;
        }
    kv_state_set_pos(st, hd.pos);
    ds4j_session_adopt(s, hd.pos);
    return (int32_t)hd.pos;
wipe:
    kv_state_reset(st);
    ds4j_session_adopt(s, 0);
    return rc;
}
