// One decode step's attention on CPU: each row's one new query over its own cached positions.
//
// gpt2bot::decode_attention(query, key, value, keys, values, positions, scale) writes row b's
// new key and value at column positions[b] of its cache row, attends over columns
// 0..positions[b] of that row only (no mask, and no column past the row's own length is read),
// and returns (B, H·D) in the query's dtype. Scores, softmax and the weighted sum stay in fp32.
//
// Why: torch's batched products for a one-token query read every allocated column of every
// row at ~6-13 GB/s on the 2-core Zen 4 (model/engine/gpt2.py, `bmm_attention`); this reads
// each row's own columns once, at 17-27 GB/s in bf16 (docs/engine.md, "Decode attention").
// Built by model/engine/native/__init__.py with -fopenmp: ATen's parallel_for is an inline
// OpenMP loop, and the libgomp.so.1 it needs is the one torch has already loaded (one pool).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

inline float to_float(float x) { return x; }
inline float to_float(c10::BFloat16 x) {  // bf16 is the top half of an fp32
  const uint32_t bits = static_cast<uint32_t>(x.x) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}
inline void store(float* out, float x) { *out = x; }
inline void store(c10::BFloat16* out, float x) { *out = c10::BFloat16(x); }

// One (row, head) pair in plain C++: any head width (the tiny models of the tests).
template <typename T>
void scalar_pair(const float* q, const T* k_row, const T* v_row, int64_t ks, int64_t vs,
                 int64_t last, int64_t dim, float* scores, float* acc, T* out) {
  float peak = -INFINITY;
  for (int64_t t = 0; t <= last; ++t) {
    const T* k = k_row + t * ks;
    float s = 0.f;
    for (int64_t d = 0; d < dim; ++d) s += q[d] * to_float(k[d]);
    scores[t] = s;
    peak = std::max(peak, s);
  }
  float total = 0.f;
  for (int64_t t = 0; t <= last; ++t) {
    scores[t] = std::exp(scores[t] - peak);
    total += scores[t];
  }
  std::fill(acc, acc + dim, 0.f);
  for (int64_t t = 0; t <= last; ++t) {
    const T* v = v_row + t * vs;
    for (int64_t d = 0; d < dim; ++d) acc[d] += scores[t] * to_float(v[d]);
  }
  for (int64_t d = 0; d < dim; ++d) store(out + d, acc[d] / total);
}

#if defined(__AVX512F__)
constexpr int64_t LANES = 16;
constexpr int64_t MAX_DIM = 256;  // a head's width held in registers (GPT-2's is 64)
// Positions prefetched ahead (12 layers, 32 rows, 128 of 256 columns, bf16: 15.3 -> 16.7 GB/s)
constexpr int64_t AHEAD = 16;

inline __m512 load16(const float* x) { return _mm512_loadu_ps(x); }
inline __m512 load16(const c10::BFloat16* x) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

inline void prefetch(const void* at) {
  const char* line = static_cast<const char*>(at);
  _mm_prefetch(line, _MM_HINT_T0);
  _mm_prefetch(line + 64, _MM_HINT_T0);  // a bf16 head of 64 spans two lines
}

template <typename T>
inline float dot(const __m512* q, const T* k, int64_t blocks) {
  __m512 acc = _mm512_mul_ps(q[0], load16(k));
  for (int64_t j = 1; j < blocks; ++j) acc = _mm512_fmadd_ps(q[j], load16(k + j * LANES), acc);
  return _mm512_reduce_add_ps(acc);
}

// Scores of positions t..t+3 at once: four independent chains of multiply-adds.
template <typename T>
inline void dot4(const __m512* q, const T* k, int64_t ks, int64_t blocks, float* scores) {
  __m512 a0 = _mm512_mul_ps(q[0], load16(k));
  __m512 a1 = _mm512_mul_ps(q[0], load16(k + ks));
  __m512 a2 = _mm512_mul_ps(q[0], load16(k + 2 * ks));
  __m512 a3 = _mm512_mul_ps(q[0], load16(k + 3 * ks));
  for (int64_t j = 1; j < blocks; ++j) {
    const int64_t d = j * LANES;
    a0 = _mm512_fmadd_ps(q[j], load16(k + d), a0);
    a1 = _mm512_fmadd_ps(q[j], load16(k + ks + d), a1);
    a2 = _mm512_fmadd_ps(q[j], load16(k + 2 * ks + d), a2);
    a3 = _mm512_fmadd_ps(q[j], load16(k + 3 * ks + d), a3);
  }
  scores[0] = _mm512_reduce_add_ps(a0);
  scores[1] = _mm512_reduce_add_ps(a1);
  scores[2] = _mm512_reduce_add_ps(a2);
  scores[3] = _mm512_reduce_add_ps(a3);
}

// One (row, head) pair in AVX-512, for head widths that are a multiple of 16 up to MAX_DIM.
template <typename T>
void vector_pair(const float* q_scaled, const T* k_row, const T* v_row, int64_t ks, int64_t vs,
                 int64_t last, int64_t dim, float* scores, T* out) {
  const int64_t blocks = dim / LANES;
  __m512 q[MAX_DIM / LANES], acc[MAX_DIM / LANES];
  for (int64_t j = 0; j < blocks; ++j) {
    q[j] = _mm512_loadu_ps(q_scaled + j * LANES);
    acc[j] = _mm512_setzero_ps();
  }
  int64_t t = 0;
  for (; t + 4 <= last + 1; t += 4) {
    for (int64_t ahead = t + AHEAD; ahead < t + AHEAD + 4; ++ahead) prefetch(k_row + ahead * ks);
    dot4(q, k_row + t * ks, ks, blocks, scores + t);
  }
  for (; t <= last; ++t) scores[t] = dot(q, k_row + t * ks, blocks);
  float peak = -INFINITY;
  for (t = 0; t <= last; ++t) peak = std::max(peak, scores[t]);
  float total = 0.f;
  for (t = 0; t <= last; ++t) {
    scores[t] = std::exp(scores[t] - peak);
    total += scores[t];
  }
  for (t = 0; t <= last; ++t) {
    const __m512 w = _mm512_set1_ps(scores[t]);
    const T* v = v_row + t * vs;
    prefetch(v + AHEAD * vs);
    for (int64_t j = 0; j < blocks; ++j) acc[j] = _mm512_fmadd_ps(w, load16(v + j * LANES), acc[j]);
  }
  alignas(64) float row[MAX_DIM];
  const __m512 inverse = _mm512_set1_ps(1.f / total);
  for (int64_t j = 0; j < blocks; ++j) {
    _mm512_store_ps(row + j * LANES, _mm512_mul_ps(acc[j], inverse));
  }
  for (int64_t d = 0; d < dim; ++d) store(out + d, row[d]);
}
#endif

template <typename T>
void attend(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
            at::Tensor& keys, at::Tensor& values, const int64_t* positions, float scale,
            at::Tensor& out) {
  const int64_t heads = query.size(1), dim = query.size(2);
  const T *q_base = query.data_ptr<T>(), *k_new = key.data_ptr<T>();
  const T* v_new = value.data_ptr<T>();
  T *k_base = keys.data_ptr<T>(), *v_base = values.data_ptr<T>(), *o_base = out.data_ptr<T>();
  at::parallel_for(0, query.size(0) * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q(dim), acc(dim), scores;
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / heads, h = pair % heads, last = positions[b];
      T* k_row = k_base + b * keys.stride(0) + h * keys.stride(1);
      T* v_row = v_base + b * values.stride(0) + h * values.stride(1);
      const int64_t ks = keys.stride(2), vs = values.stride(2);
      std::memcpy(k_row + last * ks, k_new + b * key.stride(0) + h * key.stride(1),
                  dim * sizeof(T));
      std::memcpy(v_row + last * vs, v_new + b * value.stride(0) + h * value.stride(1),
                  dim * sizeof(T));
      const T* q_in = q_base + b * query.stride(0) + h * query.stride(1);
      for (int64_t d = 0; d < dim; ++d) q[d] = to_float(q_in[d]) * scale;
      scores.resize(last + 1);
      T* o = o_base + pair * dim;  // out: (B, H·D)
#if defined(__AVX512F__)
      if (dim % LANES == 0 && dim <= MAX_DIM) {
        vector_pair(q.data(), k_row, v_row, ks, vs, last, dim, scores.data(), o);
        continue;
      }
#endif
      scalar_pair(q.data(), k_row, v_row, ks, vs, last, dim, scores.data(), acc.data(), o);
    }
  });
}

at::Tensor decode_attention(const at::Tensor& query, const at::Tensor& key,
                            const at::Tensor& value, at::Tensor keys, at::Tensor values,
                            const at::Tensor& positions, double scale) {
  TORCH_CHECK(query.device().is_cpu(), "decode_attention runs on CPU");
  TORCH_CHECK(query.dim() == 3 && keys.dim() == 4 && values.dim() == 4,
              "query (B, H, D), keys/values (B, H, T, D)");
  TORCH_CHECK(key.sizes() == query.sizes() && value.sizes() == query.sizes(),
              "key and value shaped like the query");
  TORCH_CHECK(keys.size(0) == query.size(0) && keys.size(1) == query.size(1) &&
                  keys.size(3) == query.size(2) && values.sizes() == keys.sizes(),
              "cache rows shaped (B, H, T, D) for the query's B, H, D");
  TORCH_CHECK(query.stride(2) == 1 && key.stride(2) == 1 && value.stride(2) == 1 &&
                  keys.stride(3) == 1 && values.stride(3) == 1,
              "every tensor must be dense in D");
  const auto dtype = query.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16,
              "decode_attention takes float32 or bfloat16");
  TORCH_CHECK(key.scalar_type() == dtype && value.scalar_type() == dtype &&
                  keys.scalar_type() == dtype && values.scalar_type() == dtype,
              "one dtype throughout");
  TORCH_CHECK(positions.scalar_type() == at::kLong && positions.is_contiguous() &&
                  positions.numel() == query.size(0),
              "positions: B int64");
  const int64_t* pos = positions.data_ptr<int64_t>();
  for (int64_t b = 0; b < positions.numel(); ++b) {
    TORCH_CHECK(pos[b] >= 0 && pos[b] < keys.size(2), "position outside the cache");
  }
  at::Tensor out = at::empty({query.size(0), query.size(1) * query.size(2)}, query.options());
  const float alpha = static_cast<float>(scale);
  if (dtype == at::kFloat) {
    attend<float>(query, key, value, keys, values, pos, alpha, out);
  } else {
    attend<c10::BFloat16>(query, key, value, keys, values, pos, alpha, out);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY(gpt2bot, m) {
  m.def(
      "decode_attention(Tensor query, Tensor key, Tensor value, Tensor(a!) keys, "
      "Tensor(b!) values, Tensor positions, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(gpt2bot, CPU, m) { m.impl("decode_attention", decode_attention); }
