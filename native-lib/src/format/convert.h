/*
 * convert.h — HF DeepSeek V4 checkpoint (config.json + safetensors) to a
 * deepseek4 GGUF, plus the pieces the synthetic-model writer shares with it:
 * the hyper-parameter set, the GGUF tensor plan (names, shapes, type policy)
 * and the metadata / tokenizer writers.
 */
#ifndef DS4J_CONVERT_H
#define DS4J_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "json.h"

#define DS4J_MAX_LAYERS 256

typedef struct ds4j_hparams {
    uint32_t n_embd, n_layer, n_vocab, n_head, n_head_kv, head_dim, rope_dim;
    uint32_t q_lora, o_groups, o_lora;
    uint32_t n_expert, n_expert_used, n_ff_exp, n_shared, n_hash;
    uint32_t window, idx_heads, idx_dim, idx_topk;
    uint32_t hc, sinkhorn_iters;
    float hc_eps, rms_eps, rope_theta, compress_rope_theta;
    float yarn_factor, yarn_beta_fast, yarn_beta_slow;
    uint32_t yarn_orig_ctx;
    float routed_scale, swiglu_limit;
    uint64_t max_pos;
    uint32_t bos_id, eos_id;
    uint32_t compress_ratio[DS4J_MAX_LAYERS]; /* 0 = sliding only */
    bool is_csa[DS4J_MAX_LAYERS];             /* compressed layer with an indexer */
} ds4j_hparams;

/* Reads both the transformers form (layer_types, mlp_layer_types,
 * compress_rates, rope_parameters) and the DeepSeek form (compress_ratios,
 * num_hash_layers, rope_scaling, compress_rope_theta). is_csa is set from the
 * layer types when given, else "ratio == the smallest non-zero ratio" (the
 * converter then checks it against the presence of indexer tensors). */
int ds4j_hparams_from_config(const json_value *cfg, ds4j_hparams *hp, char *err, size_t err_cap);

/* Type classes of the policy: what a tensor becomes for given --type/--experts. */
enum ds4j_tclass {
    DS4J_TC_F32 = 0,  /* vectors, biases, hc base/scale, sinks: always F32 */
    DS4J_TC_DENSE,    /* attention, shared experts, head: --type */
    DS4J_TC_SMALLMAT, /* hc fn, compressor (ape included), indexer, router, embedding: --type but never
                       * below F16 — the types ds4.c weights_validate_layout insists on (F16 for a
                       * quantized --type), so a q8_0 conversion loads in ds4 as well */
    DS4J_TC_EXPERT,   /* routed expert stacks: --experts */
    DS4J_TC_I32       /* tid2eid */
};

/* Roles: which weight of the model a plan entry holds. */
enum ds4j_role {
    R_EMBD, R_OUT_NORM, R_HEAD, R_HC_HEAD_FN, R_HC_HEAD_BASE, R_HC_HEAD_SCALE,
    R_HC_ATTN_FN, R_HC_ATTN_BASE, R_HC_ATTN_SCALE, R_HC_FFN_FN, R_HC_FFN_BASE, R_HC_FFN_SCALE,
    R_ATTN_NORM, R_FFN_NORM, R_Q_A, R_Q_NORM, R_Q_B, R_KV, R_KV_NORM, R_SINKS, R_O_A, R_O_B,
    R_C_APE, R_C_KV, R_C_GATE, R_C_NORM,
    R_I_QB, R_I_PROJ, R_I_APE, R_I_KV, R_I_GATE, R_I_NORM,
    R_GATE_INP, R_GATE_BIAS, R_TID2EID,
    R_EXP_GATE, R_EXP_UP, R_EXP_DOWN, R_SH_GATE, R_SH_UP, R_SH_DOWN,
    R_COUNT
};

typedef struct ds4j_plan_entry {
    char name[80];          /* GGUF name */
    int role;               /* enum ds4j_role */
    int layer;              /* -1 for globals */
    int tclass;             /* enum ds4j_tclass */
    int32_t type;           /* final GGUF type after the fallback rule */
    uint32_t n_dims;
    int64_t ne[4];          /* GGUF order (ne[0] contiguous) */
    int64_t src_shape[2];   /* PyTorch [rows, cols] of one source matrix (per expert for stacks) */
    int src_dims;           /* 1 or 2 */
    uint64_t nbytes;
} ds4j_plan_entry;

typedef struct ds4j_plan {
    ds4j_plan_entry *e;
    int n;
} ds4j_plan;

typedef void (*ds4j_log_fn)(void *user, const char *msg);

/* Builds the tensor list for hp with the type policy; fallbacks are logged. */
int ds4j_plan_build(const ds4j_hparams *hp, int32_t dense_type, int32_t expert_type, ds4j_plan *plan,
                    ds4j_log_fn log, void *log_user, char *err, size_t err_cap);
void ds4j_plan_free(ds4j_plan *plan);

/* All deepseek4.* and general.* keys (types as spec section 1.1 + 16). */
void ds4j_write_metadata(gguf_writer *w, const ds4j_hparams *hp, int32_t dense_type, int32_t expert_type,
                         const char *name);

/* HF tokenizer.json -> tokenizer.ggml.* keys. The loaded data must stay alive
 * until gguf_writer_write returns, hence the separate free. n_vocab is the
 * model's vocabulary; the token list is padded/extended to
 * max(n_vocab, ids in the file, V4 special ids) and *n_tokens says how many. */
typedef struct ds4j_tokenizer_data ds4j_tokenizer_data;
int ds4j_tokenizer_add(gguf_writer *w, const char *tokenizer_json, uint32_t n_vocab, uint32_t bos_id,
                       uint32_t eos_id, ds4j_tokenizer_data **keep, uint32_t *n_tokens, char *err, size_t err_cap);
void ds4j_tokenizer_free(ds4j_tokenizer_data *t);

/* Type names accepted on the command line: f32 f16 bf16 q8_0 q4_k q2_k iq2_xxs. */
int32_t ds4j_parse_type(const char *s);

typedef struct ds4j_convert_opts {
    const char *hf_dir;
    const char *out_path;
    int32_t dense_type;     /* DS4J_TYPE_* */
    int32_t expert_type;    /* DS4J_TYPE_*; -1 = same as dense */
    const char *tokenizer;  /* tokenizer.json or NULL */
    const char *name;       /* general.name; NULL = directory name */
    ds4j_log_fn log;
    void *log_user;
} ds4j_convert_opts;

int ds4j_convert_hf(const ds4j_convert_opts *o, char *err, size_t err_cap);

#endif /* DS4J_CONVERT_H */
