#include "cli/threads.h"

#include <cblas.h>
#include <omp.h>

namespace tlm::cli {

void set_threads(int threads) {
  if (threads <= 0) return;
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

}  // namespace tlm::cli
