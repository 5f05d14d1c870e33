#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/paths.hpp"
#include "sim/common/rng.hpp"
#include "sim/config/scenario.hpp"
#include "sim/engine/engine.hpp"
#include "sim/report/sweep.hpp"
#include "tools/moesim/commands.hpp"

namespace moesim::cli {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The classic "hold" model: a fixed population of pending events; each handled
// event schedules one successor at a random later time.
struct HoldHandler : EventHandler {
  Rng rng{1};
  HandlerId self = 0;
  void handle(const Event&, Engine& engine) override {
    engine.schedule_after(static_cast<SimTime>(1 + rng.below(1'000'000)), self, 0);
  }
};

void bench_engine(std::uint64_t events, std::size_t population) {
  {
    EventQueue queue;
    queue.reserve(population);
    Rng rng(2);
    std::uint64_t sequence = 0;
    for (std::size_t i = 0; i < population; ++i) {
      queue.push(Event{static_cast<SimTime>(rng.below(1'000'000)), sequence++, 0, 0, 0, 0});
    }
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < events; ++i) {
      Event event = queue.pop();
      event.time += static_cast<SimTime>(1 + rng.below(1'000'000));
      event.sequence = sequence++;
      queue.push(event);
    }
    const double wall = seconds_since(start);
    fmt::print("engine queue alone   {:>6.1f} M events/s  ({} pop+push pairs, {} pending)  goal >= 10 M/s\n",
               static_cast<double>(events) / wall / 1e6, events, population);
  }
  Engine engine;
  HoldHandler handler;
  handler.self = engine.add_handler(handler);
  engine.reserve(population);
  for (std::size_t i = 0; i < population; ++i)
    engine.schedule(static_cast<SimTime>(i), handler.self, 0);
  const auto start = std::chrono::steady_clock::now();
  engine.run(StopConditions{.max_events = events});
  const double wall = seconds_since(start);
  fmt::print("engine run loop      {:>6.1f} M events/s  (with handler dispatch)\n",
             static_cast<double>(events) / wall / 1e6);
}

constexpr const char* kHierarchicalDeepSeekRouter = R"({
  "classes": [{"name": "translation", "popularity": {"kind": "preset", "name": "deepseek-v3"}},
              {"name": "chat", "popularity": {"kind": "zipf", "exponent": 0.7}}],
  "class_from": {"mix": {"translation": 0.7, "chat": 0.3}},
  "drift": {"schedule": [{"at_s": 1800, "mix": {"translation": 0.3, "chat": 0.7}}],
            "rotation": {"period_s": 600, "experts_per_period": 1}}})";

struct ScenarioFigures {
  double wall_s = 0;
  double sim_time_s = 0;
  double events = 0;
  double completed = 0;
  double steps = 0;
};

// Runs the scenario in a child process so its peak memory is measured alone; returns its CPU seconds
// (0 when it failed).
double bench_scenario(const std::string& label, const std::filesystem::path& file,
                      const std::vector<std::string>& overrides, const std::string& goal) {
  int channel[2];
  if (::pipe(channel) != 0) throw InternalError("pipe failed");
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child < 0) throw InternalError("fork failed");
  if (child == 0) {
    ::close(channel[0]);
    ScenarioFigures figures;
    int status = 0;
    try {
      const Scenario scenario = load_scenario(file, overrides);
      const auto start = std::chrono::steady_clock::now();
      const SimulationResult result = simulate(simulation_inputs(scenario));
      figures = {seconds_since(start), ns_to_seconds(result.end_time), static_cast<double>(result.events),
                 static_cast<double>(result.completed), static_cast<double>(result.steps)};
    } catch (const std::exception& error) {
      fmt::print(stderr, "{}: {}\n", label, error.what());
      status = 1;
    }
    const ssize_t written = ::write(channel[1], &figures, sizeof figures);
    ::_exit(written == sizeof figures ? status : 1);
  }
  ::close(channel[1]);
  ScenarioFigures figures;
  const ssize_t got = ::read(channel[0], &figures, sizeof figures);
  ::close(channel[0]);
  int status = 0;
  rusage usage{};
  ::wait4(child, &status, 0, &usage);
  if (got != sizeof figures || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fmt::print("{:<20} failed\n", label);
    return 0;
  }
  // CPU time as well as wall: on a shared machine the wall time also counts the waits for a core.
  const double cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
  fmt::print(
      "{:<20} {:>7.3f} s wall  {:>7.3f} CPU s  {:>8.0f} simulated s  {:>9.0f} sim-s/wall-s  {:>6.1f} MB peak "
      " "
      "{:.0f} requests  {:.0f} steps  {:.0f} events  {}\n",
      label, figures.wall_s, cpu_s, figures.sim_time_s, figures.sim_time_s / figures.wall_s,
      static_cast<double>(usage.ru_maxrss) / 1024.0, figures.completed, figures.steps, figures.events, goal);
  return cpu_s;
}

double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

// A capacity-factor sweep (drop policy) as `moesim sweep --jobs 2` runs it, into a
// scratch directory; the CPU time per point gives the time of a 50-point sweep on two
// otherwise idle cores, also when the machine is shared.
void bench_sweep(const std::filesystem::path& file, std::vector<std::string> overrides) {
  constexpr std::size_t kJobs = 2;
  constexpr double kGoalPoints = 50;
  const auto directory =
      std::filesystem::temp_directory_path() / fmt::format("moesim-bench-sweep-{}", ::getpid());
  std::filesystem::remove_all(directory);
  overrides.push_back("capacity.policy=drop");
  const SweepManifest manifest =
      make_manifest(file, overrides, SweepMode::cross, {parse_vary("capacity.capacity_factor=1.0:2.5:0.5")});
  SweepOptions options;
  options.jobs = kJobs;
  const double cpu_start = process_cpu_seconds();
  const auto start = std::chrono::steady_clock::now();
  const SweepOutcome outcome = run_sweep(manifest, directory, options);
  const double wall = seconds_since(start);
  const double cpu_per_point = (process_cpu_seconds() - cpu_start) / static_cast<double>(outcome.ran);
  std::filesystem::remove_all(directory);
  fmt::print(
      "{:<20} {:>7.3f} s wall for {} points with {} jobs  {:.2f} CPU s per point  50 points on 2 idle cores "
      "~{:.0f} s  goal < 300 s\n",
      "deepseek-v3 cf sweep", wall, outcome.ran, kJobs, cpu_per_point, cpu_per_point * kGoalPoints / kJobs);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto quick = std::make_shared<bool>(false);
  CLI::App* bench =
      app.add_subcommand("bench", "Print the simulator's speed figures (engine and shipped scenarios)");
  bench->add_flag("--quick", *quick, "Shorter runs (first 600 s of each trace)");
  bench->callback([quick] {
    bench_engine(*quick ? 2'000'000 : 20'000'000, 4096);
    const auto scenarios = home_directory() / "tools" / "scenarios";
    std::vector<std::string> overrides{"outputs.expert_load=false"};
    if (*quick) overrides.push_back("workload.duration_s=600");
    // The same with the hierarchical router on: two classes, a mix that shifts at mid-run and hot
    // experts that rotate every 10 minutes. Two alternating pairs, as the machine's speed drifts by tens
    // of percent within minutes: the ratio of the faster of each.
    auto hierarchical = overrides;
    hierarchical.push_back(std::string("router=") + kHierarchicalDeepSeekRouter);
    const auto deepseek = scenarios / "deepseek-v3-h800x32-azure-conv.json";
    double single_cpu_s = 0, classes_cpu_s = 0;
    for (int pair = 0; pair < 2; ++pair) {
      const double single =
          bench_scenario("deepseek-v3 EP32", deepseek, overrides, "goal < 10 s, a few hundred MB");
      const double classes = bench_scenario("deepseek-v3 classes", deepseek, hierarchical,
                                            "goal within 1.5x of deepseek-v3 EP32");
      single_cpu_s = pair == 0 ? single : std::min(single_cpu_s, single);
      classes_cpu_s = pair == 0 ? classes : std::min(classes_cpu_s, classes);
    }
    if (single_cpu_s > 0 && classes_cpu_s > 0) {
      fmt::print("{:<20} {:>7.2f}x CPU time of deepseek-v3 EP32 (fastest of two runs each)  goal <= 1.5x\n",
                 "deepseek-v3 classes", classes_cpu_s / single_cpu_s);
    }
    bench_scenario("vidur llama-2-70b", scenarios / "llama2-70b-a100-tp2-azure-conv-vidur.json", overrides,
                   "goal < 0.2 s, 50 MB (Vidur: ~19 s, 1.7 GB)");
    bench_scenario("mixtral-8x7b", scenarios / "mixtral-8x7b-h100x8-azure-code.json", overrides, "");
    bench_scenario("deepseek-v3 P32/D144", scenarios / "deepseek-v3-h800-disagg-azure-conv.json", overrides,
                   "goal < 30 s (disaggregated, 4 prefill + 18 decode nodes)");
    // As a user's sweep runs: the reports keep their per-expert load.
    bench_sweep(scenarios / "deepseek-v3-h800x32-azure-conv.json",
                *quick ? std::vector<std::string>{"workload.duration_s=600"} : std::vector<std::string>{});
  });
}

}  // namespace moesim::cli
