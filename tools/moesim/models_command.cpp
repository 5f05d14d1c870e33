#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "sim/common/files.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/common/paths.hpp"
#include "sim/model/model_spec.hpp"
#include "tools/moesim/commands.hpp"

namespace moesim::cli {

namespace {

struct ImportOptions {
  std::string config;
  std::string output;
  std::string name;
  std::string source;
  std::string weight_dtype;
  std::string expert_dtype;
  std::string kv_cache_dtype;
};

void run_import(const ImportOptions& options) {
  const nlohmann::json hf_config = JsonReader::parse_file(options.config);
  ModelSpec spec = import_hf_config(hf_config, options.config);
  if (!options.name.empty()) spec.name = options.name;
  if (!options.source.empty()) spec.source = options.source;
  if (!options.weight_dtype.empty()) {
    spec.weight_dtype = parse_data_type(options.weight_dtype, "--weight-dtype", "");
    spec.expert_dtype = spec.weight_dtype;
  }
  if (!options.expert_dtype.empty()) {
    spec.expert_dtype = parse_data_type(options.expert_dtype, "--expert-dtype", "");
  }
  if (!options.kv_cache_dtype.empty()) {
    spec.kv_cache_dtype = parse_data_type(options.kv_cache_dtype, "--kv-cache-dtype", "");
  }
  derive_model_quantities(spec, options.config);
  const std::string text = to_json(spec).dump(2) + "\n";
  if (options.output.empty()) {
    fmt::print("{}", text);
  } else {
    write_file_atomically(options.output, text);
  }
}

void run_show(const std::string& reference) {
  const std::filesystem::path file =
      resolve_catalogue_entry(reference, "models", std::filesystem::current_path());
  const ModelSpec spec = load_model(file);
  const ModelDerived& d = spec.derived;
  fmt::print("{}\n", to_json(spec).dump(2));
  fmt::print("file                               {}\n", file.string());
  fmt::print("total parameters                   {:.3f} B\n", d.total_params / 1e9);
  fmt::print("active parameters per token        {:.3f} B ({:.3f} B without the input embedding)\n",
             d.active_params_per_token / 1e9, d.active_params_per_token_without_embedding / 1e9);
  fmt::print("weights                            {:.3f} GB\n", d.total_weight_bytes / 1e9);
  fmt::print("  attention                        {:.3f} GB\n", d.total_attention_weight_bytes / 1e9);
  fmt::print("  dense FFN                        {:.3f} GB\n", d.total_dense_ffn_weight_bytes / 1e9);
  fmt::print("  routed experts                   {:.3f} GB ({:.2f} MB per expert and layer)\n",
             d.total_routed_expert_weight_bytes / 1e9, d.expert_weight_bytes / 1e6);
  fmt::print("  shared experts                   {:.3f} GB\n", d.total_shared_expert_weight_bytes / 1e9);
  fmt::print("  router                           {:.3f} GB\n", d.total_router_weight_bytes / 1e9);
  fmt::print("  embeddings and lm head           {:.3f} GB\n", d.embedding_weight_bytes / 1e9);
  fmt::print("KV cache per token                 {:.0f} B ({:.0f} B per layer, {} layers)\n",
             d.kv_bytes_per_token, d.kv_bytes_per_token_per_layer, spec.layers);
  fmt::print("MoE layers                         {} (of {}; {} use a sliding window)\n", d.moe_layers,
             spec.layers, d.sliding_window_layer_count);
  fmt::print("matrix FLOPs per token             {:.3f} GFLOP\n", spec.matrix_flops_per_token() / 1e9);
  fmt::print("attention core FLOPs, decode at 4096 tokens of context: {:.3f} GFLOP per token\n",
             spec.attention_core_flops_all_layers(4095, 1, AttentionPhase::decode) / 1e9);
}

}  // namespace

void add_models_commands(CLI::App& app) {
  CLI::App* models =
      app.add_subcommand("models", "Model specs: import Hugging Face configs, show derived figures");
  models->require_subcommand(1);

  auto import_options = std::make_shared<ImportOptions>();
  CLI::App* import =
      models->add_subcommand("import-hf", "Convert a Hugging Face config.json into a moesim model file");
  import->add_option("config", import_options->config, "config.json of the model")->required();
  import->add_option("-o,--output", import_options->output,
                     "write the model file here (atomically) instead of stdout");
  import->add_option("--name", import_options->name,
                     "model name (default: the config's _name_or_path or model_type)");
  import->add_option("--source", import_options->source, "text of the source field");
  import->add_option(
      "--weight-dtype", import_options->weight_dtype,
      "storage of all matrices but the embeddings: fp32, bf16, fp16, fp8, int8, mxfp4, nvfp4, int4");
  import->add_option("--expert-dtype", import_options->expert_dtype, "storage of the routed experts only");
  import->add_option("--kv-cache-dtype", import_options->kv_cache_dtype, "storage of the KV cache");
  import->callback([import_options] { run_import(*import_options);
});

auto show_reference = std::make_shared<std::string>();
CLI::App* show = models->add_subcommand("show", "Print a model spec and its derived figures");
show->add_option("model", *show_reference, "catalogue name (e.g. deepseek-v3) or path to a model file")
    ->required();
show->callback([show_reference] { run_show(*show_reference); });
}  // namespace moesim::cli

}  // namespace moesim::cli
