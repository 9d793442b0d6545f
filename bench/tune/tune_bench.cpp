// SPDX-License-Identifier: Apache-2.0
// Tune speed: N candidates over one synthetic journal of S steps (one 64-value
// spectrum per snapshot, labelled loss spikes), open-loop objective, J threads.
// The target: 1,000 candidates over a 20,000-step journal in <= 10 s on 2 cores.
//
//   bench_tune [--candidates N] [--steps S] [--jobs J] [--out FILE.json]

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/resource.h>

#include "../replay/synthetic_run.hpp"
#include "protocol/json_writer.hpp"
#include "tools/tune.hpp"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::size_t candidates = 1000, steps = 20000, jobs = 2;
  std::string out = "bench/results/tune.json";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--candidates" && i + 1 < argc) candidates = std::stoul(argv[++i]);
    else if (a == "--steps" && i + 1 < argc) steps = std::stoul(argv[++i]);
    else if (a == "--jobs" && i + 1 < argc) jobs = std::stoul(argv[++i]);
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_tune [--candidates N] [--steps S] [--jobs J] [--out FILE.json]\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/orbit-bench-tune-XXXXXX";
  const fs::path root = ::mkdtemp(tmpl);
  std::vector<std::int64_t> spikes;
  for (std::size_t s = 3000; s + 100 < steps; s += 4000) spikes.push_back(static_cast<std::int64_t>(s));
  orbit::detail::write_synthetic_run(root, "bench", steps, 7, spikes);
  const fs::path space = root / "space.toml";
  std::ofstream(space) << "[[param]]\nkey = \"zones.grad_norm_z.good\"\nmin = 1.5\nmax = 6.0\n"
                          "[[param]]\nkey = \"zones.loss_z.good\"\nmin = 1.5\nmax = 6.0\n"
                          "[[param]]\nkey = \"filters.cusum_h\"\nmin = 3.0\nmax = 40.0\nlog = true\n";

  std::vector<orbit::TuneRun> runs(1);
  runs[0].recording = orbit::load_recorded_run(root / "bench");
  orbit::ReplaySettings settings;
  runs[0].failures = orbit::failures_of(runs[0].recording, settings, &runs[0].failure_source, nullptr);
  auto params = orbit::load_space(space);
  orbit::TuneOptions options;
  options.budget = candidates;
  options.jobs = jobs;
  options.seed = 1;
  // CPU time beside wall time: on a busy machine the threads do not get their cores,
  // and CPU seconds / jobs is what the run would take with them.
  auto cpu_now = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  const double cpu0 = cpu_now();
  const auto t0 = std::chrono::steady_clock::now();
  const orbit::TuneResult result = orbit::tune(runs, params, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu_seconds = cpu_now() - cpu0;
  fs::remove_all(root);

  const double evals = static_cast<double>(result.evaluations) * static_cast<double>(steps);
  std::printf("tune: %zu candidates over a %zu-step journal (64-value spectrum per snapshot, %zu labelled spikes),\n"
              "open-loop objective, %zu threads\n\n",
              result.evaluations, steps, spikes.size(), jobs);
  std::printf("%-28s %12s\n", "seconds", std::to_string(seconds).c_str());
  std::printf("%-28s %12.2f\n", "CPU seconds (all threads)", cpu_seconds);
  std::printf("%-28s %12.1f\n", "candidates/s", static_cast<double>(result.evaluations) / seconds);
  std::printf("%-28s %12.0f\n", "controller snapshots/s", evals / seconds);
  std::printf("%-28s %12.4g -> %.4g\n", "cost before -> after", result.before.cost, result.best.cost);
  std::printf("%-28s %12s\n", "target (<= 10 s)", seconds <= 10.0 ? "met" : "NOT met");
  orbit::JsonWriter w(true);
  w.begin_object();
  w.field("benchmark", "tune").field("candidates", static_cast<std::uint64_t>(result.evaluations));
  w.field("steps", static_cast<std::uint64_t>(steps)).field("jobs", static_cast<std::uint64_t>(jobs));
  w.field("seconds", seconds).field("cpu_seconds", cpu_seconds).field("snapshots_per_s", evals / seconds);
  w.field("cost_before", result.before.cost).field("cost_after", result.best.cost);
  w.field("target_seconds", 10.0).field("meets_target", seconds <= 10.0);
  w.end_object();
  if (!out.empty()) {
    std::ofstream f(out);
    f << w.str() << "\n";
    std::printf("\nwrote %s\n", out.c_str());
  }
  return 0;
}
