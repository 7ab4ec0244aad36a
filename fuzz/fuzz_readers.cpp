// libFuzzer target: the CSV (AG News, DBpedia, generic), JSON Lines, WikiExtractor and FewRel
// readers on arbitrary file contents, in stop and skip modes. A tlm::Error is the expected
// answer to bad input; anything else (crash, sanitizer report, other exception) is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "tlm/check.h"
#include "tlm/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("tlm-fuzz", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  static const std::string classes = [] {
    const int cfd = memfd_create("tlm-classes", 0);
    const char names[] = "neg\npos\n";
    if (write(cfd, names, sizeof(names) - 1) < 0) std::abort();
    return "/proc/self/fd/" + std::to_string(cfd);
  }();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) std::abort();
  for (tlm::OnBadRow mode : {tlm::OnBadRow::kStop, tlm::OnBadRow::kSkip}) {
    for (tlm::Format f : {tlm::Format::kAgNews, tlm::Format::kDbpedia, tlm::Format::kCsv, tlm::Format::kFewRel}) {
      try {
        tlm::ReaderOptions o{.format = f, .classes_path = f == tlm::Format::kCsv ? classes : "", .on_bad_row = mode};
        const auto d = tlm::read_labeled(path, o);
        for (const auto& ex : d.examples) {
          if (ex.label < 0 || ex.label >= static_cast<int>(d.label_names.size())) std::abort();
        }
      } catch (const tlm::Error&) {
      }
    }
    for (tlm::Format f :
         {tlm::Format::kText, tlm::Format::kParagraphs, tlm::Format::kJsonl, tlm::Format::kWikiExtractor}) {
      try {
        tlm::ReaderOptions o{.format = f, .on_bad_row = mode};
        tlm::read_corpus(path, o, [](tlm::Example&& ex) {
          if (ex.text.empty()) std::abort();
        });
      } catch (const tlm::Error&) {
      }
    }
  }
  return 0;
}
