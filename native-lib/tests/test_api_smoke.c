/* test_api_smoke.c — the public API answers before any model is loaded:
 * version string, and clear errors for missing and non-GGUF files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds4j.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

int main(void) {
    CHECK(strncmp(ds4j_version(), "ds4j ", 5) == 0);
    CHECK(ds4j_api_version() == DS4J_API_VERSION);

    CHECK(ds4j_engine_open("/nonexistent/model.gguf", "") == NULL);
    CHECK(strstr(ds4j_last_error(), "/nonexistent/model.gguf") != NULL);
    CHECK(ds4j_last_error_code() == DS4J_ERR_IO);
    CHECK(ds4j_engine_open("/nonexistent/model.gguf", "threads=lots") == NULL);
    CHECK(ds4j_last_error_code() == DS4J_ERR_INVALID_ARGUMENT);

    char path[] = "/tmp/ds4j-smoke-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    fputs("this is not a gguf file", f);
    fclose(f);
    CHECK(ds4j_engine_open(path, "") == NULL);
    CHECK(strstr(ds4j_last_error(), "GGUF") != NULL);
    CHECK(ds4j_last_error_code() == DS4J_ERR_FORMAT);
    remove(path);

    if (failures) return 1;
    printf("test_api_smoke: ok\n");
    return 0;
}
