# Every dependency is a Debian package installed by scripts/install-deps.sh.
find_package(OpenMP REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)

# OpenBLAS, the OpenMP build: its threads are OpenMP threads, so a BLAS call made inside
# one of our parallel regions runs single-threaded instead of oversubscribing the cores.
set(TLM_OPENBLAS_DIR /usr/lib/x86_64-linux-gnu/openblas-openmp CACHE PATH "OpenBLAS (openmp) library dir")
find_library(TLM_OPENBLAS_LIB NAMES openblas PATHS ${TLM_OPENBLAS_DIR} NO_DEFAULT_PATH)
find_path(TLM_CBLAS_INCLUDE cblas.h PATHS /usr/include/x86_64-linux-gnu/openblas-openmp NO_DEFAULT_PATH)
if(NOT TLM_OPENBLAS_LIB OR NOT TLM_CBLAS_INCLUDE)
  message(FATAL_ERROR "OpenBLAS (openmp build) not found: run scripts/install-deps.sh (package libopenblas-openmp-dev)")
endif()
add_library(tlm::blas INTERFACE IMPORTED)
target_link_libraries(tlm::blas INTERFACE ${TLM_OPENBLAS_LIB})
target_include_directories(tlm::blas SYSTEM INTERFACE ${TLM_CBLAS_INCLUDE})

find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp)
if(NOT CLI11_INCLUDE_DIR)
  message(FATAL_ERROR "CLI11 not found: run scripts/install-deps.sh (package libcli11-dev)")
endif()

find_package(ZLIB REQUIRED)
find_package(tomlplusplus REQUIRED)
# tlm_system_library(<target> <header> <library> <debian package>): an imported target for a
# plain header + library dependency, with a message naming the package when it is missing.
function(tlm_system_library target header library package)
  find_path(${target}_INCLUDE_DIR ${header})
  find_library(${target}_LIBRARY NAMES ${library})
  if(NOT ${target}_INCLUDE_DIR OR NOT ${target}_LIBRARY)
    message(FATAL_ERROR "${library} not found: run scripts/install-deps.sh (package ${package})")
  endif()
  add_library(tlm::${target} INTERFACE IMPORTED)
  target_link_libraries(tlm::${target} INTERFACE ${${target}_LIBRARY})
  target_include_directories(tlm::${target} SYSTEM INTERFACE ${${target}_INCLUDE_DIR})
endfunction()

tlm_system_library(utf8proc utf8proc.h utf8proc libutf8proc-dev)
tlm_system_library(xxhash xxhash.h xxhash libxxhash-dev)
# oneDNN: bf16 GEMMs (AVX512_BF16 / AMX) and an fp32 GEMM that picks its kernels by CPU feature.
tlm_system_library(dnnl oneapi/dnnl/dnnl.hpp dnnl libdnnl-dev)

# Open MPI (libopenmpi-dev): data-parallel training under mpirun. Optional: a build without it is
# the same program, which refuses to run as several ranks.
option(TLM_WITH_MPI "data-parallel training with MPI, where MPI is installed" ON)
if(TLM_WITH_MPI)
  set(MPI_CXX_SKIP_MPICXX ON)  # MPI's C interface only, called from C++ (no deprecated C++ bindings)
  find_package(MPI COMPONENTS CXX)
endif()

# cpp-httplib (libcpp-httplib-dev): the HTTP server of tlm serve. Debian ships it compiled, with
# TLS and compression on: its pkg-config flags declare the same classes the library was built with.
find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB IMPORTED_TARGET cpp-httplib)
if(NOT HTTPLIB_FOUND)
  message(FATAL_ERROR "cpp-httplib not found: run scripts/install-deps.sh (package libcpp-httplib-dev)")
endif()

# ONNX's protobuf schema and checker (libonnx-dev, libprotobuf-dev): tlm export --format onnx writes
# the graph through ONNX's own message classes and validates it with ONNX's checker.
find_package(Protobuf QUIET)
find_package(ONNX QUIET)
if(NOT Protobuf_FOUND OR NOT ONNX_FOUND)
  message(FATAL_ERROR "ONNX or protobuf not found: run scripts/install-deps.sh (packages libonnx-dev, libprotobuf-dev)")
endif()
