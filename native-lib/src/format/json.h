/*
 * json.h — a small strict JSON parser (RFC 8259) for the converter's inputs:
 * config.json, safetensors headers, model.safetensors.index.json and the
 * HF tokenizer.json (~8 MB). The whole document becomes an immutable tree in
 * one arena; nesting depth and input size are bounded; malformed input gives
 * an error message with the byte offset, never a crash.
 */
#ifndef DS4J_JSON_H
#define DS4J_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum json_type {
    JSON_NULL = 0, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    union {
        bool b;
        struct { double d; int64_t i; bool is_int; } num; /* is_int: integer literal that fits int64 */
        struct { const char *s; size_t len; } str;        /* UTF-8, NUL-terminated (may hold NULs) */
        struct { const json_value *items; size_t n; } arr;
        struct { const json_value *keys; const json_value *vals; size_t n; } obj; /* keys are strings, in file order */
    } u;
};

typedef struct json_doc json_doc;

#define JSON_MAX_DEPTH 128
#define JSON_MAX_FILE_BYTES ((size_t)256 << 20)

/* Parse len bytes. Returns 0, or a negative DS4J_ERR_* with a message in err. */
int json_parse(json_doc **out, const char *buf, size_t len, char *err, size_t err_cap);
int json_parse_file(json_doc **out, const char *path, char *err, size_t err_cap);
void json_free(json_doc *doc);
const json_value *json_root(const json_doc *doc);

/* Object member by key (first match), or NULL if v is not an object or the key is absent. */
const json_value *json_get(const json_value *v, const char *key);
/* Typed helpers: false if absent or of another type. get_int requires an integral number. */
bool json_as_int(const json_value *v, int64_t *out);
bool json_as_num(const json_value *v, double *out);
bool json_as_bool(const json_value *v, bool *out);
const char *json_as_str(const json_value *v); /* NULL unless a string */
bool json_get_int(const json_value *obj, const char *key, int64_t *out);
bool json_get_num(const json_value *obj, const char *key, double *out);
bool json_get_bool(const json_value *obj, const char *key, bool *out);
const char *json_get_str(const json_value *obj, const char *key);

#endif /* DS4J_JSON_H */
