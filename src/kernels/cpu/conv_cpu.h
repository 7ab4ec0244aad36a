// The convolution of kernels.h on a chosen GEMM (a back end's library and precision).
#pragma once

#include "kernels/cpu/gemm_cpu.h"
#include "kernels/kernels.h"

namespace tlm::kernels {

void conv2d_forward(CpuGemm& gemm, const float* x, const float* w, const float* b, float* y, float* scratch,
                    const ConvShape& shape);
void conv2d_backward(CpuGemm& gemm, const float* dy, const float* x, const float* w, float* dx, float* dw, float* db,
                     float* scratch, const ConvShape& shape);

}  // namespace tlm::kernels
