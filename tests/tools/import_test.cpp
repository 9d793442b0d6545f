// SPDX-License-Identifier: Apache-2.0
// `orbit import`'s parsers: each format, --map, evaluation rows, skipped and
// unparseable rows with their line numbers, fragments; and every real trace.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "tools/trace_import.hpp"

namespace orbit {
namespace {

namespace fs = std::filesystem;

std::vector<std::size_t> lines_of(const std::vector<LineProblem>& v) {
  std::vector<std::size_t> out;
  for (const auto& p : v) out.push_back(p.line);
  return out;
}

ImportResult run(std::string_view text, std::optional<TraceFormat> format = std::nullopt,
                 std::map<std::string, std::string> map = {}) {
  ImportOptions o;
  o.format = format;
  o.map = std::move(map);
  o.run = "t";
  return import_trace(text, o);
}

TEST(ImportCsv, TrainingEvaluationSkippedAndUnparseableRows) {
  const std::string csv =
      "global_step,grad_norm,loss,lr,validation/loss\n"  // line 1
      "0,1.5,2.5,0.001,\n"                                // 2 training
      "1,,,,2.4\n"                                        // 3 evaluation
      "2,1.4,2.3,0.002,\n"                                // 4 training
      "3,,,0.003,\n"                                      // 5 only lr: skipped
      "4,1.2,abc,0.003,\n"                                // 6 bad loss: unparseable
      "5,1.1\n"                                           // 7 wrong cell count: unparseable
      "\n"                                                // 8 empty: ignored
      "6,inf,inf,0.004,\n";                               // 9 training, non-finite
  const ImportResult r = run(csv);
  EXPECT_EQ(r.format, TraceFormat::csv);
  EXPECT_EQ(r.training_rows, 3u);
  EXPECT_EQ(r.evaluation_rows, 1u);
  EXPECT_EQ(lines_of(r.skipped), (std::vector<std::size_t>{5}));
  EXPECT_EQ(lines_of(r.unparseable), (std::vector<std::size_t>{6, 7}));
  ASSERT_EQ(r.runs.size(), 1u);
  const auto& run0 = r.runs[0];
  EXPECT_EQ(run0.run, "t");
  ASSERT_EQ(run0.snapshots.size(), 3u);
  EXPECT_EQ(run0.snapshots[0].step, 0);
  EXPECT_DOUBLE_EQ(run0.snapshots[0].loss, 2.5);
  EXPECT_DOUBLE_EQ(*run0.snapshots[0].grad_norm, 1.5);
  EXPECT_DOUBLE_EQ(*run0.snapshots[0].lr, 0.001);
  EXPECT_TRUE(std::isinf(run0.snapshots[2].loss));
  EXPECT_TRUE(std::isinf(*run0.snapshots[2].grad_norm));
  ASSERT_EQ(run0.evaluations.size(), 1u);
  EXPECT_EQ(run0.evaluations[0].step, 1);
  EXPECT_DOUBLE_EQ(run0.evaluations[0].metrics.at("validation/loss"), 2.4);
  // File order of snapshots and evaluations is kept.
  ASSERT_EQ(run0.order.size(), 4u);
  EXPECT_TRUE(run0.order[1].evaluation);
  EXPECT_EQ(run0.order[1].line, 3u);
  // Time is the row index when there is no time column.
  EXPECT_DOUBLE_EQ(run0.snapshots[1].time, 2.0);
}

TEST(ImportCsv, QuotedCellsAndExtraColumnsAsScalars) {
  const std::string csv = "step,\"train_loss\",note,loss_scale\n1,\"2.5\",\"a, b\",1024\n2,2.4,\"say \"\"hi\"\"\",512\n";
  const ImportResult r = run(csv);
  ASSERT_EQ(r.runs.size(), 1u);
  ASSERT_EQ(r.runs[0].snapshots.size(), 2u);
  EXPECT_DOUBLE_EQ(r.runs[0].snapshots[0].loss, 2.5);
  EXPECT_DOUBLE_EQ(r.runs[0].snapshots[1].scalars.at("loss_scale"), 512);
  EXPECT_TRUE(r.unparseable.empty());
}

TEST(ImportCsv, MapNamesColumns) {
  const std::string csv = "it,objective,g,wall,loss_code\n10,3.0,0.5,100.5,1\n20,2.9,0.4,101.5,2\n";
  EXPECT_THROW(run(csv), ImportError) << "no recognised step column without --map";
  const ImportResult r = run(csv, TraceFormat::csv,
                             {{"step", "it"}, {"loss", "objective"}, {"grad_norm", "g"}, {"time", "wall"},
                              {"scalar.code", "loss_code"}});
  ASSERT_EQ(r.runs.at(0).snapshots.size(), 2u);
  const Snapshot& s = r.runs[0].snapshots[1];
  EXPECT_EQ(s.step, 20);
  EXPECT_DOUBLE_EQ(s.loss, 2.9);
  EXPECT_DOUBLE_EQ(*s.grad_norm, 0.4);
  EXPECT_DOUBLE_EQ(s.time, 101.5);
  EXPECT_DOUBLE_EQ(s.scalars.at("code"), 2);
  EXPECT_THROW(run(csv, TraceFormat::csv, {{"step", "nope"}, {"loss", "objective"}}), ImportError);
  EXPECT_THROW(run(csv, TraceFormat::csv, {{"colour", "it"}}), ImportError);
}

TEST(ImportCsv, StepsThatGoBackStartANewRun) {
  const ImportResult r = run("step,loss\n1,3\n2,2.9\n1,3.1\n2,3.0\n");
  ASSERT_EQ(r.runs.size(), 2u);
  EXPECT_EQ(r.runs[0].run, "t.f1");
  EXPECT_EQ(r.runs[1].run, "t.f2");
  EXPECT_EQ(r.runs[1].snapshots.front().step, 1);
}

TEST(ImportLlmc, TrainEvalAndGarbage) {
  const std::string log = "s:0 tel:11.0\ns:0 trl:10.9 lr:0.0001 norm:15.2\nhello world\ns:1 trl:10.8 lr:0.0002 norm:14.0\n"
                          "s:1 eval:0.25\n";
  const ImportResult r = run(log);
  EXPECT_EQ(r.format, TraceFormat::llmc);
  ASSERT_EQ(r.runs.size(), 1u);
  ASSERT_EQ(r.runs[0].snapshots.size(), 2u);
  EXPECT_DOUBLE_EQ(*r.runs[0].snapshots[1].grad_norm, 14.0);
  EXPECT_DOUBLE_EQ(*r.runs[0].snapshots[1].lr, 0.0002);
  EXPECT_EQ(r.runs[0].evaluations.size(), 2u);
  EXPECT_DOUBLE_EQ(r.runs[0].evaluations[0].metrics.at("tel"), 11.0);
  EXPECT_EQ(lines_of(r.unparseable), (std::vector<std::size_t>{3}));
}

TEST(ImportSteplog, TrainTimeInMillisecondsAndValRows) {
  const std::string log = "step:0/100 val_loss:22.6 train_time:278ms step_avg:nanms\n"
                          "step:1/100 train_loss:22.62 train_time:81991ms step_avg:nanms\n"
                          "step:2/100 train_loss:9.59 train_time:83639ms step_avg:1.5ms\n";
  const ImportResult r = run(log);
  EXPECT_EQ(r.format, TraceFormat::steplog);
  ASSERT_EQ(r.runs.at(0).snapshots.size(), 2u);
  EXPECT_EQ(r.runs[0].snapshots[0].step, 1);
  EXPECT_DOUBLE_EQ(r.runs[0].snapshots[0].time, 81.991);
  ASSERT_EQ(r.runs[0].evaluations.size(), 1u);
  EXPECT_DOUBLE_EQ(r.runs[0].evaluations[0].metrics.at("val_loss"), 22.6);
  EXPECT_TRUE(r.unparseable.empty());
}

TEST(ImportMegatron, FieldsFragmentsAndQuirks) {
  const std::string log =
      "L10\t iteration      100/  1000 | learning rate: 1.0E-04 | lm loss: 2.50E+00 | loss scale: 4096.0 | grad norm: 0.000 |\n"
      "L12\t iteration      110/  1000 | learning rate: 1.0E-04 | lm loss: 2.40E+00 | loss scale: 2048.0 | grad norm: 1.5 |\n"
      "L13\t iteration      120/  1000 | learning rate: 1.0E-04 | loss scale: 1024.0 | grad norm: 1.5 |\n"
      "L90\t[default7]: iteration      500/  1000 | learning rate: 1.0E-04 | lm loss: 5.0 | grad norm: 960.1 |\n"
      "L91\t random text\n";
  const ImportResult r = run(log);
  EXPECT_EQ(r.format, TraceFormat::megatron);
  ASSERT_EQ(r.runs.size(), 2u) << "a jump of 77 source lines starts a new fragment";
  ASSERT_EQ(r.runs[0].snapshots.size(), 2u);
  EXPECT_FALSE(r.runs[0].snapshots[0].grad_norm.has_value()) << "grad norm 0.000 means not computed";
  EXPECT_DOUBLE_EQ(*r.runs[0].snapshots[1].grad_norm, 1.5);
  EXPECT_DOUBLE_EQ(r.runs[0].snapshots[1].scalars.at("loss_scale"), 2048.0);
  EXPECT_DOUBLE_EQ(*r.runs[0].snapshots[0].lr, 1e-4);
  EXPECT_EQ(r.runs[1].snapshots.at(0).step, 500);
  EXPECT_DOUBLE_EQ(*r.runs[1].snapshots.at(0).grad_norm, 960.1);
  EXPECT_EQ(lines_of(r.skipped), (std::vector<std::size_t>{3}));
  EXPECT_EQ(lines_of(r.unparseable), (std::vector<std::size_t>{5}));
}

TEST(Import, DetectsEachFormat) {
  EXPECT_EQ(detect_trace_format("step,loss\n1,2\n"), TraceFormat::csv);
  EXPECT_EQ(detect_trace_format("s:0 trl:1.0\ns:1 trl:0.9\n"), TraceFormat::llmc);
  EXPECT_EQ(detect_trace_format("step:1/10 train_loss:2\n"), TraceFormat::steplog);
  EXPECT_EQ(detect_trace_format(" iteration 1/ 10 | lm loss: 2 |\n"), TraceFormat::megatron);
  EXPECT_FALSE(detect_trace_format("just some words\nand more\n"));
  EXPECT_THROW(run("just some words\n"), ImportError);
}

// ------------------------------------------------------------------ the real traces

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const Snapshot* at_step(const ImportResult& r, std::int64_t step) {
  for (const auto& run : r.runs)
    for (const auto& s : run.snapshots)
      if (s.step == step) return &s;
  return nullptr;
}

fs::path traces_dir() { return fs::path(ORBIT_TRACES_DIR); }

// Every file of tests/traces except the provenance and licence notes and hyper-parameters.
std::vector<fs::path> trace_files() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(traces_dir())) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (name == "SOURCE.txt" || name == "LICENSE.txt" || name == "INDEX.txt" || name.ends_with("hparams.json"))
      continue;
    out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ImportTraces, EveryTraceImports) {
  ASSERT_TRUE(fs::is_directory(traces_dir())) << traces_dir() << " is missing";
  const auto files = trace_files();
  ASSERT_EQ(files.size(), 313u) << "a new trace? check that it imports, then raise this";
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    ImportOptions o;
    o.run = f.stem().string();
    const ImportResult r = import_trace(read(f), o);  // format detected
    EXPECT_FALSE(r.runs.empty());
    EXPECT_GT(r.training_rows, 0u);
    std::size_t snapshots = 0;
    for (const auto& run : r.runs) snapshots += run.snapshots.size();
    EXPECT_EQ(snapshots, r.training_rows);
    // Nothing is lost silently: every non-empty data line is accounted for.
    EXPECT_EQ(r.training_rows + r.evaluation_rows + r.skipped.size() + r.unparseable.size(), r.lines);
  }
}

TEST(ImportTraces, KnownEventsSurviveImport) {
  ImportOptions o;
  {
    const auto r = import_trace(read(traces_dir() / "algoperf_divergence_and_collapse/criteo_genadam_s1_t1_DIVERGE_measurements.csv"), o);
    ASSERT_EQ(r.runs.size(), 1u);
    EXPECT_EQ(r.runs[0].snapshots.size(), 74u);  // steps 0..73
    const Snapshot* s71 = at_step(r, 71);
    ASSERT_TRUE(s71);
    EXPECT_NEAR(s71->loss, 18.291977, 1e-6);
    EXPECT_TRUE(std::isinf(at_step(r, 73)->loss));
    EXPECT_TRUE(at_step(r, 50)->lr.has_value());
    EXPECT_EQ(r.skipped.size(), 26u);  // lr-only rows after the divergence
  }
  {
    const auto r = import_trace(read(traces_dir() / "algoperf_divergence_and_collapse/deepspeech_nadamp_s1_t4_GRADNORM_BLOWUP_measurements.csv"), o);
    EXPECT_TRUE(std::isinf(*at_step(r, 19500)->grad_norm));
    EXPECT_TRUE(std::isfinite(at_step(r, 19500)->loss));
  }
  {
    const auto r = import_trace(read(traces_dir() / "algoperf_finewebedu_lm_spikes/sfadamw_jax_v2_study0_SPIKE_measurements.csv"), o);
    EXPECT_NEAR(at_step(r, 30300)->loss, 9.34, 0.01);
    EXPECT_NEAR(*at_step(r, 30300)->grad_norm, 8.44, 0.01);
  }
  {
    const auto r = import_trace(read(traces_dir() / "algoperf_wmt_transformer_spikes/caspr_s3_t4_SPIKES_measurements.csv"), o);
    EXPECT_NEAR(at_step(r, 7100)->loss, 32.05, 0.01);
  }
  {
    const auto r = import_trace(read(traces_dir() / "llmc_gpt2_124M_healthy/main.log"), o);
    ASSERT_EQ(r.runs.size(), 1u);
    EXPECT_EQ(r.runs[0].snapshots.size(), 19560u);
    EXPECT_NEAR(*at_step(r, 9025)->grad_norm, 2.02, 0.01);
    EXPECT_TRUE(r.unparseable.empty());
  }
  {
    const auto r = import_trace(read(traces_dir() / "modded_nanogpt_1p5B_noisy_healthy/87bd51fd_steps_only.txt"), o);
    EXPECT_EQ(r.runs.at(0).snapshots.size(), 20344u);
    EXPECT_NEAR(at_step(r, 17992)->loss, 5.05, 0.01);
    EXPECT_EQ(r.evaluation_rows, 164u);
  }
  {
    const auto r = import_trace(read(traces_dir() / "bigscience_megatron_chronicle_fragments/tr11-176B-ml_chronicles.txt"), o);
    EXPECT_NEAR(at_step(r, 31219)->loss, 5.10, 0.01);
    EXPECT_NEAR(*at_step(r, 31219)->grad_norm, 960, 1.0);
  }
}

}  // namespace
}  // namespace orbit
