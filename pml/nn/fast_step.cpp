// Fused float64 training step of S dense one-hidden-layer MLPs (two layers of weights), MSE loss: forward, loss and
// backward for a batch in one pass over fixed blocks of points, without any (points x units) array.
//
// Built at first use by pml.nn.fast_step (torch.utils.cpp_extension.load). Design:
//  * The units are padded to a multiple of 8 (padded units have zero weights, so they add exactly 0 to every sum)
//    and W1 is stored transposed (d x Wp), so every inner loop runs over units in whole SIMD vectors.
//  * Points are split into G contiguous groups (G depends only on the batch size, never on the thread count).
//    A group is processed block by block (P points at a time: speed only): pass A computes the hidden activations
//    of the block's points and each point's output; pass B adds the block's gradient terms to the group's private accumulators, point after point. Each accumulator is therefore
//    the sum over the group's points in point order, whatever P, and the groups are summed in group order: the
//    results depend on the batch, the parameters and the SIMD width of the build, not on the number of threads.
//  * tanh keeps the block's activations in a P x Wp scratch that stays in cache; ReLU recomputes them in pass B
//    (a few multiply-adds, bit for bit the same values), which leaves no scratch to stream and allows large blocks.
//  * Rounding is fixed by the source: fused multiply-adds are written explicitly and the build uses
//    -ffp-contract=off, so the compiler does not contract other products.
//  * tanh: glibc's vector tanh (libmvec) when PML_MVEC is defined, else std::tanh lane by lane.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) && !defined(PML_NO_AVX512)
#include <immintrin.h>
#define PML_LANES 8
typedef __m512d vec;
static inline vec vload(const double* p) { return _mm512_loadu_pd(p); }
static inline void vstore(double* p, vec v) { _mm512_storeu_pd(p, v); }
static inline vec vset1(double x) { return _mm512_set1_pd(x); }
static inline vec vadd(vec a, vec b) { return _mm512_add_pd(a, b); }
static inline vec vsub(vec a, vec b) { return _mm512_sub_pd(a, b); }
static inline vec vmul(vec a, vec b) { return _mm512_mul_pd(a, b); }
static inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_pd(a, b, c); }
// relu: 0 where z < 0, z elsewhere (NaN passes through, as torch.relu); its gradient mask: a > 0
static inline vec vrelu(vec z) { return _mm512_mask_mov_pd(z, _mm512_cmp_pd_mask(z, _mm512_setzero_pd(), _CMP_LT_OQ),
                                                          _mm512_setzero_pd()); }
static inline vec vpositive(vec g, vec a) { return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(a, _mm512_setzero_pd(),
                                                                                         _CMP_GT_OQ), g); }
#ifdef PML_MVEC
extern "C" __m512d _ZGVeN8v_tanh(__m512d);
static inline vec vtanh(vec z) { return _ZGVeN8v_tanh(z); }
#define PML_TANH "libmvec (AVX-512)"
#endif
#define PML_ISA "AVX-512"
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PML_LANES 4
typedef __m256d vec;
static inline vec vload(const double* p) { return _mm256_loadu_pd(p); }
static inline void vstore(double* p, vec v) { _mm256_storeu_pd(p, v); }
static inline vec vset1(double x) { return _mm256_set1_pd(x); }
static inline vec vadd(vec a, vec b) { return _mm256_add_pd(a, b); }
static inline vec vsub(vec a, vec b) { return _mm256_sub_pd(a, b); }
static inline vec vmul(vec a, vec b) { return _mm256_mul_pd(a, b); }
static inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
static inline vec vrelu(vec z) { return _mm256_blendv_pd(z, _mm256_setzero_pd(),
                                                          _mm256_cmp_pd(z, _mm256_setzero_pd(), _CMP_LT_OQ)); }
static inline vec vpositive(vec g, vec a) { return _mm256_and_pd(g, _mm256_cmp_pd(a, _mm256_setzero_pd(),
                                                                                  _CMP_GT_OQ)); }
#ifdef PML_MVEC
extern "C" __m256d _ZGVdN4v_tanh(__m256d);
static inline vec vtanh(vec z) { return _ZGVdN4v_tanh(z); }
#define PML_TANH "libmvec (AVX2)"
#endif
#define PML_ISA "AVX2+FMA"
#else
#define PML_LANES 1
typedef double vec;
static inline vec vload(const double* p) { return *p; }
static inline void vstore(double* p, vec v) { *p = v; }
static inline vec vset1(double x) { return x; }
static inline vec vadd(vec a, vec b) { return a + b; }
static inline vec vsub(vec a, vec b) { return a - b; }
static inline vec vmul(vec a, vec b) { return a * b; }
static inline vec vfma(vec a, vec b, vec c) { return std::fma(a, b, c); }
static inline vec vrelu(vec z) { return z < 0.0 ? 0.0 : z; }
static inline vec vpositive(vec g, vec a) { return a > 0.0 ? g : 0.0; }
static inline vec vtanh(vec z) { return std::tanh(z); }
#define PML_TANH "std::tanh"
#define PML_ISA "scalar"
#endif

#ifndef PML_TANH
static inline vec vtanh(vec z) {
  alignas(64) double lanes[PML_LANES];
  vstore(lanes, z);
  for (int l = 0; l < PML_LANES; ++l) lanes[l] = std::tanh(lanes[l]);
  return vload(lanes);
}
#define PML_TANH "std::tanh"
#endif

namespace {

constexpr int64_t PAD = 8;          // units are padded to a multiple of 8 (>= PML_LANES)
constexpr int64_t MAX_GROUPS = 8;   // at most 8 groups of points: 8 accumulator copies, 8-way parallelism per member
constexpr int64_t GROUP_POINTS = 256;  // ... and at least 256 points per group
constexpr int64_t MAX_DIM = 64;     // inputs handled by the kernel (pml.nn.fast_step checks)

enum Act { TANH = 0, RELU = 1 };

inline double hsum(vec v) {  // lanes added in lane order: a fixed rounding
  alignas(64) double lanes[PML_LANES];
  vstore(lanes, v);
  double s = lanes[0];
  for (int l = 1; l < PML_LANES; ++l) s += lanes[l];
  return s;
}

int64_t groups_for(int64_t B) {
  return std::max<int64_t>(1, std::min<int64_t>(MAX_GROUPS, (B + GROUP_POINTS - 1) / GROUP_POINTS));
}

// One group of points of one member. w: the member's padded parameters [W1T (d x Wp), b1 (Wp), w2 (Wp)];
// acc: the group's accumulators [gW1T (d x Wp), gb1 (Wp), gw2 (Wp), gb2, sum of squared residuals].
// scratch: P x Wp activations (tanh only: ReLU recomputes them in pass B), then P x PML_LANES output partial sums,
// then P gradients of the outputs. backward = false: the squared residuals only (pass A).
template <int ACT, int DT>
void group_step(const double* X, const double* y, int64_t d_rt, int64_t begin, int64_t end, int64_t Wp,
                const double* w, double b2, double scale, double* acc, double* scratch, int64_t P, bool backward) {
  const int64_t d = DT > 0 ? DT : d_rt;
  const double* w1t = w;
  const double* b1 = w + d * Wp;
  const double* w2 = b1 + Wp;
  double* gw1t = acc;
  double* gb1 = acc + d * Wp;
  double* gw2 = gb1 + Wp;
  double* A = scratch;
  double* outp = scratch + (ACT == TANH && backward ? P * Wp : 0);  // the layout of dense2_impl's scratch
  double* g = outp + P * PML_LANES;
  double gb2 = acc[(d + 2) * Wp];
  double sse = acc[(d + 2) * Wp + 1];
  vec wk[DT > 0 ? DT : MAX_DIM];
  vec aw[DT > 0 ? DT : MAX_DIM];
  for (int64_t p0 = begin; p0 < end; p0 += P) {
    const int64_t np = std::min(P, end - p0);
    const double* Xb = X + p0 * d;
    // pass A: activations and outputs of the block's points
    for (int64_t i = 0; i < np * PML_LANES; ++i) outp[i] = 0.0;
    for (int64_t j = 0; j < Wp; j += PML_LANES) {
      const vec bj = vload(b1 + j);
      const vec w2j = vload(w2 + j);
      for (int64_t k = 0; k < d; ++k) wk[k] = vload(w1t + k * Wp + j);
      for (int64_t p = 0; p < np; ++p) {
        const double* x = Xb + p * d;
        vec z = bj;
        for (int64_t k = 0; k < d; ++k) z = vfma(wk[k], vset1(x[k]), z);
        const vec a = ACT == TANH ? vtanh(z) : vrelu(z);
        if (ACT == TANH && backward) vstore(A + p * Wp + j, a);
        vstore(outp + p * PML_LANES, vfma(w2j, a, vload(outp + p * PML_LANES)));
      }
    }
    for (int64_t p = 0; p < np; ++p) {
      const double r = (hsum(vload(outp + p * PML_LANES)) + b2) - y[p0 + p];
      sse += r * r;
      if (backward) {
        g[p] = scale * r;  // d(mean of r^2)/d(output) = 2 r / B
        gb2 += g[p];
      }
    }
    if (!backward) continue;
    // pass B: the block's gradient terms, point after point, into the group's accumulators
    vec bj = vset1(0.0);
    for (int64_t j = 0; j < Wp; j += PML_LANES) {
      const vec w2j = vload(w2 + j);
      vec agb1 = vload(gb1 + j);
      vec agw2 = vload(gw2 + j);
      for (int64_t k = 0; k < d; ++k) aw[k] = vload(gw1t + k * Wp + j);
      if (ACT == RELU) {
        bj = vload(b1 + j);
        for (int64_t k = 0; k < d; ++k) wk[k] = vload(w1t + k * Wp + j);
      }
      for (int64_t p = 0; p < np; ++p) {
        const double* x = Xb + p * d;
        vec a;
        if (ACT == TANH) {
          a = vload(A + p * Wp + j);
        } else {  // recomputed as in pass A (same operations, same value): cheaper than storing it
          vec z = bj;
          for (int64_t k = 0; k < d; ++k) z = vfma(wk[k], vset1(x[k]), z);
          a = vrelu(z);
        }
        const vec gp = vset1(g[p]);
        agw2 = vfma(gp, a, agw2);
        const vec ga = vmul(gp, w2j);  // gradient of the activation
        const vec delta = ACT == TANH ? vmul(ga, vsub(vset1(1.0), vmul(a, a))) : vpositive(ga, a);
        agb1 = vadd(agb1, delta);
        for (int64_t k = 0; k < d; ++k) aw[k] = vfma(delta, vset1(x[k]), aw[k]);
      }
      vstore(gb1 + j, agb1);
      vstore(gw2 + j, agw2);
      for (int64_t k = 0; k < d; ++k) vstore(gw1t + k * Wp + j, aw[k]);
    }
  }
  acc[(d + 2) * Wp] = gb2;
  acc[(d + 2) * Wp + 1] = sse;
}

template <int ACT>
void group_dispatch(int64_t d, const double* X, const double* y, int64_t begin, int64_t end, int64_t Wp,
                    const double* w, double b2, double scale, double* acc, double* scratch, int64_t P,
                    bool backward) {
  switch (d) {
#define PML_CASE(D) \
  case D: return group_step<ACT, D>(X, y, d, begin, end, Wp, w, b2, scale, acc, scratch, P, backward);
    PML_CASE(1) PML_CASE(2) PML_CASE(3) PML_CASE(4) PML_CASE(5) PML_CASE(6) PML_CASE(7) PML_CASE(8)
#undef PML_CASE
    default: return group_step<ACT, 0>(X, y, d, begin, end, Wp, w, b2, scale, acc, scratch, P, backward);
  }
}

int64_t padded(int64_t W) { return (W + PAD - 1) / PAD * PAD; }

void check_f64_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kDouble, name, " must be a float64 CPU tensor");
}

// Loss and gradients of S members [d -> W -> 1] on a batch X (S, B, d), y (S, B); writes loss (S,) (the batch MSE)
// and, with grads = {gW1 (S, W, d), gb1 (S, W), gW2 (S, 1, W), gb2 (S, 1)}, the gradients of the summed losses.
// ws: three float64 tensors kept between calls (resized).
void dense2_impl(const at::Tensor& X, const at::Tensor& y, const at::Tensor& W1, const at::Tensor& b1,
                 const at::Tensor& W2, const at::Tensor& b2, at::Tensor* grads, at::Tensor& loss,
                 std::vector<at::Tensor>& ws, int64_t activation, int64_t block) {
  const bool backward = grads != nullptr;
  for (const auto& [t, name] : std::initializer_list<std::pair<const at::Tensor*, const char*>>{
           {&X, "X"}, {&y, "y"}, {&W1, "W1"}, {&b1, "b1"}, {&W2, "W2"}, {&b2, "b2"}, {&loss, "loss"}})
    check_f64_cpu(*t, name);
  TORCH_CHECK(activation == TANH || activation == RELU, "activation must be 0 (tanh) or 1 (relu)");
  TORCH_CHECK(ws.size() == 3, "ws must hold three tensors");
  TORCH_CHECK(X.dim() == 3 && X.stride(2) == 1 && X.stride(1) == X.size(2), "X must be (S, B, d), rows contiguous");
  const int64_t S = X.size(0), B = X.size(1), d = X.size(2);
  TORCH_CHECK(B > 0 && d >= 1 && d <= MAX_DIM, "need B > 0 and 1 <= d <= ", MAX_DIM);
  TORCH_CHECK(y.dim() == 2 && y.size(0) == S && y.size(1) == B && y.stride(1) == 1, "y must be (S, B), contiguous rows");
  const int64_t W = W1.size(1);
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&W1, &b1, &W2, &b2, &loss})
    TORCH_CHECK(t->is_contiguous(), "parameters and loss must be contiguous");
  TORCH_CHECK(W1.sizes() == at::IntArrayRef({S, W, d}) && b1.sizes() == at::IntArrayRef({S, W}) &&
                  W2.sizes() == at::IntArrayRef({S, 1, W}) && b2.sizes() == at::IntArrayRef({S, 1}),
              "parameter shapes must be (S, W, d), (S, W), (S, 1, W), (S, 1)");
  TORCH_CHECK(loss.numel() == S, "loss must have S elements");
  if (backward) {
    const at::Tensor* params[4] = {&W1, &b1, &W2, &b2};
    for (int i = 0; i < 4; ++i) {
      check_f64_cpu(grads[i], "a gradient");
      TORCH_CHECK(grads[i].is_contiguous() && grads[i].sizes() == params[i]->sizes(),
                  "gradients must be contiguous and shaped like the parameters");
    }
  }
  const int64_t Wp = padded(W);
  const int64_t P = std::max<int64_t>(1, block);
  const int64_t G = groups_for(B);
  const int64_t nw = (d + 2) * Wp;       // padded parameters of one member
  const int64_t na = (d + 2) * Wp + 2;   // accumulators of one group
  const int64_t ns = (activation == TANH && backward ? P * Wp : 0) + P * PML_LANES + P;  // scratch of one thread
  const int64_t T = std::max<int64_t>(1, at::get_num_threads());
  at::Tensor& wpad = ws[0];
  at::Tensor& acc = ws[1];
  at::Tensor& scratch = ws[2];
  if (wpad.numel() != S * nw) wpad.resize_({S * nw});
  if (acc.numel() != S * G * na) acc.resize_({S * G * na});
  if (scratch.numel() < T * ns) scratch.resize_({T * ns});
  double* wp = wpad.data_ptr<double>();
  double* ap = acc.data_ptr<double>();
  double* sp = scratch.data_ptr<double>();
  const double* W1p = W1.data_ptr<double>();
  const double* b1p = b1.data_ptr<double>();
  const double* W2p = W2.data_ptr<double>();
  const double* b2p = b2.data_ptr<double>();
  // padded, transposed parameters (zeros in the padding)
  for (int64_t s = 0; s < S; ++s) {
    double* w = wp + s * nw;
    std::memset(w, 0, sizeof(double) * nw);
    for (int64_t j = 0; j < W; ++j)
      for (int64_t k = 0; k < d; ++k) w[k * Wp + j] = W1p[(s * W + j) * d + k];
    std::memcpy(w + d * Wp, b1p + s * W, sizeof(double) * W);
    std::memcpy(w + (d + 1) * Wp, W2p + s * W, sizeof(double) * W);
  }
  std::memset(ap, 0, sizeof(double) * S * G * na);
  const double* Xp = X.data_ptr<double>();
  const double* yp = y.data_ptr<double>();
  const int64_t sx = X.stride(0), sy = y.stride(0);
  const double scale = 2.0 / static_cast<double>(B);
  at::parallel_for(0, S * G, 1, [&](int64_t first, int64_t last) {
    const int64_t t = at::get_thread_num();
    TORCH_CHECK(t >= 0 && t < T, "unexpected thread number");
    double* mine = sp + t * ns;
    for (int64_t item = first; item < last; ++item) {
      const int64_t s = item / G, gi = item % G;
      const int64_t begin = B * gi / G, end = B * (gi + 1) / G;
      const double* Xs = Xp + s * sx;
      const double* ys = yp + s * sy;
      if (activation == TANH)
        group_dispatch<TANH>(d, Xs, ys, begin, end, Wp, wp + s * nw, b2p[s], scale, ap + item * na, mine, P,
                             backward);
      else
        group_dispatch<RELU>(d, Xs, ys, begin, end, Wp, wp + s * nw, b2p[s], scale, ap + item * na, mine, P,
                             backward);
    }
  });
  // reduce the groups in group order and write the gradients in the parameters' layout
  double* lossp = loss.data_ptr<double>();
  if (!backward) {
    for (int64_t s = 0; s < S; ++s) {
      const double* a0 = ap + s * G * na;
      double sse = a0[(d + 2) * Wp + 1];
      for (int64_t gi = 1; gi < G; ++gi) sse += a0[gi * na + (d + 2) * Wp + 1];
      lossp[s] = sse / static_cast<double>(B);
    }
    return;
  }
  double* gW1p = grads[0].data_ptr<double>();
  double* gb1q = grads[1].data_ptr<double>();
  double* gW2p = grads[2].data_ptr<double>();
  double* gb2q = grads[3].data_ptr<double>();
  const int64_t chunk = 256;
  const int64_t nchunks = (W + chunk - 1) / chunk;
  at::parallel_for(0, S * nchunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t item = first; item < last; ++item) {
      const int64_t s = item / nchunks, j0 = (item % nchunks) * chunk, j1 = std::min(W, j0 + chunk);
      const double* a0 = ap + s * G * na;
      for (int64_t j = j0; j < j1; ++j) {
        for (int64_t k = 0; k < d; ++k) {
          double v = a0[k * Wp + j];
          for (int64_t gi = 1; gi < G; ++gi) v += a0[gi * na + k * Wp + j];
          gW1p[(s * W + j) * d + k] = v;
        }
        double vb = a0[d * Wp + j], vw = a0[(d + 1) * Wp + j];
        for (int64_t gi = 1; gi < G; ++gi) {
          vb += a0[gi * na + d * Wp + j];
          vw += a0[gi * na + (d + 1) * Wp + j];
        }
        gb1q[s * W + j] = vb;
        gW2p[s * W + j] = vw;
      }
    }
  });
  for (int64_t s = 0; s < S; ++s) {
    const double* a0 = ap + s * G * na;
    double vb = a0[(d + 2) * Wp], sse = a0[(d + 2) * Wp + 1];
    for (int64_t gi = 1; gi < G; ++gi) {
      vb += a0[gi * na + (d + 2) * Wp];
      sse += a0[gi * na + (d + 2) * Wp + 1];
    }
    gb2q[s] = vb;
    lossp[s] = sse / static_cast<double>(B);
  }
}

void dense2_step(const at::Tensor& X, const at::Tensor& y, const at::Tensor& W1, const at::Tensor& b1,
                 const at::Tensor& W2, const at::Tensor& b2, at::Tensor& gW1, at::Tensor& gb1, at::Tensor& gW2,
                 at::Tensor& gb2, at::Tensor& loss, std::vector<at::Tensor> ws, int64_t activation, int64_t block) {
  at::Tensor grads[4] = {gW1, gb1, gW2, gb2};
  dense2_impl(X, y, W1, b1, W2, b2, grads, loss, ws, activation, block);
}

// The per-member MSE only (a forward pass, e.g. of a test set: no array of all points x units either).
void dense2_mse(const at::Tensor& X, const at::Tensor& y, const at::Tensor& W1, const at::Tensor& b1,
                const at::Tensor& W2, const at::Tensor& b2, at::Tensor& loss, std::vector<at::Tensor> ws,
                int64_t activation, int64_t block) {
  dense2_impl(X, y, W1, b1, W2, b2, nullptr, loss, ws, activation, block);
}

// Elementwise tanh with the kernel's own tanh (for the accuracy test and the benchmark's limit).
void tanh_inplace(at::Tensor& x) {
  check_f64_cpu(x, "x");
  TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
  double* p = x.data_ptr<double>();
  const int64_t n = x.numel(), nv = n / PML_LANES * PML_LANES;
  at::parallel_for(0, nv / PML_LANES, 4096, [&](int64_t first, int64_t last) {
    for (int64_t i = first * PML_LANES; i < last * PML_LANES; i += PML_LANES) vstore(p + i, vtanh(vload(p + i)));
  });
  if (nv < n) {  // the tail through a padded vector, so every element gets the same tanh
    alignas(64) double lanes[PML_LANES] = {0.0};
    for (int64_t i = nv; i < n; ++i) lanes[i - nv] = p[i];
    vstore(lanes, vtanh(vload(lanes)));
    for (int64_t i = nv; i < n; ++i) p[i] = lanes[i - nv];
  }
}

std::map<std::string, std::string> info() {
  return {{"isa", PML_ISA}, {"lanes", std::to_string(PML_LANES)}, {"tanh", PML_TANH},
          {"max_groups", std::to_string(MAX_GROUPS)}, {"group_points", std::to_string(GROUP_POINTS)},
          {"max_dim", std::to_string(MAX_DIM)}, {"pad", std::to_string(PAD)}};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("dense2_step", &dense2_step, "fused float64 MSE step of S dense one-hidden-layer MLPs");
  m.def("dense2_mse", &dense2_mse, "per-member MSE of S dense one-hidden-layer MLPs (forward only)");
  m.def("tanh_", &tanh_inplace, "in-place tanh with the kernel's tanh");
  m.def("info", &info, "how the kernel was built");
}
