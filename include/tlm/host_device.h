// TLM_HOST_DEVICE marks the few inline functions that CUDA kernels (kernels/cuda/) compute too, so
// the host and the GPU share one definition of them, bit for bit.
#pragma once

#if defined(__CUDACC__)
#define TLM_HOST_DEVICE __host__ __device__
#else
#define TLM_HOST_DEVICE
#endif
