/*
 * cmd_info.c — `ds4j-tool info FILE.gguf`: everything the GGUF reader sees in
 * a file (header, every metadata key with its type and value, the tensor
 * table) and, for deepseek4 files, a parameter summary: total, per routed
 * expert and active per token. Uses only gguf.h and quants.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quants.h"
#include "tool.h"

#define STR_SHOW 72 /* characters of a string value shown before "..." */

static void usage(FILE *out) {
    fprintf(out,
            "usage: ds4j-tool info FILE.gguf [--elems N] [--no-tensors]\n"
            "  --elems N      array elements shown per metadata key (default 8)\n"
            "  --no-tensors   skip the tensor table\n");
}

/* Strings are not NUL-terminated and may hold anything: print escaped. */
static void print_str(const gguf_string *s, uint64_t max) {
    putchar('"');
    uint64_t n = s->len < max ? s->len : max;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s->ptr[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
    if (n < s->len) printf("... (%" PRIu64 " bytes)", s->len);
}

static void print_scalar_elem(const gguf_kv *kv, uint64_t i) {
    int32_t t = gguf_kv_arr_type(kv);
    int64_t iv;
    double dv;
    if (t == GGUF_T_FLOAT32 || t == GGUF_T_FLOAT64) {
        if (gguf_kv_arr_float(kv, i, &dv)) printf("%.9g", dv);
    } else if (t == GGUF_T_BOOL) {
        if (gguf_kv_arr_int(kv, i, &iv)) fputs(iv ? "true" : "false", stdout);
    } else if (t == GGUF_T_UINT64) {
        uint64_t uv;
        if (gguf_kv_arr_uint(kv, i, &uv)) printf("%" PRIu64, uv);
    } else if (gguf_kv_arr_int(kv, i, &iv)) {
        printf("%" PRId64, iv);
    }
}

static void print_value(const gguf_kv *kv, uint64_t max_elems) {
    int32_t t = gguf_kv_type(kv);
    int64_t iv;
    double dv;
    gguf_string s;
    if (t == GGUF_T_STRING && gguf_kv_get_str(kv, &s)) {
        print_str(&s, STR_SHOW);
    } else if (t == GGUF_T_ARRAY) {
        uint64_t n = gguf_kv_arr_len(kv);
        int32_t et = gguf_kv_arr_type(kv);
        printf("[%s x %" PRIu64 "] [", gguf_value_type_name(et), n);
        for (uint64_t i = 0; i < n && i < max_elems; i++) {
            if (i) fputs(", ", stdout);
            if (et == GGUF_T_STRING) {
                if (gguf_kv_arr_str(kv, i, &s)) print_str(&s, 24);
            } else if (et == GGUF_T_ARRAY) {
                print_value(gguf_kv_arr_elem(kv, i), max_elems);
            } else {
                print_scalar_elem(kv, i);
            }
        }
        if (n > max_elems) fputs(", ...", stdout);
        putchar(']');
    } else if (t == GGUF_T_FLOAT32 || t == GGUF_T_FLOAT64) {
        if (gguf_kv_get_float(kv, &dv)) printf("%.9g", dv);
    } else if (t == GGUF_T_BOOL) {
        if (gguf_kv_get_int(kv, &iv)) fputs(iv ? "true" : "false", stdout);
    } else if (t == GGUF_T_UINT64) {
        uint64_t uv;
        if (gguf_kv_get_uint(kv, &uv)) printf("%" PRIu64, uv);
    } else if (gguf_kv_get_int(kv, &iv)) {
        printf("%" PRId64, iv);
    }
}

static int64_t elements(const gguf_tensor *t) {
    int64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d]; /* the reader checked this cannot overflow */
    return n;
}

static const char *type_name(int32_t type) {
    const ds4j_type_traits *t = ds4j_type_get(type);
    if (t) return t->name;
    const char *n = gguf_ggml_type_name(type); /* ggml types quants.c does not list */
    return n ? n : "?";
}

static const char *engine_support(int32_t type) {
    const ds4j_type_traits *t = ds4j_type_get(type);
    return t && t->supported ? "" : "  (engine cannot compute with this type)";
}

static void human(double bytes, char *out, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024 && i < 4) {
        bytes /= 1024;
        i++;
    }
    snprintf(out, cap, i ? "%.2f %s" : "%.0f %s", bytes, u[i]);
}

static void human_count(double n, char *out, size_t cap) {
    if (n >= 1e9) snprintf(out, cap, "%.2fB", n / 1e9);
    else if (n >= 1e6) snprintf(out, cap, "%.2fM", n / 1e6);
    else if (n >= 1e3) snprintf(out, cap, "%.2fK", n / 1e3);
    else snprintf(out, cap, "%.0f", n);
}

static bool kv_int(const gguf_file *f, const char *key, int64_t *out) {
    return gguf_kv_get_int(gguf_find_kv(f, key), out);
}

/* "blk.N.<suffix>" with N decimal. */
static bool is_layer_tensor(const char *name, const char *suffix) {
    if (strncmp(name, "blk.", 4)) return false;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return false;
    while (*p >= '0' && *p <= '9') p++;
    return *p == '.' && !strcmp(p + 1, suffix);
}

static void deepseek4_summary(const gguf_file *f) {
    int64_t E = 0, k = 0, L = 0;
    bool haveE = kv_int(f, "deepseek4.expert_count", &E);
    bool haveK = kv_int(f, "deepseek4.expert_used_count", &k);
    kv_int(f, "deepseek4.block_count", &L);
    double total = 0, embd = 0, routed = 0, bytes = 0, routed_bytes = 0;
    int64_t layers_with_experts = 0, exp_tensors = 0;
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        double n = (double)elements(t);
        total += n;
        bytes += (double)t->nbytes;
        if (!strcmp(t->name, "token_embd.weight")) embd += n;
        if (is_layer_tensor(t->name, "ffn_gate_exps.weight") || is_layer_tensor(t->name, "ffn_up_exps.weight") ||
            is_layer_tensor(t->name, "ffn_down_exps.weight")) {
            routed += n;
            routed_bytes += (double)t->nbytes;
            exp_tensors++;
            if (is_layer_tensor(t->name, "ffn_gate_exps.weight")) layers_with_experts++;
            if (!haveE && t->n_dims == 3) E = t->ne[2];
        }
    }
    char a[32], b[32];
    printf("\ndeepseek4 summary:\n");
    if (L) printf("  layers                    %" PRId64 "\n", L);
    human_count(total, a, sizeof a);
    printf("  total parameters          %.0f (%s)\n", total, a);
    human(bytes, a, sizeof a);
    printf("  total tensor bytes        %.0f (%s, %.3f bits/param)\n", bytes, a, total > 0 ? bytes * 8 / total : 0.0);
    if (!exp_tensors) {
        printf("  routed experts            none found (no blk.N.ffn_{gate,up,down}_exps.weight)\n");
        return;
    }
    if (E <= 0) {
        printf("  routed experts            expert count unknown (deepseek4.expert_count missing)\n");
        return;
    }
    /* a `ds4j-tool slice` file stores only experts [start, end) of E */
    int64_t s0 = 0, s1 = 0, En = E;
    if (kv_int(f, "ds4j.expert_slice.start", &s0) && kv_int(f, "ds4j.expert_slice.end", &s1) && s0 >= 0 && s0 < s1 &&
        s1 <= E) {
        En = s1 - s0;
        printf("  expert slice              experts %" PRId64 ":%" PRId64 " of %" PRId64 " stored (ds4j-tool slice)\n", s0,
               s1, E);
    }
    double per_expert = routed / (double)En; /* summed over layers */
    double per_expert_layer = layers_with_experts ? per_expert / (double)layers_with_experts : per_expert;
    human_count(routed, a, sizeof a);
    human(routed_bytes, b, sizeof b);
    printf("  routed expert parameters  %.0f (%s, %s) in %" PRId64 " layers x %" PRId64 " experts\n", routed, a, b,
           layers_with_experts, En);
    human_count(per_expert_layer, a, sizeof a);
    printf("  params per routed expert  %.0f per layer (%s), %.0f over all layers\n", per_expert_layer, a, per_expert);
    double non_expert = total - routed - embd;
    human_count(non_expert, a, sizeof a);
    printf("  non-expert parameters     %.0f (%s, excluding token_embd: %.0f)\n", non_expert, a, embd);
    if (!haveK) {
        printf("  active parameters/token   unknown (deepseek4.expert_used_count missing)\n");
        return;
    }
    double active = non_expert + (double)k * per_expert;
    human_count(active, a, sizeof a);
    printf("  active parameters/token   %.0f (%s) = non-expert + %" PRId64 " experts x %.0f\n", active, a, k, per_expert);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    uint64_t max_elems = 8;
    bool tensors = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--elems") && i + 1 < argc) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v < 0) {
                fprintf(stderr, "info: --elems needs a non-negative number\n");
                return 2;
            }
            max_elems = (uint64_t)v;
        } else if (!strcmp(argv[i], "--no-tensors")) {
            tensors = false;
        } else if (argv[i][0] == '-' || path) {
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    gguf_file *f = NULL;
    char err[1024];
    if (gguf_open(&f, path, err, sizeof err) != 0) {
        fprintf(stderr, "info: %s\n", err);
        return 1;
    }
    char hs[32];
    human((double)gguf_file_size(f), hs, sizeof hs);
    printf("file:        %s\n", path);
    printf("size:        %" PRIu64 " bytes (%s)\n", gguf_file_size(f), hs);
    printf("version:     %u\n", gguf_version(f));
    printf("alignment:   %" PRIu64 "\n", gguf_alignment(f));
    printf("data offset: %" PRIu64 "\n", gguf_data_offset(f));
    printf("\nmetadata (%" PRId64 " keys):\n", gguf_kv_count(f));
    for (int64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        printf("  %-48s %-7s = ", gguf_kv_key(kv), gguf_value_type_name(gguf_kv_type(kv)));
        print_value(kv, max_elems);
        putchar('\n');
    }
    if (tensors) {
        printf("\ntensors (%" PRId64 "):\n", gguf_tensor_count(f));
        printf("  %5s  %-44s %-8s %-28s %14s %14s\n", "#", "name", "type", "ne", "bytes", "offset");
        for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            char shape[96];
            int o = snprintf(shape, sizeof shape, "[");
            for (uint32_t d = 0; d < t->n_dims && o < (int)sizeof shape; d++)
                o += snprintf(shape + o, sizeof shape - o, "%s%" PRId64, d ? ", " : "", t->ne[d]);
            if (o < (int)sizeof shape) snprintf(shape + o, sizeof shape - o, "]");
            printf("  %5" PRId64 "  %-44s %-8s %-28s %14" PRIu64 " %14" PRIu64 "\n", i, t->name, type_name(t->type),
                   shape, t->nbytes, t->offset);
        }
    }
    /* bytes per tensor type */
    uint64_t by_type[64] = {0};
    int64_t cnt_type[64] = {0};
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (t->type >= 0 && t->type < 64) {
            by_type[t->type] += t->nbytes;
            cnt_type[t->type]++;
        }
    }
    printf("\nbytes by type:\n");
    for (int i = 0; i < 64; i++)
        if (cnt_type[i]) {
            human((double)by_type[i], hs, sizeof hs);
            printf("  %-8s %5" PRId64 " tensors %14" PRIu64 " bytes (%s)%s\n", type_name(i), cnt_type[i], by_type[i], hs,
                   engine_support(i));
        }

    gguf_string arch;
    if (gguf_kv_get_str(gguf_find_kv(f, "general.architecture"), &arch) && arch.len == 9 &&
        !memcmp(arch.ptr, "deepseek4", 9))
        deepseek4_summary(f);
    gguf_close(f);
    return 0;
}
