/* test_gguf.c — the GGUF reader and writer: a writer→reader round trip of
 * every value type (incl. string arrays and nested arrays) and of tensors of
 * several types and alignments, copy of a file through gguf_writer_set_kv,
 * writer failures leaving no file behind, every crafted bad file in
 * tests/data/bad failing with its own message, every truncated prefix of a
 * valid file failing cleanly, and seeded random byte flips never crashing.
 *
 * `test_gguf --regen` rewrites tests/data/bad and tests/data/seed from the
 * generators below; the test itself checks the committed files match them. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "gguf.h"
#include "quants.h"

static int failures;
#define CHECK(c)                                                                          \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);         \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

/* ---- byte builder for hand-made files ---- */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u32(bb *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, x, 4);
}
static void bb_u64(bb *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, x, 8);
}
static void bb_strn(bb *b, const char *s, size_t n) {
    bb_u64(b, n);
    bb_put(b, s, n);
}
static void bb_str(bb *b, const char *s) { bb_strn(b, s, strlen(s)); }
static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, GGUF_T_UINT32);
    bb_u32(b, v);
}
static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_u64(b, (uint64_t)ne[d]);
    bb_u32(b, type);
    bb_u64(b, off);
}
static void bb_pad(bb *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}
static void bb_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) bb_u8(b, 0);
}

/* ---- crafted bad files: each builder returns the bytes, the table says
 * which message substring the reader must produce ---- */
typedef void (*gen_fn)(bb *b);

static void g_bad_magic(bb *b) { bb_put(b, "GGUX", 4); bb_u32(b, 3); bb_u64(b, 0); bb_u64(b, 0); }
static void g_version1(bb *b) { bb_header(b, 1, 0, 0); }
static void g_version4(bb *b) { bb_header(b, 4, 0, 0); }
static void g_bigendian(bb *b) { bb_header(b, 0x03000000u, 0, 0); }
static void g_trunc_header(bb *b) { bb_put(b, "GGUF", 4); bb_u32(b, 3); bb_u32(b, 0); }
static void g_huge_kv_count(bb *b) { bb_header(b, 3, 0, 1ull << 60); bb_kv_u32(b, "a", 1); }
static void g_huge_tensor_count(bb *b) { bb_header(b, 3, 1ull << 40, 0); bb_zeros(b, 64); }
static void g_key_len_beyond(bb *b) { bb_header(b, 3, 0, 1); bb_u64(b, 1000); bb_put(b, "abc", 3); bb_zeros(b, 20); }
static void g_str_beyond(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "general.name");
    bb_u32(b, GGUF_T_STRING);
    bb_u64(b, 0xffffffffffffull);
    bb_put(b, "xyz", 3);
}
static void g_array_len_beyond(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "arr");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_UINT32);
    bb_u64(b, 1000000);
    bb_u32(b, 1);
    bb_u32(b, 2);
}
static void g_str_array_elem_trunc(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "tokenizer.ggml.tokens");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_STRING);
    bb_u64(b, 3);
    bb_str(b, "a");
    bb_str(b, "bc");
    bb_u64(b, 50); /* element 2 claims 50 bytes */
    bb_put(b, "def", 3);
}
static void g_duplicate_key(bb *b) { bb_header(b, 3, 0, 2); bb_kv_u32(b, "a.b", 1); bb_kv_u32(b, "a.b", 2); }
static void g_unknown_value_type(bb *b) { bb_header(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, 13); bb_u32(b, 0); }
static void g_unknown_array_type(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "k");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, 77);
    bb_u64(b, 1);
    bb_u32(b, 0);
}
static void g_nested_too_deep(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "deep");
    bb_u32(b, GGUF_T_ARRAY);
    for (int i = 0; i < 20; i++) {
        bb_u32(b, GGUF_T_ARRAY);
        bb_u64(b, 1);
    }
    bb_u32(b, GGUF_T_UINT8);
    bb_u64(b, 0);
}
static void g_nested_elem_trunc(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "nest");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_ARRAY);
    bb_u64(b, 2);
    bb_u32(b, GGUF_T_UINT8); bb_u64(b, 2); bb_u8(b, 1); bb_u8(b, 2);
    bb_u32(b, GGUF_T_UINT32); bb_u64(b, 2); bb_u32(b, 7); /* second element short by 4 bytes */
}
static void g_bad_bool(bb *b) { bb_header(b, 3, 0, 1); bb_str(b, "flag"); bb_u32(b, GGUF_T_BOOL); bb_u8(b, 2); bb_zeros(b, 8); }
static void g_empty_key(bb *b) { bb_header(b, 3, 0, 1); bb_str(b, ""); bb_u32(b, GGUF_T_UINT32); bb_u32(b, 0); bb_zeros(b, 8); }
static void g_nul_in_key(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_strn(b, "ab\0cd", 5);
    bb_u32(b, GGUF_T_UINT32);
    bb_u32(b, 0);
}
static void g_align_not_pow2(bb *b) { bb_header(b, 3, 0, 1); bb_kv_u32(b, "general.alignment", 48); }
static void g_align_wrong_type(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "general.alignment");
    bb_u32(b, GGUF_T_UINT64);
    bb_u64(b, 64);
}
static void one_tensor(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t off,
                       size_t data_bytes) {
    bb_header(b, 3, 1, 0);
    bb_tensor(b, name, n_dims, ne, type, off);
    bb_pad(b, 32);
    bb_zeros(b, data_bytes);
}
static void g_dup_tensor(bb *b) {
    int64_t ne[1] = {8};
    bb_header(b, 3, 2, 0);
    bb_tensor(b, "w", 1, ne, 0, 0);
    bb_tensor(b, "w", 1, ne, 0, 32);
    bb_pad(b, 32);
    bb_zeros(b, 64);
}
static void g_unknown_tensor_type(bb *b) { int64_t ne[1] = {8}; one_tensor(b, "w", 1, ne, 99, 0, 64); }
static void g_ndims_zero(bb *b) { int64_t ne[1] = {8}; one_tensor(b, "w", 0, ne, 0, 0, 64); }
static void g_ndims_five(bb *b) { int64_t ne[5] = {1, 1, 1, 1, 1}; one_tensor(b, "w", 5, ne, 0, 0, 64); }
static void g_zero_dim(bb *b) { int64_t ne[2] = {4, 0}; one_tensor(b, "w", 2, ne, 0, 0, 64); }
static void g_negative_dim(bb *b) { int64_t ne[2] = {-5, 2}; one_tensor(b, "w", 2, ne, 0, 0, 64); }
static void g_ne0_not_block(bb *b) { int64_t ne[2] = {33, 2}; one_tensor(b, "w", 2, ne, 8, 0, 128); }
static void g_size_overflow(bb *b) {
    int64_t ne[4] = {1ll << 20, 1ll << 20, 1ll << 20, 1ll << 20};
    one_tensor(b, "big", 4, ne, 0, 0, 64);
}
static void g_offset_unaligned(bb *b) { int64_t ne[1] = {4}; one_tensor(b, "w", 1, ne, 0, 8, 64); }
static void g_data_beyond_eof(bb *b) { int64_t ne[2] = {16, 16}; one_tensor(b, "w", 2, ne, 0, 0, 1000); }
static void g_overlap(bb *b) {
    int64_t ne[1] = {16}; /* 64 bytes each */
    bb_header(b, 3, 2, 0);
    bb_tensor(b, "first", 1, ne, 0, 0);
    bb_tensor(b, "second", 1, ne, 0, 32);
    bb_pad(b, 32);
    bb_zeros(b, 128);
}
static void g_tensor_info_trunc(bb *b) {
    int64_t ne[1] = {8};
    bb_header(b, 3, 2, 0);
    bb_tensor(b, "a", 1, ne, 0, 0);
    bb_str(b, "b");
    bb_u32(b, 2);
    bb_u64(b, 8);
    bb_u64(b, 2);
    bb_u32(b, 0);
    bb_zeros(b, 4); /* offset short by 4 bytes */
}
static void g_no_data_section(bb *b) {
    int64_t ne[1] = {8};
    bb_header(b, 3, 1, 0);
    bb_tensor(b, "w", 1, ne, 0, 0); /* ends at 24+8+1+4+8+4+8 = 57, data would start at 64 */
}

static void g_value_truncated(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "n");
    bb_u32(b, GGUF_T_UINT64);
    bb_put(b, "\1\2\3", 3);
    bb_zeros(b, 8);
    b->n -= 8; /* keep the builder simple: the file ends 5 bytes short */
}
static void g_align_zero(bb *b) { bb_header(b, 3, 0, 1); bb_kv_u32(b, "general.alignment", 0); }
static void g_str_array_huge(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "tokenizer.ggml.tokens");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_STRING);
    bb_u64(b, 1ull << 61);
    bb_str(b, "a");
}
static void g_nested_huge(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "nest");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_ARRAY);
    bb_u64(b, 1ull << 40);
    bb_zeros(b, 40);
}
static void g_bad_bool_array(bb *b) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "flags");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_BOOL);
    bb_u64(b, 3);
    bb_u8(b, 1);
    bb_u8(b, 7);
    bb_u8(b, 0);
}
static void g_tensor_name_beyond(bb *b) {
    bb_header(b, 3, 1, 0);
    bb_u64(b, 1ull << 33);
    bb_put(b, "name", 4);
    bb_zeros(b, 40);
}
static void g_nul_in_tensor_name(bb *b) {
    int64_t ne[1] = {8};
    bb_header(b, 3, 1, 0);
    bb_strn(b, "w\0x", 3);
    bb_u32(b, 1);
    bb_u64(b, (uint64_t)ne[0]);
    bb_u32(b, 0);
    bb_u64(b, 0);
    bb_pad(b, 32);
    bb_zeros(b, 32);
}
static void g_offset_huge(bb *b) { int64_t ne[1] = {8}; one_tensor(b, "w", 1, ne, 0, 0xffffffffffffffe0ull, 64); }
static void g_ne_beyond_int64(bb *b) { int64_t ne[2] = {8, INT64_MIN}; one_tensor(b, "w", 2, ne, 0, 0, 64); }
static void g_removed_type(bb *b) { int64_t ne[1] = {32}; one_tensor(b, "w", 1, ne, 4, 0, 64); }

static const struct {
    const char *file;
    gen_fn gen;
    const char *expect;
} BAD[] = {
    {"bad_magic.gguf", g_bad_magic, "bad magic"},
    {"version1.gguf", g_version1, "version 1 is not supported"},
    {"version4.gguf", g_version4, "unsupported GGUF version 4"},
    {"big_endian.gguf", g_bigendian, "big-endian"},
    {"truncated_header.gguf", g_trunc_header, "truncated: header: tensor count"},
    {"huge_kv_count.gguf", g_huge_kv_count, "metadata count 1152921504606846976 is impossible"},
    {"huge_tensor_count.gguf", g_huge_tensor_count, "tensor count 1099511627776 is impossible"},
    {"key_len_beyond.gguf", g_key_len_beyond, "metadata entry 0 of 1: key has length 1000"},
    {"string_len_beyond.gguf", g_str_beyond, "key 'general.name': string value has length"},
    {"array_len_beyond.gguf", g_array_len_beyond, "key 'arr': array of 1000000 uint32 elements"},
    {"string_array_elem_truncated.gguf", g_str_array_elem_trunc,
     "key 'tokenizer.ggml.tokens': string element 2 of 3 has length 50"},
    {"duplicate_key.gguf", g_duplicate_key, "duplicate metadata key 'a.b'"},
    {"unknown_value_type.gguf", g_unknown_value_type, "key 'k': unknown value type 13"},
    {"unknown_array_type.gguf", g_unknown_array_type, "key 'k': unknown array element type 77"},
    {"nested_too_deep.gguf", g_nested_too_deep, "key 'deep': arrays nested more than"},
    {"nested_element_truncated.gguf", g_nested_elem_trunc, "(in element 1 of 2 of a nested array)"},
    {"bad_bool.gguf", g_bad_bool, "key 'flag': bool value is 2"},
    {"empty_key.gguf", g_empty_key, "key is empty"},
    {"nul_in_key.gguf", g_nul_in_key, "key contains a NUL byte"},
    {"alignment_not_pow2.gguf", g_align_not_pow2, "'general.alignment' = 48 is not a power of two"},
    {"alignment_wrong_type.gguf", g_align_wrong_type, "'general.alignment' must be uint32, found uint64"},
    {"duplicate_tensor.gguf", g_dup_tensor, "duplicate tensor name 'w'"},
    {"unknown_tensor_type.gguf", g_unknown_tensor_type, "tensor 'w': unknown tensor type 99"},
    {"ndims_zero.gguf", g_ndims_zero, "tensor 'w': n_dims is 0"},
    {"ndims_five.gguf", g_ndims_five, "tensor 'w': n_dims is 5"},
    {"zero_dim.gguf", g_zero_dim, "tensor 'w': ne[1] = 0, expected a positive dimension"},
    {"negative_dim.gguf", g_negative_dim, "tensor 'w': ne[0] = -5, expected a positive dimension"},
    {"ne0_not_block_multiple.gguf", g_ne0_not_block, "tensor 'w': ne[0] = 33 is not a multiple of the Q8_0 block size 32"},
    {"size_overflow.gguf", g_size_overflow, "tensor 'big': size of shape overflows"},
    {"offset_unaligned.gguf", g_offset_unaligned, "tensor 'w': data offset 8 is not a multiple of the alignment 32"},
    {"data_beyond_eof.gguf", g_data_beyond_eof, "tensor 'w': data [0, +1024) extends beyond the end of the file"},
    {"overlap.gguf", g_overlap, "tensor 'first' data [0, 64) overlaps tensor 'second'"},
    {"tensor_info_truncated.gguf", g_tensor_info_trunc, "tensor 'b': offset needs 8 bytes"},
    {"value_truncated.gguf", g_value_truncated, "key 'n': uint64 needs 8 bytes at offset 37, only 3 left"},
    {"alignment_zero.gguf", g_align_zero, "'general.alignment' = 0 is not a power of two"},
    {"string_array_huge_count.gguf", g_str_array_huge, "array of 2305843009213693952 string elements needs at least 8 bytes"},
    {"nested_array_huge_count.gguf", g_nested_huge, "array of 1099511627776 array elements needs at least 12 bytes"},
    {"bad_bool_array.gguf", g_bad_bool_array, "key 'flags': bool array element 1 has value 7"},
    {"tensor_name_beyond.gguf", g_tensor_name_beyond, "tensor info 0 of 1: name has length 8589934592"},
    {"nul_in_tensor_name.gguf", g_nul_in_tensor_name, "tensor info 0 of 1: tensor name contains a NUL byte"},
    {"offset_huge.gguf", g_offset_huge, "tensor 'w': data [18446744073709551584, +32) extends beyond the end"},
    {"ne_beyond_int64.gguf", g_ne_beyond_int64, "tensor 'w': ne[1] = -9223372036854775808, expected a positive"},
    {"removed_tensor_type.gguf", g_removed_type, "tensor 'w': unknown tensor type 4"},
    {"no_data_section.gguf", g_no_data_section, "data section starts at offset 64 but the file has 57 bytes"},
};
#define N_BAD (sizeof BAD / sizeof BAD[0])

/* ---- walking every kv and tensor (what a careless consumer would do) ---- */
static uint64_t walk_kv(const gguf_kv *kv, int depth) {
    uint64_t h = 0;
    int64_t iv;
    double dv;
    gguf_string s;
    if (gguf_kv_get_int(kv, &iv)) h += (uint64_t)iv;
    if (gguf_kv_get_float(kv, &dv)) h += (uint64_t)(dv == dv);
    if (gguf_kv_get_str(kv, &s)) {
        for (uint64_t i = 0; i < s.len; i++) h += (uint8_t)s.ptr[i];
    }
    uint64_t n = gguf_kv_arr_len(kv);
    for (uint64_t i = 0; i < n; i++) {
        if (gguf_kv_arr_int(kv, i, &iv)) h += (uint64_t)iv;
        if (gguf_kv_arr_float(kv, i, &dv)) h += 1;
        if (gguf_kv_arr_str(kv, i, &s) && s.len) h += (uint8_t)s.ptr[s.len - 1] + (uint8_t)s.ptr[0];
        const gguf_kv *e = gguf_kv_arr_elem(kv, i);
        if (e) h += walk_kv(e, depth + 1);
    }
    CHECK(!gguf_kv_arr_elem(kv, n));
    return h;
}

static uint64_t walk_file(const gguf_file *f) {
    uint64_t h = gguf_version(f) + gguf_alignment(f);
    for (int64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        CHECK(gguf_find_kv(f, gguf_kv_key(kv)) == kv);
        h += walk_kv(kv, 0);
    }
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK(gguf_find_tensor(f, t->name) == t);
        CHECK(t->nbytes > 0);
        const uint8_t *d = t->data;
        h += d[0] + d[t->nbytes - 1];
    }
    return h;
}

/* ---- round trip ---- */
static uint8_t pattern_byte(const char *name, uint64_t i) {
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return (uint8_t)(h + i * 31 + (i >> 8));
}

static int fill_pattern(void *user, const char *name, void *dst, uint64_t nbytes, char *err, size_t err_cap) {
    int *calls = user;
    if (calls) (*calls)++;
    for (uint64_t i = 0; i < nbytes; i++) ((uint8_t *)dst)[i] = pattern_byte(name, i);
    return 0;
}

static int fill_fail(void *user, const char *name, void *dst, uint64_t nbytes, char *err, size_t err_cap) {
    snprintf(err, err_cap, "source tensor missing");
    return DS4J_ERR_FORMAT;
}

static const struct {
    const char *name;
    int32_t type;
    uint32_t n_dims;
    int64_t ne[4];
    uint64_t nbytes;
} RT_TENSORS[] = {
    {"token_embd.weight", DS4J_TYPE_F16, 2, {16, 5, 1, 1}, 160},
    {"blk.0.attn_norm.weight", DS4J_TYPE_F32, 1, {7, 1, 1, 1}, 28},
    {"blk.0.attn_q_a.weight", DS4J_TYPE_Q8_0, 2, {64, 3, 1, 1}, 2 * 34 * 3},
    {"blk.0.ffn_gate_exps.weight", DS4J_TYPE_Q4_K, 3, {256, 2, 3, 1}, 144 * 6},
    {"blk.0.ffn_down_exps.weight", DS4J_TYPE_Q2_K, 3, {256, 1, 3, 1}, 84 * 3},
    {"blk.0.ffn_up_exps.weight", DS4J_TYPE_IQ2_XXS, 3, {256, 2, 2, 1}, 66 * 4},
    {"blk.0.ffn_gate_tid2eid.weight", DS4J_TYPE_I32, 2, {3, 11, 1, 1}, 4 * 33},
    {"four.dims", DS4J_TYPE_BF16, 4, {3, 2, 2, 2}, 48},
};
#define N_RT (sizeof RT_TENSORS / sizeof RT_TENSORS[0])

static void le_put(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Builds the writer of the round-trip file. */
static gguf_writer *make_writer(uint32_t alignment, int *fill_calls) {
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "deepseek4");
    if (alignment) gguf_writer_set_u32(w, "general.alignment", alignment);
    gguf_writer_set_u32(w, "t.u32", 4000000000u);
    gguf_writer_set_i32(w, "t.i32", -123456);
    gguf_writer_set_u64(w, "t.u64", 0xfedcba9876543210ull);
    gguf_writer_set_f32(w, "t.f32", 1.5e-6f);
    gguf_writer_set_bool(w, "t.bool", true);
    gguf_writer_set_str(w, "t.str", "héllo wörld");
    gguf_writer_set_str(w, "t.empty_str", "");
    uint8_t u8 = 250; int8_t i8 = -7; uint16_t u16 = 65000; int16_t i16 = -32000; int64_t i64 = -(1ll << 62);
    double f64 = 3.141592653589793;
    gguf_writer_set_scalar(w, "t.u8", GGUF_T_UINT8, &u8);
    gguf_writer_set_scalar(w, "t.i8", GGUF_T_INT8, &i8);
    gguf_writer_set_scalar(w, "t.u16", GGUF_T_UINT16, &u16);
    gguf_writer_set_scalar(w, "t.i16", GGUF_T_INT16, &i16);
    gguf_writer_set_scalar(w, "t.i64", GGUF_T_INT64, &i64);
    gguf_writer_set_scalar(w, "t.f64", GGUF_T_FLOAT64, &f64);
    /* replaced value keeps its first position and takes the new type */
    gguf_writer_set_u32(w, "t.replaced", 1);
    gguf_writer_set_i32(w, "t.replaced", -2);

    uint8_t au8[3] = {1, 2, 255}; int8_t ai8[2] = {-1, 127}; uint16_t au16[2] = {1, 65535};
    int16_t ai16[2] = {-32768, 5}; uint32_t au32[4] = {0, 4, 128, 4}; int32_t ai32[3] = {-1, 0, 2147483647};
    float af32[3] = {10.0f, -0.5f, 1e30f}; uint8_t abool[3] = {1, 0, 1}; uint64_t au64[2] = {1, 1ull << 63};
    int64_t ai64[2] = {-5, 1ll << 40}; double af64[2] = {0.25, -1e300};
    gguf_writer_set_arr(w, "a.u8", GGUF_T_UINT8, au8, 3);
    gguf_writer_set_arr(w, "a.i8", GGUF_T_INT8, ai8, 2);
    gguf_writer_set_arr(w, "a.u16", GGUF_T_UINT16, au16, 2);
    gguf_writer_set_arr(w, "a.i16", GGUF_T_INT16, ai16, 2);
    gguf_writer_set_arr(w, "a.u32", GGUF_T_UINT32, au32, 4);
    gguf_writer_set_arr(w, "a.i32", GGUF_T_INT32, ai32, 3);
    gguf_writer_set_arr(w, "a.f32", GGUF_T_FLOAT32, af32, 3);
    gguf_writer_set_arr(w, "a.bool", GGUF_T_BOOL, abool, 3);
    gguf_writer_set_arr(w, "a.u64", GGUF_T_UINT64, au64, 2);
    gguf_writer_set_arr(w, "a.i64", GGUF_T_INT64, ai64, 2);
    gguf_writer_set_arr(w, "a.f64", GGUF_T_FLOAT64, af64, 2);
    gguf_writer_set_arr(w, "a.empty", GGUF_T_UINT32, NULL, 0);
    const char *toks[4] = {"<s>", "", "Ġworld", "\n"};
    gguf_writer_set_arr_str(w, "a.str", toks, 4);

    /* nested: [[7, 8, 9] (u32), ["x", "yz"], [[-1i8], []]] */
    bb n = {0};
    bb_u32(&n, GGUF_T_ARRAY);
    bb_u64(&n, 3);
    bb_u32(&n, GGUF_T_UINT32); bb_u64(&n, 3); bb_u32(&n, 7); bb_u32(&n, 8); bb_u32(&n, 9);
    bb_u32(&n, GGUF_T_STRING); bb_u64(&n, 2); bb_str(&n, "x"); bb_str(&n, "yz");
    bb_u32(&n, GGUF_T_ARRAY); bb_u64(&n, 2);
    bb_u32(&n, GGUF_T_INT8); bb_u64(&n, 1); bb_u8(&n, 0xff);
    bb_u32(&n, GGUF_T_FLOAT32); bb_u64(&n, 0);
    CHECK(gguf_writer_set_raw(w, "a.nested", GGUF_T_ARRAY, n.p, n.n) == 0);
    /* a string with an embedded NUL goes through set_raw */
    uint8_t sv[8 + 3];
    le_put(sv, 3, 8);
    memcpy(sv + 8, "a\0b", 3);
    CHECK(gguf_writer_set_raw(w, "t.str_nul", GGUF_T_STRING, sv, sizeof sv) == 0);
    free(n.p);

    for (size_t i = 0; i < N_RT; i++)
        CHECK(gguf_writer_add_tensor(w, RT_TENSORS[i].name, RT_TENSORS[i].type, RT_TENSORS[i].n_dims,
                                     RT_TENSORS[i].ne, fill_pattern, fill_calls) == 0);
    return w;
}

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

static void check_roundtrip_file(const gguf_file *f, uint32_t alignment) {
    uint64_t align = alignment ? alignment : 32;
    CHECK(gguf_version(f) == 3);
    CHECK(gguf_alignment(f) == align);
    CHECK(gguf_data_offset(f) % align == 0);
    int64_t iv;
    double dv;
    gguf_string s;
    const gguf_kv *kv;

    CHECK(gguf_kv_count(f) == 30 + (alignment ? 1 : 0));
    CHECK(!strcmp(gguf_kv_key(gguf_kv_at(f, 0)), "general.architecture"));
    CHECK(gguf_kv_at(f, gguf_kv_count(f)) == NULL && gguf_kv_at(f, -1) == NULL);
    CHECK(gguf_find_kv(f, "no.such.key") == NULL);

    kv = gguf_find_kv(f, "t.u32");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_UINT32 && gguf_kv_get_int(kv, &iv) && iv == 4000000000ll);
    CHECK(gguf_kv_arr_type(kv) == -1 && gguf_kv_arr_len(kv) == 0);
    CHECK(!gguf_kv_get_str(kv, &s));
    kv = gguf_find_kv(f, "t.i32");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_INT32 && gguf_kv_get_int(kv, &iv) && iv == -123456);
    CHECK(gguf_kv_get_float(kv, &dv) && dv == -123456.0);
    kv = gguf_find_kv(f, "t.u64");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_UINT64 && !gguf_kv_get_int(kv, &iv)); /* > INT64_MAX */
    CHECK(gguf_kv_get_float(kv, &dv) && dv == (double)0xfedcba9876543210ull);
    uint64_t uv;
    CHECK(gguf_kv_get_uint(kv, &uv) && uv == 0xfedcba9876543210ull);
    CHECK(gguf_kv_get_uint(gguf_find_kv(f, "t.u8"), &uv) && uv == 250);
    CHECK(!gguf_kv_get_uint(gguf_find_kv(f, "t.i32"), &uv) && !gguf_kv_get_uint(gguf_find_kv(f, "t.f64"), &uv));
    kv = gguf_find_kv(f, "t.f32");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_FLOAT32 && gguf_kv_get_float(kv, &dv) && dv == (double)1.5e-6f);
    CHECK(!gguf_kv_get_int(kv, &iv));
    kv = gguf_find_kv(f, "t.bool");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_BOOL && gguf_kv_get_int(kv, &iv) && iv == 1);
    CHECK(!gguf_kv_get_float(kv, &dv));
    kv = gguf_find_kv(f, "t.str");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_STRING && gguf_kv_get_str(kv, &s) && s.len == strlen("héllo wörld") &&
          !memcmp(s.ptr, "héllo wörld", s.len));
    kv = gguf_find_kv(f, "t.empty_str");
    CHECK(kv && gguf_kv_get_str(kv, &s) && s.len == 0);
    kv = gguf_find_kv(f, "t.str_nul");
    CHECK(kv && gguf_kv_get_str(kv, &s) && s.len == 3 && !memcmp(s.ptr, "a\0b", 3));
    kv = gguf_find_kv(f, "t.u8");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_UINT8 && gguf_kv_get_int(kv, &iv) && iv == 250);
    kv = gguf_find_kv(f, "t.i8");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_INT8 && gguf_kv_get_int(kv, &iv) && iv == -7);
    kv = gguf_find_kv(f, "t.u16");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_UINT16 && gguf_kv_get_int(kv, &iv) && iv == 65000);
    kv = gguf_find_kv(f, "t.i16");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_INT16 && gguf_kv_get_int(kv, &iv) && iv == -32000);
    kv = gguf_find_kv(f, "t.i64");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_INT64 && gguf_kv_get_int(kv, &iv) && iv == -(1ll << 62));
    kv = gguf_find_kv(f, "t.f64");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_FLOAT64 && gguf_kv_get_float(kv, &dv) && dv == 3.141592653589793);
    kv = gguf_find_kv(f, "t.replaced");
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_INT32 && gguf_kv_get_int(kv, &iv) && iv == -2);
    CHECK(kv == gguf_kv_at(f, 14 + (alignment ? 1 : 0)));

    static const struct { const char *key; int32_t type; uint64_t n; int64_t first, last; } IA[] = {
        {"a.u8", GGUF_T_UINT8, 3, 1, 255},        {"a.i8", GGUF_T_INT8, 2, -1, 127},
        {"a.u16", GGUF_T_UINT16, 2, 1, 65535},    {"a.i16", GGUF_T_INT16, 2, -32768, 5},
        {"a.u32", GGUF_T_UINT32, 4, 0, 4},        {"a.i32", GGUF_T_INT32, 3, -1, 2147483647},
        {"a.bool", GGUF_T_BOOL, 3, 1, 1},         {"a.i64", GGUF_T_INT64, 2, -5, 1ll << 40},
    };
    for (size_t i = 0; i < sizeof IA / sizeof IA[0]; i++) {
        kv = gguf_find_kv(f, IA[i].key);
        CHECK(kv && gguf_kv_type(kv) == GGUF_T_ARRAY && gguf_kv_arr_type(kv) == IA[i].type);
        CHECK(gguf_kv_arr_len(kv) == IA[i].n);
        CHECK(gguf_kv_arr_int(kv, 0, &iv) && iv == IA[i].first);
        CHECK(gguf_kv_arr_int(kv, IA[i].n - 1, &iv) && iv == IA[i].last);
        CHECK(!gguf_kv_arr_int(kv, IA[i].n, &iv));
        CHECK(gguf_kv_arr_data(kv) != NULL);
        CHECK(!gguf_kv_get_int(kv, &iv));
    }
    kv = gguf_find_kv(f, "a.i8");
    CHECK(gguf_kv_arr_float(kv, 0, &dv) && dv == -1.0);
    kv = gguf_find_kv(f, "a.u64");
    CHECK(kv && gguf_kv_arr_type(kv) == GGUF_T_UINT64 && gguf_kv_arr_int(kv, 0, &iv) && iv == 1);
    CHECK(!gguf_kv_arr_int(kv, 1, &iv) && gguf_kv_arr_float(kv, 1, &dv) && dv == 9223372036854775808.0);
    CHECK(gguf_kv_arr_uint(kv, 1, &uv) && uv == 1ull << 63);
    CHECK(!gguf_kv_arr_uint(gguf_find_kv(f, "a.i8"), 0, &uv) && gguf_kv_arr_uint(gguf_find_kv(f, "a.i8"), 1, &uv) && uv == 127);
    kv = gguf_find_kv(f, "a.f32");
    CHECK(kv && gguf_kv_arr_type(kv) == GGUF_T_FLOAT32 && gguf_kv_arr_len(kv) == 3);
    CHECK(gguf_kv_arr_float(kv, 1, &dv) && dv == -0.5 && gguf_kv_arr_float(kv, 2, &dv) && dv == (double)1e30f);
    CHECK(!gguf_kv_arr_int(kv, 0, &iv));
    kv = gguf_find_kv(f, "a.f64");
    CHECK(kv && gguf_kv_arr_float(kv, 1, &dv) && dv == -1e300);
    kv = gguf_find_kv(f, "a.empty");
    CHECK(kv && gguf_kv_arr_type(kv) == GGUF_T_UINT32 && gguf_kv_arr_len(kv) == 0 && !gguf_kv_arr_int(kv, 0, &iv));
    kv = gguf_find_kv(f, "a.str");
    CHECK(kv && gguf_kv_arr_type(kv) == GGUF_T_STRING && gguf_kv_arr_len(kv) == 4);
    CHECK(gguf_kv_arr_str(kv, 0, &s) && s.len == 3 && !memcmp(s.ptr, "<s>", 3));
    CHECK(gguf_kv_arr_str(kv, 1, &s) && s.len == 0);
    CHECK(gguf_kv_arr_str(kv, 2, &s) && s.len == strlen("Ġworld") && !memcmp(s.ptr, "Ġworld", s.len));
    CHECK(gguf_kv_arr_str(kv, 3, &s) && s.len == 1 && s.ptr[0] == '\n');
    CHECK(!gguf_kv_arr_str(kv, 4, &s) && !gguf_kv_arr_int(kv, 0, &iv) && gguf_kv_arr_data(kv) == NULL);

    kv = gguf_find_kv(f, "a.nested");
    CHECK(kv && gguf_kv_arr_type(kv) == GGUF_T_ARRAY && gguf_kv_arr_len(kv) == 3);
    const gguf_kv *e0 = gguf_kv_arr_elem(kv, 0), *e1 = gguf_kv_arr_elem(kv, 1), *e2 = gguf_kv_arr_elem(kv, 2);
    CHECK(e0 && gguf_kv_arr_type(e0) == GGUF_T_UINT32 && gguf_kv_arr_len(e0) == 3);
    CHECK(gguf_kv_arr_int(e0, 2, &iv) && iv == 9);
    CHECK(e1 && gguf_kv_arr_type(e1) == GGUF_T_STRING && gguf_kv_arr_str(e1, 1, &s) && s.len == 2 &&
          !memcmp(s.ptr, "yz", 2));
    CHECK(e2 && gguf_kv_arr_type(e2) == GGUF_T_ARRAY && gguf_kv_arr_len(e2) == 2);
    const gguf_kv *e20 = gguf_kv_arr_elem(e2, 0), *e21 = gguf_kv_arr_elem(e2, 1);
    CHECK(e20 && gguf_kv_arr_type(e20) == GGUF_T_INT8 && gguf_kv_arr_int(e20, 0, &iv) && iv == -1);
    CHECK(e21 && gguf_kv_arr_type(e21) == GGUF_T_FLOAT32 && gguf_kv_arr_len(e21) == 0);
    CHECK(gguf_kv_arr_elem(kv, 3) == NULL && gguf_kv_arr_elem(e0, 0) == NULL);

    CHECK(gguf_tensor_count(f) == (int64_t)N_RT);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < N_RT; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, (int64_t)i);
        CHECK(t && !strcmp(t->name, RT_TENSORS[i].name) && gguf_find_tensor(f, t->name) == t);
        if (!t) continue;
        CHECK(t->type == RT_TENSORS[i].type && t->n_dims == RT_TENSORS[i].n_dims);
        for (int d = 0; d < 4; d++) CHECK(t->ne[d] == RT_TENSORS[i].ne[d]);
        CHECK(t->nbytes == RT_TENSORS[i].nbytes);
        CHECK(t->offset % align == 0 && t->offset >= prev_end && t->offset - prev_end < align);
        prev_end = t->offset + t->nbytes;
        int bad = 0;
        for (uint64_t j = 0; j < t->nbytes; j++) bad += ((const uint8_t *)t->data)[j] != pattern_byte(t->name, j);
        CHECK(bad == 0);
    }
    CHECK(gguf_data_offset(f) + prev_end == gguf_file_size(f));
    CHECK(gguf_find_tensor(f, "missing") == NULL && gguf_tensor_at(f, (int64_t)N_RT) == NULL);
}

static char tmpdir[256];

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_roundtrip(uint32_t alignment, const char *out_path) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/rt_%u.gguf", tmpdir, alignment);
    int calls = 0;
    gguf_writer *w = make_writer(alignment, &calls);
    int rc = gguf_writer_write(w, path, err, sizeof err);
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "write failed: %s\n", err);
    CHECK(calls == (int)N_RT);
    gguf_writer_free(w);

    gguf_file *f = NULL;
    rc = gguf_open(&f, path, err, sizeof err);
    CHECK(rc == 0 && f);
    if (rc) {
        fprintf(stderr, "open failed: %s\n", err);
        return;
    }
    check_roundtrip_file(f, alignment);

    /* Copy everything through set_kv into a second writer: identical bytes. */
    gguf_writer *w2 = gguf_writer_new();
    for (int64_t i = 0; i < gguf_kv_count(f); i++) CHECK(gguf_writer_set_kv(w2, NULL, gguf_kv_at(f, i)) == 0);
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK(gguf_writer_add_tensor(w2, t->name, t->type, t->n_dims, t->ne, fill_pattern, NULL) == 0);
    }
    char path2[512];
    snprintf(path2, sizeof path2, "%s/rt_copy.gguf", tmpdir);
    CHECK(gguf_writer_write(w2, path2, err, sizeof err) == 0);
    gguf_writer_free(w2);
    size_t n1, n2;
    uint8_t *b1 = read_all(path, &n1), *b2 = read_all(path2, &n2);
    CHECK(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1));
    free(b2);
    remove(path2);

    /* gguf_open_memory on the same bytes agrees. */
    gguf_file *m = NULL;
    CHECK(gguf_open_memory(&m, b1, n1, err, sizeof err) == 0);
    if (m) {
        check_roundtrip_file(m, alignment);
        CHECK(walk_file(m) == walk_file(f));
        gguf_close(m);
    }
    if (out_path) {
        FILE *o = fopen(out_path, "wb");
        CHECK(o && fwrite(b1, 1, n1, o) == n1);
        if (o) fclose(o);
    }
    free(b1);
    gguf_close(f);
    remove(path);
}

static void test_writer_errors(void) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/fail.gguf", tmpdir);
    int before = count_dir_entries(tmpdir);

    /* fill callback failure: error names the tensor, nothing is left behind */
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "deepseek4");
    int64_t ne[2] = {32, 2};
    CHECK(gguf_writer_add_tensor(w, "ok", DS4J_TYPE_F32, 2, ne, fill_pattern, NULL) == 0);
    CHECK(gguf_writer_add_tensor(w, "broken", DS4J_TYPE_F32, 2, ne, fill_fail, NULL) == 0);
    CHECK(gguf_writer_write(w, path, err, sizeof err) == DS4J_ERR_FORMAT);
    CHECK(strstr(err, "tensor 'broken': source tensor missing") != NULL);
    CHECK(access(path, F_OK) != 0);
    CHECK(count_dir_entries(tmpdir) == before);
    gguf_writer_free(w);

    /* bad declarations are reported at add time and again by write */
    w = gguf_writer_new();
    int64_t bad_ne[1] = {33};
    CHECK(gguf_writer_add_tensor(w, "q", DS4J_TYPE_Q8_0, 1, bad_ne, fill_pattern, NULL) < 0);
    CHECK(gguf_writer_write(w, path, err, sizeof err) < 0);
    CHECK(strstr(err, "tensor 'q': ne[0] = 33 is not a multiple of the Q8_0 block size 32") != NULL);
    CHECK(access(path, F_OK) != 0);
    gguf_writer_free(w);

    w = gguf_writer_new();
    CHECK(gguf_writer_add_tensor(w, "a", DS4J_TYPE_F32, 2, ne, fill_pattern, NULL) == 0);
    CHECK(gguf_writer_add_tensor(w, "a", DS4J_TYPE_F32, 2, ne, fill_pattern, NULL) < 0);
    CHECK(gguf_writer_write(w, path, err, sizeof err) < 0 && strstr(err, "duplicate tensor name 'a'"));
    gguf_writer_free(w);

    w = gguf_writer_new();
    const char *long_name = "blk.0.a_tensor_name_that_is_far_too_long_for_ggml_to_accept.weight";
    CHECK(gguf_writer_add_tensor(w, long_name, DS4J_TYPE_F32, 2, ne, fill_pattern, NULL) < 0);
    CHECK(gguf_writer_write(w, path, err, sizeof err) < 0 && strstr(err, "is longer than 63 bytes"));
    gguf_writer_free(w);

    w = gguf_writer_new();
    gguf_writer_set_u32(w, "general.alignment", 24);
    CHECK(gguf_writer_write(w, path, err, sizeof err) < 0 && strstr(err, "power of two"));
    gguf_writer_free(w);

    w = gguf_writer_new();
    uint8_t junk[5] = {1, 2, 3, 4, 5};
    CHECK(gguf_writer_set_raw(w, "x", GGUF_T_ARRAY, junk, sizeof junk) < 0);
    CHECK(gguf_writer_write(w, path, err, sizeof err) < 0 && strstr(err, "key 'x'"));
    gguf_writer_free(w);

    w = gguf_writer_new();
    gguf_writer_set_arr(w, "s", GGUF_T_STRING, junk, 1);
    CHECK(gguf_writer_write(w, path, err, sizeof err) < 0 && strstr(err, "not a scalar type"));
    gguf_writer_free(w);

    /* unwritable destination */
    w = gguf_writer_new();
    CHECK(gguf_writer_write(w, "/nonexistent-dir/x.gguf", err, sizeof err) == DS4J_ERR_IO);
    CHECK(strstr(err, "/nonexistent-dir/x.gguf") != NULL);
    gguf_writer_free(w);

    /* an empty file (no kv, no tensors) is valid */
    w = gguf_writer_new();
    CHECK(gguf_writer_write(w, path, err, sizeof err) == 0);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    CHECK(gguf_open(&f, path, err, sizeof err) == 0 && f && gguf_kv_count(f) == 0 && gguf_tensor_count(f) == 0);
    gguf_close(f);
    remove(path);
}

static void test_open_errors(void) {
    char err[512];
    gguf_file *f = (gguf_file *)1;
    CHECK(gguf_open(&f, "/nonexistent/model.gguf", err, sizeof err) == DS4J_ERR_IO && f == NULL);
    CHECK(strstr(err, "/nonexistent/model.gguf") && strstr(err, "No such file"));
    CHECK(strstr(ds4j_last_error(), "/nonexistent/model.gguf") != NULL);
    CHECK(gguf_open(&f, tmpdir, err, sizeof err) == DS4J_ERR_IO && strstr(err, "not a regular file"));
    char path[512];
    snprintf(path, sizeof path, "%s/empty.gguf", tmpdir);
    FILE *e = fopen(path, "wb");
    if (e) fclose(e);
    CHECK(gguf_open(&f, path, err, sizeof err) == DS4J_ERR_FORMAT && strstr(err, "bad magic") && strstr(err, path));
    remove(path);
    CHECK(gguf_open_memory(&f, NULL, 0, err, sizeof err) == DS4J_ERR_FORMAT && strstr(err, "bad magic"));
}

/* seed/from_ggufpy.gguf was written by llama.cpp's reference Python writer
 * (gguf-py 0.19.0, GGUFWriter), so it checks our reader against another
 * implementation:
 *   w = GGUFWriter(path, "deepseek4"); add_uint32("deepseek4.block_count", 5)
 *   add_float32("deepseek4.rope.freq_base", 10000.0); add_bool("deepseek4.expert_weights_norm", True)
 *   add_array("deepseek4.swiglu_clamp_exp", [10.0, 10.0]); add_array("tokenizer.ggml.tokens", ["<s>", "a", "Ġb"])
 *   add_array("nested", [[1, 2], [3]]); add_string("general.name", "x" * 100)
 *   add_tensor("token_embd.weight", arange(192, float16).reshape(3, 64))
 *   add_tensor("blk.0.ffn_gate_exps.weight", ones((4, 2, 32), float32))
 *   add_tensor("tid2eid", arange(12, int32).reshape(4, 3)) */
static void test_ggufpy_file(void) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/seed/from_ggufpy.gguf", DS4J_TEST_DATA_DIR);
    gguf_file *f = NULL;
    CHECK(gguf_open(&f, path, err, sizeof err) == 0);
    if (!f) return;
    int64_t iv;
    double dv;
    gguf_string s;
    CHECK(gguf_version(f) == 3 && gguf_alignment(f) == 32 && gguf_kv_count(f) == 8);
    CHECK(gguf_kv_get_str(gguf_find_kv(f, "general.architecture"), &s) && s.len == 9 && !memcmp(s.ptr, "deepseek4", 9));
    const gguf_kv *kv = gguf_find_kv(f, "deepseek4.block_count");
    CHECK(gguf_kv_type(kv) == GGUF_T_UINT32 && gguf_kv_get_int(kv, &iv) && iv == 5);
    kv = gguf_find_kv(f, "deepseek4.rope.freq_base");
    CHECK(gguf_kv_type(kv) == GGUF_T_FLOAT32 && gguf_kv_get_float(kv, &dv) && dv == 10000.0);
    kv = gguf_find_kv(f, "deepseek4.expert_weights_norm");
    CHECK(gguf_kv_type(kv) == GGUF_T_BOOL && gguf_kv_get_int(kv, &iv) && iv == 1);
    kv = gguf_find_kv(f, "deepseek4.swiglu_clamp_exp");
    CHECK(gguf_kv_arr_type(kv) == GGUF_T_FLOAT32 && gguf_kv_arr_len(kv) == 2 && gguf_kv_arr_float(kv, 1, &dv) && dv == 10.0);
    kv = gguf_find_kv(f, "tokenizer.ggml.tokens");
    CHECK(gguf_kv_arr_type(kv) == GGUF_T_STRING && gguf_kv_arr_len(kv) == 3);
    CHECK(gguf_kv_arr_str(kv, 2, &s) && s.len == strlen("Ġb") && !memcmp(s.ptr, "Ġb", s.len));
    kv = gguf_find_kv(f, "nested");
    CHECK(gguf_kv_arr_type(kv) == GGUF_T_ARRAY && gguf_kv_arr_len(kv) == 2);
    const gguf_kv *e1 = gguf_kv_arr_elem(kv, 1);
    CHECK(gguf_kv_arr_type(e1) == GGUF_T_INT32 && gguf_kv_arr_len(e1) == 1 && gguf_kv_arr_int(e1, 0, &iv) && iv == 3);
    CHECK(gguf_kv_get_str(gguf_find_kv(f, "general.name"), &s) && s.len == 100);

    CHECK(gguf_tensor_count(f) == 3);
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->type == DS4J_TYPE_F16 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 3 && t->nbytes == 384);
    if (t) {
        const uint8_t *d = t->data; /* element 70 = 70.0 in f16 = 0x5460 */
        CHECK(d[140] == 0x60 && d[141] == 0x54);
    }
    t = gguf_find_tensor(f, "blk.0.ffn_gate_exps.weight");
    CHECK(t && t->type == DS4J_TYPE_F32 && t->n_dims == 3 && t->ne[0] == 32 && t->ne[1] == 2 && t->ne[2] == 4);
    if (t) {
        float x;
        memcpy(&x, (const uint8_t *)t->data + t->nbytes - 4, 4);
        CHECK(x == 1.0f);
    }
    t = gguf_find_tensor(f, "tid2eid");
    CHECK(t && t->type == DS4J_TYPE_I32 && t->ne[0] == 3 && t->ne[1] == 4);
    if (t) {
        int32_t v;
        memcpy(&v, (const uint8_t *)t->data + 4 * 11, 4);
        CHECK(v == 11);
    }
    gguf_close(f);
}

/* The reader's fallback type table agrees with quants.c wherever both know
 * a type, and accepts every type quants.c knows. */
static void test_type_tables(void) {
    int both = 0;
    for (int32_t t = -1; t <= DS4J_TYPE_COUNT; t++) {
        const ds4j_type_traits *q = ds4j_type_get(t);
        int32_t b, s;
        bool mine = gguf_ggml_type_builtin(t, &b, &s);
        if (q && mine) {
            both++;
            if (q->block_size != b || q->type_size != s) {
                fprintf(stderr, "type %d: quants.c says (%d, %d), gguf.c says (%d, %d)\n", t, q->block_size,
                        q->type_size, b, s);
                failures++;
            }
        }
        if (q) CHECK(gguf_ggml_type_info(t, NULL, NULL, NULL) && !strcmp(gguf_ggml_type_name(t), q->name));
    }
    CHECK(both >= 19);
    CHECK(gguf_ggml_type_name(4) == NULL && gguf_ggml_type_name(DS4J_TYPE_COUNT) == NULL);
    CHECK(gguf_ggml_type_name(DS4J_TYPE_Q4_K) && !strcmp(gguf_ggml_type_name(DS4J_TYPE_Q4_K), "Q4_K"));
}

/* v2 files share v3's layout. */
static void test_v2(void) {
    bb b = {0};
    int64_t ne[1] = {8};
    bb_header(&b, 2, 1, 1);
    bb_kv_u32(&b, "x", 5);
    bb_tensor(&b, "w", 1, ne, 0, 0);
    bb_pad(&b, 32);
    for (int i = 0; i < 32; i++) bb_u8(&b, (uint8_t)i);
    gguf_file *f = NULL;
    char err[256];
    CHECK(gguf_open_memory(&f, b.p, b.n, err, sizeof err) == 0);
    if (f) {
        CHECK(gguf_version(f) == 2 && gguf_tensor_count(f) == 1);
        CHECK(((const uint8_t *)gguf_tensor_at(f, 0)->data)[31] == 31);
        gguf_close(f);
    }
    free(b.p);
}

static void test_bad_files(bool regen) {
    char dir[512], path[1024], err[1024];
    snprintf(dir, sizeof dir, "%s/bad", DS4J_TEST_DATA_DIR);
    if (regen) {
        mkdir(DS4J_TEST_DATA_DIR, 0755);
        mkdir(dir, 0755);
    }
    for (size_t i = 0; i < N_BAD; i++) {
        bb b = {0};
        BAD[i].gen(&b);
        snprintf(path, sizeof path, "%s/%s", dir, BAD[i].file);
        if (regen) {
            FILE *o = fopen(path, "wb");
            CHECK(o && fwrite(b.p, 1, b.n, o) == b.n);
            if (o) fclose(o);
        }
        /* in memory, from an exact-size copy so overreads are caught */
        uint8_t *copy = malloc(b.n);
        memcpy(copy, b.p, b.n);
        gguf_file *f = NULL;
        int rc = gguf_open_memory(&f, copy, b.n, err, sizeof err);
        if (rc != DS4J_ERR_FORMAT || !strstr(err, BAD[i].expect)) {
            fprintf(stderr, "%s: rc %d, message '%s', expected '%s'\n", BAD[i].file, rc, err, BAD[i].expect);
            failures++;
        }
        CHECK(f == NULL);
        CHECK(strstr(ds4j_last_error(), BAD[i].expect) != NULL);
        free(copy);
        /* the committed file must match the generator and fail the same way */
        size_t n;
        uint8_t *disk = read_all(path, &n);
        if (!disk || n != b.n || memcmp(disk, b.p, n)) {
            fprintf(stderr, "%s: committed file differs from its generator (run test_gguf --regen)\n", path);
            failures++;
        }
        free(disk);
        rc = gguf_open(&f, path, err, sizeof err);
        CHECK(rc == DS4J_ERR_FORMAT && strstr(err, BAD[i].expect) && strstr(err, BAD[i].file));
        free(b.p);
    }
    /* no stray files in bad/ that the table does not cover */
    CHECK(count_dir_entries(dir) == (int)N_BAD);
}

static void test_truncation(const uint8_t *buf, size_t n) {
    char err[512];
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, buf, len);
        gguf_file *f = NULL;
        err[0] = 0;
        int rc = gguf_open_memory(&f, p, len, err, sizeof err);
        if (rc != DS4J_ERR_FORMAT || f != NULL || !err[0]) {
            if (bad++ < 5) fprintf(stderr, "prefix %zu: rc %d '%s'\n", len, rc, err);
            gguf_close(f);
        }
        free(p);
    }
    CHECK(bad == 0);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_flips(const uint8_t *buf, size_t n, int iters) {
    char err[512];
    int opened = 0;
    uint8_t *p = malloc(n);
    for (int it = 0; it < iters; it++) {
        memcpy(p, buf, n);
        int flips = 1 + (int)(rng() % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(rng() % n);
            /* mostly hit the header/directory, where the structure lives */
            if (rng() % 4) at %= (n < 1200 ? n : 1200);
            p[at] = (rng() % 3) ? (uint8_t)(p[at] ^ (1u << (rng() % 8))) : (uint8_t)rng();
        }
        gguf_file *f = NULL;
        int rc = gguf_open_memory(&f, p, n, err, sizeof err);
        if (rc == 0) {
            opened++;
            walk_file(f);
            gguf_close(f);
        } else {
            CHECK(f == NULL && err[0] && rc == DS4J_ERR_FORMAT);
        }
    }
    free(p);
    printf("test_gguf: %d byte-flip variants, %d still valid\n", iters, opened);
}

static void test_seeds(bool regen, const uint8_t *rt, size_t rt_n) {
    char dir[512], path[1024], err[512];
    snprintf(dir, sizeof dir, "%s/seed", DS4J_TEST_DATA_DIR);
    if (regen) {
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/roundtrip.gguf", dir);
        FILE *o = fopen(path, "wb");
        CHECK(o && fwrite(rt, 1, rt_n, o) == rt_n);
        if (o) fclose(o);
        /* a small model-like file with alignment 64 and a v2 header */
        gguf_writer *w = gguf_writer_new();
        gguf_writer_set_str(w, "general.architecture", "deepseek4");
        gguf_writer_set_u32(w, "general.alignment", 64);
        gguf_writer_set_u32(w, "deepseek4.expert_count", 4);
        gguf_writer_set_u32(w, "deepseek4.expert_used_count", 2);
        int64_t e[3] = {32, 8, 4}, v[2] = {32, 10}, nrm[1] = {32};
        gguf_writer_add_tensor(w, "token_embd.weight", DS4J_TYPE_F16, 2, v, fill_pattern, NULL);
        gguf_writer_add_tensor(w, "blk.0.ffn_gate_exps.weight", DS4J_TYPE_Q8_0, 3, e, fill_pattern, NULL);
        gguf_writer_add_tensor(w, "output_norm.weight", DS4J_TYPE_F32, 1, nrm, fill_pattern, NULL);
        snprintf(path, sizeof path, "%s/small_model.gguf", dir);
        CHECK(gguf_writer_write(w, path, err, sizeof err) == 0);
        gguf_writer_free(w);
    }
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        gguf_file *f = NULL;
        int rc = gguf_open(&f, path, err, sizeof err);
        if (rc) fprintf(stderr, "seed %s: %s\n", path, err);
        CHECK(rc == 0);
        if (f) walk_file(f);
        gguf_close(f);
        n++;
    }
    if (d) closedir(d);
    CHECK(n >= 3);
}

/* Runs `ds4j-tool info ARGS`, returns its exit status and stdout+stderr. */
static int run_info(const char *args, char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' info %s 2>&1", DS4J_TOOL_PATH, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_info_tool(void) {
    static char out[1 << 16];
    char args[1024], path[512], err[512];
    snprintf(args, sizeof args, "'%s/seed/small_model.gguf'", DS4J_TEST_DATA_DIR);
    CHECK(run_info(args, out, sizeof out) == 0);
    CHECK(strstr(out, "version:     3") && strstr(out, "alignment:   64"));
    CHECK(strstr(out, "deepseek4.expert_used_count") && strstr(out, "uint32  = 2"));
    CHECK(strstr(out, "blk.0.ffn_gate_exps.weight") && strstr(out, "Q8_0") && strstr(out, "[32, 8, 4]"));
    /* 320 (embd) + 1024 (experts) + 32 (norm) params; 4 experts of 256;
     * active = 32 + 2 x 256; bytes 640 + 1088 + 128 */
    CHECK(strstr(out, "total parameters          1376 "));
    CHECK(strstr(out, "total tensor bytes        1856 "));
    CHECK(strstr(out, "params per routed expert  256 per layer"));
    CHECK(strstr(out, "active parameters/token   544 "));

    /* long strings and arrays are shortened */
    gguf_writer *w = gguf_writer_new();
    char longs[300];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    gguf_writer_set_str(w, "long", longs);
    uint32_t many[100];
    for (int i = 0; i < 100; i++) many[i] = (uint32_t)i * 3;
    gguf_writer_set_arr(w, "many", GGUF_T_UINT32, many, 100);
    snprintf(path, sizeof path, "%s/info.gguf", tmpdir);
    CHECK(gguf_writer_write(w, path, err, sizeof err) == 0);
    gguf_writer_free(w);
    snprintf(args, sizeof args, "'%s'", path);
    CHECK(run_info(args, out, sizeof out) == 0);
    CHECK(strstr(out, "... (299 bytes)") && strstr(out, "[uint32 x 100] [0, 3, 6, 9, 12, 15, 18, 21, ...]"));
    CHECK(!strstr(out, "deepseek4 summary"));
    remove(path);

    snprintf(args, sizeof args, "'%s/bad/overlap.gguf'", DS4J_TEST_DATA_DIR);
    CHECK(run_info(args, out, sizeof out) == 1 && strstr(out, "overlaps tensor 'second'"));
    CHECK(run_info("/nonexistent.gguf", out, sizeof out) == 1 && strstr(out, "/nonexistent.gguf"));
    CHECK(run_info("", out, sizeof out) == 2);
}

int main(int argc, char **argv) {
    bool regen = argc > 1 && !strcmp(argv[1], "--regen");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_gguf_tmp.XXXXXX", DS4J_BUILD_DIR);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmpdir, strerror(errno));
        return 1;
    }
    char rt_path[512];
    snprintf(rt_path, sizeof rt_path, "%s/rt_keep.gguf", tmpdir);
    test_roundtrip(0, rt_path);
    test_roundtrip(64, NULL);
    test_roundtrip(1, NULL);
    test_roundtrip(4096, NULL);
    test_writer_errors();
    test_open_errors();
    test_v2();
    test_type_tables();
    test_ggufpy_file();
    test_bad_files(regen);
    test_info_tool();

    size_t n = 0;
    uint8_t *rt = read_all(rt_path, &n);
    CHECK(rt != NULL && n > 0);
    if (rt) {
        test_seeds(regen, rt, n);
        test_truncation(rt, n);
        test_flips(rt, n, 4000);
    }
    free(rt);
    remove(rt_path);
    rmdir(tmpdir);
    if (failures) {
        fprintf(stderr, "test_gguf: %d failures\n", failures);
        return 1;
    }
    printf("test_gguf: ok\n");
    return 0;
}
