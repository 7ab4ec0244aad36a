// Registration of the CPU back end (backend/registry.cpp lists it).
#pragma once

#include "backend/backend.h"

namespace tlm {

BackendEntry cpu_backend_entry();

}  // namespace tlm
