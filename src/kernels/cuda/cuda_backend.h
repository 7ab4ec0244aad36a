// The CUDA back end (built with -DTLM_CUDA=ON): device memory, one stream per back end, cuBLAS
// GEMMs (fp32, or bf16 operands with fp32 sums) and the kernels of kernels/cuda/.
#pragma once

#include "backend/backend.h"

namespace tlm {

BackendEntry cuda_backend_entry();

}  // namespace tlm
