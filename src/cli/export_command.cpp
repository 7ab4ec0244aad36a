#include <cstdio>

#include "cli/commands.h"
#include "tlm/onnx_export.h"

namespace tlm::cli {

void add_export_command(CLI::App& app) {
  auto options = std::make_shared<OnnxExportOptions>();
  auto format = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "export",
      "a classifier, soft committee or pre-trained model as ONNX, with the files Hugging Face consumers read");
  cmd->add_option("--format", *format, "the format written")->required()->check(CLI::IsMember({"onnx"}));
  cmd->add_option("--model", options->models,
                  "run folder: a fine-tuned classifier (repeat for a soft committee) or a pre-trained run")
      ->required();
  cmd->add_option("--out", options->out, "folder written (absent, empty, or an earlier export, which is replaced)")
      ->required();
  cmd->add_flag("--allow-nonfinite", options->allow_nonfinite, "export weights holding NaN or infinity");
  cmd->callback([options] {
    const OnnxExportSummary s = export_onnx(*options);
    std::printf(
        "exported %s (%d member%s, %lld parameters) to %s: onnx/model.onnx (%.1f MB), config.json, "
        "tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt\n",
        s.architecture.c_str(), s.members, s.members == 1 ? "" : "s", static_cast<long long>(s.parameters),
        options->out.c_str(), static_cast<double>(s.model_bytes) / 1e6);
  });
}

}  // namespace tlm::cli
