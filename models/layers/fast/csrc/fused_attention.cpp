// Fused CPU kernels for the attention layers' inference path (float32, contiguous NCHW, no autograd).
//
// Eager PyTorch must walk the feature map once per operation: Coordinate Attention and ELA read x twice for the two
// strip means and twice more for x * g_h * g_w (writing a temporary in between); CBAM reads it eight times. These
// kernels do the same arithmetic in fewer passes: one read for both strip means, one read for CBAM's mean and max
// pools, one read for CBAM's channel-wise mean and max maps, and one read plus one write to apply the gates. The
// products are evaluated in the same order as the plain equations ((x * g_h) * g_w), so given the same gates the
// output rounds exactly as eager PyTorch's does; only sums (means, the small FCs, the 7x7 conv) are added in a
// different order (float32 rounding, ~1e-7).
//
// Built on first use by models/layers/fast/kernels.py (attnyolo.layers.fast.kernels) with torch.utils.cpp_extension;
// AVX2 paths are compiled only when the build machine's PyTorch reports AVX2, and every loop has a portable form.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace {

// Work per parallel chunk, in elements: below this the thread hand-off costs more than the loop it splits.
constexpr int64_t kGrainElements = 32768;

int64_t grain_for(int64_t per_item) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, per_item)); }

// Memory order of a feature map. Ultralytics' predictor and validator convert models to channels-last on x86 CPUs
// (AutoBackend), so inside a detector the layers mostly see NHWC; a model called directly sees NCHW.
enum class Layout { NCHW, NHWC };

Layout layout_of(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be (N, C, H, W), got ", x.dim(), " dimensions");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat, op, ": x must be a float32 CPU tensor");
  if (x.is_contiguous()) return Layout::NCHW;  // also covers maps whose strides fit both orders (C == 1, H == W == 1)
  TORCH_CHECK(x.is_contiguous(at::MemoryFormat::ChannelsLast), op,
              ": x must be contiguous or channels-last contiguous, got strides ", x.strides());
  return Layout::NHWC;
}

// Channels per task in the NHWC loops: one 64-byte cache line of each pixel, two AVX2 vectors.
constexpr int64_t kChannelBlock = 16;

// NHWC: per-channel sum (and, if max is not null, max) over all pixels of each image; sum[n * C + c]. Each task
// streams one contiguous range of pixels, accumulating whole channel vectors; the tasks' partial results are combined
// afterwards (a few times C values), so x is read once, front to back.
void nhwc_channel_sums(const float* xp, int64_t n, int64_t c, int64_t hw, float* sum, float* max) {
  const int64_t chunks = std::clamp<int64_t>(hw * c / kGrainElements, 1, std::min<int64_t>(hw, 64));
  std::vector<float> part_sum(n * chunks * c, 0.f);
  std::vector<float> part_max(max ? n * chunks * c : 0, -std::numeric_limits<float>::infinity());
  at::parallel_for(0, n * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / chunks, q = t % chunks, p0 = hw * q / chunks, p1 = hw * (q + 1) / chunks;
      float* s = part_sum.data() + t * c;
      float* m = max ? part_max.data() + t * c : nullptr;
      for (int64_t p = p0; p < p1; ++p) {
        const float* v = xp + (b * hw + p) * c;
        if (m) {
#pragma omp simd
          for (int64_t k = 0; k < c; ++k) {
            s[k] += v[k];
            m[k] = v[k] > m[k] ? v[k] : m[k];
          }
        } else {
#pragma omp simd
          for (int64_t k = 0; k < c; ++k) s[k] += v[k];
        }
      }
    }
  });
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t k = 0; k < c; ++k) {
      float total = 0.f, top = -std::numeric_limits<float>::infinity();
      for (int64_t q = 0; q < chunks; ++q) {
        total += part_sum[(b * chunks + q) * c + k];
        if (max) top = std::max(top, part_max[(b * chunks + q) * c + k]);
      }
      sum[b * c + k] = total;
      if (max) max[b * c + k] = std::isnan(total) ? total : top;  // NaN reported as amax reports it
    }
  }
}

void check_vector(const at::Tensor& t, at::IntArrayRef sizes, const char* name, const char* op) {
  TORCH_CHECK(t.sizes() == sizes, op, ": ", name, " must have shape ", sizes, ", got ", t.sizes());
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), op, ": ", name,
              " must be a contiguous float32 CPU tensor");
}

// ------------------------------------------------------------------------------------------------ strip means
#ifdef __AVX2__
__m256i tail_mask(int64_t rem) {
  alignas(32) static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 8 - rem));
}

// Lane r of the result is the sum of the eight lanes of v[r].
__m256 transpose_sum8(const __m256* v) {
  const __m256 ab = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 cd = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(ab, cd, 0x20), _mm256_permute2f128_ps(ab, cd, 0x31));
}

float lane_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

// Adds one row into the column sums and returns its partial row sums (eight lanes); used for the last h % 8 rows.
__m256 accumulate_row(const float* row, float* col, int64_t w, __m256i mask) {
  __m256 s = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= w; j += 8) {
    const __m256 v = _mm256_loadu_ps(row + j);
    s = _mm256_add_ps(s, v);
    _mm256_storeu_ps(col + j, _mm256_add_ps(_mm256_loadu_ps(col + j), v));
  }
  if (j < w) {  // masked lanes are neither read nor written
    const __m256 v = _mm256_maskload_ps(row + j, mask);
    s = _mm256_add_ps(s, v);
    _mm256_maskstore_ps(col + j, mask, _mm256_add_ps(_mm256_maskload_ps(col + j, mask), v));
  }
  return s;
}
#endif

// Row sums into row_sum (h) and column sums into col_sum (w) of one h x w plane, reading it once.
void plane_strip_sums(const float* x, int64_t h, int64_t w, float* row_sum, float* col_sum) {
  std::fill(col_sum, col_sum + w, 0.f);
  int64_t i = 0;
#ifdef __AVX2__
  const __m256i mask = tail_mask(w % 8);
  for (; i + 8 <= h; i += 8) {
    // Eight rows at a time, column by column: eight independent row accumulators (no wait on add latency) and one
    // load/store of the column sums per eight rows; then one transpose-add gives the eight row sums.
    const float* rows = x + i * w;
    __m256 acc[8];
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= w; j += 8) {
      __m256 v[8];
      for (int r = 0; r < 8; ++r) {
        v[r] = _mm256_loadu_ps(rows + r * w + j);
        acc[r] = _mm256_add_ps(acc[r], v[r]);
      }
      const __m256 col = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(v[0], v[1]), _mm256_add_ps(v[2], v[3])),
                                       _mm256_add_ps(_mm256_add_ps(v[4], v[5]), _mm256_add_ps(v[6], v[7])));
      _mm256_storeu_ps(col_sum + j, _mm256_add_ps(_mm256_loadu_ps(col_sum + j), col));
    }
    if (j < w) {  // masked lanes are neither read nor written
      __m256 col = _mm256_setzero_ps();
      for (int r = 0; r < 8; ++r) {
        const __m256 v = _mm256_maskload_ps(rows + r * w + j, mask);
        acc[r] = _mm256_add_ps(acc[r], v);
        col = _mm256_add_ps(col, v);
      }
      _mm256_maskstore_ps(col_sum + j, mask, _mm256_add_ps(_mm256_maskload_ps(col_sum + j, mask), col));
    }
    _mm256_storeu_ps(row_sum + i, transpose_sum8(acc));
  }
  for (; i < h; ++i) row_sum[i] = lane_sum(accumulate_row(x + i * w, col_sum, w, mask));
#else
  for (; i < h; ++i) {
    const float* row = x + i * w;
    float s = 0.f;
    for (int64_t j = 0; j < w; ++j) {
      s += row[j];
      col_sum[j] += row[j];
    }
    row_sum[i] = s;
  }
#endif
}

// z (N, C, H + W): [:, :, :H] = mean of x over W, [:, :, H:] = mean over H.
at::Tensor strip_means(const at::Tensor& x) {
  const Layout layout = layout_of(x, "strip_means");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor z = at::empty({n, c, h + w}, x.options().memory_format(at::MemoryFormat::Contiguous));
  const float* xp = x.const_data_ptr<float>();
  float* zp = z.data_ptr<float>();
  if (layout == Layout::NHWC) {  // per block of channels: row and column sums accumulate along the channel vector
    const int64_t blocks = (c + kChannelBlock - 1) / kChannelBlock;
    at::parallel_for(0, n * blocks, grain_for(h * w * kChannelBlock), [&](int64_t begin, int64_t end) {
      std::vector<float> col((w + 1) * kChannelBlock);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / blocks, c0 = (t % blocks) * kChannelBlock, cb = std::min(kChannelBlock, c - c0);
        std::fill(col.begin(), col.end(), 0.f);
        for (int64_t i = 0; i < h; ++i) {
          float r0[kChannelBlock] = {}, r1[kChannelBlock] = {};  // two pixels in flight along the row
          const float* row = xp + ((b * h + i) * w) * c + c0;
          int64_t j = 0;
          for (; j + 2 <= w; j += 2) {
            const float* v0 = row + j * c;
            const float* v1 = v0 + c;
            float* a0 = col.data() + j * kChannelBlock;
            float* a1 = a0 + kChannelBlock;
#pragma omp simd
            for (int64_t k = 0; k < cb; ++k) {
              r0[k] += v0[k];
              r1[k] += v1[k];
              a0[k] += v0[k];
              a1[k] += v1[k];
            }
          }
          for (; j < w; ++j) {
            const float* v = row + j * c;
            float* a = col.data() + j * kChannelBlock;
            for (int64_t k = 0; k < cb; ++k) {
              r0[k] += v[k];
              a[k] += v[k];
            }
          }
          for (int64_t k = 0; k < cb; ++k) zp[(b * c + c0 + k) * (h + w) + i] = (r0[k] + r1[k]) / static_cast<float>(w);
        }
        for (int64_t j = 0; j < w; ++j)
          for (int64_t k = 0; k < cb; ++k)
            zp[(b * c + c0 + k) * (h + w) + h + j] = col[j * kChannelBlock + k] / static_cast<float>(h);
      }
    });
    return z;
  }
  at::parallel_for(0, n * c, grain_for(h * w), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* zh = zp + p * (h + w);
      float* zw = zh + h;
      plane_strip_sums(xp + p * h * w, h, w, zh, zw);
      for (int64_t i = 0; i < h; ++i) zh[i] /= static_cast<float>(w);
      for (int64_t j = 0; j < w; ++j) zw[j] /= static_cast<float>(h);
    }
  });
  return z;
}

// out = (x * g_h[..., None]) * g_w[..., None, :], one read of x and one write.
at::Tensor apply_strip_gates(const at::Tensor& x, const at::Tensor& g_h, const at::Tensor& g_w) {
  const Layout layout = layout_of(x, "apply_strip_gates");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  check_vector(g_h, {n, c, h}, "g_h", "apply_strip_gates");
  check_vector(g_w, {n, c, w}, "g_w", "apply_strip_gates");
  at::Tensor out = at::empty_like(x);  // same memory order as x
  const float* xp = x.const_data_ptr<float>();
  const float* hp = g_h.const_data_ptr<float>();
  const float* wp = g_w.const_data_ptr<float>();
  float* op = out.data_ptr<float>();
  if (layout == Layout::NHWC) {  // per image row; both gates transposed to run along the channel vector
    std::vector<float> gw_t(n * w * c);  // (N, W, C)
    for (int64_t b = 0; b < n; ++b)
      for (int64_t k = 0; k < c; ++k)
        for (int64_t j = 0; j < w; ++j) gw_t[(b * w + j) * c + k] = wp[(b * c + k) * w + j];
    at::parallel_for(0, n * h, grain_for(w * c), [&](int64_t begin, int64_t end) {
      std::vector<float> gh(c);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / h, i = t % h;
        for (int64_t k = 0; k < c; ++k) gh[k] = hp[(b * c + k) * h + i];
        for (int64_t j = 0; j < w; ++j) {
          const float* v = xp + (t * w + j) * c;
          const float* gw = gw_t.data() + (b * w + j) * c;
          float* o = op + (t * w + j) * c;
#pragma omp simd
          for (int64_t k = 0; k < c; ++k) o[k] = v[k] * gh[k] * gw[k];
        }
      }
    });
    return out;
  }
  at::parallel_for(0, n * c, grain_for(h * w), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* gw = wp + p * w;
      for (int64_t i = 0; i < h; ++i) {
        const float gh = hp[p * h + i];
        const float* row = xp + (p * h + i) * w;
        float* orow = op + (p * h + i) * w;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) orow[j] = row[j] * gh * gw[j];
      }
    }
  });
  return out;
}

// ------------------------------------------------------------------------------------------------ CBAM
// Sum and max of n floats in one read. A NaN reaches the sum, and is then reported as the max too, as amax does.
void sum_and_max(const float* v, int64_t n, float* sum, float* max) {
  float s = 0.f;
  float m = -std::numeric_limits<float>::infinity();
  int64_t k = 0;
#ifdef __AVX2__
  __m256 vs0 = _mm256_setzero_ps(), vs1 = vs0, vs2 = vs0, vs3 = vs0;
  __m256 vm0 = _mm256_set1_ps(m), vm1 = vm0;
  for (; k + 32 <= n; k += 32) {  // independent accumulators hide the add latency
    const __m256 a = _mm256_loadu_ps(v + k), b = _mm256_loadu_ps(v + k + 8);
    const __m256 c = _mm256_loadu_ps(v + k + 16), d = _mm256_loadu_ps(v + k + 24);
    vs0 = _mm256_add_ps(vs0, a);
    vs1 = _mm256_add_ps(vs1, b);
    vs2 = _mm256_add_ps(vs2, c);
    vs3 = _mm256_add_ps(vs3, d);
    vm0 = _mm256_max_ps(vm0, _mm256_max_ps(a, b));
    vm1 = _mm256_max_ps(vm1, _mm256_max_ps(c, d));
  }
  s = lane_sum(_mm256_add_ps(_mm256_add_ps(vs0, vs1), _mm256_add_ps(vs2, vs3)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(vm0, vm1));
  for (float lane : lanes) m = std::max(m, lane);
#endif
  for (; k < n; ++k) {
    s += v[k];
    m = v[k] > m ? v[k] : m;
  }
  *sum = s;
  *max = std::isnan(s) ? s : m;
}

// pooled (2N, C): rows [0, N) the mean of each plane, rows [N, 2N) its max, from one read of x.
at::Tensor mean_max_pool(const at::Tensor& x) {
  const Layout layout = layout_of(x, "mean_max_pool");
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  at::Tensor pooled = at::empty({2 * n, c}, x.options().memory_format(at::MemoryFormat::Contiguous));
  const float* xp = x.const_data_ptr<float>();
  float* mean = pooled.data_ptr<float>();
  float* max = mean + n * c;
  if (layout == Layout::NHWC) {
    nhwc_channel_sums(xp, n, c, hw, mean, max);
    for (int64_t p = 0; p < n * c; ++p) mean[p] /= static_cast<float>(hw);
    return pooled;
  }
  at::parallel_for(0, n * c, grain_for(hw), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      sum_and_max(xp + p * hw, hw, mean + p, max + p);
      mean[p] /= static_cast<float>(hw);
    }
  });
  return pooled;
}

// maps (N, 2, H, W): channel mean and channel max of y = x * gate[:, :, None, None], without writing y.
at::Tensor gated_channel_mean_max(const at::Tensor& x, const at::Tensor& gate) {
  const Layout layout = layout_of(x, "gated_channel_mean_max");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
  check_vector(gate, {n, c}, "gate", "gated_channel_mean_max");
  at::Tensor maps = at::empty({n, 2, h, w}, x.options().memory_format(at::MemoryFormat::Contiguous));
  const float* xp = x.const_data_ptr<float>();
  const float* gp = gate.const_data_ptr<float>();
  float* mp = maps.data_ptr<float>();
  if (layout == Layout::NHWC) {  // per pixel: gate its channel vector into L1, then one sum-and-max over it
    at::parallel_for(0, n * hw, grain_for(c), [&](int64_t begin, int64_t end) {
      std::vector<float> y(c);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / hw, p = t % hw;
        const float* v = xp + t * c;
        const float* g = gp + b * c;
#pragma omp simd
        for (int64_t k = 0; k < c; ++k) y[k] = v[k] * g[k];
        float sum, max;
        sum_and_max(y.data(), c, &sum, &max);
        mp[b * 2 * hw + p] = sum / static_cast<float>(c);
        mp[b * 2 * hw + hw + p] = max;
      }
    });
    return maps;
  }
  constexpr int64_t kBlock = 256;  // pixels per task: both accumulators stay in L1, small maps still split
  const int64_t blocks = (hw + kBlock - 1) / kBlock;
  at::parallel_for(0, n * blocks, grain_for(kBlock * c), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / blocks, k0 = (t % blocks) * kBlock, len = std::min(kBlock, hw - k0);
      float* sum = mp + b * 2 * hw + k0;
      float* max = sum + hw;
      std::fill(sum, sum + len, 0.f);
      std::fill(max, max + len, -std::numeric_limits<float>::infinity());
      for (int64_t ch = 0; ch < c; ++ch) {
        const float g = gp[b * c + ch];
        const float* src = xp + (b * c + ch) * hw + k0;
        int64_t k = 0;
#ifdef __AVX2__
        const __m256 vg = _mm256_set1_ps(g);
        for (; k + 8 <= len; k += 8) {
          const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(src + k), vg);
          _mm256_storeu_ps(sum + k, _mm256_add_ps(_mm256_loadu_ps(sum + k), v));
          _mm256_storeu_ps(max + k, _mm256_max_ps(_mm256_loadu_ps(max + k), v));
        }
#endif
        for (; k < len; ++k) {
          const float v = src[k] * g;
          sum[k] += v;
          max[k] = max[k] > v ? max[k] : v;
        }
      }
      for (int64_t k = 0; k < len; ++k) {
        if (std::isnan(sum[k])) max[k] = sum[k];
        sum[k] /= static_cast<float>(c);
      }
    }
  });
  return maps;
}

// CBAM's spatial conv, (N, Cin, H, W) -> (N, 1, H, W): a k x k cross-correlation with zero padding k // 2 and a bias,
// as torch.nn.functional.conv2d computes it (the sums in a different order). Direct loops vectorised along a row
// beat a oneDNN call on a single-output-channel map, whose setup costs more than its 2 * k * k MACs per pixel.
at::Tensor spatial_conv(const at::Tensor& maps, const at::Tensor& weight_in, const at::Tensor& bias) {
  // A model converted to channels-last (Ultralytics' predictor does that on x86 CPUs) holds this 98-value weight in
  // channels-last order too; a contiguous copy costs nothing next to the conv.
  const at::Tensor weight = weight_in.contiguous();
  TORCH_CHECK(maps.dim() == 4 && maps.is_contiguous() && maps.device().is_cpu() && maps.scalar_type() == at::kFloat,
              "spatial_conv: maps must be a contiguous float32 CPU tensor (N, Cin, H, W)");
  const int64_t n = maps.size(0), cin = maps.size(1), h = maps.size(2), w = maps.size(3);
  TORCH_CHECK(weight.dim() == 4 && weight.size(0) == 1 && weight.size(1) == cin && weight.size(2) == weight.size(3) &&
                  weight.size(2) % 2 == 1,
              "spatial_conv: weight must be (1, ", cin, ", k, k) with odd k, got ", weight.sizes());
  const int64_t k = weight.size(2), pad = k / 2;
  check_vector(weight, {1, cin, k, k}, "weight", "spatial_conv");
  check_vector(bias, {1}, "bias", "spatial_conv");
  at::Tensor out = at::empty({n, 1, h, w}, maps.options());
  const float* mp = maps.const_data_ptr<float>();
  const float* wp = weight.const_data_ptr<float>();
  const float b = bias.const_data_ptr<float>()[0];
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n * h, grain_for(w * cin * k * k), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t img = t / h, i = t % h;
      float* orow = op + t * w;
      std::fill(orow, orow + w, b);
      for (int64_t ch = 0; ch < cin; ++ch) {
        for (int64_t ki = 0; ki < k; ++ki) {
          const int64_t r = i + ki - pad;
          if (r < 0 || r >= h) continue;  // zero padding rows
          const float* irow = mp + ((img * cin + ch) * h + r) * w;
          const float* wrow = wp + (ch * k + ki) * k;
          for (int64_t kj = 0; kj < k; ++kj) {
            const float wv = wrow[kj];
            const int64_t shift = kj - pad;  // output j reads input j + shift
            const int64_t j0 = std::max<int64_t>(0, -shift), j1 = std::min<int64_t>(w, w - shift);
            const float* src = irow + shift;
#pragma omp simd
            for (int64_t j = j0; j < j1; ++j) orow[j] += wv * src[j];
          }
        }
      }
    }
  });
  return out;
}

// out = (x * channel[:, :, None, None]) * spatial, spatial (N, 1, H, W); one read of x and one write.
at::Tensor apply_channel_spatial(const at::Tensor& x, const at::Tensor& channel, const at::Tensor& spatial) {
  const Layout layout = layout_of(x, "apply_channel_spatial");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
  check_vector(channel, {n, c}, "channel", "apply_channel_spatial");
  check_vector(spatial, {n, 1, h, w}, "spatial", "apply_channel_spatial");
  at::Tensor out = at::empty_like(x);  // same memory order as x
  const float* xp = x.const_data_ptr<float>();
  const float* cp = channel.const_data_ptr<float>();
  const float* sp = spatial.const_data_ptr<float>();
  float* op = out.data_ptr<float>();
  if (layout == Layout::NHWC) {
    at::parallel_for(0, n * hw, grain_for(c), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const float s = sp[t];  // spatial is (N, 1, H, W): pixel t of image t / hw
        const float* g = cp + (t / hw) * c;
        const float* v = xp + t * c;
        float* o = op + t * c;
#pragma omp simd
        for (int64_t k = 0; k < c; ++k) o[k] = v[k] * g[k] * s;
      }
    });
    return out;
  }
  at::parallel_for(0, n * c, grain_for(hw), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float g = cp[p];
      const float* s = sp + (p / c) * hw;
      const float* src = xp + p * hw;
      float* dst = op + p * hw;
#pragma omp simd
      for (int64_t k = 0; k < hw; ++k) dst[k] = src[k] * g * s[k];
    }
  });
  return out;
}

// ------------------------------------------------------------------------------------------------ SE and ECA
// Their plain form already makes the fewest passes (one read to pool, one read and one write to scale); what eager
// PyTorch adds is a dozen small operator calls for the gate, which cost as much as the passes on a 20 x 20 map. Here
// the whole layer is one call: pool, gate, scale.

float sigmoid(float v) { return 1.f / (1.f + std::exp(-v)); }

// Sum of n floats. Four independent accumulators: one would wait on each add's latency and run at a quarter speed.
float plane_sum(const float* v, int64_t n) {
  float s = 0.f;
  int64_t k = 0;
#ifdef __AVX2__
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (; k + 32 <= n; k += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(v + k));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(v + k + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(v + k + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(v + k + 24));
  }
  s = lane_sum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#endif
  for (; k < n; ++k) s += v[k];
  return s;
}

// mean[n * C + c] = mean over the pixels of channel c of image n, in either layout.
void channel_means(const at::Tensor& x, Layout layout, float* mean) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  const float* xp = x.const_data_ptr<float>();
  if (layout == Layout::NHWC) {
    nhwc_channel_sums(xp, n, c, hw, mean, nullptr);
    for (int64_t p = 0; p < n * c; ++p) mean[p] /= static_cast<float>(hw);
    return;
  }
  at::parallel_for(0, n * c, grain_for(hw), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) mean[p] = plane_sum(xp + p * hw, hw) / static_cast<float>(hw);
  });
}

// out = x * gate[:, :, None, None], gate holding one value per (image, channel); out keeps x's memory order.
at::Tensor scale_channels(const at::Tensor& x, Layout layout, const float* gate) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  at::Tensor out = at::empty_like(x);
  const float* xp = x.const_data_ptr<float>();
  float* op = out.data_ptr<float>();
  if (layout == Layout::NHWC) {
    at::parallel_for(0, n * hw, grain_for(c), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const float* g = gate + (t / hw) * c;
        const float* v = xp + t * c;
        float* o = op + t * c;
#pragma omp simd
        for (int64_t k = 0; k < c; ++k) o[k] = v[k] * g[k];
      }
    });
    return out;
  }
  at::parallel_for(0, n * c, grain_for(hw), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float g = gate[p];
      const float* src = xp + p * hw;
      float* dst = op + p * hw;
#pragma omp simd
      for (int64_t k = 0; k < hw; ++k) dst[k] = src[k] * g;
    }
  });
  return out;
}

// SE: y = x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2), weights as the 1x1 convs store them.
at::Tensor squeeze_excite(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                          const at::Tensor& b2) {
  const Layout layout = layout_of(x, "squeeze_excite");
  const int64_t n = x.size(0), c = x.size(1), hidden = w1.size(0);
  check_vector(w1, {hidden, c, 1, 1}, "w1", "squeeze_excite");
  check_vector(b1, {hidden}, "b1", "squeeze_excite");
  check_vector(w2, {c, hidden, 1, 1}, "w2", "squeeze_excite");
  check_vector(b2, {c}, "b2", "squeeze_excite");
  std::vector<float> mean(n * c), gate(n * c), mid(hidden);
  channel_means(x, layout, mean.data());
  const float *w1p = w1.const_data_ptr<float>(), *b1p = b1.const_data_ptr<float>();
  const float *w2p = w2.const_data_ptr<float>(), *b2p = b2.const_data_ptr<float>();
  for (int64_t b = 0; b < n; ++b) {
    const float* s = mean.data() + b * c;
    for (int64_t j = 0; j < hidden; ++j) {
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int64_t k = 0; k < c; ++k) acc += w1p[j * c + k] * s[k];
      mid[j] = std::max(0.f, acc + b1p[j]);
    }
    for (int64_t k = 0; k < c; ++k) {
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < hidden; ++j) acc += w2p[k * hidden + j] * mid[j];
      gate[b * c + k] = sigmoid(acc + b2p[k]);
    }
  }
  return scale_channels(x, layout, gate.data());
}

// ECA: y = x * sigmoid(conv1d_k(mean_hw(x))) along the channel axis, zero padding k // 2, no bias.
at::Tensor efficient_channel(const at::Tensor& x, const at::Tensor& weight) {
  const Layout layout = layout_of(x, "efficient_channel");
  const int64_t n = x.size(0), c = x.size(1), k = weight.size(-1), pad = k / 2;
  check_vector(weight, {1, 1, k}, "weight", "efficient_channel");
  TORCH_CHECK(k % 2 == 1, "efficient_channel: kernel size must be odd, got ", k);
  std::vector<float> mean(n * c), gate(n * c);
  channel_means(x, layout, mean.data());
  const float* wp = weight.const_data_ptr<float>();
  for (int64_t b = 0; b < n; ++b) {
    const float* s = mean.data() + b * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      float acc = 0.f;
      for (int64_t t = 0; t < k; ++t) {
        const int64_t src = ch + t - pad;
        if (src >= 0 && src < c) acc += wp[t] * s[src];
      }
      gate[b * c + ch] = sigmoid(acc);
    }
  }
  return scale_channels(x, layout, gate.data());
}

}  // namespace

TORCH_LIBRARY(attnyolo_fused, m) {
  m.def("strip_means(Tensor x) -> Tensor", strip_means);
  m.def("apply_strip_gates(Tensor x, Tensor g_h, Tensor g_w) -> Tensor", apply_strip_gates);
  m.def("mean_max_pool(Tensor x) -> Tensor", mean_max_pool);
  m.def("gated_channel_mean_max(Tensor x, Tensor gate) -> Tensor", gated_channel_mean_max);
  m.def("spatial_conv(Tensor maps, Tensor weight, Tensor bias) -> Tensor", spatial_conv);
  m.def("squeeze_excite(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2) -> Tensor", squeeze_excite);
  m.def("efficient_channel(Tensor x, Tensor weight) -> Tensor", efficient_channel);
  m.def("apply_channel_spatial(Tensor x, Tensor channel, Tensor spatial) -> Tensor", apply_channel_spatial);
}
