#pragma once

namespace tlm::cli {

// Sets OpenMP and OpenBLAS threads; 0 keeps the default (all cores).
void set_threads(int threads);

}  // namespace tlm::cli
