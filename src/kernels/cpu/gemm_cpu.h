// The CPU's GEMM, in the library and precision a back end chose, and the linear layer on it.
// Every GEMM of a linear layer (forward, input gradient, weight gradient) goes through here, so
// the precision of a back end is the precision of its GEMMs:
//  - fp32: OpenBLAS (sgemm), or oneDNN's fp32 matmul (TLM_CPU_GEMM=onednn: oneDNN picks its own
//    kernels by CPU feature, so it is not bound by an OPENBLAS_CORETYPE cap);
//  - bf16: both operands rounded to bf16 (nearest-even), products and sums in fp32, result fp32.
//    Natively with oneDNN's bf16 matmul (AVX512_BF16 / AMX), or emulated where the CPU lacks
//    them: operands rounded in fp32 storage, then sgemm. A bf16 x bf16 product is exact in fp32,
//    so the two differ only in the order of the fp32 sums, as two fp32 BLAS libraries do.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/page_memory.h"

namespace tlm::kernels {

enum class GemmMode { kOpenBlasFp32, kOneDnnFp32, kBf16Emulated, kBf16OneDnn };
std::string gemm_mode_name(GemmMode mode);  // for manifests: "OpenBLAS fp32", ...

// The operand layouts a linear layer runs (linear_forward with and without bias, the input and
// the weight gradients of linear_backward).
struct GemmLayout {
  bool trans_a, trans_b, accumulate;
};
inline constexpr std::array<GemmLayout, 4> kLinearLayouts = {
    {{false, true, false}, {false, true, true}, {false, false, false}, {true, false, true}}};

// Native bf16 products with fewer multiply-adds (m n k) than this run as the emulation does
// (CpuGemm::run says why).
inline constexpr int64_t kSmallNativeBf16Products = int64_t{1} << 20;

class CpuGemm {
 public:
  explicit CpuGemm(GemmMode mode);
  ~CpuGemm();
  CpuGemm(const CpuGemm&) = delete;
  CpuGemm& operator=(const CpuGemm&) = delete;
  GemmMode mode() const { return mode_; }
  // Empty if `mode` can run here, else why not: kBf16OneDnn needs native bf16 (native_bf16()),
  // and the oneDNN modes an optimised matmul for every kLinearLayouts (oneDNN's reference kernel
  // is ~100x slower than a BLAS and is refused). A bad TLM_MAX_CPU_ISA throws.
  static std::string unavailable(GemmMode mode);
  // oneDNN's name for the kernel it runs these transposes with (e.g. "gemm:jit"); throws when it
  // has none but the reference kernel. The mode's name for modes that do not use oneDNN.
  std::string implementation(bool trans_a, bool trans_b, bool accumulate);

  // c (m, n) = op(a) (m, k) . op(b) (k, n), plus c's old value when `accumulate`. a, b, c are
  // dense row-major: a is (m, k), or (k, m) when trans_a; b is (k, n), or (n, k) when trans_b.
  // reuse_a: `a` is the previous call's a (same pointer and size, unchanged since), so its bf16
  // copy is reused instead of converted again (linear_backward's dy feeds both of its GEMMs).
  void run(bool trans_a, bool trans_b, int m, int n, int k, const float* a, const float* b, float* c, bool accumulate,
           bool reuse_a = false);

  // Weights that stay (Backend::freeze_weights; nullptr, 0: none): a b operand inside them is
  // converted to bf16 once and its copy kept (bf16 modes). frozen(p, n): [p, p + n) overlaps them.
  void freeze(const float* begin, int64_t n);
  bool frozen(const float* p, int64_t n) const;

 private:
  GemmMode mode_;
  struct OneDnn;
  std::unique_ptr<OneDnn> onednn_;
  PageVector<float> round_a_, round_b_;   // emulated bf16 operands
  PageVector<uint16_t> bf16_a_, bf16_b_;  // native bf16 operands
  const float* converted_a_ = nullptr;    // the a whose copy round_a_ / bf16_a_ hold (bf16 modes)
  int64_t converted_a_size_ = 0;
  bool converted_a_rounded_ = false;     // in round_a_ (else bf16_a_)
  const float* frozen_begin_ = nullptr;  // frozen weights [begin, end)
  const float* frozen_end_ = nullptr;
  struct Kept {  // a frozen b operand's converted copy
    int64_t size = 0;
    PageVector<float> rounded;  // emulated
    PageVector<uint16_t> bf16;  // native
  };
  std::unordered_map<const float*, Kept> kept_;
  // b's converted copy, rounded floats or bf16 bits: kept when b lies in the frozen weights, else
  // made in the scratch buffer.
  const void* converted_b(const float* b, int64_t size, bool rounded);
};

// GFLOP/s of `gemm` on a 2048^3 product (best of 4 runs, operand conversion included for bf16).
double gemm_ceiling_gflops(CpuGemm& gemm);

// OpenBLAS fp32, for the plain (back-end-free) ops of kernels.h; keeps no state, so it is shared.
CpuGemm& fp32_gemm();

// The linear layer of kernels.h on `gemm` (same shapes and accumulate/overwrite contract).
void linear_forward(CpuGemm& gemm, const float* x, const float* w, const float* b, float* y, int n, int in, int out);
void linear_backward(CpuGemm& gemm, const float* dy, const float* x, const float* w, float* dx, float* dw, float* db,
                     int n, int in, int out);

}  // namespace tlm::kernels
