// Low-precision kernels: bf16 GEMM for mixed-precision training, bf16 and int8 weights for
// inference, the fused decode step (one GPT-2 block per call, on float32, bf16 or int8 weights),
// and the probes that bound them (bf16 and int8 dot-product peaks, memory bandwidth).
//
// Paths: "amx" (the bf16 training GEMM, and the packed linears from 16 rows up, on AMX tiles:
// tdpbf16ps, tdpbusd; the rest as avx512_bf16, for CPUs with amx_tile, amx_bf16 and amx_int8), "avx512_bf16" (vdpbf16ps / vpdpbusd, for CPUs with
// avx512_bf16 and avx512_vnni),
// then "avx512", "avx2" and "portable", which compute the same products on float32 FMAs
// (bf16 operands widened exactly) and int32 multiplies (int8, bit-identical to vpdpbusd).
// The active path follows the float32 kernel table (set_isa): the avx512 table uses the
// bf16/VNNI instructions when the CPU has them, unless set_lowp_native(false).
//
// Packed weight layouts (the same on every path, so weights packed once serve any of them):
//   bf16 [ceil(N/16)][ceil(K/2)][16] uint32: word (p, j) of strip s holds output channel
//        n = 16 s + j at inputs 2p (low half) and 2p + 1 (high half), rounded to nearest even;
//        zero padded in n and k.
//   int8 [ceil(N/16)][ceil(K/4)][16][4] int8: output channel n's inputs 4p..4p+3, symmetric
//        per-channel: w ~ scale[n] * q, q in [-127, 127]; wsum[n] = sum_k q (for the +128
//        offset of the unsigned activations vpdpbusd takes).
// Activations of an int8 product are quantized per row: x ~ sx * qx, qx = round(x / sx) in
// [-127, 127], sx = max|x| / 127, and fed as u8 = qx + 128, so
//   y[n] = sx * scale[n] * (sum_k u8_k q_k - 128 wsum[n]) + bias[n].
#pragma once
#include <cstdint>

#include "kernels.h"

namespace plinth {

// One linear layer of a decoding step (decode_layer): float32 weights read in place, or packed.
struct DecodeWeight {
  int format;                 // 0 float32, 1 bf16 (packed words), 2 int8 (packed bytes, scales, wsum)
  const float* w;             // float32: [K, N] (in_out) or [N, K]
  bool in_out;
  const uint32_t* words;      // bf16
  const int8_t* bytes;        // int8
  const float* scales;
  const int32_t* wsum;
  const float* bias;          // [N] or nullptr
};

// One GPT-2 block for the packed rows of a decoding step, in place on the residual stream:
//   x += proj(attention over each segment's KV cache (qkv(LN1(x))));  x += mlp_proj(gelu(fc(LN2(x))))
// Rows [start, start + count) of segment s (in order) sit at positions [past[s], past[s] + count)
// and append their keys and values to keys[s] / values[s] ([cap, C], row stride C) before attending.
struct DecodeLayerArgs {
  int64_t M, C, NH, F;        // rows, channels, heads, MLP width
  float eps;
  float* x;                   // [M, C]
  const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  DecodeWeight attn, proj, fc, mlp_proj;  // [C -> 3C], [C -> C], [C -> F], [F -> C]
  int64_t segments;
  const int64_t* count;
  const int64_t* past;
  float* const* keys;
  float* const* values;
};

struct LowpTable {
  const char* name;
  // C = alpha * op(A) @ op(B) + beta * C (+ bias), as GemmArgs, with A and B rounded to bf16
  // (nearest even) as they are packed and the products summed in float32. colsum unsupported.
  void (*gemm_bf16)(const GemmArgs& g);
  // y[M, N] (row stride ldy) = x[M, K] (row stride ldx) @ W^T (+ bias), W packed bf16.
  void (*linear_bf16)(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const uint32_t* w,
                      const float* bias, float* y, int64_t ldy);
  // Same with W packed int8 (scales [N], wsum [N]).
  void (*linear_int8)(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const int8_t* w,
                      const float* scales, const int32_t* wsum, const float* bias, float* y, int64_t ldy);
  // Fused attention (kernels.h AttentionArgs, as attention_forward/backward) with bf16 products.
  void (*attention_forward_bf16)(const AttentionArgs& a);
  void (*attention_backward_bf16)(const AttentionArgs& a);
  // y[M, N] = x[M, K] @ W (+ bias) with float32 W read in place ([K, N] in_out, or [N, K]):
  // a streaming product for few rows (decoding), the float32 GEMM above kDecodeGemvRows rows.
  void (*linear_f32)(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const float* w, bool in_out,
                     const float* bias, float* y, int64_t ldy);
  // One transformer block of a decoding step (DecodeLayerArgs), in one call.
  void (*decode_layer)(const DecodeLayerArgs& a);
  // Register-only dot-product loops: FLOPs (bf16) or integer ops (int8) done by the calling thread.
  double (*bf16_peak)(int64_t iterations);
  double (*int8_peak)(int64_t iterations);
};

const LowpTable& lowp_portable();
const LowpTable& lowp_avx2();
const LowpTable& lowp_avx512();
const LowpTable& lowp_avx512_bf16();
const LowpTable& lowp_amx();

bool lowp_native_supported();      // the CPU has avx512_bf16 and avx512_vnni (and the avx512 path)
void set_lowp_native(bool on);     // allow (default) or forbid the bf16/VNNI instructions
bool lowp_amx_supported();         // the above, and amx_tile, amx_bf16, amx_int8 with the kernel's permission for the tile state
void set_lowp_amx(bool on);        // allow (default) or forbid AMX
const LowpTable& lowp();           // the active path

// Packing (plain C++, done once per weight). W is [N, K] (out_in) or [K, N] (in_out).
int64_t packed_bf16_words(int64_t N, int64_t K);
int64_t packed_int8_bytes(int64_t N, int64_t K);
void pack_bf16(int64_t N, int64_t K, const float* W, bool in_out, uint32_t* dst);
void pack_int8(int64_t N, int64_t K, const float* W, bool in_out, int8_t* dst, float* scales, int32_t* wsum);

// Reads buf[0, n) once (a vector sum, one contiguous share per thread); returns the bytes read.
int64_t stream_read(const float* buf, int64_t n);

}  // namespace plinth

// Builds the table of one low-precision namespace lp_<name> (kernels/lowp.inc defines every entry).
#define PLINTH_DEFINE_LOWP(name)                                                                    \
  static const LowpTable k_lowp_##name = {#name, &lp_##name::gemm_bf16, &lp_##name::linear_bf16,     \
                                          &lp_##name::linear_int8, &lp_##name::attention_forward_bf16, \
                                          &lp_##name::attention_backward_bf16, &lp_##name::linear_f32, \
                                          &lp_##name::decode_layer, &lp_##name::bf16_peak,            \
                                          &lp_##name::int8_peak};                                     \
  const LowpTable& lowp_##name() { return k_lowp_##name; }
