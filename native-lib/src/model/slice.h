/*
 * slice.h — cutting a deepseek4 GGUF down to a range of routed experts
 * (`ds4j-tool slice`, expert_compact in docs/distributed.md): every tensor
 * and metadata key is copied unchanged except the three stacked expert
 * tensors of each layer, which keep only experts [lo, hi), and the
 * ds4j.expert_slice.start/end keys that record the range.
 */
#ifndef DS4J_SLICE_H
#define DS4J_SLICE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Writes out_path (through a temporary file renamed at the end) holding
 * global experts [lo, hi) of in_path. in_path may itself be a slice if
 * [lo, hi) lies inside its range. Tensors are produced one at a time from
 * the read-only mapping of in_path, so memory stays at about one output
 * tensor. Returns 0 or a negative DS4J_ERR_* with the reason in err.
 */
int ds4j_slice_gguf(const char *in_path, int64_t lo, int64_t hi, const char *out_path, char *err, size_t err_cap);

/* The stacked routed-expert tensor of a layer? (blk.N.ffn_{gate,up,down}_exps.weight) */
int ds4j_slice_is_expert_tensor(const char *name, int64_t *layer);

#endif
