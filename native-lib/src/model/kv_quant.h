/*
 * kv_quant.h — the compact decoder-state formats of kv_precision=fp8 (ds4 /
 * official DeepSeek numerics, spec section 13):
 *
 *  - KV rows (sliding-window rows and compressed entries, width D): the
 *    first D-dr (non-RoPE) channels as E4M3 codes in blocks of 64 channels,
 *    each block with a power-of-two scale stored as an int8 exponent; the dr
 *    RoPE channels as f16. Decoded values are the f16 roundings of the FP8
 *    values, which is what ds4 keeps in its f16 caches.
 *  - Indexer keys (width DI): Hadamard-rotated, then E2M1 (FP4) codes in
 *    blocks of 32 with a power-of-two scale (int8 exponent), two codes a
 *    byte. Indexer queries get the same rotation and FP4 round trip in float.
 *
 * Blocks shorter than 64 / 32 (the tiny fixtures' widths) are quantised as a
 * partial block; the Hadamard transform runs in blocks of the largest power
 * of two dividing the width (128 = DI for Flash, as in ds4).
 */
#ifndef DS4J_KV_QUANT_H
#define DS4J_KV_QUANT_H

#include <stdint.h>

#define KVQ_FP8_BLOCK 64
#define KVQ_FP4_BLOCK 32
#define KVQ_E4M3_MAX 448.0f
#define KVQ_E2M1_MAX 6.0f

/* E4M3 ("fn": no infinities, 0x7f/0xff = NaN). Encode rounds to nearest,
 * ties to the even code, saturating at +-448. */
uint8_t kvq_e4m3_encode(float x);
float kvq_e4m3_decode(uint8_t code);
/* E2M1: 4-bit code (bit 3 = sign), values 0, .5, 1, 1.5, 2, 3, 4, 6;
 * nearest, ties to the even code, saturating at +-6. NaN encodes as 0. */
uint8_t kvq_e2m1_encode(float x);
float kvq_e2m1_decode(uint8_t code);
/* Exponent e of the power-of-two block scale 2^e = 2^ceil(log2(amax/qmax)),
 * amax raised to `floor` first. */
int kvq_block_exp(float amax, float qmax, float floor);

/* Normalised Walsh-Hadamard transform (H H^T = I) in place, in blocks of
 * kvq_hadamard_block(n) elements. */
int64_t kvq_hadamard_block(int64_t n);
void kvq_hadamard(float *x, int64_t n);

/* In-place float round trips (the numerics without the storage). */
void kvq_fp8_roundtrip(float *x, int64_t D, int64_t n_rot); /* non-RoPE part only */
void kvq_fp4_roundtrip(float *x, int64_t n);
void kvq_indexer_qat(float *x, int64_t n); /* Hadamard + FP4 */

/* Compact KV rows. */
int64_t kvq_kv_row_bytes(int64_t D, int64_t n_rot);
/* Quantises x (D floats, unchanged) into dst (kvq_kv_row_bytes bytes). */
void kvq_kv_row_encode(const float *x, int64_t D, int64_t n_rot, uint8_t *dst);
void kvq_kv_row_decode(const uint8_t *src, int64_t D, int64_t n_rot, float *out);

/* Compact indexer keys: x must already be Hadamard-rotated. */
int64_t kvq_idx_row_bytes(int64_t DI);
void kvq_idx_row_encode(const float *x, int64_t DI, uint8_t *dst);
void kvq_idx_row_decode(const uint8_t *src, int64_t DI, float *out);

#endif
