#include "samdeblur/sweep/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/masks/cache.h"

namespace samdeblur::sweep {
namespace fs = std::filesystem;

namespace {

const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
const char* color(std::size_t k) { return kPalette[k % 8]; }

const char* const kStyle = R"(
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
.ref { color: #666; font-size: 0.85em; }
.muted { color: #666; font-size: 0.9em; }
.case { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 14px; }
figure { margin: 0; text-align: center; font-size: 0.8em; }
figure img { display: block; border: 1px solid #999; }
.bad { color: #c00; font-weight: bold; }
.missing { width: 128px; height: 128px; border: 1px dashed #999; display: flex;
           align-items: center; justify-content: center; color: #999; }
)";

std::string fmt_db(double v) {
  return std::isfinite(v) ? fmt::format("{:.2f} dB", v) : (std::isnan(v) ? "nan" : "inf");
}

std::string jpeg_uri(const cv::Mat& bgr, int quality) {
  std::vector<unsigned char> buf;
  cv::imencode(".jpg", bgr, buf, {cv::IMWRITE_JPEG_QUALITY, quality});
  return "data:image/jpeg;base64," + base64(buf);
}

// ---------------------------------------------------------------- table --

std::string results_table(const Table& t) {
  std::ostringstream h;
  h << "<table id=\"results\">\n<tr><th rowspan=\"2\">Method</th>";
  for (std::size_t d = 0; d < t.datasets.size(); ++d) {
    const auto span = std::count_if(t.columns.begin(), t.columns.end(),
                                    [&](const TableColumn& c) { return c.dataset == d; });
    h << "<th colspan=\"" << span << "\">" << html_escape(t.datasets[d]) << "</th>";
  }
  h << "</tr>\n<tr>";
  for (const auto& c : t.columns) {
    const std::string title = column_title(t, c);
    h << "<th>" << html_escape(title.substr(t.datasets[c.dataset].size() + 1)) << "</th>";
  }
  h << "</tr>\n";
  for (std::size_t v = 0; v < t.rows.size(); ++v) {
    h << "<tr><td>" << html_escape(t.rows[v]) << "</td>";
    for (const auto& cell : t.cells[v]) {
      const std::string ours = html_escape(cell.ours);
      h << "<td>" << (cell.best ? "<b>" + ours + "</b>" : ours);
      if (!cell.reference.empty())
        h << " <span class=\"ref\">" << html_escape(cell.reference) << "</span>";
      h << "</td>";
    }
    h << "</tr>\n";
  }
  h << "</table>\n";
  return h.str();
}

std::string bootstrap_table(const std::vector<PairedComparison>& comparisons,
                            const std::string& dataset, const BootstrapOptions& o) {
  std::ostringstream h;
  h << "<table class=\"boot\"><tr><th>comparison (b − a)</th><th>mean ΔPSNR</th><th>"
    << fmt::format("{:g}", 100 * o.confidence)
    << " % CI</th><th>images</th><th>b better / a better</th></tr>\n";
  for (const auto& c : comparisons) {
    if (c.dataset != dataset) continue;
    h << "<tr><td>" << html_escape(c.b) << " − " << html_escape(c.a) << "</td><td>"
      << fmt::format("{:+.3f} dB", c.diff.mean) << "</td><td>"
      << fmt::format("[{:+.3f}, {:+.3f}]", c.diff.low, c.diff.high) << "</td><td>" << c.n
      << (c.excluded ? fmt::format(" ({} excluded)", c.excluded) : "") << "</td><td>" << c.b_better
      << " / " << c.a_better << "</td></tr>\n";
  }
  h << "</table>\n";
  return h.str();
}

std::string collapsed_lists(const SweepResults& r, std::size_t d) {
  std::ostringstream h;
  h << "<ul>\n";
  for (std::size_t v = 0; v < r.config->variants.size(); ++v) {
    const CellResult& c = r.at(d, v);
    std::vector<std::string> names;
    for (const auto& row : c.images)
      if (row.collapsed) names.push_back(html_escape(row.name));
    h << "<li>" << html_escape(c.variant) << ": " << names.size() << " of " << c.images.size();
    if (!names.empty()) {
      h << " <details><summary>names</summary>";
      for (std::size_t k = 0; k < names.size(); ++k) h << (k ? ", " : "") << names[k];
      h << "</details>";
    }
    h << "</li>\n";
  }
  h << "</ul>\n";
  return h.str();
}

// ------------------------------------------------------------ histogram --

std::string histogram_svg(const SweepResults& r, std::size_t d, int bins) {
  const std::size_t nv = r.config->variants.size();
  std::vector<std::vector<double>> gains(nv);
  double lo = INFINITY, hi = -INFINITY;
  for (std::size_t v = 0; v < nv; ++v)
    for (const auto& row : r.at(d, v).images) {
      const double g = row.psnr - row.psnr_input;
      if (!std::isfinite(g)) continue;
      gains[v].push_back(g);
      lo = std::min(lo, g);
      hi = std::max(hi, g);
    }
  if (!std::isfinite(lo)) return "<p class=\"muted\">no finite PSNR gains</p>\n";
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  std::vector<std::vector<int>> counts(nv, std::vector<int>(static_cast<std::size_t>(bins), 0));
  int max_count = 1;
  for (std::size_t v = 0; v < nv; ++v)
    for (double g : gains[v]) {
      const int b = std::min(bins - 1, static_cast<int>((g - lo) / (hi - lo) * bins));
      max_count = std::max(max_count, ++counts[v][static_cast<std::size_t>(b)]);
    }
  const double W = 640, H = 240, L = 48, R = 16, T = 12, B = 40;
  auto x = [&](double g) { return L + (g - lo) / (hi - lo) * (W - L - R); };
  auto y = [&](double c) { return H - B - c / max_count * (H - T - B); };
  std::ostringstream s;
  s << fmt::format(
      "<svg width=\"{}\" height=\"{}\" "
      "role=\"img\" font-size=\"11\">\n",
      W, H + 18.0 * static_cast<double>(nv));
  s << fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\"/>", L, H - B,
                   W - R, H - B);
  s << fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\"/>\n", L, T, L,
                   H - B);
  for (int k = 0; k <= 4; ++k) {
    const double g = lo + (hi - lo) * k / 4.0;
    s << fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.2f}</text>", x(g),
                     H - B + 14, g);
  }
  s << fmt::format(
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">PSNR gain over the input "
      "(dB)</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>"
      "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n",
      (L + W - R) / 2, H - B + 30, L - 4, T + 8, max_count, L - 4, H - B);
  if (lo < 0 && hi > 0)
    s << fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#999\" "
        "stroke-dasharray=\"4 3\"/>\n",
        x(0), T, H - B);
  for (std::size_t v = 0; v < nv; ++v) {
    std::string pts = fmt::format("{:.1f},{:.1f}", x(lo), y(0));
    for (int b = 0; b < bins; ++b) {
      const double c = counts[v][static_cast<std::size_t>(b)];
      pts += fmt::format(" {:.1f},{:.1f} {:.1f},{:.1f}", x(lo + (hi - lo) * b / bins), y(c),
                         x(lo + (hi - lo) * (b + 1) / bins), y(c));
    }
    pts += fmt::format(" {:.1f},{:.1f}", x(hi), y(0));
    s << fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" "
        "stroke-opacity=\"0.85\" points=\"{}\"/>\n",
        color(v), pts);
    const double ly = H + 6 + 18.0 * static_cast<double>(v);
    s << fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/>"
        "<text x=\"{}\" y=\"{}\">{} ({} images)</text>\n",
        L, ly, color(v), L + 20, ly + 5, html_escape(r.at(d, v).variant), gains[v].size());
  }
  s << "</svg>\n";
  return s.str();
}

// ----------------------------------------------------------- worst cases --

// (H, W) int32 labels of the image's masks (0 = none), or empty when the
// dataset has no masks for it.
cv::Mat mask_labels(const Cell& cell, const dataset::SamplePaths& paths) {
  const auto& ds = cell.config.datasets.front();
  if (!ds.needs_masks()) return {};
  if (ds.masks_from_folder() && !ds.grouped_masks()) {
    cv::Mat grey = io::read_image_bgr(paths.mask, /*grayscale=*/true), out;
    grey.convertTo(out, CV_32S);
    return out;
  }
  if (ds.masks_from_folder()) {
    const torch::Tensor m = io::read_npz_array(paths.mask, "masks").to(torch::kBool);  // (M,1,H,W)
    const int64_t num = m.size(0);
    torch::Tensor idx = torch::zeros({m.size(2), m.size(3)}, torch::kInt32);
    for (int64_t k = num - 1; k >= 0; --k) idx.masked_fill_(m[k][0], static_cast<int32_t>(k + 1));
    idx = idx.contiguous();
    return cv::Mat(static_cast<int>(idx.size(0)), static_cast<int>(idx.size(1)), CV_32S,
                   idx.data_ptr<int32_t>())
        .clone();
  }
  if (ds.mask_source.encoding != "official") return {};
  masks::MaskProvider provider(ds.mask_source,
                               masks::resolve_mask_cache_dir(ds.mask_source, cell.dir));
  cv::Mat out;
  provider.label_map(paths.lq).convertTo(out, CV_32S);
  return out;
}

// The sample paths (with its mask file) of `name` in the cell's dataset.
dataset::SamplePaths mask_paths(const Cell& cell, const std::string& name) {
  for (const auto& p : dataset::list_samples(cell.config.datasets.front()))
    if (p.name == name) return p;
  throw Error("no sample '" + name + "' in " + cell.config.datasets.front().dataroot_gt);
}

cv::Mat overlay(const cv::Mat& bgr, const cv::Mat& labels) {
  cv::Mat out = bgr.clone();
  for (int i = 0; i < out.rows; ++i)
    for (int j = 0; j < out.cols; ++j) {
      const int l = labels.at<int32_t>(i, j);
      const bool edge = (j + 1 < out.cols && labels.at<int32_t>(i, j + 1) != l) ||
                        (i + 1 < out.rows && labels.at<int32_t>(i + 1, j) != l);
      auto& px = out.at<cv::Vec3b>(i, j);
      if (edge) {
        px = cv::Vec3b(255, 255, 255);
        continue;
      }
      if (l == 0) continue;
      const uint32_t h = static_cast<uint32_t>(l) * 2654435761u;
      const cv::Vec3b c((h >> 8) & 255, (h >> 16) & 255, (h >> 24) & 255);
      for (int k = 0; k < 3; ++k) px[k] = static_cast<uint8_t>((px[k] + c[k]) / 2);
    }
  return out;
}

// The crop window (at most side x side) where |output - gt| is largest.
cv::Rect worst_window(const cv::Mat& output, const cv::Mat& gt, int side) {
  const int ch = std::min(side, gt.rows), cw = std::min(side, gt.cols);
  if (output.empty() || output.size() != gt.size()) return {0, 0, cw, ch};
  cv::Mat diff, grey, integral;
  cv::absdiff(output, gt, diff);
  cv::cvtColor(diff, grey, cv::COLOR_BGR2GRAY);
  cv::integral(grey, integral, CV_64F);
  double best = -1;
  cv::Rect win(0, 0, cw, ch);
  const int step = std::max(1, side / 16);
  for (int i = 0; i + ch <= gt.rows; i += step)
    for (int j = 0; j + cw <= gt.cols; j += step) {
      const double s = integral.at<double>(i + ch, j + cw) - integral.at<double>(i, j + cw) -
                       integral.at<double>(i + ch, j) + integral.at<double>(i, j);
      if (s > best) best = s, win = cv::Rect(j, i, cw, ch);
    }
  return win;
}

std::string figure(const cv::Mat& image, const cv::Rect& win, const std::string& caption,
                   const ReportOptions& o) {
  std::ostringstream h;
  h << "<figure>";
  if (image.empty() || image.cols < win.x + win.width || image.rows < win.y + win.height)
    h << "<div class=\"missing\">not saved</div>";
  else
    h << "<img alt=\"\" width=\"" << win.width << "\" height=\"" << win.height << "\" src=\""
      << jpeg_uri(image(win), o.jpeg_quality) << "\">";
  h << "<figcaption>" << caption << "</figcaption></figure>";
  return h.str();
}

// Images ranked by their largest PSNR drop below the input under any variant.
std::vector<std::string> worst_images(const SweepResults& r, std::size_t d, int n) {
  std::map<std::string, double> drop;
  for (std::size_t v = 0; v < r.config->variants.size(); ++v)
    for (const auto& row : r.at(d, v).images) {
      const double x = row.psnr_input - row.psnr;
      if (!std::isfinite(x)) continue;
      auto it = drop.find(row.name);
      if (it == drop.end() || x > it->second) drop[row.name] = x;
    }
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& [name, x] : drop) ranked.emplace_back(-x, name);
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> out;
  for (std::size_t k = 0; k < ranked.size() && static_cast<int>(k) < n; ++k)
    out.push_back(ranked[k].second);
  return out;
}

const ImageRow* find_row(const CellResult& c, const std::string& name) {
  for (const auto& row : c.images)
    if (row.name == name) return &row;
  return nullptr;
}

std::string one_case(const SweepResults& r, const std::vector<const Cell*>& cells,
                     const dataset::SamplePaths& paths, const ReportOptions& o) {
  const std::size_t nv = cells.size();
  const cv::Mat lq = io::read_image_bgr(paths.lq), gt = io::read_image_bgr(paths.gt);
  std::vector<cv::Mat> outputs(nv);
  std::size_t worst = 0;
  double worst_psnr = INFINITY;
  for (std::size_t v = 0; v < nv; ++v) {
    const fs::path p = fs::path(cells[v]->dir) / "images" / (paths.name + ".png");
    if (fs::exists(p)) outputs[v] = io::read_image_bgr(p.string());
    const ImageRow* row = find_row(r.at(cells[v]->dataset, v), paths.name);
    if (row && row->psnr < worst_psnr) worst_psnr = row->psnr, worst = v;
  }
  const cv::Rect win = worst_window(outputs[worst], gt, o.crop);
  const ImageRow* first = find_row(r.at(cells[0]->dataset, 0), paths.name);
  std::ostringstream h;
  h << "<h3>" << html_escape(paths.name)
    << fmt::format(" <span class=\"muted\">(crop {}x{} at {},{})</span>", win.width, win.height,
                   win.x, win.y)
    << "</h3>\n<div class=\"case\">";
  h << figure(lq, win, "blurry input<br>" + (first ? fmt_db(first->psnr_input) : ""), o);
  for (std::size_t v = 0; v < nv; ++v) {
    const ImageRow* row = find_row(r.at(cells[v]->dataset, v), paths.name);
    std::string cap = html_escape(cells[v]->variant_name) + "<br>";
    if (row)
      cap += row->collapsed ? "<span class=\"bad\">" + fmt_db(row->psnr) + " collapsed</span>"
                            : fmt_db(row->psnr);
    h << figure(outputs[v], win, cap, o);
  }
  h << figure(gt, win, "ground truth", o);
  for (const Cell* cell : cells) {  // the masks of the first variant that reads some
    if (!cell->config.datasets.front().needs_masks()) continue;
    try {
      const cv::Mat labels = mask_labels(*cell, mask_paths(*cell, paths.name));
      if (labels.empty() || labels.size() != lq.size()) continue;
      h << figure(overlay(lq, labels), win, "masks of " + html_escape(cell->variant_name), o);
      break;
    } catch (const std::exception& e) {
      log::warn(fmt::format("report: no mask overlay for {}: {}", paths.name, e.what()));
    }
  }
  h << "</div>\n";
  return h.str();
}

std::string worst_cases(const SweepResults& r, const std::vector<Cell>& all, std::size_t d,
                        const ReportOptions& o) {
  std::vector<const Cell*> cells(r.config->variants.size(), nullptr);
  for (const auto& c : all)
    if (c.dataset == d) cells[c.variant] = &c;
  std::map<std::string, dataset::SamplePaths> paths;
  for (const auto& p : dataset::list_samples(cells[0]->config.datasets.front())) paths[p.name] = p;
  std::ostringstream h;
  for (const auto& name : worst_images(r, d, o.worst_cases)) {
    const auto it = paths.find(name);
    if (it == paths.end()) continue;
    h << one_case(r, cells, it->second, o);
  }
  return h.str();
}

}  // namespace

std::string base64(const std::vector<unsigned char>& bytes) {
  static const char* const table =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += table[(n >> s) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t n = bytes[i] << 16;
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += table[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string render_report(const SweepResults& results, const std::vector<Cell>& cells,
                          const std::vector<PairedComparison>& comparisons,
                          const BootstrapOptions& bootstrap, const ReportOptions& options) {
  const SweepConfig& cfg = *results.config;
  const Table table = build_table(results);
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>"
    << html_escape(cfg.name) << " — samdeblur sweep</title>\n<style>" << kStyle
    << "</style>\n</head>\n<body>\n<h1>" << html_escape(cfg.name) << "</h1>\n";
  h << "<p class=\"muted\">sdb-sweep report: " << cfg.variants.size() << " variants × "
    << cfg.datasets.size() << " datasets, from " << html_escape(cfg.source) << ".</p>\n";
  h << results_table(table);
  h << "<p class=\"muted\">Best of each column in bold (highest PSNR / SSIM, lowest MCR).";
  if (!table.reference_source.empty())
    h << " In grey: (published, ours − published; MCR in percentage points). Published: "
      << html_escape(table.reference_source) << ".";
  h << "</p>\n";
  h << fmt::format(
      "<p class=\"muted\">Paired bootstrap: mean per-image PSNR difference b − a with a {:g} % "
      "percentile interval, {} resamples, seed {} (std::mt19937_64).</p>\n",
      100 * bootstrap.confidence, bootstrap.resamples, bootstrap.seed);
  for (std::size_t d = 0; d < cfg.datasets.size(); ++d) {
    h << "<h2>" << html_escape(cfg.datasets[d].name) << "</h2>\n";
    h << "<h3>Paired differences</h3>\n"
      << bootstrap_table(comparisons, cfg.datasets[d].name, bootstrap);
    h << "<h3>Collapsed images (MCR)</h3>\n" << collapsed_lists(results, d);
    h << "<h3>PSNR gain over the blurry input, per image</h3>\n"
      << histogram_svg(results, d, options.histogram_bins);
    h << "<h3>Worst mode-collapse cases</h3>\n<p class=\"muted\">The images with the largest "
         "PSNR drop below the blurry input under any variant; crops where that variant's error "
         "is largest.</p>\n"
      << worst_cases(results, cells, d, options);
  }
  h << "</body>\n</html>\n";
  return h.str();
}

}  // namespace samdeblur::sweep
