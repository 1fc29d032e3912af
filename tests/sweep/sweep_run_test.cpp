// A whole sweep on the tiny benchmark (tests/data/sweep/tiny.yml: 3 variants x 2
// datasets, 3 images): resume after an interruption, the table against the cells'
// summary.json, the shared mask cache, the report's content, sdb-sweep end to end
// and the headless-Chromium check of the report.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "samdeblur/core/log.h"
#include "samdeblur/sweep/runner.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;

namespace {

const std::string kTiny = test::data_path("sweep/tiny.yml");

sweep::SweepOptions quiet_options(const fs::path& out) {
  sweep::SweepOptions o;
  o.output_dir = out.string();
  o.progress = false;
  o.bootstrap.resamples = 500;
  return o;
}

// Every regular file below `dir` (relative path -> modification time).
std::map<std::string, fs::file_time_type> mtimes(const fs::path& dir) {
  std::map<std::string, fs::file_time_type> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = e.last_write_time();
  return out;
}

struct Interrupt {};

}  // namespace

TEST(SweepRun, ResumesAfterAnInterruptionWithoutTouchingFinishedCells) {
  const test::TempDir tmp("sweep_resume");
  const fs::path out = tmp / "out";
  const auto cfg = sweep::load_sweep_config(kTiny);

  // 1. Interrupted after the first cell (the hook runs once it is finished).
  auto o = quiet_options(out);
  o.on_cell = [](const sweep::CellStatus& s) {
    if (s.index == 1) throw Interrupt{};
  };
  EXPECT_THROW(sweep::run_sweep(cfg, o), Interrupt);
  const fs::path first = out / "w_o_SAM" / "files";
  ASSERT_TRUE(fs::exists(first / "sweep_cell.json"));
  EXPECT_FALSE(fs::exists(out / "CAT" / "files"));
  EXPECT_FALSE(fs::exists(out / "table.md"));
  const auto before = mtimes(first);

  // 2. The rerun skips it and evaluates the five others.
  std::vector<bool> skipped;
  o.on_cell = [&](const sweep::CellStatus& s) { skipped.push_back(s.skipped); };
  const auto run = sweep::run_sweep(cfg, o);
  EXPECT_EQ(run.skipped, 1u);
  EXPECT_EQ(run.computed, 5u);
  ASSERT_EQ(skipped.size(), 6u);
  EXPECT_TRUE(skipped[0]);
  EXPECT_EQ(mtimes(first), before);
  const std::string table = test::read_text(out / "table.md");
  const std::string csv = test::read_text(out / "table.csv");
  const std::string json = test::read_text(out / "table.json");
  ASSERT_FALSE(table.empty());

  // 3. A third run evaluates nothing and writes the same tables.
  const auto all_before = mtimes(out / "CAT");
  const auto again = sweep::run_sweep(cfg, quiet_options(out));
  EXPECT_EQ(again.computed, 0u);
  EXPECT_EQ(again.skipped, 6u);
  EXPECT_EQ(test::read_text(out / "table.md"), table);
  EXPECT_EQ(test::read_text(out / "table.csv"), csv);
  EXPECT_EQ(test::read_text(out / "table.json"), json);
  EXPECT_EQ(mtimes(out / "CAT"), all_before);

  // 4. The same config text elsewhere is the same cell; a changed value reruns that
  // variant's cells only.
  const std::string yaml = test::read_text(test::data_path("sweep/NAFNet.yml"));
  auto moved = cfg;
  moved.variants[0].config = test::write_text(tmp / "NAFNet.yml", yaml + "# a comment\n");
  EXPECT_EQ(sweep::run_sweep(moved, quiet_options(out)).computed, 0u);
  std::string changed = yaml;
  const auto pos = changed.find("crop_border: 0");
  ASSERT_NE(pos, std::string::npos);
  changed.replace(pos, 14, "crop_border: 1");
  test::write_text(tmp / "NAFNet.yml", changed);
  const auto rerun = sweep::run_sweep(moved, quiet_options(out));
  EXPECT_EQ(rerun.computed, 2u);
  EXPECT_EQ(rerun.skipped, 4u);
}

TEST(SweepRun, TableAndCsvEqualTheCellsSummaries) {
  const test::TempDir tmp("sweep_table");
  const fs::path out = tmp / "out";
  const auto cfg = sweep::load_sweep_config(kTiny);
  const auto run = sweep::run_sweep(cfg, quiet_options(out));
  std::istringstream csv(test::read_text(out / "table.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line,
            "variant,dataset,psnr,ssim,mcr,count,psnr_input,ref_psnr,ref_ssim,ref_mcr,"
            "delta_psnr,delta_ssim,delta_mcr");
  const nlohmann::json table = nlohmann::json::parse(test::read_text(out / "table.json"));
  int rows = 0;
  while (std::getline(csv, line)) {
    const auto f = sweep::split_csv_line(line);
    ASSERT_EQ(f.size(), 13u) << line;
    const fs::path cell = out / sweep::slug(f[0]) / sweep::slug(f[1]);
    const auto summary = nlohmann::json::parse(test::read_text(cell / "summary.json"));
    EXPECT_EQ(std::stod(f[2]), summary["psnr"].get<double>()) << line;
    EXPECT_EQ(std::stod(f[3]), summary["ssim"].get<double>()) << line;
    EXPECT_EQ(std::stod(f[4]), summary["mcr"].get<double>()) << line;
    EXPECT_EQ(std::stoll(f[5]), summary["count"].get<int64_t>()) << line;
    EXPECT_EQ(std::stod(f[6]), summary["psnr_input"].get<double>()) << line;
    const auto& j = table["cells"][rows];
    EXPECT_EQ(j["variant"], f[0]);
    EXPECT_EQ(j["dataset"], f[1]);
    EXPECT_EQ(j["psnr"].get<double>(), summary["psnr"].get<double>());
    EXPECT_EQ(j["ssim"].get<double>(), summary["ssim"].get<double>());
    ++rows;
  }
  EXPECT_EQ(rows, 6);
  // Reference columns: filled where the sweep gives numbers.
  const auto& ref_cell = table["cells"][0];  // w/o SAM x files: psnr 20, ssim 0.5
  EXPECT_DOUBLE_EQ(ref_cell["reference"]["psnr"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(ref_cell["delta"]["psnr"].get<double>(), ref_cell["psnr"].get<double>() - 20.0);
  // Bootstrap: every pair on every dataset, with the documented settings.
  EXPECT_EQ(table["bootstrap"]["comparisons"].size(), 6u);  // 3 pairs x 2 datasets
  EXPECT_EQ(table["bootstrap"]["resamples"], 500);
  EXPECT_EQ(table["bootstrap"]["comparisons"][0]["n"], 3);

  // table.md: the paper's layout; "files" has a reference without MCR (no MCR column).
  const std::string md = test::read_text(out / "table.md");
  EXPECT_NE(md.find("| Method | files PSNR↑ | files SSIM↑ | superpixels PSNR↑ | superpixels "
                    "SSIM↑ | superpixels MCR↓ |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| w/o SAM |"), std::string::npos);
  EXPECT_NE(md.find("**"), std::string::npos);  // a best value in bold
  EXPECT_NE(md.find(" (20.00, "), std::string::npos) << md;
}

TEST(SweepRun, MasksOnTheFlyAreComputedOnceForAllVariants) {
  const test::TempDir tmp("sweep_masks");
  const fs::path out = tmp / "out";
  sweep::run_sweep(sweep::load_sweep_config(kTiny), quiet_options(out));
  const auto cat = nlohmann::json::parse(test::read_text(out / "CAT/superpixels/summary.json"));
  const auto map = nlohmann::json::parse(test::read_text(out / "MAP/superpixels/summary.json"));
  EXPECT_EQ(cat["datasets"][0]["mask_cache"]["misses"], 3);
  EXPECT_EQ(map["datasets"][0]["mask_cache"]["misses"], 0);
  EXPECT_EQ(map["datasets"][0]["mask_cache"]["hits"], 3);
  EXPECT_EQ(map["datasets"][0]["mask_cache"]["dir"], (out / "mask_cache/superpixels").string());
}

TEST(SweepRun, ReportIsSelfContained) {
  const test::TempDir tmp("sweep_report");
  const fs::path out = tmp / "out";
  sweep::run_sweep(sweep::load_sweep_config(kTiny), quiet_options(out));
  const std::string html = test::read_text(out / "report.html");
  EXPECT_NE(html.find("<table id=\"results\">"), std::string::npos);
  EXPECT_NE(html.find("data:image/jpeg;base64,"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("masks of CAT"), std::string::npos);  // the mask overlay
  EXPECT_NE(html.find("500 resamples, seed 20240414"), std::string::npos);
  EXPECT_EQ(html.find("http:"), std::string::npos);
  EXPECT_EQ(html.find("https:"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(sweep::base64({'M', 'a', 'n'}), "TWFu");
  EXPECT_EQ(sweep::base64({'M', 'a'}), "TWE=");
  EXPECT_EQ(sweep::base64({'M'}), "TQ==");
  EXPECT_EQ(sweep::html_escape("<a&\"'>"), "&lt;a&amp;&quot;&#39;&gt;");
}

TEST(SdbSweep, RunsTheTinySweepEndToEndAndResumes) {
  if (!test::app_built("sdb-sweep")) GTEST_SKIP() << "sdb-sweep not built";
  const test::TempDir tmp("sdb_sweep");
  const fs::path out = tmp / "out";
  const auto r = test::run_app("sdb-sweep", {"-q", "--config", kTiny, "--output", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_NE(r.out.find("6 cells: 6 evaluated, 0 up to date"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("report: " + out.string() + "/report.html"), std::string::npos) << r.out;
  for (const char* f : {"table.md", "table.csv", "table.json", "report.html",
                        "MAP/superpixels/metrics.csv", "CAT/files/images/img_a.png"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  const auto again = test::run_app("sdb-sweep", {"-q", "-c", kTiny, "-o", out.string()});
  ASSERT_EQ(again.exit_code, 0) << again.output();
  EXPECT_NE(again.out.find("0 evaluated, 6 up to date"), std::string::npos) << again.out;
  // A bad sweep file: non-zero, naming the file and the key.
  const std::string bad = test::write_text(tmp / "bad.yml", "name: x\nvariants: 1\n");
  const auto err = test::run_app("sdb-sweep", {"-q", "-c", bad, "-o", (tmp / "o2").string()});
  EXPECT_NE(err.exit_code, 0);
  EXPECT_NE(err.err.find("bad.yml"), std::string::npos) << err.err;
  EXPECT_NE(err.err.find("'variants' must be a non-empty list"), std::string::npos) << err.err;
}

TEST(SweepReportBrowser, RendersInHeadlessChromiumWithoutConsoleErrors) {
  std::string chromium;
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (fs::exists(c)) chromium = c;
  if (chromium.empty())
    GTEST_SKIP() << "chromium not installed (scripts/install_deps.sh --with-browser)";
  const test::TempDir tmp("sweep_browser");
  const fs::path out = tmp / "out";
  sweep::run_sweep(sweep::load_sweep_config(kTiny), quiet_options(out));
  const std::string script = test::source_path("scripts/check_report.sh");
  const auto ok = test::run_program(
      "/bin/bash", {script, (out / "report.html").string(), (tmp / "shot.png").string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.output();
  EXPECT_TRUE(fs::exists(tmp / "shot.png"));
  // The check fails without the table and on a console error.
  const std::string no_table =
      test::write_text(tmp / "no_table.html", "<html><body>x</body></html>");
  EXPECT_NE(test::run_program("/bin/bash", {script, no_table}).exit_code, 0);
  const std::string console = test::write_text(
      tmp / "console.html",
      "<html><body><table id=\"results\"></table><script>console.error('boom')</script></body>"
      "</html>");
  const auto bad = test::run_program("/bin/bash", {script, console});
  EXPECT_NE(bad.exit_code, 0) << bad.output();
  const std::string external = test::write_text(
      tmp / "external.html",
      "<html><body><table id=\"results\"></table><img src=\"https://example.com/a.png\">"
      "</body></html>");
  const auto ext = test::run_program("/bin/bash", {script, external});
  EXPECT_NE(ext.exit_code, 0) << ext.output();
  EXPECT_NE(ext.err.find("references outside the file"), std::string::npos) << ext.err;
}
