#include "io/run_file.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <limits>

#include "io/h5.hpp"
#include "io/verify.hpp"
#include "util/clock.hpp"
#include "util/error.hpp"
#include "util/fault.hpp"

namespace ddpm::io {
namespace {

// A history is a group of 1-D float64 datasets of equal length, one per field of a row struct.
template <class Row>
struct Column {
  const char* name;
  double Row::*field;
  const char* description;
};
constexpr std::array<Column<MetricsRow>, 6> kColumns{{
    {"step", &MetricsRow::step, "optimizer steps done"},
    {"loss", &MetricsRow::loss, "simple loss ||eps - eps_theta||^2, mean over ranks and over the log interval"},
    {"lr", &MetricsRow::lr, "learning rate at the last step of the interval"},
    {"grad_norm", &MetricsRow::grad_norm, "global L2 norm of the averaged gradient before clipping (last step)"},
    {"img_per_s", &MetricsRow::img_per_s, "training throughput over the interval, images per second, all ranks"},
    {"wall_s", &MetricsRow::wall_s, "seconds of training wall time since the run began, across resumes"},
}};
constexpr std::array<Column<EvalHistoryRow>, 15> kEvalColumns{{
    {"step", &EvalHistoryRow::step, "optimizer steps done when the EMA weights were evaluated"},
    {"train_wall_s", &EvalHistoryRow::train_wall_s, "seconds of training wall time by then (evaluations left out)"},
    {"fid", &EvalHistoryRow::fid, "FID of eval.during_samples samples of the EMA weights against the test set"},
    {"fid_floor", &EvalHistoryRow::fid_floor, "FID of as many real training images: the floor at this N"},
    {"mean_confidence", &EvalHistoryRow::mean_confidence, "mean max-softmax probability of the classifier"},
    {"classes_present", &EvalHistoryRow::classes_present, "fraction of the 10 classes predicted at least once"},
    {"eval_s", &EvalHistoryRow::eval_s, "seconds this evaluation took (sampling and metrics)"},
    {"fid_se", &EvalHistoryRow::fid_se, "standard error of fid (bootstrap over the samples)"},
    {"kid", &EvalHistoryRow::kid, "kernel inception distance (unbiased at any N) in the classifier's features"},
    {"kid_se", &EvalHistoryRow::kid_se, "standard error of kid (10 disjoint blocks)"},
    {"fid_inf", &EvalHistoryRow::fid_inf, "FID extrapolated to infinite N (fit of FID against 1/N over subsets)"},
    {"fid_inf_se", &EvalHistoryRow::fid_inf_se, "standard error of fid_inf"},
    {"precision", &EvalHistoryRow::precision, "share of samples on the test images' manifold (k = 3)"},
    {"recall", &EvalHistoryRow::recall, "share of test images on the samples' manifold (k = 3)"},
    {"memorised", &EvalHistoryRow::memorised, "share of samples nearer a training image than 99% of test images are"},
}};

constexpr const char* kEvalHistoryDescription = "evaluations during training (eval.every), one row each";
constexpr const char* kGridsDescription = "the first samples of each evaluation as a grid, uint8 [rows, H, W]";

template <class Row, std::size_t N>
void append_rows(H5::Group& g, const std::array<Column<Row>, N>& columns, const std::vector<Row>& rows) {
  // A column added after the file was begun starts with NaN for the rows written before it.
  const auto earlier = g.nameExists(columns[0].name) ? read_1d(g, columns[0].name).size() : 0;
  for (const auto& c : columns) {
    std::vector<double> v;
    if (!g.nameExists(c.name)) v.assign(earlier, std::numeric_limits<double>::quiet_NaN());
    for (const auto& r : rows) v.push_back(r.*(c.field));
    append_1d(g, c.name, v, c.description);
  }
}

template <class Row, std::size_t N>
std::vector<Row> read_rows(const std::string& path, const std::string& group,
                           const std::array<Column<Row>, N>& columns) {
  if (!std::filesystem::exists(path)) return {};
  auto file = open_read(path);
  if (!file.nameExists(group)) return {};
  try {
    const auto g = file.openGroup(group);
    std::vector<Row> rows;
    for (const auto& c : columns) {
      // A column newer than the file: NaN in every row.
      const auto v = g.nameExists(c.name) ? read_1d(g, c.name)
                                          : std::vector<double>(rows.size(), std::numeric_limits<double>::quiet_NaN());
      if (rows.empty()) rows.resize(v.size());
      if (v.size() != rows.size()) throw Error(path + ": /" + group + " datasets differ in length; the file is damaged");
      for (std::size_t i = 0; i < v.size(); ++i) rows[i].*(c.field) = v[i];
    }
    return rows;
  } catch (const H5::Exception& e) {
    throw Error(path + ": cannot read /" + group + " (" + e.getDetailMsg() + ")");
  }
}

// Rows kept when the history is cut back to `step` (the first rows, whose step is at most it).
template <class Row>
std::int64_t rows_up_to(const std::vector<Row>& rows, std::int64_t step) {
  std::int64_t keep = 0;
  while (keep < static_cast<std::int64_t>(rows.size()) && rows[keep].step <= step) ++keep;
  return keep;
}

}  // namespace

std::string run_file_path(const std::string& run_dir) { return run_dir + "/run.h5"; }

void write_autoencoder_summary(const std::string& path, const AutoencoderSummary& summary) {
  update_atomically(path, [&](H5::H5File& file) {
    auto g = open_or_create(file, "autoencoder");
    write_attr(g, "description",
               std::string("the latents' mean and standard deviation over the training set (posterior draws; "
                           "latents are divided by latent_std before diffusion) and the per-pixel MSE of the "
                           "test set's reconstructions, with the EMA weights of checkpoint `step`"));
    write_attr(g, "step", summary.step);
    write_attr(g, "images", summary.images);
    write_attr(g, "latent_mean", summary.latent_mean);
    write_attr(g, "latent_std", summary.latent_std);
    write_attr(g, "test_mse", summary.test_mse);
    if (summary.reconstructions.defined())
      write_array(g, "reconstructions", summary.reconstructions,
                  "uint8 [2, K, H, W]: the first K test images and their reconstructions (decoding the posterior mean)");
  });
}

std::optional<AutoencoderSummary> read_autoencoder_summary(const std::string& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  return read_verified(path, "", [&]() -> std::optional<AutoencoderSummary> {
    H5::H5File file(path, H5F_ACC_RDONLY);
    if (!file.nameExists("autoencoder")) return std::nullopt;
    const auto g = file.openGroup("autoencoder");
    return AutoencoderSummary{read_attr_int(g, "step"), read_attr_int(g, "images"), read_attr_double(g, "latent_mean"),
                              read_attr_double(g, "latent_std"), read_attr_double(g, "test_mse")};
  });
}

void write_run_config(const std::string& path, const std::string& yaml, int world_size) {
  update_atomically(path, [&](H5::H5File& file) {
    auto g = open_or_create(file, "config");
    write_attr(g, "description", std::string("the resolved configuration of the latest start of this run"));
    write_attr(g, "yaml", yaml);
    write_attr(g, "created", now_utc());
    write_attr(g, "version", std::string(DDPM_VERSION));
    write_attr(g, "torch", std::string(TORCH_VERSION));
    write_attr(g, "world_size", std::int64_t{world_size});
  });
}

void write_launch(const std::string& path, const Launch& l) {
  update_atomically(path, [&](H5::H5File& file) {
    auto g = open_or_create(file, "launch");
    write_attr(g, "description", std::string("where and how the latest training start of this run ran"));
    write_attr(g, "command", l.command);
    write_attr(g, "host", l.host);
    write_attr(g, "cpu", l.cpu);
    write_attr(g, "device", l.device);
    write_attr(g, "backend", l.backend);
    write_attr(g, "ranks_by_host", l.ranks_by_host);
    write_attr(g, "ranks", l.ranks);
    write_attr(g, "threads", l.threads);
  });
}

void write_wall_time(const std::string& path, const std::vector<std::pair<std::string, double>>& stages) {
  update_atomically(path, [&](H5::H5File& file) {
    auto g = open_or_create(file, "wall_time");
    std::string names;
    std::vector<double> seconds;
    for (const auto& [name, s] : stages) {
      names += (names.empty() ? "" : ",") + name;
      seconds.push_back(s);
    }
    write_array(g, "seconds", torch::tensor(seconds, torch::kFloat64),
                "wall time of each stage of the latest command, in seconds");
    auto ds = g.openDataSet("seconds");
    write_attr(ds, "stages", names);
  });
}

void append_train_metrics(const std::string& path, const std::vector<MetricsRow>& rows) {
  update_atomically(path, [&](H5::H5File& file) {
    // Only rank 0 writes run.h5.
    if (!rows.empty()) fault::at(fault::Point::RunFileWrite, static_cast<std::int64_t>(rows.back().step), 0);
    auto g = open_or_create(file, "train");
    append_rows(g, kColumns, rows);
  });
}

std::vector<MetricsRow> read_train_metrics(const std::string& path) { return read_rows(path, "train", kColumns); }

void truncate_train_metrics(const std::string& path, std::int64_t step) {
  const auto rows = read_train_metrics(path);
  const auto keep = rows_up_to(rows, step);
  if (keep == static_cast<std::int64_t>(rows.size())) return;
  update_atomically(path, [&](H5::H5File& file) {
    auto g = file.openGroup("train");
    for (const auto& c : kColumns) truncate_rows(g, c.name, keep);
  });
}

void append_eval_history(const std::string& path, const EvalHistoryRow& row, const torch::Tensor& grid_u8,
                         const std::string& classifier) {
  update_atomically(path, [&](H5::H5File& file) {
    auto g = open_or_create(file, "eval_history");
    write_attr(g, "description", std::string(kEvalHistoryDescription));
    write_attr(g, "classifier_fingerprint", classifier);
    append_rows(g, kEvalColumns, {row});
    append_frame(g, "grids", grid_u8, kGridsDescription);
  });
}

std::vector<EvalHistoryRow> read_eval_history(const std::string& path) {
  return read_rows(path, "eval_history", kEvalColumns);
}

void truncate_eval_history(const std::string& path, std::int64_t step) {
  const auto rows = read_eval_history(path);
  const auto keep = rows_up_to(rows, step);
  if (keep == static_cast<std::int64_t>(rows.size())) return;
  update_atomically(path, [&](H5::H5File& file) {
    auto g = file.openGroup("eval_history");
    for (const auto& c : kEvalColumns) truncate_rows(g, c.name, keep);
    truncate_rows(g, "grids", keep);
  });
}

namespace {


// The histories under `prefix` ("" in run.h5, "history/" in a checkpoint).
RunHistory read_history_at(const std::string& path, const std::string& prefix) {
  RunHistory h;
  h.train = read_rows(path, prefix + "train", kColumns);
  h.evals = read_rows(path, prefix + "eval_history", kEvalColumns);
  if (h.evals.empty()) return h;
  try {
    auto file = open_read(path);
    const auto g = file.openGroup(prefix + "eval_history");
    if (g.nameExists("grids")) h.grids = read_tensor(g, "grids");
    if (has_attr(g, "classifier_fingerprint")) h.classifier = read_attr_string(g, "classifier_fingerprint");
  } catch (const H5::Exception& e) {
    throw Error(path + ": cannot read /" + prefix + "eval_history (" + e.getDetailMsg() + ")");
  }
  return h;
}

}  // namespace

RunHistory read_run_history(const std::string& path) { return read_history_at(path, ""); }

void write_run_history(H5::Group& parent, const RunHistory& h) {
  if (!h.train.empty()) {
    auto g = parent.createGroup("train");
    append_rows(g, kColumns, h.train);
  }
  if (h.evals.empty()) return;
  auto g = parent.createGroup("eval_history");
  write_attr(g, "description", std::string(kEvalHistoryDescription));
  write_attr(g, "classifier_fingerprint", h.classifier);
  append_rows(g, kEvalColumns, h.evals);
  // Frame by frame: the dataset stays extendible for the evaluations still to come.
  if (h.grids.defined())
    for (std::int64_t i = 0; i < h.grids.size(0); ++i) append_frame(g, "grids", h.grids[i], kGridsDescription);
}

std::optional<RunHistory> read_checkpoint_history(const std::string& checkpoint) {
  {
    auto file = open_read(checkpoint);
    if (!file.nameExists("history")) return std::nullopt;
  }
  return read_history_at(checkpoint, "history/");
}

std::string recover_run_file(const std::string& run_dir, const std::string& checkpoint) {
  const auto path = run_file_path(run_dir);
  if (!std::filesystem::exists(path)) return "";
  std::string problem;
  try {
    const auto v = verify_file(path);
    if (!v.ok())
      problem = v.problems.front() +
                (v.problems.size() > 1 ? " and " + std::to_string(v.problems.size() - 1) + " more" : "");
  } catch (const std::exception& e) {
    problem = e.what();
  }
  if (problem.empty()) return "";
  const auto aside = path + ".damaged-" + now_utc(/*compact=*/true);
  std::filesystem::rename(path, aside);
  std::string rebuilt;
  const auto history = checkpoint.empty() ? std::nullopt : read_checkpoint_history(checkpoint);
  if (history) {
    write_atomically(path, [&](H5::H5File& file) {
      auto root = file.openGroup("/");
      write_run_history(root, *history);
    });
    rebuilt = fmt::format("a new run.h5 holds the histories of {} ({} rows of training metrics, {} evaluations)",
                          checkpoint, history->train.size(), history->evals.size());
  } else {
    rebuilt = checkpoint.empty() ? "no checkpoint to rebuild it from: the run starts a new one"
                                 : checkpoint + " carries no history (written before checkpoints did): the history "
                                                "starts again at its step";
  }
  return path + " does not verify (" + problem + "): set aside as " + aside + "; " + rebuilt +
         ". Evaluation results, samples and sweeps are not in checkpoints: `ddpm_dist eval` (and `sweep`) writes "
         "them again";
}

}  // namespace ddpm::io
