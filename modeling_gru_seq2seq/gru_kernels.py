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
#include <torch/library.h>
#include <cmath>
#include <exception>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

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

// A small parameter (a bias, `v`) that a computation of `dtype` reads: of `dtype`, or bfloat16 for float32
// computations; returned as `dtype`.
at::Tensor small_parameter(const at::Tensor& tensor, const char* name, at::ScalarType dtype) {
  check_cpu_float(tensor, name, weight_dtype(tensor, name, dtype));
  return tensor.to(dtype).contiguous();
}

// The shapes, dtypes and devices of one GRU layer's weights, for inputs of `input_size` features, computed in
// `dtype`: weights of `dtype` (or both bfloat16, see `weight_dtype`), biases of either. Returns H.
int64_t check_gru_weights(const at::Tensor& weight_ih, const at::Tensor& weight_hh, const at::Tensor* bias_ih,
                          const at::Tensor* bias_hh, int64_t input_size, at::ScalarType dtype) {
  const auto weights = weight_dtype(weight_hh, "weight_hh", dtype);
  check_cpu_float(weight_hh, "weight_hh", weights);
  check_cpu_float(weight_ih, "weight_ih", weights);
  TORCH_CHECK(weight_hh.dim() == 2 && weight_hh.size(1) >= 1, "weight_hh: got shape ", weight_hh.sizes(),
              ", want (3 * hidden, hidden)");
  const int64_t H = weight_hh.size(1);
  check_shape(weight_hh, "weight_hh", {3 * H, H});
  check_shape(weight_ih, "weight_ih", {3 * H, input_size});
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
  const int64_t H = check_gru_weights(weight_ih, weight_hh, &bias_ih, &bias_hh, inputs.size(1), dtype);
  if (given != dtype) {
    auto result = gru_forward(inputs.to(dtype), initial_state.to(dtype), weight_ih, weight_hh, bias_ih, bias_hh,
                              batch_sizes, reverse, onednn, bf16);
    return {std::get<0>(result).to(given), std::get<1>(result).to(given), std::get<2>(result), std::get<3>(result)};
  }
  bf16 = bf16 || weight_hh.scalar_type() == at::kBFloat16;  // a bfloat16 model's weights: bfloat16 products
  TORCH_CHECK(initial_state.dim() == 2 && initial_state.size(1) == H, "initial_state: got shape ",
              initial_state.sizes(), ", want (batch, ", H, ")");
  const int64_t tokens = inputs.size(0), batch = initial_state.size(0);
  check_batch_sizes(batch_sizes, batch, tokens);
  const auto starts = step_starts(batch_sizes);
  const auto options = initial_state.options();
  auto input_gates = at::empty({tokens, 3 * H}, options);
  product(input_gates, inputs.contiguous(), product_weight(weight_ih, bf16).t(), 0.0f, onednn, bf16);  // all steps
  auto outputs = at::empty({tokens, H}, options), previous_states = at::empty({tokens, H}, options);
  auto gates = at::empty({tokens, 4 * H}, options), hidden_gates = at::empty({batch, 3 * H}, options);
  auto state = initial_state.contiguous().clone();  // rows past their last step keep their final state
  const auto bias_i = bias_ih.to(dtype).contiguous(), bias_h = bias_hh.to(dtype).contiguous();
  const auto weight_t = product_weight(weight_hh, bf16).t();
  const int64_t steps = batch_sizes.size();
  AT_DISPATCH_FLOATING_TYPES(initial_state.scalar_type(), "gru_forward", [&] {
    for (int64_t i = 0; i < steps; ++i) {
      const int64_t step = reverse ? steps - 1 - i : i, rows = batch_sizes[step], start = starts[step];
      product(hidden_gates.narrow(0, 0, rows), state.narrow(0, 0, rows), weight_t, 0.0f, onednn, bf16);
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
  const int64_t H = check_gru_weights(weight_ih, weight_hh, nullptr, nullptr, inputs.size(1), dtype);
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
// accumulated in float32 by the library, then added to the float32 bias)
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
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
  check_cpu_float(score_weight, "score_weight", weight_dtype(score_weight, "score_weight", dtype));
  check_cpu_float(concat_weight, "concat_weight", weight_dtype(concat_weight, "concat_weight", dtype));
  check_cpu_float(out_weight, "out_weight", weight_dtype(out_weight, "out_weight", dtype));
  const auto v_ = small_parameter(v, "v", dtype), concat_bias_ = small_parameter(concat_bias, "concat_bias", dtype);
  const auto out_bias_ = small_parameter(out_bias, "out_bias", dtype);
  for (int64_t layer = 0; layer < layers; ++layer) {  // each layer's shapes; its inputs: the embedding, then H
    check_gru_weights(gru_weights[4 * layer], gru_weights[4 * layer + 1], &gru_weights[4 * layer + 2],
                      &gru_weights[4 * layer + 3], H, dtype);
    TORCH_CHECK(gru_weights[4 * layer + 1].size(1) == H, "gru_weights: layer ", layer, " has hidden size ",
                gru_weights[4 * layer + 1].size(1), ", want ", H);
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
    scores = at::matmul(linear(gru_output, score_weight, at::Tensor()), keys_.transpose(1, 2));
  } else {
    const auto query = linear(gru_output, score_weight, at::Tensor());
    scores = at::matmul(at::tanh(query.unsqueeze(2) + keys_.unsqueeze(1)), v_);
  }
  const double lowest = scores.scalar_type() == at::kDouble ? std::numeric_limits<double>::lowest()
                                                             : std::numeric_limits<float>::lowest();
  scores = scores.masked_fill(mask.unsqueeze(1) == 0, lowest);
  const auto attention_weights = scores.softmax(-1);
  const auto context = at::matmul(attention_weights, states_);
  const auto attentional = at::tanh(linear(at::cat({gru_output, context}, -1), concat_weight, concat_bias_));
  const auto logits = linear(attentional, out_weight, out_bias_);
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
  m.def("luong_step(Tensor input_ids, Tensor hidden, Tensor states, Tensor keys, Tensor mask, Tensor embedding, "
        "Tensor[] gru_weights, int score, Tensor score_weight, Tensor v, Tensor concat_weight, Tensor concat_bias, "
        "Tensor out_weight, Tensor out_bias, bool onednn) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

IMPLEMENT_OPS(OPS_NAMESPACE, CPU, m) {
  m.impl("gru_forward", &gru_forward);
  m.impl("gru_backward", &gru_backward);
  m.impl("gemm", &gemm_op);
  m.impl("luong_step", &luong_step);
}
"""

# -ffast-math lets gcc call glibc's vector exp and tanh (libmvec) in the gate loops; the link step does not get
# it, so loading the library leaves the process's floating-point modes alone
CFLAGS = ["-O3", "-ffast-math"]
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
    key = [CPP_SOURCE, torch.__version__, torch_installation, platform.machine(), *CFLAGS]
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
