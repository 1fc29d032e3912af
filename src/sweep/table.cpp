#include "samdeblur/sweep/table.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <optional>
#include <sstream>

#include "samdeblur/eval/sample_metrics.h"

namespace samdeblur::sweep {

namespace {

// The value of `metric` of a cell (MCR as a fraction).
double metric_of(const CellResult& c, const std::string& metric) {
  if (metric == "psnr") return c.psnr;
  if (metric == "ssim") return c.ssim;
  return c.mcr;
}

std::optional<double> reference_of(const ReferenceValue& r, const std::string& metric) {
  if (metric == "psnr") return r.psnr;
  if (metric == "ssim") return r.ssim;
  return r.mcr;
}

// Displayed form: PSNR 2 decimals, SSIM 4, MCR in % with 2.
std::string show(double v, const std::string& metric) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  if (metric == "psnr") return fmt::format("{:.2f}", v);
  if (metric == "ssim") return fmt::format("{:.4f}", v);
  return fmt::format("{:.2f}%", 100.0 * v);
}

// The value as displayed (rounded like show()), so equal-looking values are equally bold.
double display_key(double v, const std::string& metric) {
  if (!std::isfinite(v)) return v;
  const double scale = metric == "psnr" ? 100.0 : 10000.0;  // MCR: 2 decimals of a percentage
  return std::round(v * scale) / scale;
}

std::string show_delta(double v, const std::string& metric) {
  if (metric == "psnr") return fmt::format("{:+.2f}", v);
  if (metric == "ssim") return fmt::format("{:+.4f}", v);
  return fmt::format("{:+.2f}", 100.0 * v);
}

// Published values as the paper prints them.
std::string show_reference(double v, const std::string& metric) {
  if (metric == "psnr") return fmt::format("{:.2f}", v);
  if (metric == "ssim") return fmt::format("{:.3f}", v);
  return fmt::format("{:.2f}%", 100.0 * v);
}

// MCR is shown unless the reference has numbers for this dataset, none with MCR.
bool show_mcr(const SweepConfig& cfg, const std::string& dataset) {
  if (!cfg.reference) return true;
  bool any = false;
  for (const auto& [variant, per_dataset] : cfg.reference->values) {
    const auto it = per_dataset.find(dataset);
    if (it == per_dataset.end()) continue;
    any = true;
    if (it->second.mcr) return true;
  }
  return !any;
}

std::string number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  return fmt::format("{}", v);
}

}  // namespace

Table build_table(const SweepResults& results) {
  const SweepConfig& cfg = *results.config;
  Table t;
  for (const auto& v : cfg.variants) t.rows.push_back(v.name);
  for (std::size_t d = 0; d < cfg.datasets.size(); ++d) {
    t.datasets.push_back(cfg.datasets[d].name);
    t.columns.push_back({d, "psnr"});
    t.columns.push_back({d, "ssim"});
    if (show_mcr(cfg, cfg.datasets[d].name)) t.columns.push_back({d, "mcr"});
  }
  if (cfg.reference) t.reference_source = cfg.reference->source;
  t.cells.assign(t.rows.size(), std::vector<TableCell>(t.columns.size()));
  for (std::size_t k = 0; k < t.columns.size(); ++k) {
    const auto& col = t.columns[k];
    std::optional<double> best;
    for (std::size_t v = 0; v < t.rows.size(); ++v) {
      const CellResult& c = results.at(col.dataset, v);
      const double value = metric_of(c, col.metric);
      TableCell& cell = t.cells[v][k];
      cell.ours = show(value, col.metric);
      if (cfg.reference) {
        const ReferenceValue* r = cfg.reference->find(c.variant, c.dataset);
        const std::optional<double> published = r ? reference_of(*r, col.metric) : std::nullopt;
        if (published)
          cell.reference = fmt::format("({}, {})", show_reference(*published, col.metric),
                                       show_delta(value - *published, col.metric));
      }
      const double key = display_key(value, col.metric);
      if (std::isnan(key)) continue;
      if (!best || (col.metric == "mcr" ? key < *best : key > *best)) best = key;
    }
    for (std::size_t v = 0; v < t.rows.size(); ++v)
      t.cells[v][k].best = best && display_key(metric_of(results.at(col.dataset, v), col.metric),
                                               col.metric) == *best;
  }
  return t;
}

std::string column_title(const Table& table, const TableColumn& column) {
  static const std::map<std::string, std::string> titles = {
      {"psnr", "PSNR↑"}, {"ssim", "SSIM↑"}, {"mcr", "MCR↓"}};
  return table.datasets.at(column.dataset) + " " + titles.at(column.metric);
}

std::string table_markdown(const Table& t, const std::string& title) {
  std::ostringstream md;
  md << "# " << title << "\n\n";
  if (!t.reference_source.empty())
    md << "Each cell: ours (published, ours − published; MCR in percentage points). "
       << "Published: " << t.reference_source << ".\n\n";
  md << "| Method |";
  for (const auto& c : t.columns) md << " " << column_title(t, c) << " |";
  md << "\n|---|";
  for (std::size_t k = 0; k < t.columns.size(); ++k) md << "---|";
  md << "\n";
  for (std::size_t v = 0; v < t.rows.size(); ++v) {
    md << "| " << t.rows[v] << " |";
    for (const auto& cell : t.cells[v]) {
      md << " " << (cell.best ? "**" + cell.ours + "**" : cell.ours);
      if (!cell.reference.empty()) md << " " << cell.reference;
      md << " |";
    }
    md << "\n";
  }
  md << "\nBest of each column in bold (highest PSNR / SSIM, lowest MCR, as displayed).\n";
  return md.str();
}

std::string table_csv(const SweepResults& results) {
  const SweepConfig& cfg = *results.config;
  const bool ref = cfg.reference.has_value();
  std::ostringstream csv;
  csv << "variant,dataset,psnr,ssim,mcr,count,psnr_input";
  if (ref) csv << ",ref_psnr,ref_ssim,ref_mcr,delta_psnr,delta_ssim,delta_mcr";
  csv << "\n";
  auto field = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  for (std::size_t v = 0; v < cfg.variants.size(); ++v)
    for (std::size_t d = 0; d < cfg.datasets.size(); ++d) {
      const CellResult& c = results.at(d, v);
      csv << field(c.variant) << "," << field(c.dataset) << "," << number(c.psnr) << ","
          << number(c.ssim) << "," << number(c.mcr) << "," << c.count << ","
          << number(c.psnr_input);
      if (ref) {
        const ReferenceValue* r = cfg.reference->find(c.variant, c.dataset);
        std::string refs, deltas;
        for (const char* m : {"psnr", "ssim", "mcr"}) {
          const auto p = r ? reference_of(*r, m) : std::nullopt;
          refs += "," + (p ? number(*p) : std::string());
          deltas += "," + (p ? number(metric_of(c, m) - *p) : std::string());
        }
        csv << refs << deltas;
      }
      csv << "\n";
    }
  return csv.str();
}

std::vector<PairedComparison> all_comparisons(const SweepResults& results,
                                              const BootstrapOptions& options) {
  std::vector<PairedComparison> out;
  const SweepConfig& cfg = *results.config;
  for (std::size_t d = 0; d < cfg.datasets.size(); ++d)
    for (std::size_t a = 0; a < cfg.variants.size(); ++a)
      for (std::size_t b = a + 1; b < cfg.variants.size(); ++b)
        out.push_back(compare_cells(results.at(d, a), results.at(d, b), options));
  return out;
}

nlohmann::json table_json(const SweepResults& results,
                          const std::vector<PairedComparison>& comparisons,
                          const BootstrapOptions& options) {
  using eval::json_number;
  const SweepConfig& cfg = *results.config;
  nlohmann::json j;
  j["name"] = cfg.name;
  j["sweep_file"] = cfg.source;
  j["variants"] = nlohmann::json::array();
  for (const auto& v : cfg.variants)
    j["variants"].push_back({{"name", v.name}, {"checkpoint", v.checkpoint}});
  j["datasets"] = nlohmann::json::array();
  for (const auto& d : cfg.datasets) j["datasets"].push_back(d.name);
  j["cells"] = nlohmann::json::array();
  for (std::size_t v = 0; v < cfg.variants.size(); ++v)
    for (std::size_t d = 0; d < cfg.datasets.size(); ++d) {
      const CellResult& c = results.at(d, v);
      nlohmann::json cell = {{"variant", c.variant},
                             {"dataset", c.dataset},
                             {"dir", c.dir},
                             {"config", cfg.variants[v].config_for(c.dataset)},
                             {"psnr", json_number(c.psnr)},
                             {"ssim", json_number(c.ssim)},
                             {"mcr", json_number(c.mcr)},
                             {"count", c.count},
                             {"psnr_input", json_number(c.psnr_input)}};
      nlohmann::json collapsed = nlohmann::json::array();
      for (const auto& row : c.images)
        if (row.collapsed) collapsed.push_back(row.name);
      cell["collapsed"] = collapsed;
      if (cfg.reference)
        if (const ReferenceValue* r = cfg.reference->find(c.variant, c.dataset)) {
          nlohmann::json ref = nlohmann::json::object(), delta = nlohmann::json::object();
          for (const char* m : {"psnr", "ssim", "mcr"})
            if (const auto p = reference_of(*r, m)) {
              ref[m] = *p;
              delta[m] = json_number(metric_of(c, m) - *p);
            }
          cell["reference"] = ref;
          cell["delta"] = delta;
        }
      j["cells"].push_back(cell);
    }
  if (cfg.reference) j["reference_source"] = cfg.reference->source;
  nlohmann::json boot = {
      {"method", "paired percentile bootstrap of the mean per-image PSNR difference b - a"},
      {"resamples", options.resamples},
      {"seed", options.seed},
      {"confidence", options.confidence},
      {"rng", "std::mt19937_64(seed) per comparison, index = rng() % n"}};
  boot["comparisons"] = nlohmann::json::array();
  for (const auto& c : comparisons)
    boot["comparisons"].push_back({{"dataset", c.dataset},
                                   {"a", c.a},
                                   {"b", c.b},
                                   {"n", c.n},
                                   {"excluded", c.excluded},
                                   {"mean_psnr_diff", json_number(c.diff.mean)},
                                   {"ci_low", json_number(c.diff.low)},
                                   {"ci_high", json_number(c.diff.high)},
                                   {"b_better", c.b_better},
                                   {"a_better", c.a_better}});
  j["bootstrap"] = boot;
  return j;
}

}  // namespace samdeblur::sweep
