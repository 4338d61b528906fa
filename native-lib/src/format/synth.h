/*
 * synth.h — random-weight deepseek4 GGUFs (same metadata and tensor layout as
 * a converted checkpoint) for tests, demos and benchmarks, written streaming
 * and deterministically from a seed.
 */
#ifndef DS4J_SYNTH_H
#define DS4J_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "convert.h"

typedef struct ds4j_synth_opts {
    const char *preset;       /* "tiny", "demo", "flash2" (ignored when hp is set) */
    const ds4j_hparams *hp;   /* explicit shapes instead of a preset (tests) */
    const char *out_path;
    const char *tokenizer;    /* tokenizer.json or NULL (required by "demo") */
    uint64_t seed;
    int32_t dense_type;       /* -1 = the preset's */
    int32_t expert_type;      /* -1 = the preset's */
    ds4j_log_fn log;
    void *log_user;
} ds4j_synth_opts;

/* Shapes and default types of a preset; 0 or DS4J_ERR_INVALID_ARGUMENT. */
int ds4j_synth_preset(const char *name, ds4j_hparams *hp, int32_t *dense_type, int32_t *expert_type);
int ds4j_synth(const ds4j_synth_opts *o, char *err, size_t err_cap);

#endif /* DS4J_SYNTH_H */
