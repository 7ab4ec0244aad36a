// The page tlm serve answers at GET /: type a text, see the committee's probabilities as bars,
// each member's beside them, and the time taken. One self-contained HTML file, no external assets.
#pragma once

namespace tlm::cli {

const char* serve_page_html();

}  // namespace tlm::cli
