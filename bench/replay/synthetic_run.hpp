// SPDX-License-Identifier: Apache-2.0
#pragma once
// A synthetic run journal for the replay and tune benchmarks: a hello, then `n`
// snapshots with one 64-value spectrum each ("hidden.0", a power law whose exponent
// wanders slowly), a falling noisy loss and grad norm, and loss spikes at `spikes`
// (each with labels.toml entries), written with the real journal writer.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench/support/bench_hello.hpp"
#include "journal/journal.hpp"
#include "protocol/codec.hpp"

namespace orbit::detail {

inline void write_synthetic_run(const std::filesystem::path& root, const std::string& run, std::size_t n,
                                std::uint64_t seed, const std::vector<std::int64_t>& spikes) {
  JournalOptions o;
  o.root = root;
  o.fsync = JournalOptions::never;
  Journal j = Journal::open(o);
  j.append(run, RecordType::hello, 0, encode(bench::lr_hello(run, "synthetic", 3e-4)));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  double exponent = 1.0;
  Snapshot s;
  s.run = run;
  s.spectra["hidden.0"].resize(64);
  for (std::size_t i = 0; i < n; ++i) {
    const auto step = static_cast<std::int64_t>(i);
    exponent = std::clamp(exponent + 0.002 * noise(rng), 0.6, 1.4);
    auto& spectrum = s.spectra["hidden.0"];
    for (std::size_t k = 0; k < spectrum.size(); ++k)
      spectrum[k] = static_cast<float>(std::pow(static_cast<double>(k + 1), -exponent));
    double loss = 2.5 + 8.0 * std::exp(-static_cast<double>(i) / 800.0) + 0.03 * noise(rng);
    double grad = 0.4 * std::exp(0.1 * noise(rng));
    for (auto spike : spikes) {
      const auto d = step - spike;
      if (d >= -3 && d <= 0) grad *= 1.0 + 3.0 * static_cast<double>(4 + d);  // a grad-norm precursor
      if (d >= 0 && d < 4) loss *= 2.5 - 0.4 * static_cast<double>(d);
    }
    s.step = step;
    s.time = 1.7e9 + static_cast<double>(i);
    s.loss = loss;
    s.grad_norm = grad;
    s.lr = 3e-4;
    j.append(run, RecordType::snapshot, static_cast<std::int64_t>(s.time * 1e9), encode(s));
  }
  j.flush();
  std::ofstream labels(root / run / "labels.toml");
  if (spikes.empty()) labels << "healthy = true\n";
  for (auto spike : spikes)
    labels << "[[failure]]\nonset = " << spike << "\npeak = " << spike << "\nend = " << spike + 3 << "\nkind = \"spike\"\n";
}

}  // namespace orbit::detail
