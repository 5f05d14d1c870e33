#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "sim/common/files.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/report/html.hpp"
#include "tools/moesim/commands.hpp"

namespace moesim::cli {

namespace {

struct ReportOptions {
  std::string input;
  std::string html;
  bool quiet = false;
};

void report(const ReportOptions& options) {
  std::filesystem::path input = options.input;
  std::error_code error;
  // A sweep directory stands for its summary.
  if (std::filesystem::is_directory(input, error)) input /= "summary.json";
  const nlohmann::json document = JsonReader::parse_file(input);
  const std::string html = render_html(document, input.string());
  write_file_atomically(options.html, html);
  if (!options.quiet) fmt::print("html        {} ({} kB)\n", options.html, (html.size() + 512) / 1024);
}

}  // namespace

void add_report_commands(CLI::App& app) {
  auto options = std::make_shared<ReportOptions>();
  CLI::App* command = app.add_subcommand(
      "report", "Draw a report (moesim run) or a sweep summary (moesim sweep) as a self-contained HTML page");
  command->add_option("input", options->input, "Report JSON, sweep summary.json or sweep directory")
      ->required();
  command->add_option("--html", options->html, "HTML file to write")->required();
  command->add_flag("--quiet,-q", options->quiet, "Print nothing");
  command->callback([options] { report(*options); });
}

}  // namespace moesim::cli
