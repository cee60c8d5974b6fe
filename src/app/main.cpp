// ddpm_dist CONFIG [--set key=value ...]                              train, then evaluate
// ddpm_dist {train|autoencoder|sample|eval|classifier|bench} CONFIG [--set ...]     one stage
// ddpm_dist inspect [--verify] FILE.h5
// ddpm_dist compare RUN...
// ddpm_dist report RUN... [--out FILE]
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <sysexits.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include "app/commands.hpp"
#include "config/key_docs.hpp"
#include "dist/context.hpp"
#include "io/compare.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "util/stop_request.hpp"

namespace {

// The command line with `mpirun -np W` in front when W > 1, without its `--resume` when `drop_resume`;
// an argument with a space or a quote is quoted for a shell.
std::string command_line(const std::vector<std::string>& args, int world, bool drop_resume) {
  std::string cmd = world > 1 ? "mpirun -np " + std::to_string(world) + " ddpm_dist" : "ddpm_dist";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (drop_resume && args[i] == "--resume") {
      ++i;
      continue;
    }
    if (drop_resume && args[i].rfind("--resume=", 0) == 0) continue;
    if (args[i].find_first_of(" '\"$[]*?") == std::string::npos) {
      cmd += " " + args[i];
      continue;
    }
    std::string quoted;
    for (const char c : args[i]) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += " '" + quoted + "'";
  }
  return cmd;
}

// The command line that continues this run: the same arguments with `--resume auto`.
std::string resume_command(const std::vector<std::string>& args, int world) {
  return command_line(args, world, true) + " --resume auto";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ddpm;
  stop::install();
  std::unique_ptr<dist::Context> started;
  try {
    started = std::make_unique<dist::Context>(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ddpm_dist: %s\n", e.what());
    return 2;
  }
  dist::Context& ctx = *started;
  setup_logging(ctx.rank());
  CLI::App app{"ddpm_dist: distributed DDPM training and evaluation on MNIST"};
  app.require_subcommand(1);
  app::Options opt;
  auto add = [&](const char* name, const char* help) {
    auto* sub = app.add_subcommand(name, help);
    sub->add_option("config", opt.config_path, "YAML configuration file")->required()->check(CLI::ExistingFile);
    sub->add_option("--set", opt.overrides, "override a key: section.key=value (repeatable)");
    return sub;
  };
  auto* all = add("run", "train (in latent space the autoencoder first), then sample and evaluate (the default when "
                         "the first argument is a config file)");
  auto* train = add("train", "train the model");
  auto* autoencoder = add("autoencoder", "train the latent-diffusion autoencoder (autoencoder.*) into <run>/autoencoder "
                                         "and encode the training set into its latent cache");
  for (auto* sub : {all, train, autoencoder})
    sub->add_option("--resume", opt.resume,
                    "continue training: 'auto' (the newest complete checkpoint of the run, if any) or a checkpoint path");
  auto* sample = add("sample", "sample images with the newest checkpoint");
  auto* evaluate = add("eval", "sample with the newest checkpoint and measure FID, confidence, class coverage");
  auto* sweep = add("sweep", "measure a grid of sampling settings on the newest checkpoint without retraining: post-hoc "
                             "EMA lengths x autoguidance guides x guidance weights (sweep.*), into run.h5's /sweep");
  auto* classifier = add("classifier", "train the evaluation classifier, store it in eval.classifier, and compute its features of the real images");
  auto* bench = add("bench", "measure matrix-product and convolution GFLOP/s, the model's FLOPs, training img/s "
                             "(fp32, bf16, without the batch balancer, channels-last, CUDA graphs) and sampling img-steps/s");
  std::vector<std::string> bench_parts;
  const auto& all_parts = app::bench_parts();
  std::string parts_help = "measure only these (default: all but sample_configured):";
  for (const auto& p : all_parts) parts_help += " " + p;
  bench->add_option("--only", bench_parts, parts_help)->delimiter(',')->check(CLI::IsMember(all_parts));
  std::string inspect_path;
  auto* inspect = app.add_subcommand("inspect", "print a summary of a run.h5 or checkpoint file, or verify any file ddpm_dist wrote");
  inspect->add_option("file", inspect_path, "HDF5 file written by ddpm_dist")->required();
  bool inspect_verify = false;
  inspect->add_flag("--verify", inspect_verify,
                    "read back every dataset and attribute and list each that fails its checksum (exit status 1 if any)");

  std::vector<std::string> compare_paths;
  auto* compare = app.add_subcommand("compare", "the final evaluations of several runs side by side, with the mean "
                                                "over them, and a warning where they do not compare");
  compare->add_option("runs", compare_paths, "run.h5 files or run folders")->required();

  std::vector<std::string> report_paths;
  std::string report_out;
  auto* report = app.add_subcommand("report", "write the HTML page of a run (RUN/report.html), also while it trains, "
                                              "or of several runs side by side (--out FILE)");
  report->add_option("runs", report_paths, "run folders or their run.h5")->required();
  report->add_option("--out", report_out, "the page to write (required with several runs)");

  auto* keys = app.add_subcommand("keys", "print the configuration reference (every key, its default and meaning) "
                                          "as a markdown table");

  // `ddpm_dist CONFIG ...` means `ddpm_dist run CONFIG ...`.
  std::vector<std::string> args(argv + 1, argv + argc);
  opt.command = command_line(args, ctx.world_size(), false);
  if (!args.empty() && args[0][0] != '-') {
    bool is_sub = false;
    for (const auto* s : app.get_subcommands({})) is_sub |= s->get_name() == args[0];
    if (!is_sub) args.insert(args.begin(), "run");
  }
  // CLI11 consumes a reversed argument vector.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    // Every rank sees the same command line; only rank 0 prints help or the parse error.
    if (ctx.rank() == 0) return app.exit(e);
    return e.get_exit_code();
  }

  // A run stopped by a signal, with a checkpoint, exits EX_TEMPFAIL rather than 0: a finished
  // run and one to continue must differ to whoever runs it (launch/slurm/job.sh requeues on it).
  auto stopped = [&] {
    if (ctx.rank() == 0)
      spdlog::info("to continue: {} (this run exits with status {}: stopped before its end)",
                   resume_command(args, ctx.world_size()), EX_TEMPFAIL);
    return EX_TEMPFAIL;
  };
  // A failure on any rank ends the whole job: no rank is left waiting in a collective.
  try {
    if (keys->parsed()) {
      if (ctx.rank() == 0) std::fputs(config::reference_table().c_str(), stdout);
      return 0;
    }
    if (inspect->parsed()) return ctx.rank() == 0 ? app::cmd_inspect(inspect_path, inspect_verify) : 0;
    if (compare->parsed()) {
      if (ctx.rank() == 0) std::fputs(io::compare_runs(compare_paths).c_str(), stdout);
      return 0;
    }
    if (report->parsed()) return ctx.rank() == 0 ? app::cmd_report(report_paths, report_out) : 0;
    auto session = app::start_session(ctx, opt);
    // One run per folder: the commands that write it hold its lock.
    if (all->parsed() || train->parsed() || autoencoder->parsed() || sample->parsed() || evaluate->parsed() ||
        sweep->parsed())
      app::hold_run_folder(session);
    std::vector<std::pair<std::string, double>> stages;
    if (all->parsed() && session.cfg.latent()) {
      // Latent diffusion's first stage. A checkpoint named by --resume is the diffusion model's:
      // the autoencoder then continues from its own newest.
      const auto resume = session.opt.resume;
      if (!resume.empty()) session.opt.resume = "auto";
      const auto start = std::chrono::steady_clock::now();
      const bool finished = app::cmd_autoencoder(session);
      session.opt.resume = resume;
      if (!finished) return stopped();
      stages.emplace_back("autoencoder", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    if (all->parsed() || train->parsed()) {
      const auto start = std::chrono::steady_clock::now();
      if (!app::cmd_train(session)) return stopped();
      stages.emplace_back("train", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    if (autoencoder->parsed() && !app::cmd_autoencoder(session)) return stopped();
    if (sample->parsed()) app::cmd_sample(session);
    if (all->parsed() || evaluate->parsed()) {
      app::cmd_eval(session, stages);
      if (ctx.rank() == 0) app::write_report(session.cfg.out_dir());
    }
    if (sweep->parsed()) {
      app::cmd_sweep(session);
      if (ctx.rank() == 0) app::write_report(session.cfg.out_dir());
    }
    if (classifier->parsed()) app::cmd_classifier(session);
    if (bench->parsed()) app::cmd_bench(session, bench_parts);
  } catch (const Error& e) {
    ctx.abort(e.what(), 2);
  } catch (const std::exception& e) {
    ctx.abort(std::string("internal error: ") + e.what(), 1);
  }
  return 0;
}
