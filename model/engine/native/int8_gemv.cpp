// int8 x int8 -> int32 products for a few rows (a lone member's decode step), at the speed of
// reading the weights.
//
// gpt2bot::int8_rows(x, weight) returns x @ weight.T in int32 for x (M, K) int8 and weight
// (N, K) int8, both contiguous, exactly as torch._int_mm(x, weight.T) does (integer sums are
// exact, so the two are equal bit for bit and a row's text does not depend on which one ran).
//
// Why: torch's int8 products read a projection's weights at 6-22 GB/s for one row (oneDNN and
// fbgemm are tuned for batches), so int8 decoded one sequence slower than bf16 although it
// reads half the bytes. Here each output channel is one pass over its weight row, four
// channels at once so the adds do not wait on each other, channels split over ATen's threads.
// With AVX512-VNNI (checked at run time), 64 weights a step go straight into `vpdpbusd`, which
// multiplies unsigned by signed bytes: x is shifted to x + 128 once per call, and 128 times
// each channel's weight sum (a second `vpdpbusd` against ones, on weights already loaded) is
// taken off again, so the sums stay exact. Without it, 32 weights a step are widened to int16
// and multiplied-added in pairs (AVX512-BW `vpmaddwd`): four instructions per 32 weights
// against two per 64, and the widening's shuffle bounds it below the memory's speed.
// Built with decode_attention.cpp (model/engine/native/__init__.py).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstdint>
#include <vector>

#include <immintrin.h>

namespace {

constexpr int64_t LANES = 32;     // int8 weights per step (widened to 32 int16)
constexpr int64_t CHANNELS = 4;   // output channels per pass: independent accumulators
constexpr int64_t MAX_ROWS = 8;   // rows of x per call (a few sequences decoding)
constexpr int64_t GRAIN = 64;     // output channels per parallel task

// x's row widened to int16 once per call: the inner loop then loads it as is
std::vector<int16_t> widen(const int8_t* x, int64_t rows, int64_t k) {
  std::vector<int16_t> out(rows * k);
  for (int64_t i = 0; i < rows * k; ++i) out[i] = x[i];
  return out;
}

inline __m512i weights16(const int8_t* w) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
}

inline __m512i row16(const int16_t* x) {
  return _mm512_loadu_si512(reinterpret_cast<const void*>(x));
}

// out[r][c] = sum_k x[r][k] * w[c][k] for CHANNELS channels starting at w, all rows
void channels4(const int16_t* x, const int8_t* w, int64_t rows, int64_t k, int32_t* out,
               int64_t out_stride) {
  const int64_t body = k - k % LANES;
  for (int64_t r = 0; r < rows; ++r) {
    const int16_t* xr = x + r * k;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < body; i += LANES) {
      const __m512i xv = row16(xr + i);
      a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(xv, weights16(w + i)));
      a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(xv, weights16(w + k + i)));
      a2 = _mm512_add_epi32(a2, _mm512_madd_epi16(xv, weights16(w + 2 * k + i)));
      a3 = _mm512_add_epi32(a3, _mm512_madd_epi16(xv, weights16(w + 3 * k + i)));
    }
    int32_t sums[CHANNELS] = {_mm512_reduce_add_epi32(a0), _mm512_reduce_add_epi32(a1),
                              _mm512_reduce_add_epi32(a2), _mm512_reduce_add_epi32(a3)};
    for (int64_t c = 0; c < CHANNELS; ++c) {
      for (int64_t i = body; i < k; ++i) sums[c] += int32_t(xr[i]) * int32_t(w[c * k + i]);
      out[r * out_stride + c] = sums[c];
    }
  }
}

// the VNNI path: `xu` is x + 128 as unsigned bytes
constexpr int64_t BYTES = 64;  // int8 weights per `vpdpbusd`

__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline __m512i bytes(const void* p) {
  return _mm512_loadu_si512(p);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void channels4_vnni(
    const uint8_t* xu, const int8_t* x, const int8_t* w, int64_t rows, int64_t k, int32_t* out,
    int64_t out_stride) {
  const int64_t body = k - k % BYTES;
  // 128 x each channel's weight sum over the body (what x + 128 adds), from the first row's pass
  const __m512i ones = _mm512_set1_epi8(1);
  int32_t shift[CHANNELS] = {0, 0, 0, 0};
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* xr = xu + r * k;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    if (r == 0) {
      __m512i s0 = a0, s1 = a0, s2 = a0, s3 = a0;
      for (int64_t i = 0; i < body; i += BYTES) {
        const __m512i xv = bytes(xr + i);
        const __m512i w0 = bytes(w + i), w1 = bytes(w + k + i);
        const __m512i w2 = bytes(w + 2 * k + i), w3 = bytes(w + 3 * k + i);
        a0 = _mm512_dpbusd_epi32(a0, xv, w0);
        a1 = _mm512_dpbusd_epi32(a1, xv, w1);
        a2 = _mm512_dpbusd_epi32(a2, xv, w2);
        a3 = _mm512_dpbusd_epi32(a3, xv, w3);
        s0 = _mm512_dpbusd_epi32(s0, ones, w0);
        s1 = _mm512_dpbusd_epi32(s1, ones, w1);
        s2 = _mm512_dpbusd_epi32(s2, ones, w2);
        s3 = _mm512_dpbusd_epi32(s3, ones, w3);
      }
      shift[0] = 128 * _mm512_reduce_add_epi32(s0);
      shift[1] = 128 * _mm512_reduce_add_epi32(s1);
      shift[2] = 128 * _mm512_reduce_add_epi32(s2);
      shift[3] = 128 * _mm512_reduce_add_epi32(s3);
    } else {
      for (int64_t i = 0; i < body; i += BYTES) {
        const __m512i xv = bytes(xr + i);
        a0 = _mm512_dpbusd_epi32(a0, xv, bytes(w + i));
        a1 = _mm512_dpbusd_epi32(a1, xv, bytes(w + k + i));
        a2 = _mm512_dpbusd_epi32(a2, xv, bytes(w + 2 * k + i));
        a3 = _mm512_dpbusd_epi32(a3, xv, bytes(w + 3 * k + i));
      }
    }
    int32_t sums[CHANNELS] = {_mm512_reduce_add_epi32(a0), _mm512_reduce_add_epi32(a1),
                              _mm512_reduce_add_epi32(a2), _mm512_reduce_add_epi32(a3)};
    for (int64_t c = 0; c < CHANNELS; ++c) {
      int32_t sum = sums[c] - shift[c];
      for (int64_t i = body; i < k; ++i) sum += int32_t(x[r * k + i]) * int32_t(w[c * k + i]);
      out[r * out_stride + c] = sum;
    }
  }
}

bool has_vnni() {
  static const bool yes = __builtin_cpu_supports("avx512vnni");
  return yes;
}

void channel1(const int16_t* x, const int8_t* w, int64_t rows, int64_t k, int32_t* out,
              int64_t out_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += int32_t(x[r * k + i]) * int32_t(w[i]);
    out[r * out_stride] = sum;
  }
}

at::Tensor int8_rows(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(x.scalar_type() == at::kChar && weight.scalar_type() == at::kChar,
              "int8_rows takes int8 rows and int8 weights");
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "int8_rows: x is (M, K) and weight (N, K)");
  TORCH_CHECK(x.size(0) <= MAX_ROWS, "int8_rows takes at most ", MAX_ROWS, " rows");
  const at::Tensor xc = x.contiguous();
  const at::Tensor wc = weight.contiguous();
  const int64_t rows = xc.size(0), k = xc.size(1), n = wc.size(0);
  at::Tensor out = at::empty({rows, n}, xc.options().dtype(at::kInt));
  const int8_t* x8 = xc.data_ptr<int8_t>();
  const std::vector<int16_t> x16 = widen(x8, rows, k);
  const int8_t* w = wc.data_ptr<int8_t>();
  int32_t* o = out.data_ptr<int32_t>();
  const bool vnni = has_vnni();
  std::vector<uint8_t> xu(vnni ? rows * k : 0);
  for (size_t i = 0; i < xu.size(); ++i) xu[i] = uint8_t(int32_t(x8[i]) + 128);
  at::parallel_for(0, n, GRAIN, [&](int64_t begin, int64_t end) {
    int64_t c = begin;
    for (; c + CHANNELS <= end; c += CHANNELS) {
      if (vnni) {
        channels4_vnni(xu.data(), x8, w + c * k, rows, k, o + c, n);
      } else {
        channels4(x16.data(), w + c * k, rows, k, o + c, n);
      }
    }
    for (; c < end; ++c) channel1(x16.data(), w + c * k, rows, k, o + c, n);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gpt2bot, m) { m.def("int8_rows(Tensor x, Tensor weight) -> Tensor"); }

TORCH_LIBRARY_IMPL(gpt2bot, CPU, m) { m.impl("int8_rows", int8_rows); }
