// Writing a folder whole: its files are written into a hidden staging folder beside it, which then
// replaces it in one step (renameat2's exchange; a plain rename where it is absent), so a reader
// sees the earlier folder or the new one, never a mix, and a failure leaves the earlier one as it was.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace tlm {

// Fills `out` through `write(staging)`. Replacements of folders in one parent are serialised by a
// lock on the parent (another one running is an error); what an interrupted replacement left
// (.NAME.tlm-staging, .NAME.tlm-old) is cleaned up first, and a swap cut in the middle is undone.
// `out` must not be a symbolic link. Returns warnings (the earlier folder could not be removed).
std::vector<std::string> replace_folder(const std::filesystem::path& out,
                                        const std::function<void(const std::filesystem::path&)>& write);

}  // namespace tlm
