"""The loops over time of [`GruLayerFunction`] (`gru_forward`, `gru_backward`) and the Luong decoder's step
(`luong_step`) compiled for the CPU.

Each time step of a GRU layer is one matrix product (the recurrent gates) and a handful of elementwise
operations (two sigmoids, a tanh, the state update). Here the whole loop over time runs in C++, per step one
product and one fused pass over the gates. The products run on oneDNN or on ATen (MKL in torch's CPU wheels),
as the caller says: which is faster differs between machines, and [`gru_choice`] times them here. `luong_step`
is one decoding step without gradients (the GRU layers, the attention, the output layers) in one call.

The source below is compiled with `torch.utils.cpp_extension` (a C++ compiler and `ninja`) into the torch
extensions folder (`$TORCH_EXTENSIONS_DIR`, else `~/.cache/torch_extensions`), one folder per source and torch
installation, the first time training needs it (about 10-30 seconds, announced in one warning line), and
loaded from there afterwards. Inference never waits for a build ([`built_recurrence_ops`]): until the library
is there it runs `nn.GRU`. Where it cannot be built, [`recurrence_ops`] returns `None` after one warning and
training runs the same loops written with torch operations.

Set `GRU_SEQ2SEQ_NO_COMPILE=1` to never build it.
"""

import contextlib
import functools
import hashlib
import os
import platform
import shutil
import stat
import time
import warnings

import torch
from transformers.utils import logging

from .owner_lock import OwnerLock

logger = logging.get_logger(__name__)

CPP_SOURCE = r"""
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace at::native {  // exported by libtorch_cpu (ATen/native/mkldnn/Matmul.h, not shipped): result = beta * result
                        // + alpha * mat1 @ mat2 with oneDNN
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta, float alpha);
}

namespace {

// Whether oneDNN's matmul runs here in float32 and agrees with ATen's (a build without oneDNN, or one that takes
// only bfloat16 there, throws).
bool onednn_works() {
  static const bool works = [] {
    try {
      const auto a = at::arange(12, at::kFloat).reshape({4, 3}).sin(), b = at::arange(15, at::kFloat).reshape({3, 5});
      const auto result = at::empty({4, 5}, at::kFloat);
      at::native::mkldnn_matmul(a, b, result, 0.0f, 1.0f);
      return at::allclose(result, at::mm(a, b));
    } catch (const std::exception&) {
      return false;
    }
  }();
  return works;
}

// result = beta * result + a @ b, by oneDNN (float32, where it works) or by ATen (MKL in torch's CPU wheels): which is
// faster differs between machines (oneDNN ran the GRU step's product at twice MKL's speed on a Zen 5, slower on a
// Xeon), so the caller says, from a timing on the machine (`gru_choice.py`).
void gemm(at::Tensor result, const at::Tensor& a, const at::Tensor& b, float beta, bool onednn) {
  if (onednn && result.scalar_type() == at::kFloat && onednn_works()) {
    at::native::mkldnn_matmul(a, b, result, beta, 1.0f);
  } else if (beta == 0.0f) {
    at::mm_out(result, a, b);
  } else {
    result.addmm_(a, b, beta);
  }
}

// result = beta * result + a @ b (beta 0 or 1) with the product in bfloat16: `b` is bfloat16 already (a weight cast
// once per call), `a` is cast here; the library accumulates in float32 (oneDNN's AVX512-BF16 or AMX kernels), the
// product is rounded to bfloat16 and added to the float32 `result`. Master weights, states and gates stay float32.
void gemm_bf16(at::Tensor result, const at::Tensor& a, const at::Tensor& b, float beta) {
  const auto product = at::mm(a.scalar_type() == at::kBFloat16 ? a : a.to(at::kBFloat16), b);
  if (beta == 0.0f) {
    result.copy_(product);
  } else {
    result.add_(product);
  }
}

// `gemm`, or with `bf16` `gemm_bf16` (then `b` is the bfloat16 copy of the weight)
void product(at::Tensor result, const at::Tensor& a, const at::Tensor& b, float beta, bool onednn, bool bf16) {
  if (bf16) {
    gemm_bf16(std::move(result), a, b, beta);
  } else {
    gemm(std::move(result), a, b, beta, onednn);
  }
}

// A weight as `product` reads it: itself, or its bfloat16 copy
at::Tensor product_weight(const at::Tensor& weight, bool bf16) { return bf16 ? weight.to(at::kBFloat16) : weight; }

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// The checks every entry point makes before it trusts a size, an offset or a pointer: `torch.ops.<namespace>.*`
// can be called with anything, and a wrong length would read or write outside a tensor. Each failure raises a
// RuntimeError naming the argument.
void check_cpu_float(const at::Tensor& tensor, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(tensor.defined(), name, ": missing");
  TORCH_CHECK(tensor.device().is_cpu(), name, ": got a tensor on ", tensor.device(), ", want the CPU");
  TORCH_CHECK(tensor.scalar_type() == dtype, name, ": got dtype ", tensor.scalar_type(), ", want ", dtype);
}

void check_shape(const at::Tensor& tensor, const char* name, at::IntArrayRef shape) {
  TORCH_CHECK(tensor.sizes() == shape, name, ": got shape ", tensor.sizes(), ", want ", shape);
}

// ---- int8 weights: translation with a quarter of float32's bytes per weight ----
// A weight (N, K) quantized per output row (symmetric: q = round(w * 127 / max|w_row|), scale = max|w_row| / 127)
// and laid out for VNNI's products of 4 unsigned by 4 signed bytes: an int8 tensor (ceil(N / 16), ceil(K / 4) * 64
// + 128), one row per block of 16 outputs: for each group of 4 inputs, 16 outputs x 4 bytes (zeros past N and K),
// then the block's 16 float32 scales and its 16 int32 compensations (128 * sum_k q, see `quantize_rows`).
constexpr int64_t kInt8Lanes = 16, kInt8GroupBytes = 64, kInt8TailBytes = 128, kInt8MaxInputs = 65536;

int64_t int8_groups(int64_t k) { return (k + 3) / 4; }
int64_t int8_blocks(int64_t n) { return (n + kInt8Lanes - 1) / kInt8Lanes; }
int64_t int8_row_bytes(int64_t k) { return int8_groups(k) * kInt8GroupBytes + kInt8TailBytes; }

// An int8 weight of `n` outputs over `k` inputs, as `int8_pack` lays it out: its dtype, device and exact shape (so
// no offset the kernels compute leaves it).
void check_int8_weight(const at::Tensor& weight, const char* name, int64_t n, int64_t k) {
  check_cpu_float(weight, name, at::kChar);
  TORCH_CHECK(n >= 1 && k >= 1 && k <= kInt8MaxInputs, name, ": an int8 weight of ", n, " outputs over ", k,
              " inputs, want 1..", kInt8MaxInputs, " inputs and at least one output");
  check_shape(weight, name, {int8_blocks(n), int8_row_bytes(k)});
  TORCH_CHECK(weight.is_contiguous(), name, ": want a contiguous int8 weight (as int8_pack makes it)");
}

bool cpu_has_vnni() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

// round(x * inverse) clamped to -127..127 (the same rounding as the vector code: to nearest, ties to even)
inline int32_t quantize(float x, float inverse) {
  const auto q = static_cast<int32_t>(std::nearbyint(std::fmax(std::fmin(x * inverse, 127.0f), -127.0f)));
  return q < -127 ? -127 : (q > 127 ? 127 : q);  // (a NaN input lands anywhere in the range, never outside)
}

// Inputs quantized per row, as the products read them: `rows` rows of `groups` * 4 bytes, each value q + 128 (an
// unsigned byte, q in -127..127, 128 past K), and each row's scale (max|x_row| / 127). The products then compute
// sum_k (q_x + 128) q_w, so the compensation 128 * sum_k q_w is taken off before scaling.
struct QuantizedRows {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
};

void quantize_row_portable(const float* x, int64_t k, int64_t padded, uint8_t* out, float* scale) {
  float largest = 0.0f;
  for (int64_t i = 0; i < k; ++i) largest = std::fmax(largest, std::fabs(x[i]));
  const float inverse = largest > 0.0f ? 127.0f / largest : 0.0f;
  for (int64_t i = 0; i < k; ++i) out[i] = static_cast<uint8_t>(quantize(x[i], inverse) + 128);
  for (int64_t i = k; i < padded; ++i) out[i] = 128;
  *scale = largest / 127.0f;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define INT8_VNNI_TARGET __attribute__((target("avx512f,avx512vnni")))
INT8_VNNI_TARGET void quantize_row_vnni(const float* x, int64_t k, int64_t padded, uint8_t* out, float* scale) {
  __m512 largest_v = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) largest_v = _mm512_max_ps(largest_v, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  float largest = _mm512_reduce_max_ps(largest_v);
  for (; i < k; ++i) largest = std::fmax(largest, std::fabs(x[i]));
  const float inverse = largest > 0.0f ? 127.0f / largest : 0.0f;
  const __m512 inverse_v = _mm512_set1_ps(inverse);
  const __m512i low = _mm512_set1_epi32(-127), high = _mm512_set1_epi32(127), offset = _mm512_set1_epi32(128);
  for (i = 0; i + 16 <= k; i += 16) {
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), inverse_v));  // (to nearest, ties even)
    q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, low), high), offset);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(q));
  }
  for (; i < k; ++i) out[i] = static_cast<uint8_t>(quantize(x[i], inverse) + 128);
  for (; i < padded; ++i) out[i] = 128;
  *scale = largest / 127.0f;
}
#endif

QuantizedRows quantize_rows(const at::Tensor& x, int64_t groups, bool vnni) {  // x: contiguous float32 (rows, k)
  const int64_t rows = x.size(0), k = x.size(1), padded = groups * 4;
  QuantizedRows result{std::vector<uint8_t>(rows * padded), std::vector<float>(rows)};
  const float* data = x.data_ptr<float>();
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(k, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
#if defined(__x86_64__) && defined(__GNUC__)
      if (vnni) {
        quantize_row_vnni(data + row * k, k, padded, result.bytes.data() + row * padded, &result.scales[row]);
        continue;
      }
#endif
      quantize_row_portable(data + row * k, k, padded, result.bytes.data() + row * padded, &result.scales[row]);
    }
  });
  return result;
}

// out[row, block's 16 outputs] for `rows` (1..4) rows from one block of an int8 weight: sum over the groups of 4
// inputs of (q_x + 128) q_w, less the compensation, times the two scales, plus the bias. `out` rows are `n` apart;
// only the block's outputs below `n` are written.
void int8_block_portable(int64_t rows, int64_t groups, const uint8_t* x, int64_t x_stride, const float* x_scales,
                         const int8_t* block, int64_t outputs, const float* bias, float* out, int64_t n) {
  float scales[kInt8Lanes];
  int32_t compensation[kInt8Lanes];
  std::memcpy(scales, block + groups * kInt8GroupBytes, sizeof(scales));
  std::memcpy(compensation, block + groups * kInt8GroupBytes + 64, sizeof(compensation));
  for (int64_t row = 0; row < rows; ++row) {
    int32_t sums[kInt8Lanes] = {0};
    const uint8_t* xr = x + row * x_stride;
    for (int64_t g = 0; g < groups; ++g) {
      const int8_t* w = block + g * kInt8GroupBytes;
      for (int64_t lane = 0; lane < kInt8Lanes; ++lane) {
        for (int64_t t = 0; t < 4; ++t) sums[lane] += int32_t(xr[4 * g + t]) * int32_t(w[4 * lane + t]);
      }
    }
    for (int64_t lane = 0; lane < outputs; ++lane) {
      // (unsigned: a foreign weight's compensation may be anything; ours never overflows)
      const auto difference = static_cast<int32_t>(static_cast<uint32_t>(sums[lane]) - uint32_t(compensation[lane]));
      const float value = float(difference) * (scales[lane] * x_scales[row]);
      out[row * n + lane] = bias != nullptr ? value + bias[lane] : value;
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same with AVX512-VNNI: per group of 4 inputs one 64-byte load of the block and one vpdpbusd per row; with
// fewer than 4 rows each row sums into `CHAINS` accumulators (alternate groups), so the adds do not wait on each other
template <int ROWS, int CHAINS>
INT8_VNNI_TARGET void int8_block_vnni(int64_t groups, const uint8_t* x, int64_t x_stride, const float* x_scales,
                                      const int8_t* block, int64_t outputs, const float* bias, float* out,
                                      int64_t n) {
  __m512i sums[ROWS][CHAINS];
  for (int row = 0; row < ROWS; ++row)
    for (int chain = 0; chain < CHAINS; ++chain) sums[row][chain] = _mm512_setzero_si512();
  int64_t g = 0;
  for (; g + CHAINS <= groups; g += CHAINS) {
    for (int chain = 0; chain < CHAINS; ++chain) {
      const __m512i w = _mm512_loadu_si512(block + (g + chain) * kInt8GroupBytes);
      for (int row = 0; row < ROWS; ++row) {
        int32_t four;
        std::memcpy(&four, x + row * x_stride + 4 * (g + chain), 4);
        sums[row][chain] = _mm512_dpbusd_epi32(sums[row][chain], _mm512_set1_epi32(four), w);
      }
    }
  }
  for (; g < groups; ++g) {
    const __m512i w = _mm512_loadu_si512(block + g * kInt8GroupBytes);
    for (int row = 0; row < ROWS; ++row) {
      int32_t four;
      std::memcpy(&four, x + row * x_stride + 4 * g, 4);
      sums[row][0] = _mm512_dpbusd_epi32(sums[row][0], _mm512_set1_epi32(four), w);
    }
  }
  const __mmask16 mask = outputs >= kInt8Lanes ? __mmask16(0xFFFF) : __mmask16((1u << outputs) - 1);
  const __m512 scales = _mm512_loadu_ps(block + groups * kInt8GroupBytes);
  const __m512i compensation = _mm512_loadu_si512(block + groups * kInt8GroupBytes + 64);
  const __m512 bias_v = bias != nullptr ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
  for (int row = 0; row < ROWS; ++row) {
    __m512i total = sums[row][0];
    for (int chain = 1; chain < CHAINS; ++chain) total = _mm512_add_epi32(total, sums[row][chain]);
    const __m512 scale = _mm512_mul_ps(scales, _mm512_set1_ps(x_scales[row]));
    __m512 value = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(total, compensation)), scale);
    if (bias != nullptr) value = _mm512_add_ps(value, bias_v);
    _mm512_mask_storeu_ps(out + row * n, mask, value);
  }
}

void int8_block_vnni_rows(int64_t rows, int64_t groups, const uint8_t* x, int64_t x_stride, const float* x_scales,
                          const int8_t* block, int64_t outputs, const float* bias, float* out, int64_t n) {
  switch (rows) {
    case 1: return int8_block_vnni<1, 4>(groups, x, x_stride, x_scales, block, outputs, bias, out, n);
    case 2: return int8_block_vnni<2, 2>(groups, x, x_stride, x_scales, block, outputs, bias, out, n);
    case 3: return int8_block_vnni<3, 1>(groups, x, x_stride, x_scales, block, outputs, bias, out, n);
    default: return int8_block_vnni<4, 1>(groups, x, x_stride, x_scales, block, outputs, bias, out, n);
  }
}
#endif

// out (rows, n) = x (rows, k) @ dequantized(weight).T + bias, x float32 contiguous, out float32 contiguous, shapes
// checked by the callers. Blocks of 16 outputs are split between threads; each block serves every row (4 at a time)
// while its bytes are in the cache.
void int8_gemm(const at::Tensor& out, const at::Tensor& x, const at::Tensor& weight, const float* bias,
               bool portable) {
  const int64_t rows = x.size(0), k = x.size(1), n = out.size(1), groups = int8_groups(k);
  const int64_t row_bytes = int8_row_bytes(k), blocks = int8_blocks(n);
  const bool vnni = !portable && cpu_has_vnni();
  const auto quantized = quantize_rows(x, groups, vnni);
  const int8_t* packed = weight.data_ptr<int8_t>();
  float* result = out.data_ptr<float>();
  const int64_t work = row_bytes * ((rows + 3) / 4);  // bytes read per block
  at::parallel_for(0, blocks, std::max<int64_t>(1, 65536 / work), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int8_t* block = packed + b * row_bytes;
      const int64_t outputs = std::min<int64_t>(kInt8Lanes, n - b * kInt8Lanes);
      const float* block_bias = bias != nullptr ? bias + b * kInt8Lanes : nullptr;
      for (int64_t row = 0; row < rows; row += 4) {
        const int64_t count = std::min<int64_t>(4, rows - row);
        const uint8_t* xr = quantized.bytes.data() + row * groups * 4;
        float* o = result + row * n + b * kInt8Lanes;
#if defined(__x86_64__) && defined(__GNUC__)
        if (vnni) {
          int8_block_vnni_rows(count, groups, xr, groups * 4, quantized.scales.data() + row, block, outputs,
                               block_bias, o, n);
          continue;
        }
#endif
        int8_block_portable(count, groups, xr, groups * 4, quantized.scales.data() + row, block, outputs, block_bias,
                            o, n);
      }
    }
  });
}

// The int8 layout of a float weight (N, K), see above. Refuses non-finite weights (they have no scale).
at::Tensor int8_pack(const at::Tensor& weight) {
  TORCH_CHECK(weight.defined() && weight.device().is_cpu(), "weight: want a tensor on the CPU");
  TORCH_CHECK(at::isFloatingType(weight.scalar_type()), "weight: got dtype ", weight.scalar_type(),
              ", want a floating-point weight");
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) >= 1 && weight.size(1) >= 1 && weight.size(1) <= kInt8MaxInputs,
              "weight: got shape ", weight.sizes(), ", want (outputs >= 1, 1..", kInt8MaxInputs, " inputs)");
  TORCH_CHECK(at::isfinite(weight).all().item<bool>(), "weight: holds inf or NaN, which int8 cannot represent");
  const auto w = weight.to(at::kFloat).contiguous();
  const int64_t n = w.size(0), k = w.size(1), groups = int8_groups(k), row_bytes = int8_row_bytes(k);
  auto packed = at::zeros({int8_blocks(n), row_bytes}, at::kChar);
  int8_t* data = packed.data_ptr<int8_t>();
  const float* values = w.data_ptr<float>();
  for (int64_t output = 0; output < n; ++output) {
    const float* row = values + output * k;
    float largest = 0.0f;
    for (int64_t i = 0; i < k; ++i) largest = std::fmax(largest, std::fabs(row[i]));
    const float inverse = largest > 0.0f ? 127.0f / largest : 0.0f, scale = largest / 127.0f;
    int8_t* block = data + (output / kInt8Lanes) * row_bytes;
    const int64_t lane = output % kInt8Lanes;
    int32_t total = 0;
    for (int64_t i = 0; i < k; ++i) {
      const int32_t q = quantize(row[i], inverse);
      block[(i / 4) * kInt8GroupBytes + lane * 4 + i % 4] = static_cast<int8_t>(q);
      total += q;
    }
    const int32_t compensation = 128 * total;
    std::memcpy(block + groups * kInt8GroupBytes + lane * 4, &scale, 4);
    std::memcpy(block + groups * kInt8GroupBytes + 64 + lane * 4, &compensation, 4);
  }
  return packed;
}

// The float weight (n, k) an int8 weight stands for (q * scale): for the code that reads weights as tensors
at::Tensor int8_unpack(const at::Tensor& packed, int64_t n, int64_t k) {
  check_int8_weight(packed, "weight", n, k);
  auto result = at::empty({n, k}, at::kFloat);
  const int8_t* data = packed.data_ptr<int8_t>();
  float* out = result.data_ptr<float>();
  const int64_t groups = int8_groups(k), row_bytes = int8_row_bytes(k);
  for (int64_t output = 0; output < n; ++output) {
    const int8_t* block = data + (output / kInt8Lanes) * row_bytes;
    const int64_t lane = output % kInt8Lanes;
    float scale;
    std::memcpy(&scale, block + groups * kInt8GroupBytes + lane * 4, 4);
    for (int64_t i = 0; i < k; ++i) out[output * k + i] = block[(i / 4) * kInt8GroupBytes + lane * 4 + i % 4] * scale;
  }
  return result;
}

// x (..., k) float32 @ an int8 weight of `n` outputs (+ bias (n,)): (..., n) float32
at::Tensor int8_linear(const at::Tensor& input, const at::Tensor& weight, int64_t n,
                       const std::optional<at::Tensor>& bias, bool portable) {
  check_cpu_float(input, "input", at::kFloat);
  TORCH_CHECK(input.dim() >= 1, "input: got a scalar, want (..., in_features)");
  const int64_t k = input.size(-1);
  check_int8_weight(weight, "weight", n, k);
  const at::Tensor bias_ = bias.has_value() ? *bias : at::Tensor();
  if (bias_.defined()) {
    check_cpu_float(bias_, "bias", at::kFloat);
    check_shape(bias_, "bias", {n});
  }
  auto sizes = input.sizes().vec();
  sizes.back() = n;
  auto result = at::empty(sizes, input.options());
  if (input.numel() == 0) return result;
  const auto x = input.reshape({-1, k}).contiguous();
  const auto bias_data = bias_.defined() ? bias_.contiguous() : bias_;
  int8_gemm(result.view({-1, n}), x, weight, bias_data.defined() ? bias_data.data_ptr<float>() : nullptr, portable);
  return result;
}

// Packed-sequence step sizes: each step's rows in 1..batch, non-increasing (rows longest first), adding up to
// `tokens`: the offsets the loops compute from them stay inside every tensor.
void check_batch_sizes(at::IntArrayRef batch_sizes, int64_t batch, int64_t tokens) {
  int64_t total = 0, previous = batch;
  for (const int64_t rows : batch_sizes) {
    TORCH_CHECK(rows >= 1 && rows <= previous, "batch_sizes: got ", batch_sizes,
                ", want non-increasing step sizes in 1..", batch, " (the initial state's rows)");
    previous = rows;
    total += rows;
  }
  TORCH_CHECK(total == tokens, "batch_sizes: got ", batch_sizes, " (", total, " tokens), want ", tokens,
              " tokens (the packed inputs' rows)");
}

// The dtype of a weight matrix that products of `dtype` (the computation's) can read: `dtype` itself, or bfloat16
// for float32 computations (a bfloat16 model's weights: the products run in bfloat16, everything else in float32).
at::ScalarType weight_dtype(const at::Tensor& weight, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(weight.defined(), name, ": missing");
  const auto got = weight.scalar_type();
  return got == at::kBFloat16 && dtype == at::kFloat ? got : dtype;
}

// The dtype of a weight matrix of the products: `weight_dtype`'s, or int8 for float32 computations (a model
// converted by `to_inference_dtype("int8")`: its matrices in `int8_pack`'s layout)
at::ScalarType matrix_dtype(const at::Tensor& weight, const char* name, at::ScalarType dtype) {
  const bool int8 = weight.defined() && weight.scalar_type() == at::kChar && dtype == at::kFloat;
  return int8 ? at::kChar : weight_dtype(weight, name, dtype);
}

// A small parameter (a bias, `v`) that a computation of `dtype` reads: of `dtype`, or bfloat16 for float32
// computations; returned as `dtype`.
at::Tensor small_parameter(const at::Tensor& tensor, const char* name, at::ScalarType dtype) {
  check_cpu_float(tensor, name, weight_dtype(tensor, name, dtype));
  return tensor.to(dtype).contiguous();
}

// The shapes, dtypes and devices of one GRU layer's weights, for inputs of `input_size` features, computed in
// `dtype`: weights of `dtype` (or both bfloat16 or both int8, see `matrix_dtype`; int8 weights need the state's
// width `hidden`), biases of either. Returns H.
int64_t check_gru_weights(const at::Tensor& weight_ih, const at::Tensor& weight_hh, const at::Tensor* bias_ih,
                          const at::Tensor* bias_hh, int64_t input_size, at::ScalarType dtype, int64_t hidden) {
  const auto weights = matrix_dtype(weight_hh, "weight_hh", dtype);
  check_cpu_float(weight_hh, "weight_hh", weights);
  check_cpu_float(weight_ih, "weight_ih", weights);
  int64_t H = hidden;
  if (weights == at::kChar) {
    TORCH_CHECK(hidden >= 1, "weight_hh: int8 weights need the state's width");
    check_int8_weight(weight_hh, "weight_hh", 3 * H, H);
    check_int8_weight(weight_ih, "weight_ih", 3 * H, input_size);
  } else {
    TORCH_CHECK(weight_hh.dim() == 2 && weight_hh.size(1) >= 1, "weight_hh: got shape ", weight_hh.sizes(),
                ", want (3 * hidden, hidden)");
    H = weight_hh.size(1);
    check_shape(weight_hh, "weight_hh", {3 * H, H});
    check_shape(weight_ih, "weight_ih", {3 * H, input_size});
  }
  if (bias_ih != nullptr) {
    check_cpu_float(*bias_ih, "bias_ih", weight_dtype(*bias_ih, "bias_ih", dtype));
    check_cpu_float(*bias_hh, "bias_hh", weight_dtype(*bias_hh, "bias_hh", dtype));
    check_shape(*bias_ih, "bias_ih", {3 * H});
    check_shape(*bias_hh, "bias_hh", {3 * H});
  }
  return H;
}

// Whether every element is 0 or 1: one pass over the mask, no temporary tensors (it runs at every decoding step).
bool is_binary(const at::Tensor& mask) {
  const auto values = mask.contiguous();
  bool binary = true;
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, values.scalar_type(), "is_binary", [&] {
    const scalar_t* data = values.data_ptr<scalar_t>();
    for (int64_t i = 0, n = values.numel(); i < n; ++i) {
      binary &= data[i] == static_cast<scalar_t>(0) || data[i] == static_cast<scalar_t>(1);
    }
  });
  return binary;
}

at::ScalarType float_dtype(const at::Tensor& tensor, const char* name) {
  TORCH_CHECK(tensor.defined(), name, ": missing");
  const auto dtype = tensor.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, name, ": got dtype ", dtype, ", want float32 or float64");
  return dtype;
}

// The dtype a call computes in, from its state's: float32 or float64 as given, float32 for a bfloat16 state (a
// bfloat16 model's, without gradients: its results go back to bfloat16)
at::ScalarType compute_dtype(const at::Tensor& state, const char* name) {
  return state.defined() && state.scalar_type() == at::kBFloat16 ? at::kFloat : float_dtype(state, name);
}

std::vector<int64_t> step_starts(at::IntArrayRef batch_sizes) {
  std::vector<int64_t> starts(batch_sizes.size(), 0);
  for (size_t step = 1; step < batch_sizes.size(); ++step) starts[step] = starts[step - 1] + batch_sizes[step - 1];
  return starts;
}

// One forward step over `rows` rows: gates from the input side `xg` = W_i* x and the recurrent side `hg` = W_h* h
// (rows, 3H) plus the biases `bi`, `bh` (3H); the state `h` (rows, H) is updated in place. Writes `out` and `prev`
// (rows, H) and the gates the backward step reads, `g` (rows, 4H): r, z, n and W_hn h + b_hn.
template <typename T>
void forward_step(int64_t rows, int64_t H, const T* __restrict__ xg, const T* __restrict__ hg,
                  const T* __restrict__ bi, const T* __restrict__ bh, T* __restrict__ h, T* __restrict__ out,
                  T* __restrict__ prev, T* __restrict__ g) {
  for (int64_t row = 0; row < rows; ++row, xg += 3 * H, hg += 3 * H, h += H, out += H, prev += H, g += 4 * H) {
    for (int64_t j = 0; j < H; ++j) {
      const T r = sigmoid(xg[j] + bi[j] + hg[j] + bh[j]);
      const T z = sigmoid(xg[H + j] + bi[H + j] + hg[H + j] + bh[H + j]);
      const T hn = hg[2 * H + j] + bh[2 * H + j];
      const T n = std::tanh(xg[2 * H + j] + bi[2 * H + j] + r * hn);
      const T next = n + z * (h[j] - n);
      g[j] = r;
      g[H + j] = z;
      g[2 * H + j] = n;
      g[3 * H + j] = hn;
      prev[j] = h[j];
      out[j] = next;
      h[j] = next;
    }
  }
}

// One backward step: `dh` (rows, H) holds the gradient reaching the state from later steps and leaves holding its
// direct part (z * dL/dh'); the gates' pre-activation gradients go to `dxg` (input side) and `dhg` (recurrent side,
// r * dn in the n block), (rows, 3H) each.
template <typename T>
void backward_step(int64_t rows, int64_t H, const T* __restrict__ dout, const T* __restrict__ prev,
                   const T* __restrict__ g, T* __restrict__ dh, T* __restrict__ dxg, T* __restrict__ dhg) {
  for (int64_t row = 0; row < rows; ++row, dout += H, prev += H, g += 4 * H, dh += H, dxg += 3 * H, dhg += 3 * H) {
    for (int64_t j = 0; j < H; ++j) {
      const T grad = dout[j] + dh[j];
      const T r = g[j], z = g[H + j], n = g[2 * H + j], hn = g[3 * H + j];
      const T dn = grad * (1 - z) * (1 - n * n);
      const T dz = grad * (prev[j] - n) * z * (1 - z);
      const T dr = dn * hn * r * (1 - r);
      dxg[j] = dr;
      dxg[H + j] = dz;
      dxg[2 * H + j] = dn;
      dhg[j] = dr;
      dhg[H + j] = dz;
      dhg[2 * H + j] = dn * r;
      dh[j] = grad * z;
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_forward(
    const at::Tensor& inputs, const at::Tensor& initial_state, const at::Tensor& weight_ih,
    const at::Tensor& weight_hh, const at::Tensor& bias_ih, const at::Tensor& bias_hh, at::IntArrayRef batch_sizes,
    bool reverse, bool onednn, bool bf16) {
  const auto dtype = compute_dtype(initial_state, "initial_state"), given = initial_state.scalar_type();
  TORCH_CHECK(!bf16 || dtype == at::kFloat, "bf16: the bfloat16 products take float32 tensors, got ", dtype);
  check_cpu_float(initial_state, "initial_state", given);
  check_cpu_float(inputs, "inputs", given);
  TORCH_CHECK(inputs.dim() == 2, "inputs: got shape ", inputs.sizes(), ", want (tokens, input_size)");
  TORCH_CHECK(initial_state.dim() == 2 && initial_state.size(1) >= 1, "initial_state: got shape ",
              initial_state.sizes(), ", want (batch, hidden)");
  const int64_t H =
      check_gru_weights(weight_ih, weight_hh, &bias_ih, &bias_hh, inputs.size(1), dtype, initial_state.size(1));
  if (given != dtype) {
    auto result = gru_forward(inputs.to(dtype), initial_state.to(dtype), weight_ih, weight_hh, bias_ih, bias_hh,
                              batch_sizes, reverse, onednn, bf16);
    return {std::get<0>(result).to(given), std::get<1>(result).to(given), std::get<2>(result), std::get<3>(result)};
  }
  bf16 = bf16 || weight_hh.scalar_type() == at::kBFloat16;  // a bfloat16 model's weights: bfloat16 products
  const bool int8 = weight_hh.scalar_type() == at::kChar;    // an int8 model's: int8 products (`int8_gemm`)
  TORCH_CHECK(!(int8 && bf16), "bf16: int8 weights multiply in int8, not bfloat16");
  TORCH_CHECK(initial_state.dim() == 2 && initial_state.size(1) == H, "initial_state: got shape ",
              initial_state.sizes(), ", want (batch, ", H, ")");
  const int64_t tokens = inputs.size(0), batch = initial_state.size(0);
  check_batch_sizes(batch_sizes, batch, tokens);
  const auto starts = step_starts(batch_sizes);
  const auto options = initial_state.options();
  auto input_gates = at::empty({tokens, 3 * H}, options);
  if (int8) {  // all steps
    int8_gemm(input_gates, inputs.contiguous(), weight_ih, nullptr, false);
  } else {
    product(input_gates, inputs.contiguous(), product_weight(weight_ih, bf16).t(), 0.0f, onednn, bf16);
  }
  auto outputs = at::empty({tokens, H}, options), previous_states = at::empty({tokens, H}, options);
  auto gates = at::empty({tokens, 4 * H}, options), hidden_gates = at::empty({batch, 3 * H}, options);
  auto state = initial_state.contiguous().clone();  // rows past their last step keep their final state
  const auto bias_i = bias_ih.to(dtype).contiguous(), bias_h = bias_hh.to(dtype).contiguous();
  const auto weight_t = int8 ? weight_hh : product_weight(weight_hh, bf16).t();
  const int64_t steps = batch_sizes.size();
  AT_DISPATCH_FLOATING_TYPES(initial_state.scalar_type(), "gru_forward", [&] {
    for (int64_t i = 0; i < steps; ++i) {
      const int64_t step = reverse ? steps - 1 - i : i, rows = batch_sizes[step], start = starts[step];
      if (int8) {
        int8_gemm(hidden_gates.narrow(0, 0, rows), state.narrow(0, 0, rows), weight_t, nullptr, false);
      } else {
        product(hidden_gates.narrow(0, 0, rows), state.narrow(0, 0, rows), weight_t, 0.0f, onednn, bf16);
      }
      forward_step(rows, H, input_gates.data_ptr<scalar_t>() + start * 3 * H, hidden_gates.data_ptr<scalar_t>(),
                   bias_i.data_ptr<scalar_t>(), bias_h.data_ptr<scalar_t>(), state.data_ptr<scalar_t>(),
                   outputs.data_ptr<scalar_t>() + start * H, previous_states.data_ptr<scalar_t>() + start * H,
                   gates.data_ptr<scalar_t>() + start * 4 * H);
    }
  });
  return {outputs, state, previous_states, gates};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_backward(
    const at::Tensor& output_grads, const at::Tensor& final_state_grad, const at::Tensor& inputs,
    const at::Tensor& weight_ih, const at::Tensor& weight_hh, const at::Tensor& previous_states,
    const at::Tensor& gates, at::IntArrayRef batch_sizes, bool reverse, bool onednn, bool bf16) {
  const auto dtype = float_dtype(gates, "gates");
  TORCH_CHECK(!bf16 || dtype == at::kFloat, "bf16: the bfloat16 products take float32 tensors, got ", dtype);
  check_cpu_float(inputs, "inputs", dtype);
  TORCH_CHECK(inputs.dim() == 2, "inputs: got shape ", inputs.sizes(), ", want (tokens, input_size)");
  check_cpu_float(weight_hh, "weight_hh", dtype);  // (training: weights of the gradients' dtype)
  const int64_t H = check_gru_weights(weight_ih, weight_hh, nullptr, nullptr, inputs.size(1), dtype, -1);
  const int64_t tokens = inputs.size(0);
  for (const auto& [tensor, name, width] : {std::tuple{&output_grads, "output_grads", H},
                                            std::tuple{&previous_states, "previous_states", H},
                                            std::tuple{&gates, "gates", 4 * H}}) {
    check_cpu_float(*tensor, name, dtype);
    check_shape(*tensor, name, {tokens, width});
  }
  check_cpu_float(final_state_grad, "final_state_grad", dtype);
  TORCH_CHECK(final_state_grad.dim() == 2 && final_state_grad.size(1) == H, "final_state_grad: got shape ",
              final_state_grad.sizes(), ", want (batch, ", H, ")");
  check_batch_sizes(batch_sizes, final_state_grad.size(0), tokens);
  const auto starts = step_starts(batch_sizes);
  const auto options = gates.options();
  const auto grads = output_grads.contiguous(), weight = product_weight(weight_hh.contiguous(), bf16);
  const auto previous_states_data = previous_states.contiguous(), gates_data = gates.contiguous();
  auto input_gate_grads = at::empty({tokens, 3 * H}, options), hidden_gate_grads = at::empty({tokens, 3 * H}, options);
  auto state_grad = final_state_grad.contiguous().clone();
  const int64_t steps = batch_sizes.size();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_backward", [&] {
    for (int64_t i = 0; i < steps; ++i) {
      const int64_t step = reverse ? i : steps - 1 - i, rows = batch_sizes[step], start = starts[step];
      backward_step(rows, H, grads.data_ptr<scalar_t>() + start * H,
                    previous_states_data.data_ptr<scalar_t>() + start * H,
                    gates_data.data_ptr<scalar_t>() + start * 4 * H, state_grad.data_ptr<scalar_t>(),
                    input_gate_grads.data_ptr<scalar_t>() + start * 3 * H,
                    hidden_gate_grads.data_ptr<scalar_t>() + start * 3 * H);
      product(state_grad.narrow(0, 0, rows), hidden_gate_grads.narrow(0, start, rows), weight, 1.0f, onednn, bf16);
    }
  });
  auto input_grad = at::empty({tokens, inputs.size(1)}, options);
  auto weight_ih_grad = at::empty_like(weight_ih), weight_hh_grad = at::empty_like(weight_hh);
  // (with bf16, each operand cast once: the products below read the gate gradients twice)
  const auto input_gate_grads_p = bf16 ? input_gate_grads.to(at::kBFloat16) : input_gate_grads;
  const auto hidden_gate_grads_p = bf16 ? hidden_gate_grads.to(at::kBFloat16) : hidden_gate_grads;
  product(input_grad, input_gate_grads_p, product_weight(weight_ih, bf16), 0.0f, onednn, bf16);
  product(weight_ih_grad, input_gate_grads_p.t(), product_weight(inputs.contiguous(), bf16), 0.0f, onednn, bf16);
  product(weight_hh_grad, hidden_gate_grads_p.t(), product_weight(previous_states_data, bf16), 0.0f, onednn, bf16);
  return {input_grad, state_grad, weight_ih_grad, weight_hh_grad, input_gate_grads.sum(0), hidden_gate_grads.sum(0)};
}

// `at::linear(x, weight, bias)` for a weight of x's dtype or, with float32 `x`, bfloat16 (the product in bfloat16,
// accumulated in float32 by the library, then added to the float32 bias) or int8 (`int8_linear`, `n` outputs)
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t n) {
  if (weight.scalar_type() == at::kChar) {
    return int8_linear(x, weight, n, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt, false);
  }
  if (weight.scalar_type() == x.scalar_type()) {
    return at::linear(x, weight, bias);
  }
  auto result = at::linear(x.to(weight.scalar_type()), weight).to(x.scalar_type());
  return bias.defined() ? result.add_(bias) : result;
}

// One decoding step of the Luong decoder without gradients (GruSeq2SeqLuongDecoder.step, eval mode): the same ATen
// operations in the same order as its Python code, in one call, so a step of one sentence does not spend a third of
// its time dispatching ~25 operations from Python. `score`: 0 dot, 1 general (`score_weight` = W_a), 2 concat
// (`score_weight` = W_a's query half, `v`). `gru_weights`: weight_ih, weight_hh, bias_ih, bias_hh per layer.
// Returns the logits (rows, 1, vocab), the GRU state (layers, rows, H), the attention weights (rows, 1, src_len),
// the embeddings and the top GRU outputs (rows, 1, H).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> luong_step(
    const at::Tensor& input_ids, const at::Tensor& hidden, const at::Tensor& states, const at::Tensor& keys,
    const at::Tensor& mask, const at::Tensor& embedding, at::TensorList gru_weights, int64_t score,
    const at::Tensor& score_weight, const at::Tensor& v, const at::Tensor& concat_weight,
    const at::Tensor& concat_bias, const at::Tensor& out_weight, const at::Tensor& out_bias, bool onednn) {
  // a bfloat16 model (every tensor bfloat16): computed in float32 with bfloat16 products, returned in bfloat16
  const auto dtype = compute_dtype(hidden, "hidden"), given = hidden.scalar_type();
  check_cpu_float(embedding, "embedding", weight_dtype(embedding, "embedding", dtype));
  TORCH_CHECK(embedding.dim() == 2, "embedding: got shape ", embedding.sizes(), ", want (vocab, hidden)");
  TORCH_CHECK(input_ids.device().is_cpu(), "input_ids: got a tensor on ", input_ids.device(), ", want the CPU");
  TORCH_CHECK(input_ids.scalar_type() == at::kLong || input_ids.scalar_type() == at::kInt, "input_ids: got dtype ",
              input_ids.scalar_type(), ", want int64 token ids");
  TORCH_CHECK(input_ids.dim() == 2 && input_ids.size(1) == 1 && input_ids.size(0) >= 1, "input_ids: got shape ",
              input_ids.sizes(), ", want (rows >= 1, 1)");
  const int64_t rows = input_ids.size(0), H = embedding.size(1);
  check_cpu_float(hidden, "hidden", given);
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(0) >= 1, "hidden: got shape ", hidden.sizes(),
              ", want (layers, rows, hidden)");
  const int64_t layers = hidden.size(0);
  check_shape(hidden, "hidden", {layers, rows, H});
  TORCH_CHECK(static_cast<int64_t>(gru_weights.size()) == 4 * layers, "gru_weights: got ", gru_weights.size(),
              " tensors, want 4 per layer (", 4 * layers, ")");
  check_cpu_float(states, "states", given);
  TORCH_CHECK(states.dim() == 3 && states.size(0) == rows && states.size(1) >= 1 && states.size(2) == H,
              "states: got shape ", states.sizes(), ", want (", rows, ", src_len >= 1, ", H, ")");
  const int64_t source_length = states.size(1);
  check_cpu_float(keys, "keys", given);
  TORCH_CHECK(keys.dim() == 3 && keys.size(0) == rows && keys.size(1) == source_length, "keys: got shape ",
              keys.sizes(), ", want (", rows, ", ", source_length, ", ...)");
  TORCH_CHECK(mask.device().is_cpu(), "mask: got a tensor on ", mask.device(), ", want the CPU");
  check_shape(mask, "mask", {rows, source_length});
  TORCH_CHECK(is_binary(mask), "mask: want only 0 (padding) and 1 (token)");
  TORCH_CHECK(score >= 0 && score <= 2, "score: got ", score, ", want 0 (dot), 1 (general) or 2 (concat)");
  check_cpu_float(score_weight, "score_weight", matrix_dtype(score_weight, "score_weight", dtype));
  check_cpu_float(concat_weight, "concat_weight", matrix_dtype(concat_weight, "concat_weight", dtype));
  check_cpu_float(out_weight, "out_weight", matrix_dtype(out_weight, "out_weight", dtype));
  const auto v_ = small_parameter(v, "v", dtype), concat_bias_ = small_parameter(concat_bias, "concat_bias", dtype);
  const auto out_bias_ = small_parameter(out_bias, "out_bias", dtype);
  for (int64_t layer = 0; layer < layers; ++layer) {  // each layer's shapes; its inputs: the embedding, then H
    const auto* weights = &gru_weights[4 * layer];
    const int64_t layer_hidden = check_gru_weights(weights[0], weights[1], &weights[2], &weights[3], H, dtype, H);
    TORCH_CHECK(layer_hidden == H, "gru_weights: layer ", layer, " has hidden size ", layer_hidden, ", want ", H);
  }
  const auto embedded = at::embedding(embedding, input_ids).to(dtype);  // (rows, 1, H)
  auto layer_input = embedded.view({rows, -1});
  const auto hidden_ = hidden.to(dtype), states_ = states.to(dtype), keys_ = keys.to(dtype);
  std::vector<at::Tensor> final_states;
  const std::vector<int64_t> batch_sizes{rows};
  for (int64_t layer = 0; layer < layers; ++layer) {
    auto result = gru_forward(layer_input, hidden_[layer], gru_weights[4 * layer], gru_weights[4 * layer + 1],
                              gru_weights[4 * layer + 2], gru_weights[4 * layer + 3], batch_sizes, false, onednn,
                              false);
    layer_input = std::get<0>(result);
    final_states.push_back(std::get<1>(result));
  }
  const auto gru_output = layer_input.view({rows, 1, -1});
  at::Tensor scores;
  if (score == 0) {
    scores = at::matmul(gru_output, keys_.transpose(1, 2));
  } else if (score == 1) {
    scores = at::matmul(linear(gru_output, score_weight, at::Tensor(), H), keys_.transpose(1, 2));
  } else {
    const auto query = linear(gru_output, score_weight, at::Tensor(), H);
    scores = at::matmul(at::tanh(query.unsqueeze(2) + keys_.unsqueeze(1)), v_);
  }
  const double lowest = scores.scalar_type() == at::kDouble ? std::numeric_limits<double>::lowest()
                                                             : std::numeric_limits<float>::lowest();
  scores = scores.masked_fill(mask.unsqueeze(1) == 0, lowest);
  const auto attention_weights = scores.softmax(-1);
  const auto context = at::matmul(attention_weights, states_);
  const auto attentional = at::tanh(linear(at::cat({gru_output, context}, -1), concat_weight, concat_bias_, H));
  const auto logits = linear(attentional, out_weight, out_bias_, out_bias_.size(0));
  return {logits.to(given), at::stack(final_states).to(given), attention_weights.to(given), embedded.to(given),
          gru_output.to(given)};  // (each `to` a no-op unless the model is bfloat16)
}

void gemm_op(const at::Tensor& result, const at::Tensor& a, const at::Tensor& b, double beta, bool onednn) {
  const auto dtype = float_dtype(result, "result");
  check_cpu_float(result, "result", dtype);
  check_cpu_float(a, "a", dtype);
  check_cpu_float(b, "b", dtype);
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "a, b: got shapes ", a.sizes(), " and ",
              b.sizes(), ", want (m, k) and (k, n)");
  check_shape(result, "result", {a.size(0), b.size(1)});
  TORCH_CHECK(result.is_contiguous(), "result: want a contiguous tensor");
  gemm(result, a, b, static_cast<float>(beta), onednn);
}

}  // namespace

// The ops' namespace is the build folder's name (-DOPS_NAMESPACE=...): two versions of this file can load side by side
#define DEFINE_OPS(ns, m) TORCH_LIBRARY(ns, m)
#define IMPLEMENT_OPS(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)

DEFINE_OPS(OPS_NAMESPACE, m) {
  m.def("uses_onednn() -> bool", [] { return onednn_works(); });
  m.def("gemm(Tensor(a!) result, Tensor a, Tensor b, float beta, bool onednn) -> ()");
  m.def("gru_forward(Tensor inputs, Tensor initial_state, Tensor weight_ih, Tensor weight_hh, Tensor bias_ih, "
        "Tensor bias_hh, int[] batch_sizes, bool reverse, bool onednn, bool bf16=False) -> "
        "(Tensor, Tensor, Tensor, Tensor)");
  m.def("gru_backward(Tensor output_grads, Tensor final_state_grad, Tensor inputs, Tensor weight_ih, "
        "Tensor weight_hh, Tensor previous_states, Tensor gates, int[] batch_sizes, bool reverse, bool onednn, "
        "bool bf16=False) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("int8_pack(Tensor weight) -> Tensor");
  m.def("int8_unpack(Tensor weight, int out_features, int in_features) -> Tensor");
  m.def("int8_linear(Tensor input, Tensor weight, int out_features, Tensor? bias=None, bool portable=False) -> "
        "Tensor");
  m.def("int8_kernel() -> str", [] { return std::string(cpu_has_vnni() ? "avx512-vnni" : "portable"); });
  m.def("luong_step(Tensor input_ids, Tensor hidden, Tensor states, Tensor keys, Tensor mask, Tensor embedding, "
        "Tensor[] gru_weights, int score, Tensor score_weight, Tensor v, Tensor concat_weight, Tensor concat_bias, "
        "Tensor out_weight, Tensor out_bias, bool onednn) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

IMPLEMENT_OPS(OPS_NAMESPACE, CPU, m) {
  m.impl("gru_forward", &gru_forward);
  m.impl("gru_backward", &gru_backward);
  m.impl("gemm", &gemm_op);
  m.impl("luong_step", &luong_step);
  m.impl("int8_pack", &int8_pack);
  m.impl("int8_unpack", &int8_unpack);
  m.impl("int8_linear", &int8_linear);
}
"""

# -ffast-math lets gcc call glibc's vector exp and tanh (libmvec) in the gate loops; the link step does not get
# it, so loading the library leaves the process's floating-point modes alone. -fopenmp makes `at::parallel_for`
# (the int8 products) run on torch's threads: the library then needs `libgomp.so.1`, the OpenMP runtime torch
# itself loads (its CPU wheels ship it under that name), so the process keeps one runtime.
CFLAGS = ["-O3", "-ffast-math", "-fopenmp"]
LDFLAGS = ["-fopenmp"]
STALE_LOCK_SECONDS = 600  # a build takes about 10 seconds
BUILD_WAIT_SECONDS = 300  # how long to wait for another live process's build before running the torch loops
SOURCE_FILE, OWNER_FILE, TORCH_LOCK_FILE = "gru_kernels.cpp", "build.owner", "lock"
HASH_FILE = "library.sha256"  # the SHA-256 of the library this package built, written when the build ends

# The trust rule. The package loads only a library it built: its build folder is created with mode 0700 and used
# only while it belongs to this user and nobody else can write to it (else a per-user folder is used, after one
# warning), and the library's SHA-256 is recorded when the build ends and checked before every load (a stale or
# foreign library, or one without a record, is never loaded: one warning, then training builds it again and
# inference runs the torch operations). Out of scope: a process of the same user, which could rewrite the
# record as well as the library (it can change this package's files just as well).


def build_directory() -> str:
    """Where the library is built: one folder per source, torch installation (its folder and version: two
    environments with the same torch version keep a library each instead of rebuilding each other's), machine
    type and flags, in `$TORCH_EXTENSIONS_DIR` (else torch's default root); where that folder is another user's
    or writable by others, the same folder name under `~/.cache/gru_seq2seq/` instead (one warning)."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    folder = os.path.join(root, f"gru_seq2seq_{build_key()}")
    problem = untrusted(folder)
    if problem is None:
        return folder
    fallback = os.path.join(os.path.expanduser("~"), ".cache", "gru_seq2seq", os.path.basename(folder))
    _warn_once(f"gru-seq2seq: the build folder {folder} is {problem}, so it is not used: building in {fallback}")
    return fallback


def untrusted(folder: str) -> str | None:
    """Why the package may not load a library from `folder` (another user's, writable by others, not a folder),
    or `None` (it may, or the folder does not exist yet: the package creates it, mode 0700)."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return "not a folder"
    if info.st_uid != os.getuid():
        return f"owned by another user (uid {info.st_uid})"
    if info.st_mode & 0o022:
        return f"writable by others (mode {info.st_mode & 0o777:o})"
    return None


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_is_ours(folder: str) -> bool:
    """Whether `folder`'s library is the one this package built there: the SHA-256 recorded when the build ended
    matches the file (no record, another file or a folder that fails the trust rule: no)."""
    path, record = library_path(folder), os.path.join(folder, HASH_FILE)
    if untrusted(folder) is not None or not os.path.isfile(path) or not os.path.isfile(record):
        return False
    with open(record, encoding="ascii", errors="replace") as handle:
        return handle.read().strip() == file_sha256(path)


def _record_library(folder: str) -> None:
    """Write the just-built library's SHA-256 beside it (atomically)."""
    temporary = os.path.join(folder, f"{HASH_FILE}.{os.getpid()}")
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(file_sha256(library_path(folder)) + "\n")
    os.replace(temporary, os.path.join(folder, HASH_FILE))


def _empty_folder(folder: str, keep: tuple[str, ...] = (OWNER_FILE,)) -> None:
    for entry in os.listdir(folder):
        if entry not in keep:
            target = os.path.join(folder, entry)
            shutil.rmtree(target) if os.path.isdir(target) and not os.path.islink(target) else _remove(target)


@functools.cache
def build_key() -> str:
    torch_installation = os.path.realpath(os.path.dirname(torch.__file__))
    key = [CPP_SOURCE, torch.__version__, torch_installation, platform.machine(), *CFLAGS, *LDFLAGS]
    return hashlib.sha256("\n".join(key).encode()).hexdigest()[:16]


def library_path(folder: str) -> str:
    """The built library in `folder` (`cpp_extension.load` names it after the folder)."""
    return os.path.join(folder, f"{os.path.basename(folder)}.so")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _write_source(folder: str) -> None:
    """Put this file's `CPP_SOURCE` in the build folder. A folder whose source differs (placed there by someone
    else, or damaged) is emptied first, so nothing built from it is loaded."""
    path = os.path.join(folder, SOURCE_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as handle:
            if handle.read() == CPP_SOURCE:
                return
        _empty_folder(folder)
    with open(f"{path}.{os.getpid()}", "w", encoding="utf-8") as handle:
        handle.write(CPP_SOURCE)
    os.replace(f"{path}.{os.getpid()}", path)


def built_recurrence_ops():
    """[`recurrence_ops`] where the library is built already (or loaded in this process), else `None`: never
    builds, so inference in a fresh environment answers at once (on `nn.GRU`) instead of waiting for a build.
    A library there that this package did not build (see the trust rule) is not loaded: one warning, `None`."""
    if recurrence_ops.cache_info().currsize:
        return recurrence_ops()
    folder = build_directory()
    if not os.path.exists(library_path(folder)):
        return None
    if not library_is_ours(folder):
        _warn_once(
            f"gru-seq2seq: {library_path(folder)} is not the library this package built (no record of it, or its "
            "SHA-256 differs), so it is not loaded: translation runs nn.GRU, and training builds the library again"
        )
        return None
    return recurrence_ops()


@functools.cache
def recurrence_ops():
    """The compiled ops, `torch.ops.<build folder name>` (`gru_forward`, `gru_backward`, `gemm`, `uses_onednn`),
    loaded once per process (built first where the library is not there yet, saying so in one line), or `None`
    when `GRU_SEQ2SEQ_NO_COMPILE` is set or the build fails (with one warning saying why)."""
    if os.environ.get("GRU_SEQ2SEQ_NO_COMPILE", "") not in ("", "0"):
        return None
    from torch.utils import cpp_extension

    folder = build_directory()
    name = os.path.basename(folder)
    torch_lock = os.path.join(folder, TORCH_LOCK_FILE)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        problem = untrusted(folder)
        if problem is not None:  # the per-user folder as well
            raise PermissionError(f"the build folder {folder} is {problem}")
        # torch's own lock holds no owner: a build killed midway leaves it, and torch then waits forever. Ours
        # records host and pid, so a dead builder's locks are removed and a live one is waited on, within bounds.
        with OwnerLock(
            os.path.join(folder, OWNER_FILE), BUILD_WAIT_SECONDS, on_takeover=lambda: _remove(torch_lock)
        ) as lock:
            if not lock.acquired:
                warnings.warn(
                    f"gru-seq2seq: {lock.describe_owner()} has been building the compiled GRU loop in "
                    f"{folder} for over {BUILD_WAIT_SECONDS} s, so the CPU runs the slower torch-operation "
                    "loop",
                    stacklevel=2,
                )
                return None
            if os.path.exists(torch_lock) and time.time() - os.path.getmtime(torch_lock) > STALE_LOCK_SECONDS:
                _remove(torch_lock)  # left by a build of an earlier version, which took no owner lock
            _write_source(folder)  # empties the folder (library included) if its source is not this one
            if not _load_built(folder):
                logger.warning(
                    f"gru-seq2seq: building the compiled GRU loops for this torch installation in {folder} "
                    "(once, about 10-30 s)"
                )
                cpp_extension.load(
                    name,
                    [os.path.join(folder, SOURCE_FILE)],
                    extra_cflags=[*CFLAGS, f"-DOPS_NAMESPACE={name}"],
                    extra_ldflags=LDFLAGS,
                    build_directory=folder,
                    is_python_module=False,
                )
                _record_library(folder)
    except Exception as error:  # no compiler, no ninja, a read-only home: run the torch-operation loops
        warnings.warn(
            "gru-seq2seq: the compiled GRU loop could not be built, so the CPU runs the slower torch-"
            "operation loop (GRU_SEQ2SEQ_NO_COMPILE=1 skips this attempt). "
            f"{type(error).__name__}: {error}",
            stacklevel=2,
        )
        return None
    return getattr(torch.ops, name)


def _load_built(folder: str) -> bool:
    """Load the library built in `folder` before (its source is this one, `_write_source` saw to that) without
    asking ninja whether it is up to date (that check alone takes about a second); `False` where there is none,
    it is not the one this package built (the folder is then emptied, with one warning, so that nothing planted
    there is linked into the new build) or it does not load (a build killed while linking), so it is built
    again."""
    path = library_path(folder)
    if not os.path.exists(path):
        return False
    if not library_is_ours(folder):
        _warn_once(
            f"gru-seq2seq: {path} is not the library this package built (no record of it, or its SHA-256 differs), "
            "so it is not loaded: building it again"
        )
        _empty_folder(folder, keep=(OWNER_FILE, SOURCE_FILE))
        return False
    try:
        torch.ops.load_library(path)
    except OSError:
        _remove(path)
        return False
    logger.info(f"Loaded the compiled GRU loops from {path}")
    return True
