#include "kernels/cpu/gemm_cpu.h"

#include <cblas.h>

#include <chrono>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

#include "core/parallel.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/vec_math.h"
#include "tlm/check.h"

namespace tlm::kernels {

using dnnl::memory;

namespace {

// The operand type of a oneDNN mode, and its name for messages.
memory::data_type operand_type(GemmMode mode) {
  return mode == GemmMode::kBf16OneDnn ? memory::data_type::bf16 : memory::data_type::f32;
}
const char* type_name(memory::data_type t) { return t == memory::data_type::bf16 ? "bf16" : "fp32"; }

}  // namespace

// oneDNN's matmul with the dimensions and leading strides given at run time, so one primitive
// serves every batch shape: one per (data type, transposes, accumulate), made on first use. The
// unit strides are given now: oneDNN's optimised matmuls (gemm:jit) need to know which dimension
// is dense, and with every stride left to run time only its slow reference kernel accepts the
// descriptors, which implementation() exposes and unavailable() refuses.
struct CpuGemm::OneDnn {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<std::tuple<memory::data_type, bool, bool, bool>, dnnl::matmul> primitives;
  std::map<std::tuple<memory::data_type, bool, bool, bool>, std::string> implementations;  // oneDNN's names

  // The strides of a row-major (rows, cols) view of a dense matrix stored as (rows, cols), or as
  // (cols, rows) when transposed; `stored_cols` is the stored row length (DNNL_RUNTIME_DIM_VAL:
  // given at run time).
  static memory::dims strides(bool trans, memory::dim stored_cols) {
    return trans ? memory::dims{1, stored_cols} : memory::dims{stored_cols, 1};
  }

  dnnl::matmul& primitive(memory::data_type t, bool ta, bool tb, bool accumulate) {
    const auto key = std::make_tuple(t, ta, tb, accumulate);
    auto it = primitives.find(key);
    if (it != primitives.end()) return it->second;
    const memory::dims any{DNNL_RUNTIME_DIM_VAL, DNNL_RUNTIME_DIM_VAL};
    const memory::desc a(any, t, strides(ta, DNNL_RUNTIME_DIM_VAL)), b(any, t, strides(tb, DNNL_RUNTIME_DIM_VAL)),
        c(any, memory::data_type::f32, strides(false, DNNL_RUNTIME_DIM_VAL));
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    try {
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine);
      const std::string impl = pd.impl_info_str();
      if (impl.starts_with("ref")) {
        throw Error(fmt::format("oneDNN has only its reference {} matmul here ({})", type_name(t), impl));
      }
      implementations.emplace(key, impl);
      return primitives.emplace(key, dnnl::matmul(pd)).first->second;
    } catch (const dnnl::error& e) {
      throw Error(fmt::format("oneDNN has no {} matmul for these operands on this CPU ({})", type_name(t), e.what()));
    }
  }

  void run(memory::data_type t, bool ta, bool tb, int m, int n, int k, const void* a, const void* b, float* c,
           bool accumulate) {
    dnnl::matmul& mm = primitive(t, ta, tb, accumulate);
    memory ma({{m, k}, t, strides(ta, ta ? m : k)}, engine, const_cast<void*>(a));
    memory mb({{k, n}, t, strides(tb, tb ? k : n)}, engine, const_cast<void*>(b));
    memory mc({{m, n}, memory::data_type::f32, memory::dims{n, 1}}, engine, c);
    mm.execute(stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    stream.wait();
  }
};

std::string gemm_mode_name(GemmMode mode) {
  switch (mode) {
    case GemmMode::kOpenBlasFp32:
      return "OpenBLAS fp32";
    case GemmMode::kOneDnnFp32:
      return "oneDNN fp32";
    case GemmMode::kBf16Emulated:
      return "bf16 emulated: operands rounded, OpenBLAS fp32";
    case GemmMode::kBf16OneDnn:
      return "oneDNN bf16, small products in OpenBLAS on bf16-rounded operands";
  }
  return "?";
}

std::string CpuGemm::implementation(bool ta, bool tb, bool accumulate) {
  if (!onednn_) return gemm_mode_name(mode_);
  const auto t = operand_type(mode_);
  onednn_->primitive(t, ta, tb, accumulate);
  return onednn_->implementations.at(std::make_tuple(t, ta, tb, accumulate));
}

std::string CpuGemm::unavailable(GemmMode mode) {
  if (mode != GemmMode::kOneDnnFp32 && mode != GemmMode::kBf16OneDnn) return "";
  if (mode == GemmMode::kBf16OneDnn) {
    const NativeBf16 native = native_bf16();  // outside the try: a bad TLM_MAX_CPU_ISA is an error
    if (!native.available) return native.why;
  }
  try {
    OneDnn probe;
    for (const GemmLayout& l : kLinearLayouts) probe.primitive(operand_type(mode), l.trans_a, l.trans_b, l.accumulate);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

CpuGemm::CpuGemm(GemmMode mode) : mode_(mode) {
  if (mode == GemmMode::kOneDnnFp32 || mode == GemmMode::kBf16OneDnn) onednn_ = std::make_unique<OneDnn>();
}
CpuGemm::~CpuGemm() = default;

namespace {

// Grows a scratch vector to n elements (its memory is kept for the next call).
template <typename T>
T* scratch(PageVector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace

void CpuGemm::run(bool ta, bool tb, int m, int n, int k, const float* a, const float* b, float* c, bool accumulate,
                  bool reuse_a) {
  const int64_t a_size = int64_t{m} * k, b_size = int64_t{k} * n;
  const bool bf16 = mode_ == GemmMode::kBf16Emulated || mode_ == GemmMode::kBf16OneDnn;
  // Native bf16 pays oneDNN's fixed cost per call (~3 us here, more than a small product takes),
  // so small products run as the emulation does: operands rounded to bf16 in fp32 storage, then
  // OpenBLAS's sgemm (the same numbers up to summation order; chosen by shape alone, so runs stay
  // deterministic). A single text through a tiny model is all small products.
  const bool rounded =
      mode_ == GemmMode::kBf16Emulated || (mode_ == GemmMode::kBf16OneDnn && a_size * n < kSmallNativeBf16Products);
  if (bf16 && reuse_a && a_size > 0 && n > 0) {
    TLM_CHECK(a == converted_a_ && a_size == converted_a_size_, "CpuGemm: reuse_a without the previous call's a");
  }
  const bool convert_a = bf16 && (!reuse_a || converted_a_rounded_ != rounded);
  if (bf16) {  // from here on the converted copy is this call's a (none when there is nothing to convert)
    converted_a_ = m == 0 || n == 0 || k == 0 ? nullptr : a;
    converted_a_size_ = a_size;
    converted_a_rounded_ = rounded;
  }
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: c = 0, or unchanged when accumulating, as BLAS does
    if (!accumulate) std::fill(c, c + int64_t{m} * n, 0.0f);
    return;
  }
  if (bf16 && rounded) {
    float* ra = scratch(round_a_, a_size);
    if (convert_a) round_bf16(a, ra, a_size);
    a = ra;
    b = static_cast<const float*>(converted_b(b, b_size, true));
  }
  if (mode_ == GemmMode::kOpenBlasFp32 || (bf16 && rounded)) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a,
                ta ? m : k, b, tb ? k : n, accumulate ? 1.0f : 0.0f, c, n);
  } else if (mode_ == GemmMode::kOneDnnFp32) {
    onednn_->run(operand_type(mode_), ta, tb, m, n, k, a, b, c, accumulate);
  } else {
    uint16_t* ha = scratch(bf16_a_, a_size);
    if (convert_a) to_bf16(a, ha, a_size);
    onednn_->run(operand_type(mode_), ta, tb, m, n, k, ha, converted_b(b, b_size, false), c, accumulate);
  }
}

void CpuGemm::freeze(const float* begin, int64_t n) {
  frozen_begin_ = n > 0 ? begin : nullptr;
  frozen_end_ = n > 0 ? begin + n : nullptr;
  kept_.clear();
}

bool CpuGemm::frozen(const float* p, int64_t n) const {
  return frozen_begin_ != nullptr && n > 0 && p < frozen_end_ && p + n > frozen_begin_;
}

namespace {

// x (n) converted into `out` (grown to n when shorter): rounded floats or bf16 bits.
const float* convert(const float* x, int64_t n, PageVector<float>& out) {
  round_bf16(x, scratch(out, n), n);
  return out.data();
}
const uint16_t* convert(const float* x, int64_t n, PageVector<uint16_t>& out) {
  to_bf16(x, scratch(out, n), n);
  return out.data();
}

}  // namespace

const void* CpuGemm::converted_b(const float* b, int64_t size, bool rounded) {
  if (frozen_begin_ == nullptr || b < frozen_begin_ || b + size > frozen_end_) {
    return rounded ? static_cast<const void*>(convert(b, size, round_b_)) : convert(b, size, bf16_b_);
  }
  Kept& kept = kept_[b];
  if (kept.size != size) kept = Kept{size, {}, {}};  // another extent at the same start
  if (rounded) return kept.rounded.empty() ? convert(b, size, kept.rounded) : kept.rounded.data();
  return kept.bf16.empty() ? convert(b, size, kept.bf16) : kept.bf16.data();
}

double gemm_ceiling_gflops(CpuGemm& gemm) {
  const int n = 2048;
  std::vector<float> a(static_cast<size_t>(n) * n), b(a.size()), c(a.size());
  for (size_t i = 0; i < a.size(); ++i) {  // values of either sign, away from 0, no pattern a GEMM could exploit
    a[i] = static_cast<float>((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    b[i] = static_cast<float>((i * 40503u + 17) % 997) / 997.0f - 0.5f;
  }
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    gemm.run(false, false, n, n, n, a.data(), b.data(), c.data(), false);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

namespace {

// db[c0..c1) += the sum over the n rows of dy (n, out), rows in order (cloned per instruction set,
// the same float additions in every clone).
TLM_CLONES void add_row_sums(const float* dy, float* __restrict db, int n, int out, int c0, int c1) {
  for (int i = 0; i < n; ++i) {
    const float* row = dy + static_cast<int64_t>(i) * out;
    for (int c = c0; c < c1; ++c) db[c] += row[c];
  }
}

}  // namespace

void linear_forward(CpuGemm& gemm, const float* x, const float* w, const float* b, float* y, int n, int in, int out) {
  if (b) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) std::copy(b, b + out, y + static_cast<int64_t>(i) * out);
  }
  gemm.run(false, true, n, out, in, x, w, y, b != nullptr);  // y (n, out) (+)= x (n, in) w^T (in, out)
}

void linear_backward(CpuGemm& gemm, const float* dy, const float* x, const float* w, float* dx, float* dw, float* db,
                     int n, int in, int out) {
  if (dx) gemm.run(false, false, n, in, out, dy, w, dx, false);  // dx (n, in) = dy (n, out) w (out, in)
  // dw (out, in) += dy^T (out, n) x (n, in); dy's bf16 copy made for dx serves again (the same
  // elements: only the transpose differs)
  gemm.run(true, false, out, in, n, dy, x, dw, true, /*reuse_a=*/dx != nullptr);
  if (db) {
    parallel_column_blocks(out, [&](int c0, int c1) { add_row_sums(dy, db, n, out, c0, c1); });
  }
}

}  // namespace tlm::kernels
