#include "io/compare.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "io/h5.hpp"
#include "io/run_file.hpp"
#include "util/error.hpp"

namespace ddpm::io {
namespace {

struct Row {
  std::string run, group, fingerprint;
  std::int64_t n = 0;
  FeatureFigures f;
};

double scalar(const H5::Group& g, const std::string& name) {
  return g.nameExists(name) ? read_tensor(g, name).item<double>() : std::nan("");
}

// Every evaluation group of a run (ema, raw, and a conditional model's guidance_<w> in them).
void collect(const std::string& run, const H5::Group& eval, const std::string& fingerprint, std::vector<Row>& rows) {
  for (const char* w : {"ema", "raw"}) {
    if (!eval.nameExists(w)) continue;
    const auto g = eval.openGroup(w);
    std::vector<std::pair<std::string, H5::Group>> groups;
    if (g.nameExists("fid")) groups.emplace_back(w, g);
    for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
      const auto name = g.getObjnameByIdx(i);
      if (name.rfind("guidance_", 0) == 0) groups.emplace_back(std::string(w) + "/" + name, g.openGroup(name));
    }
    for (const auto& [name, e] : groups) {
      Row r{run, name, fingerprint, has_attr(e, "n_samples") ? read_attr_int(e, "n_samples") : 0, {}};
      r.f.fid = {scalar(e, "fid"), scalar(e, "fid_se")};
      r.f.kid = {scalar(e, "kid"), scalar(e, "kid_se")};
      r.f.fid_inf = {scalar(e, "fid_inf"), scalar(e, "fid_inf_se")};
      r.f.precision = scalar(e, "precision");
      r.f.recall = scalar(e, "recall");
      r.f.memorised = scalar(e, "memorised");
      rows.push_back(r);
    }
  }
}

std::string pm(const Estimate& e) {
  if (!std::isfinite(e.value)) return "-";
  return std::isfinite(e.se) ? fmt::format("{:.2f} ± {:.2f}", e.value, e.se) : fmt::format("{:.2f}", e.value);
}

// The cells in the header's order: run, weights, N, FID, KID, FID at N=inf, precision, recall,
// memorised, classifier.
std::string cells(const std::vector<std::string>& c) {
  return fmt::format("{:<28} {:<16} {:>6} {:>16} {:>14} {:>15} {:>9} {:>7} {:>9}  {}\n", c[0], c[1], c[2], c[3], c[4],
                     c[5], c[6], c[7], c[8], c[9]);
}

std::string line(const std::string& run, const std::string& group, const std::string& n, const FeatureFigures& f,
                 const std::string& classifier) {
  auto share = [](double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : std::string("-"); };
  return cells({run, group, n, pm(f.fid), pm(f.kid), pm(f.fid_inf), share(f.precision), share(f.recall),
                std::isfinite(f.memorised) ? fmt::format("{:.1f}%", 100 * f.memorised) : "-", classifier});
}

}  // namespace

std::string compare_runs(const std::vector<std::string>& paths) {
  std::vector<Row> rows;
  for (const auto& given : paths) {
    const auto path = std::filesystem::is_directory(given) ? run_file_path(given) : given;
    auto file = open_read(path);
    if (!file.nameExists("eval"))
      throw Error(path + ": no /eval (the run has not been evaluated); run `ddpm_dist eval CONFIG` first");
    const auto eval = file.openGroup("eval");
    const auto fingerprint =
        has_attr(eval, "classifier_fingerprint") ? read_attr_string(eval, "classifier_fingerprint") : "not recorded";
    collect(std::filesystem::path(path).parent_path().filename().string(), eval, fingerprint, rows);
  }
  auto out = cells({"run", "weights", "N", "FID", "KID", "FID at N=inf", "precision", "recall", "memorised", "classifier"});
  std::set<std::string> classifiers;
  std::set<std::int64_t> counts;
  std::map<std::string, std::vector<const Row*>> by_group;
  for (const auto& r : rows) {
    out += line(r.run, r.group, std::to_string(r.n), r.f, r.fingerprint);
    classifiers.insert(r.fingerprint);
    counts.insert(r.n);
    by_group[r.group].push_back(&r);
  }
  for (const auto& [group, members] : by_group) {
    if (members.size() < 2) continue;
    auto figure = [&](auto get) {
      std::vector<double> v;
      for (const auto* r : members) v.push_back(get(r->f));
      return mean_and_spread(v);
    };
    FeatureFigures mean;
    mean.fid = figure([](const FeatureFigures& f) { return f.fid.value; });
    mean.kid = figure([](const FeatureFigures& f) { return f.kid.value; });
    mean.fid_inf = figure([](const FeatureFigures& f) { return f.fid_inf.value; });
    mean.precision = figure([](const FeatureFigures& f) { return f.precision; }).value;
    mean.recall = figure([](const FeatureFigures& f) { return f.recall; }).value;
    mean.memorised = figure([](const FeatureFigures& f) { return f.memorised; }).value;
    out += line(fmt::format("mean of {} runs (± their sd)", members.size()), group, "", mean, "");
  }
  if (classifiers.size() > 1 || classifiers.count("not recorded"))
    out += "WARNING: the runs were measured with different evaluation classifiers (or one not recorded): their "
           "figures do not compare; evaluate them again with one classifier (`ddpm_dist eval CONFIG`)\n";
  if (counts.size() > 1)
    out += "WARNING: the runs were evaluated with different sample counts: FID is biased by about 1/N, so compare "
           "KID or FID at N=inf between them\n";
  return out;
}

}  // namespace ddpm::io
