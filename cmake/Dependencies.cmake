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
find_path(UTF8PROC_INCLUDE_DIR utf8proc.h)
find_library(UTF8PROC_LIBRARY NAMES utf8proc)
if(NOT UTF8PROC_INCLUDE_DIR OR NOT UTF8PROC_LIBRARY)
  message(FATAL_ERROR "utf8proc not found: run scripts/install-deps.sh (package libutf8proc-dev)")
endif()
add_library(tlm::utf8proc INTERFACE IMPORTED)
target_link_libraries(tlm::utf8proc INTERFACE ${UTF8PROC_LIBRARY})
target_include_directories(tlm::utf8proc SYSTEM INTERFACE ${UTF8PROC_INCLUDE_DIR})
