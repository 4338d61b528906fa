/*
 * json.c — strict recursive-descent JSON parser into an arena-owned tree.
 *
 * Children of arrays/objects are collected on one shared value stack while
 * they are parsed and copied into the arena when the container closes, so a
 * document costs one arena plus one stack regardless of its shape. Numbers
 * are converted with strtod_l in the "C" locale because the JVM that hosts
 * the library may have set a locale with a decimal comma.
 */
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_block;

struct json_doc {
    arena_block *blocks;
    json_value root;
};

typedef struct parser {
    const unsigned char *p, *end, *start;
    json_doc *doc;
    json_value *stack;
    size_t sp, scap;
    char *err;
    size_t err_cap;
    int failed;
} parser;

static void *arena_alloc(json_doc *d, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = d->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = d->blocks;
        d->blocks = b;
    }
    void *r = b->data + b->used;
    b->used += n;
    return r;
}

static int perr(parser *ps, const char *fmt, ...) {
    if (ps->failed) return -1;
    ps->failed = 1;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ps->err && ps->err_cap)
        snprintf(ps->err, ps->err_cap, "JSON: %s at byte %zu", msg, (size_t)(ps->p - ps->start));
    return -1;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int push(parser *ps, const json_value *v) {
    if (ps->sp == ps->scap) {
        size_t nc = ps->scap ? ps->scap * 2 : 256;
        json_value *ns = realloc(ps->stack, nc * sizeof *ns);
        if (!ns) return perr(ps, "out of memory");
        ps->stack = ns;
        ps->scap = nc;
    }
    ps->stack[ps->sp++] = *v;
    return 0;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(parser *ps, unsigned *out) {
    if (ps->end - ps->p < 4) return perr(ps, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0) return perr(ps, "bad hex digit in \\u escape");
        v = v * 16 + (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(unsigned char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 63); return 2; }
    if (cp < 0x10000) { o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 63); o[2] = 0x80 | (cp & 63); return 3; }
    o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 63); o[2] = 0x80 | ((cp >> 6) & 63); o[3] = 0x80 | (cp & 63);
    return 4;
}

/* Length of a well-formed UTF-8 sequence at p (<= end), or 0 if malformed. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; min = 0x10000; }
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    unsigned cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 63);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

static int parse_string(parser *ps, json_value *out) {
    ps->p++; /* opening quote */
    /* Escapes only shrink the text, so the raw span bounds the decoded size. */
    const unsigned char *q = ps->p;
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end) return perr(ps, "unterminated string");
    size_t raw = (size_t)(q - ps->p);
    unsigned char *o = arena_alloc(ps->doc, raw + 1);
    if (!o) return perr(ps, "out of memory");
    size_t n = 0;
    while (1) {
        if (ps->p >= ps->end) return perr(ps, "unterminated string");
        unsigned c = *ps->p;
        if (c == '"') { ps->p++; break; }
        if (c < 0x20) return perr(ps, "control character in string");
        if (c == '\\') {
            if (ps->end - ps->p < 2) return perr(ps, "truncated escape");
            unsigned e = ps->p[1];
            ps->p += 2;
            switch (e) {
            case '"': o[n++] = '"'; break;
            case '\\': o[n++] = '\\'; break;
            case '/': o[n++] = '/'; break;
            case 'b': o[n++] = '\b'; break;
            case 'f': o[n++] = '\f'; break;
            case 'n': o[n++] = '\n'; break;
            case 'r': o[n++] = '\r'; break;
            case 't': o[n++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (read_hex4(ps, &cp)) return -1;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u')
                        return perr(ps, "unpaired high surrogate");
                    ps->p += 2;
                    if (read_hex4(ps, &lo)) return -1;
                    if (lo < 0xDC00 || lo > 0xDFFF) return perr(ps, "unpaired high surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return perr(ps, "unpaired low surrogate");
                }
                n += put_utf8(o + n, cp); /* <= 4 bytes from >= 6 raw bytes */
                break;
            }
            default: return perr(ps, "bad escape \\%c", (int)e);
            }
        } else {
            size_t l = utf8_len(ps->p, ps->end);
            if (!l) return perr(ps, "invalid UTF-8 in string");
            memcpy(o + n, ps->p, l);
            n += l;
            ps->p += l;
        }
    }
    o[n] = 0;
    out->type = JSON_STRING;
    out->u.str.s = (const char *)o;
    out->u.str.len = n;
    return 0;
}

static locale_t g_c_locale;
static pthread_once_t g_c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) { g_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static int parse_number(parser *ps, json_value *out) {
    const unsigned char *s = ps->p, *p = ps->p;
    bool integral = true;
    if (p < ps->end && *p == '-') p++;
    if (p >= ps->end) return perr(ps, "bad number");
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < ps->end && *p >= '0' && *p <= '9') p++;
    else return perr(ps, "bad number");
    if (p < ps->end && *p == '.') {
        integral = false;
        p++;
        if (p >= ps->end || *p < '0' || *p > '9') return perr(ps, "bad number: digit expected after '.'");
        while (p < ps->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        integral = false;
        p++;
        if (p < ps->end && (*p == '+' || *p == '-')) p++;
        if (p >= ps->end || *p < '0' || *p > '9') return perr(ps, "bad number: digit expected in exponent");
        while (p < ps->end && *p >= '0' && *p <= '9') p++;
    }
    size_t len = (size_t)(p - s);
    char small[64];
    char *tmp = len < sizeof small ? small : malloc(len + 1);
    if (!tmp) return perr(ps, "out of memory");
    memcpy(tmp, s, len);
    tmp[len] = 0;
    out->type = JSON_NUMBER;
    out->u.num.is_int = false;
    out->u.num.i = 0;
    if (integral) {
        errno = 0;
        long long v = strtoll(tmp, NULL, 10);
        if (errno == 0) { out->u.num.is_int = true; out->u.num.i = v; }
    }
    pthread_once(&g_c_locale_once, make_c_locale);
    out->u.num.d = g_c_locale ? strtod_l(tmp, NULL, g_c_locale) : strtod(tmp, NULL);
    if (tmp != small) free(tmp);
    ps->p = p;
    return 0;
}

static int parse_value(parser *ps, json_value *out, int depth);

static int parse_container(parser *ps, json_value *out, int depth, bool is_obj) {
    if (depth >= JSON_MAX_DEPTH) return perr(ps, "nesting deeper than %d", JSON_MAX_DEPTH);
    ps->p++;
    size_t base = ps->sp;
    skip_ws(ps);
    char close = is_obj ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        while (1) {
            json_value v;
            skip_ws(ps);
            if (is_obj) {
                if (ps->p >= ps->end || *ps->p != '"') return perr(ps, "object key (string) expected");
                if (parse_string(ps, &v) || push(ps, &v)) return -1;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') return perr(ps, "':' expected");
                ps->p++;
                skip_ws(ps);
            }
            if (parse_value(ps, &v, depth + 1) || push(ps, &v)) return -1;
            skip_ws(ps);
            if (ps->p >= ps->end) return perr(ps, "unterminated %s", is_obj ? "object" : "array");
            if (*ps->p == ',') { ps->p++; continue; }
            if (*ps->p == close) { ps->p++; break; }
            return perr(ps, "',' or '%c' expected", close);
        }
    }
    size_t n = ps->sp - base;
    if (is_obj) {
        size_t m = n / 2;
        json_value *keys = arena_alloc(ps->doc, (m ? m : 1) * sizeof *keys);
        json_value *vals = arena_alloc(ps->doc, (m ? m : 1) * sizeof *vals);
        if (!keys || !vals) return perr(ps, "out of memory");
        for (size_t i = 0; i < m; i++) {
            keys[i] = ps->stack[base + 2 * i];
            vals[i] = ps->stack[base + 2 * i + 1];
        }
        out->type = JSON_OBJECT;
        out->u.obj.keys = keys;
        out->u.obj.vals = vals;
        out->u.obj.n = m;
    } else {
        json_value *items = arena_alloc(ps->doc, (n ? n : 1) * sizeof *items);
        if (!items) return perr(ps, "out of memory");
        memcpy(items, ps->stack + base, n * sizeof *items);
        out->type = JSON_ARRAY;
        out->u.arr.items = items;
        out->u.arr.n = n;
    }
    ps->sp = base;
    return 0;
}

static int literal(parser *ps, const char *word) {
    size_t l = strlen(word);
    if ((size_t)(ps->end - ps->p) < l || memcmp(ps->p, word, l)) return perr(ps, "unexpected character");
    ps->p += l;
    return 0;
}

static int parse_value(parser *ps, json_value *out, int depth) {
    skip_ws(ps);
    if (ps->p >= ps->end) return perr(ps, "value expected");
    memset(out, 0, sizeof *out);
    switch (*ps->p) {
    case '{': return parse_container(ps, out, depth, true);
    case '[': return parse_container(ps, out, depth, false);
    case '"': return parse_string(ps, out);
    case 't': out->type = JSON_BOOL; out->u.b = true; return literal(ps, "true");
    case 'f': out->type = JSON_BOOL; out->u.b = false; return literal(ps, "false");
    case 'n': out->type = JSON_NULL; return literal(ps, "null");
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps, out);
        return perr(ps, "unexpected character 0x%02x", *ps->p);
    }
}

void json_free(json_doc *doc) {
    if (!doc) return;
    arena_block *b = doc->blocks;
    while (b) {
        arena_block *n = b->next;
        free(b);
        b = n;
    }
    free(doc);
}

int json_parse(json_doc **out, const char *buf, size_t len, char *err, size_t err_cap) {
    *out = NULL;
    if (!buf && len) {
        if (err && err_cap) snprintf(err, err_cap, "JSON: NULL buffer");
        return DS4J_ERR_INVALID_ARGUMENT;
    }
    if (len > JSON_MAX_FILE_BYTES) {
        if (err && err_cap) snprintf(err, err_cap, "JSON: document of %zu bytes exceeds the limit", len);
        return DS4J_ERR_FORMAT;
    }
    json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) return DS4J_ERR_NO_MEMORY;
    parser ps = {0};
    ps.start = ps.p = (const unsigned char *)buf;
    ps.end = ps.p + len;
    ps.doc = doc;
    ps.err = err;
    ps.err_cap = err_cap;
    if (len >= 3 && ps.p[0] == 0xEF && ps.p[1] == 0xBB && ps.p[2] == 0xBF) ps.p += 3; /* tolerate a BOM */
    int rc = parse_value(&ps, &doc->root, 0);
    if (!rc) {
        skip_ws(&ps);
        if (ps.p != ps.end) rc = perr(&ps, "trailing characters after the document");
    }
    free(ps.stack);
    if (rc) {
        json_free(doc);
        return DS4J_ERR_FORMAT;
    }
    *out = doc;
    return 0;
}

int json_parse_file(json_doc **out, const char *path, char *err, size_t err_cap) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err && err_cap) snprintf(err, err_cap, "%s: %s", path, strerror(errno));
        return DS4J_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > JSON_MAX_FILE_BYTES) {
        if (err && err_cap) snprintf(err, err_cap, "%s: not a regular file of at most %zu bytes", path, JSON_MAX_FILE_BYTES);
        close(fd);
        return DS4J_ERR_IO;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n ? n : 1);
    if (!buf) { close(fd); return DS4J_ERR_NO_MEMORY; }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(buf);
        if (err && err_cap) snprintf(err, err_cap, "%s: short read", path);
        return DS4J_ERR_IO;
    }
    char sub[300];
    int rc = json_parse(out, buf, n, sub, sizeof sub);
    free(buf);
    if (rc && err && err_cap) snprintf(err, err_cap, "%s: %s", path, sub);
    return rc;
}

const json_value *json_root(const json_doc *doc) { return doc ? &doc->root : NULL; }

const json_value *json_get(const json_value *v, const char *key) {
    if (!v || v->type != JSON_OBJECT || !key) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < v->u.obj.n; i++) {
        const json_value *k = &v->u.obj.keys[i];
        if (k->u.str.len == kl && !memcmp(k->u.str.s, key, kl)) return &v->u.obj.vals[i];
    }
    return NULL;
}

bool json_as_int(const json_value *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER) return false;
    if (v->u.num.is_int) { *out = v->u.num.i; return true; }
    /* 16.0 style floats that are exact integers are accepted too. */
    double d = v->u.num.d;
    if (d >= -9.0e15 && d <= 9.0e15 && d == (double)(int64_t)d) { *out = (int64_t)d; return true; }
    return false;
}
bool json_as_num(const json_value *v, double *out) {
    if (!v || v->type != JSON_NUMBER) return false;
    *out = v->u.num.d;
    return true;
}
bool json_as_bool(const json_value *v, bool *out) {
    if (!v || v->type != JSON_BOOL) return false;
    *out = v->u.b;
    return true;
}
const char *json_as_str(const json_value *v) { return v && v->type == JSON_STRING ? v->u.str.s : NULL; }
bool json_get_int(const json_value *o, const char *k, int64_t *out) { return json_as_int(json_get(o, k), out); }
bool json_get_num(const json_value *o, const char *k, double *out) { return json_as_num(json_get(o, k), out); }
bool json_get_bool(const json_value *o, const char *k, bool *out) { return json_as_bool(json_get(o, k), out); }
const char *json_get_str(const json_value *o, const char *k) { return json_as_str(json_get(o, k)); }
