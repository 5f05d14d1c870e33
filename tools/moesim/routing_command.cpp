#include <algorithm>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/common/paths.hpp"
#include "sim/config/scenario.hpp"
#include "sim/model/model_spec.hpp"
#include "sim/moe/layer_evaluator.hpp"
#include "sim/moe/placement.hpp"
#include "sim/router/recorded_routing.hpp"
#include "sim/router/router.hpp"
#include "tools/moesim/commands.hpp"
#include "tools/moesim/routing_trace_inspect.hpp"

namespace moesim::cli {

namespace {

struct InspectOptions {
  std::string source;  // a router object (inline JSON or a file) or a scenario file
  std::string model = "deepseek-v3";
  int ep = 32;
  int tokens_per_rank = 256;
  int redundant = 32;
  int ranks_per_node = 8;
  bool hierarchical = false;
  int steps = 16;
  std::uint64_t seed = 1;
  // Which of the above the command line gave (they override a scenario's).
  bool model_given = false, ep_given = false, tokens_per_rank_given = false, redundant_given = false,
       ranks_per_node_given = false, seed_given = false;
};

// What is inspected: the router, the model shape and the EP layout.
struct Subject {
  std::string description;
  RouterSpec router;
  ModelSpec model;
  PlacementSpec before;  // the static placement compared with EPLB
  int ep = 0;
  int redundant = 0;
  int ranks_per_node = 0;
  bool hierarchical = false;
  std::uint64_t router_seed = 0;
};

// Per-layer figures, averaged over the sampled steps.
struct LayerFigures {
  double busiest_expert_share = 0;  // max / mean of the expected shares
  double rank_before = 0, rank_after = 0, slot_before = 0, slot_after = 0;  // max / mean
};

Subject resolve_subject(const InspectOptions& options) {
  Subject subject;
  const auto cwd = std::filesystem::current_path();
  const bool inline_json = !options.source.empty() && options.source.front() == '{';
  const nlohmann::json document = inline_json ? JsonReader::parse_text(options.source, "router argument")
                                              : JsonReader::parse_file(options.source);
  const bool scenario = !inline_json && document.is_object() && document.contains("router");
  subject.ep = options.ep;
  subject.redundant = options.redundant;
  subject.ranks_per_node = options.ranks_per_node;
  subject.hierarchical = options.hierarchical;
  std::uint64_t seed = options.seed;
  std::string model_reference = options.model;
  if (scenario) {
    const Scenario loaded = load_scenario(options.source);
    subject.description = fmt::format("scenario {}", options.source);
    subject.router = loaded.router;
    subject.model = loaded.model;
    const auto& layout = loaded.deployment.layout;
    if (!options.ep_given) subject.ep = layout.expert_ep;
    if (!options.redundant_given && layout.redundant_experts > 0)
      subject.redundant = layout.redundant_experts;
    if (!options.ranks_per_node_given) {
      subject.ranks_per_node = loaded.cluster.gpus_per_node / layout.expert_tp;
    }
    if (loaded.deployment.placement.kind == PlacementKind::eplb) {
      subject.hierarchical = subject.hierarchical || loaded.deployment.placement.hierarchical;
    } else {
      subject.before = loaded.deployment.placement;
    }
    if (!options.seed_given) seed = loaded.seed;
    if (options.model_given) model_reference = options.model;
  } else {
    const std::string source = inline_json ? "router argument" : options.source;
    const auto base = inline_json ? cwd : std::filesystem::path(options.source).parent_path();
    subject.router = parse_router(JsonReader(document, source), base);
    subject.description = fmt::format("router {}", to_json(subject.router).dump());
  }
  if (!scenario || options.model_given) {
    subject.model = load_model(resolve_catalogue_entry(model_reference, "models", cwd));
  }
  if (!subject.model.is_moe()) {
    throw InputError(subject.model.name, "moe", "expected an MoE model (routing needs routed experts)");
  }
  // The seed of the first instance's router in a simulation.
  subject.router_seed = splitmix64(seed);
  return subject;
}

void inspect(const InspectOptions& options) {
  if (is_routing_trace(options.source)) {
    inspect_routing_trace(
        options.source,
        {options.ep, options.tokens_per_rank_given ? options.tokens_per_rank : 0, options.steps});
    return;
  }
  if (options.ep < 1 || options.tokens_per_rank < 1 || options.steps < 1 || options.redundant < 0) {
    throw InputError("routing inspect", "options",
                     "expected --ep, --tokens-per-rank and --steps >= 1 and --redundant >= 0");
  }
  const Subject subject = resolve_subject(options);
  const ModelSpec& model = subject.model;
  const int layers = model.derived.moe_layers;
  const auto router = make_router(subject.router, layers, model.experts, model.top_k, subject.router_seed);
  const ExpertPlacement before =
      make_placement(subject.before, {model.experts, subject.ep, 0, subject.ranks_per_node}, *router);
  PlacementSpec eplb;
  eplb.kind = PlacementKind::eplb;
  eplb.hierarchical = subject.hierarchical;
  const ExpertPlacement after =
      make_placement(eplb, {model.experts, subject.ep, subject.redundant, subject.ranks_per_node}, *router);
  const CapacitySpec dropless;
  MoeLayerEvaluator evaluate_before(before, dropless, model.experts, model.top_k);
  MoeLayerEvaluator evaluate_after(after, dropless, model.experts, model.top_k);
  const std::int64_t tokens = std::int64_t{options.tokens_per_rank} * subject.ep;
  std::vector<std::int32_t> counts(static_cast<std::size_t>(model.experts));

  const auto slot_max_over_mean = [](const MoeLayerResult& r, int slots) {
    const double mean = static_cast<double>(r.assignments) / slots;
    return *std::max_element(r.kept_per_slot.begin(), r.kept_per_slot.end()) / mean;
  };
  std::vector<LayerFigures> figures(static_cast<std::size_t>(layers));
  // Per class: its tokens' busiest expert over their mean, averaged over layers and steps.
  std::vector<double> class_max_over_mean(static_cast<std::size_t>(router->classes()), 0.0);
  std::vector<int> class_samples(class_max_over_mean.size(), 0);
  for (int layer = 0; layer < layers; ++layer) {
    const auto share = router->popularity(layer);
    figures[static_cast<std::size_t>(layer)].busiest_expert_share =
        *std::max_element(share.begin(), share.end()) * model.experts;
  }
  // Steps outside, layers in order inside, as a forward pass samples them (linked layers need it).
  for (int step = 0; step < options.steps; ++step) {
    for (int layer = 0; layer < layers; ++layer) {
      LayerFigures& f = figures[static_cast<std::size_t>(layer)];
      router->sample_counts(layer, tokens, counts);
      for (int c = 0; c < router->classes(); ++c) {
        const auto own = router->class_counts(c);
        const double total = std::accumulate(own.begin(), own.end(), 0.0);
        if (total == 0) continue;
        class_max_over_mean[c] += *std::max_element(own.begin(), own.end()) * model.experts / total;
        ++class_samples[c];
      }
      const MoeLayerResult& b = evaluate_before.evaluate(layer, tokens, counts);
      f.rank_before += b.rank_imbalance() / options.steps;
      f.slot_before += slot_max_over_mean(b, before.slots()) / options.steps;
      const MoeLayerResult& a = evaluate_after.evaluate(layer, tokens, counts);
      f.rank_after += a.rank_imbalance() / options.steps;
      f.slot_after += slot_max_over_mean(a, after.slots()) / options.steps;
    }
  }

  const std::string before_name = to_json(subject.before)["kind"].get<std::string>();
  const std::string after_name =
      fmt::format("eplb{}+{}", subject.hierarchical ? " node-first" : "", subject.redundant);
  fmt::print("source    {}\n", subject.description);
  fmt::print("model     {}: {} MoE layers, {} experts, top-{}\n", model.name, layers, model.experts,
             model.top_k);
  if (subject.router.hierarchical() || router->classes() > 1) {
    // The class mix the tokens are split by: the weights at time 0 (equal when classes come from
    // the workload), each class's tokens spread evenly over its affinity groups.
    std::vector<double> weights(static_cast<std::size_t>(router->classes()));
    router->class_weights(0, weights);
    const auto classes = subject.router.resolved_classes();
    for (int c = 0; c < router->classes(); ++c) {
      const auto& spec = classes[static_cast<std::size_t>(c)];
      fmt::print("class     {}: weight {:.3f}, popularity {}, {}; expert max/mean of its tokens {:.2f}\n",
                 spec.name, weights[c], to_json(spec.popularity).dump(),
                 spec.concentration > 0 ? fmt::format("concentration {:g} in {} affinity groups",
                                                      spec.concentration, spec.affinity_groups)
                                        : std::string("one vector for all its requests"),
                 class_samples[c] > 0 ? class_max_over_mean[c] / class_samples[c] : 0.0);
    }
    if (subject.router.class_source != ClassSource::mix) {
      fmt::print("classes   from the workload ({}); sampled here with equal weights\n",
                 subject.router.class_source == ClassSource::trace_column ? "trace column" : "tenant map");
    }
    for (std::size_t i = 1; i < subject.router.mix.size(); ++i) {
      const auto& point = subject.router.mix[i];
      fmt::print("drift     from {:g} s{}:", point.at_s, subject.router.interpolate ? " (blended)" : "");
      for (int c = 0; c < router->classes(); ++c)
        fmt::print(" {} {:.3f}", router->class_name(c), point.weights[static_cast<std::size_t>(c)]);
      fmt::print("\n");
    }
    if (subject.router.rotation.period_s > 0) {
      fmt::print("drift     hot experts rotate by {} every {:g} s (not applied here)\n",
                 subject.router.rotation.experts_per_period, subject.router.rotation.period_s);
    }
  }
  if (router->layers_linked()) {
    const auto& correlation = subject.router.correlation;
    const std::string source =
        correlation.kind == CorrelationKind::synthetic
            ? fmt::format("synthetic, {} successors", correlation.successors)
            : fmt::format("{} {} {}", correlation.counts.model, fmt::join(correlation.counts.domains, "+"),
                          correlation.counts.selection == CountSelection::top1 ? "top1" : "topk");
    double lowest = 1, highest = 0, total = 0;
    for (int layer = 0; layer + 1 < layers; ++layer) {
      const double top = router->top_successor_probability(layer);
      lowest = std::min(lowest, top);
      highest = std::max(highest, top);
      total += top / (layers - 1);
    }
    fmt::print(
        "layers    linked ({}, strength {:g}): a token's most likely successor expert has probability "
        "{:.3f} on average ({:.3f} .. {:.3f} over layer pairs; chance 1/{} = {:.3f})\n",
        source, correlation.strength, total, lowest, highest, model.experts, 1.0 / model.experts);
  }
  fmt::print(
      "sampled   EP{}, {} tokens per rank ({} per layer-step), {} steps per layer; {} vs {} ({} slots "
      "per rank, {} ranks per node)\n",
      subject.ep, options.tokens_per_rank, tokens, options.steps, before_name, after_name,
      after.slots_per_rank(), subject.ranks_per_node);
  fmt::print("\n{:>9}  {:>13}  {:>23}  {:>23}\n", "MoE layer", "busiest/mean", "rank max/mean",
             "slot max/mean");
  fmt::print("{:>9}  {:>13}  {:>11} {:>11}  {:>11} {:>11}\n", "", "expert share", before_name, "eplb",
             before_name, "eplb");
  LayerFigures mean;
  for (int layer = 0; layer < layers; ++layer) {
    const LayerFigures& f = figures[static_cast<std::size_t>(layer)];
    fmt::print("{:>9}  {:>13.2f}  {:>11.3f} {:>11.3f}  {:>11.2f} {:>11.2f}\n", layer, f.busiest_expert_share,
               f.rank_before, f.rank_after, f.slot_before, f.slot_after);
    mean.busiest_expert_share += f.busiest_expert_share / layers;
    mean.rank_before += f.rank_before / layers;
    mean.rank_after += f.rank_after / layers;
    mean.slot_before += f.slot_before / layers;
    mean.slot_after += f.slot_after / layers;
  }
  fmt::print("{:>9}  {:>13.2f}  {:>11.3f} {:>11.3f}  {:>11.2f} {:>11.2f}\n", "mean",
             mean.busiest_expert_share, mean.rank_before, mean.rank_after, mean.slot_before, mean.slot_after);
  const auto [low, high] =
      std::minmax_element(figures.begin(), figures.end(),
                          [](const auto& a, const auto& b) { return a.rank_before < b.rank_before; });
  fmt::print("\nimbalance (max - mean) / mean, averaged over layers and steps:\n");
  fmt::print("  per rank  {} {:.3f} (layers {:.2f} .. {:.2f}), {} {:.3f}\n", before_name,
             mean.rank_before - 1, low->rank_before - 1, high->rank_before - 1, after_name,
             mean.rank_after - 1);
  fmt::print("  per slot  {} {:.2f}, {} {:.2f}\n", before_name, mean.slot_before - 1, after_name,
             mean.slot_after - 1);
}

}  // namespace

void add_routing_commands(CLI::App& app) {
  CLI::App* routing = app.add_subcommand("routing", "Inspect routing models");
  routing->require_subcommand(1);
  auto options = std::make_shared<InspectOptions>();
  CLI::App* inspect_command = routing->add_subcommand(
      "inspect",
      "Skew statistics of a popularity source: per MoE layer the busiest expert's share and the sampled "
      "per-rank and per-slot max/mean, with a static placement and with EPLB redundant slots");
  inspect_command
      ->add_option("source", options->source,
                   "a router object (inline JSON such as '{\"kind\": \"preset\", \"name\": \"deepseek-v3\"}' "
                   "or a file), a scenario file, or a routing trace (traces/README.md)")
      ->required();
  auto* model = inspect_command->add_option("--model", options->model,
                                            "model name or file for a router object (default deepseek-v3)");
  auto* ep = inspect_command->add_option("--ep", options->ep, "EP ranks (default 32, or the scenario's)");
  auto* tokens_per_rank = inspect_command->add_option(
      "--tokens-per-rank", options->tokens_per_rank,
      "tokens per EP rank (default 256; for a counts-form routing trace its mean recorded step)");
  auto* redundant =
      inspect_command->add_option("--redundant", options->redundant,
                                  "EPLB redundant slots (default 32, or the scenario's when it has some)");
  auto* ranks_per_node =
      inspect_command->add_option("--ranks-per-node", options->ranks_per_node,
                                  "EP ranks per node (default 8, or the scenario's cluster)");
  inspect_command->add_flag("--hierarchical", options->hierarchical, "node-first EPLB");
  inspect_command->add_option("--steps", options->steps, "sampled steps per layer (default 16)");
  auto* seed =
      inspect_command->add_option("--seed", options->seed, "random seed (default 1, or the scenario's)");
  inspect_command->callback([options, model, ep, tokens_per_rank, redundant, ranks_per_node, seed] {
    options->model_given = model->count() > 0;
    options->tokens_per_rank_given = tokens_per_rank->count() > 0;
    options->ep_given = ep->count() > 0;
    options->redundant_given = redundant->count() > 0;
    options->ranks_per_node_given = ranks_per_node->count() > 0;
    options->seed_given = seed->count() > 0;
    inspect(*options);
  });
}

}  // namespace moesim::cli
