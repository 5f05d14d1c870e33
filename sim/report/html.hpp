#pragma once

#include <string>

#include <nlohmann/json.hpp>

// The HTML report: one self-contained page (inline CSS and SVG, no scripts, fonts or
// other files) drawn from a moesim JSON report or a sweep summary.
namespace moesim {

enum class ReportDocumentKind {
  run_report,     // written by `moesim run` (README "Report")
  sweep_summary,  // DIR/summary.json of `moesim sweep`
};

// Which kind of document `document` is; an InputError naming `source` and what was
// expected otherwise.
ReportDocumentKind classify_report_document(const nlohmann::json& document, const std::string& source);

// The page of a run report: headline tables, where the busy time went, latency CDFs,
// throughput, requests and queue over time, and for MoE models drop rate and imbalance
// over time and per layer, the layer x expert load heat map and the per-rank load.
// Fields the page needs are checked: a missing or mistyped one is an InputError naming
// `source` and the field.
std::string render_run_html(const nlohmann::json& report, const std::string& source);

// The page of a sweep summary: one chart per metric against the last varied key (one
// line per combination of the other keys), and the table of points.
std::string render_sweep_html(const nlohmann::json& summary, const std::string& source);

// Either page, by the document's kind.
std::string render_html(const nlohmann::json& document, const std::string& source);

}  // namespace moesim
