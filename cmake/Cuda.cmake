# The CUDA back end (src/kernels/cuda/), compiled into tlm_engine when -DTLM_CUDA=ON.
# Hopper (sm_90, the H200 lent for checks) as machine code, plus its PTX for newer GPUs.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

file(GLOB TLM_CUDA_SOURCES CONFIGURE_DEPENDS src/kernels/cuda/*.cu src/kernels/cuda/*.cpp)
# Its own object library: no precompiled headers or unity batches for nvcc (C++17: CMake 3.25 does
# not know how to ask nvcc for C++20; the .cu files need nothing newer).
add_library(tlm_cuda_objects OBJECT ${TLM_CUDA_SOURCES})
set_target_properties(tlm_cuda_objects PROPERTIES UNITY_BUILD OFF CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                                                  POSITION_INDEPENDENT_CODE ON)
target_include_directories(tlm_cuda_objects PRIVATE include src)
target_link_libraries(tlm_cuda_objects PRIVATE fmt::fmt CUDA::cudart_static CUDA::cublas)
# No fused multiply-add contraction in our kernels: their arithmetic then follows the CPU's
# expression by expression, which keeps CPU and GPU results close (cuBLAS is not affected).
target_compile_options(tlm_cuda_objects PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false>
                                                $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow>)
target_sources(tlm_engine PRIVATE $<TARGET_OBJECTS:tlm_cuda_objects>)
target_link_libraries(tlm_engine PUBLIC CUDA::cudart_static CUDA::cublas)
target_compile_definitions(tlm_engine PRIVATE TLM_WITH_CUDA)
message(STATUS "tlm: CUDA back end for ${CMAKE_CUDA_ARCHITECTURES} (CUDA ${CUDAToolkit_VERSION})")
