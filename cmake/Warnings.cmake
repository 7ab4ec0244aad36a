function(tlm_warnings target)
  # -Wno-psabi: GCC notes that 32-byte vector arguments change the ABI in baseline code; our
  # vector helpers (src/kernels/cpu/vec_math.h) are always inlined, so no such call exists.
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wno-unknown-pragmas -Wno-psabi
                         -Wno-missing-field-initializers)  # designated initializers rely on defaults
endfunction()
