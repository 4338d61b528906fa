/*
 * engine.c — the public API's entry points (ds4j.h): version, engine
 * open/close and option parsing. Model loading and evaluation live in
 * model_dsv4.c; this file only validates and dispatches.
 */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ds4j_engine {
    char *path;
};

DS4J_API const char *ds4j_version(void) { return "ds4j " DS4J_VERSION_STRING; }

DS4J_API int32_t ds4j_api_version(void) { return DS4J_API_VERSION; }

DS4J_API ds4j_engine *ds4j_engine_open(const char *gguf_path, const char *options) {
    ds4j_clear_error();
    if (!gguf_path || !*gguf_path) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "model path is empty");
        return NULL;
    }
    FILE *f = fopen(gguf_path, "rb");
    if (!f) {
        ds4j_fail(DS4J_ERR_IO, "cannot open model file '%s': %s", gguf_path, strerror(errno));
        return NULL;
    }
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0) {
        ds4j_fail(DS4J_ERR_FORMAT, "'%s' is not a GGUF file (bad magic)", gguf_path);
        return NULL;
    }
    ds4j_fail(DS4J_ERR_FORMAT, "'%s': model loading is not implemented yet", gguf_path);
    return NULL;
}

DS4J_API void ds4j_engine_close(ds4j_engine *engine) {
    if (!engine) return;
    free(engine->path);
    free(engine);
}
