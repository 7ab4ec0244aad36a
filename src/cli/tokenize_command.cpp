#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "tlm/check.h"
#include "tlm/run_folder.h"
#include "tlm/tokenizer.h"

namespace tlm::cli {

namespace {

struct TokenizeArgs {
  std::string vocab;
  std::string model;  // a run folder: its vocabulary and tokenizer settings
  bool cased = false;
  int max_len = 0;
  bool json_input = false;
  bool ids_only = false;
};

void run_tokenize(const TokenizeArgs& a) {
  if (a.vocab.empty() && a.model.empty()) throw Error("tokenize needs --vocab or --model");
  std::unique_ptr<Tokenizer> made;
  if (!a.model.empty()) {
    RunTokenizer run = load_run_tokenizer(a.model);
    made = std::make_unique<Tokenizer>(std::move(run.vocab), run.options);
  } else {
    TokenizerOptions o;
    o.lowercase = !a.cased;
    o.max_len = a.max_len;
    made = std::make_unique<Tokenizer>(Vocab::load(a.vocab), o);
  }
  const Tokenizer& tok = *made;
  std::ios::sync_with_stdio(false);
  std::string line;
  int64_t line_no = 0;
  std::string out;
  while (std::getline(std::cin, line)) {
    ++line_no;
    std::string text;
    if (a.json_input) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for overflowing numbers
        throw Error(fmt::format("stdin:{}: invalid JSON: {}", line_no, e.what()));
      }
      if (j.is_object() && j.contains("text")) j = j["text"];
      if (!j.is_string()) throw Error(fmt::format("stdin:{}: expected a JSON string or {{\"text\": ...}}", line_no));
      text = j.get<std::string>();
    } else {
      text = std::move(line);
    }
    const std::vector<int32_t> ids = tok.encode(text);
    out.clear();
    out += "{\"ids\":[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ',';
      out += std::to_string(ids[i]);
    }
    out += ']';
    if (!a.ids_only) {
      nlohmann::json tokens = nlohmann::json::array();
      for (int32_t id : ids) tokens.push_back(tok.vocab().token(id));
      out += ",\"tokens\":";
      out += tokens.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    out += "}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "texts on stdin (one per line) -> JSON lines with ids and tokens");
  auto* vocab = cmd->add_option("--vocab", args->vocab, "Hugging Face vocab.txt");
  auto* model = cmd->add_option("--model", args->model,
                                "a run folder: tokenize as the run does (its vocabulary, case, sequence length and "
                                "added tokens)");
  vocab->excludes(model);
  cmd->add_flag("--cased", args->cased, "keep case and accents (bert-base-cased style)")->excludes(model);
  cmd->add_option("--max-len", args->max_len, "truncate to this many ids, [CLS] and [SEP] included (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->excludes(model);
  cmd->add_flag("--json-input", args->json_input, "each input line is a JSON string or {\"text\": ...}");
  cmd->add_flag("--ids-only", args->ids_only, "omit the token strings");
  cmd->callback([args] { run_tokenize(*args); });
}

}  // namespace tlm::cli
