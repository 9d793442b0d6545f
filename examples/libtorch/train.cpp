// SPDX-License-Identifier: Apache-2.0
// A small char-level causal transformer LM on the bundled corpus, trained in C++
// with LibTorch, with or without Orbit in the loop.
//
//   orbit_libtorch_example --control off --steps 300
//   orbit_libtorch_example --control on --endpoint tcp://127.0.0.1:5555 --steps 300
//
// The trainer owns its lr schedule (linear warmup, then constant) and writes it
// straight into the optimizer's options each step; the adapter composes burns with
// it. Every burn applied is printed as it takes effect.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "adapters/libtorch/libtorch_orbit.hpp"
#include "examples/libtorch/text_corpus.hpp"

namespace {

struct Flags {
  bool control = true;
  std::string endpoint;
  std::string run = "libtorch-example";
  std::int64_t steps = 300;
  double lr = 3e-3;
  std::int64_t warmup = 0;
  std::uint64_t seed = 0;
  std::string corpus = ORBIT_DEFAULT_CORPUS;
  std::int64_t d = 64;
  std::int64_t layers = 2;
  std::int64_t heads = 4;
  std::int64_t context = 64;
  std::int64_t batch = 16;
  std::int64_t log_every = 25;
  std::int64_t probe_every = 10;
  std::int64_t checkpoint_every = 10;
  std::int64_t threads = 1;
  std::int64_t connect_ms = 3000;
  std::int64_t val_windows = 256;
};

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: orbit_libtorch_example [--control on|off] [--endpoint EP] [--run ID]\n"
               "  [--steps N] [--lr X] [--warmup N] [--seed N] [--corpus PATH] [--d N]\n"
               "  [--layers N] [--heads N] [--context N] [--batch N] [--log-every N]\n"
               "  [--probe-every N] [--checkpoint-every N] [--threads N] [--connect-ms N] [--val-windows N]\n"
               "--endpoint defaults to $ORBIT_ENDPOINT. --control off trains without Orbit.\n");
}

Flags parse(int argc, char** argv) {
  Flags f;
  if (const char* env = std::getenv("ORBIT_ENDPOINT")) f.endpoint = env;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      usage(stderr);
      throw std::invalid_argument("flag " + a + " needs a value");
    }
    const std::string v = argv[++i];
    if (a == "--control") {
      if (v != "on" && v != "off") throw std::invalid_argument("--control takes on or off");
      f.control = v == "on";
    } else if (a == "--endpoint") f.endpoint = v;
    else if (a == "--run") f.run = v;
    else if (a == "--steps") f.steps = std::stoll(v);
    else if (a == "--lr") f.lr = std::stod(v);
    else if (a == "--warmup") f.warmup = std::stoll(v);
    else if (a == "--seed") f.seed = std::stoull(v);
    else if (a == "--corpus") f.corpus = v;
    else if (a == "--d") f.d = std::stoll(v);
    else if (a == "--layers") f.layers = std::stoll(v);
    else if (a == "--heads") f.heads = std::stoll(v);
    else if (a == "--context") f.context = std::stoll(v);
    else if (a == "--batch") f.batch = std::stoll(v);
    else if (a == "--log-every") f.log_every = std::stoll(v);
    else if (a == "--probe-every") f.probe_every = std::stoll(v);
    else if (a == "--checkpoint-every") f.checkpoint_every = std::stoll(v);
    else if (a == "--threads") f.threads = std::stoll(v);
    else if (a == "--connect-ms") f.connect_ms = std::stoll(v);
    else if (a == "--val-windows") f.val_windows = std::stoll(v);
    else {
      usage(stderr);
      throw std::invalid_argument("unknown flag " + a);
    }
  }
  if (f.control && f.endpoint.empty())
    throw std::invalid_argument("--control on needs --endpoint (or $ORBIT_ENDPOINT)");
  return f;
}

// ---- model ---------------------------------------------------------------------

// Hand-written attention so the probabilities can be handed to Orbit's probe.
struct CausalSelfAttentionImpl : torch::nn::Module {
  CausalSelfAttentionImpl(std::int64_t d, std::int64_t heads)
      : heads(heads),
        qkv(register_module("qkv", torch::nn::Linear(d, 3 * d))),
        proj(register_module("proj", torch::nn::Linear(d, d))) {}

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, torch::Tensor* probs) {
    const auto b = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads;
    auto parts = qkv(x).view({b, t, 3, heads, hd}).permute({2, 0, 3, 1, 4});
    auto att = torch::matmul(parts[0], parts[1].transpose(-2, -1)) / std::sqrt(double(hd)) + mask;
    att = att.softmax(-1);
    if (probs) *probs = att.detach();
    auto y = torch::matmul(att, parts[2]).transpose(1, 2).reshape({b, t, d});
    return proj(y);
  }

  std::int64_t heads;
  torch::nn::Linear qkv, proj;
};
TORCH_MODULE(CausalSelfAttention);

struct BlockImpl : torch::nn::Module {
  BlockImpl(std::int64_t d, std::int64_t heads)
      : attn(register_module("attn", CausalSelfAttention(d, heads))),
        norm1(register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        norm2(register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        fc(register_module("fc", torch::nn::Linear(d, 4 * d))),
        out(register_module("out", torch::nn::Linear(4 * d, d))) {}

  // Pre-LN block.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask, torch::Tensor* probs) {
    x = x + attn->forward(norm1(x), mask, probs);
    return x + out(torch::gelu(fc(norm2(x))));
  }

  CausalSelfAttention attn;
  torch::nn::LayerNorm norm1, norm2;
  torch::nn::Linear fc, out;
};
TORCH_MODULE(Block);

struct CharTransformerImpl : torch::nn::Module {
  CharTransformerImpl(std::int64_t vocab, std::int64_t d, std::int64_t layers, std::int64_t heads,
                      std::int64_t context)
      : tok(register_module("tok", torch::nn::Embedding(vocab, d))),
        pos(register_module("pos", torch::nn::Embedding(context, d))),
        ln_f(register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        head(register_module("head", torch::nn::Linear(torch::nn::LinearOptions(d, vocab).bias(false)))) {
    for (std::int64_t i = 0; i < layers; ++i)
      blocks.push_back(register_module("block" + std::to_string(i), Block(d, heads)));
    mask = register_buffer("mask", torch::triu(torch::full({context, context}, -INFINITY), 1));
    torch::NoGradGuard no_grad;
    for (auto& p : named_parameters()) {
      if (p.key().find("norm") != std::string::npos || p.key().find("ln_f") != std::string::npos) continue;
      if (p.key().ends_with(".bias")) p.value().zero_();
      else p.value().normal_(0.0, 0.02);
    }
  }

  // Hands out per-layer attention probabilities and hidden states when asked.
  torch::Tensor forward(const torch::Tensor& idx, std::vector<torch::Tensor>* probs = nullptr,
                        std::vector<torch::Tensor>* hidden = nullptr) {
    const auto t = idx.size(1);
    auto x = tok(idx) + pos(torch::arange(t, idx.options()));
    auto m = mask.index({torch::indexing::Slice(0, t), torch::indexing::Slice(0, t)});
    for (auto& block : blocks) {
      torch::Tensor p;
      x = block->forward(x, m, probs ? &p : nullptr);
      if (probs) probs->push_back(p);
      if (hidden) hidden->push_back(x.detach());
    }
    return head(ln_f(x));
  }

  torch::nn::Embedding tok, pos;
  std::vector<Block> blocks;
  torch::nn::LayerNorm ln_f;
  torch::nn::Linear head;
  torch::Tensor mask;
};
TORCH_MODULE(CharTransformer);

// ---- data ----------------------------------------------------------------------

// Windows of context + 1 ids drawn by domain weight; its own RNG, so the data
// stream does not depend on torch's.
class Batcher {
 public:
  Batcher(const orbit::TextCorpus& corpus, std::int64_t context, std::uint64_t seed)
      : corpus_(corpus), context_(context), rng_(seed) {
    for (const auto& [name, ids] : corpus.train)
      if (static_cast<std::int64_t>(ids.size()) > context + 1) domains_.push_back(name);
    if (domains_.empty()) throw std::runtime_error("corpus has no domain longer than the context");
  }

  const std::vector<std::string>& domains() const { return domains_; }

  // Returns x, y and each row's domain index. Domains missing from `weights` keep
  // weight 1; an empty map is the uniform base mixture.
  std::tuple<torch::Tensor, torch::Tensor, std::vector<std::size_t>> next(
      std::int64_t batch, const std::map<std::string, double>& weights) {
    std::vector<double> w;
    for (const auto& d : domains_) {
      auto it = weights.find(d);
      w.push_back(it == weights.end() ? 1.0 : std::max(it->second, 0.0));
    }
    double total = 0.0;
    for (double v : w) total += v;
    if (total <= 0.0) w.assign(w.size(), 1.0);
    std::discrete_distribution<std::size_t> pick(w.begin(), w.end());
    auto x = torch::empty({batch, context_}, torch::kLong);
    auto y = torch::empty({batch, context_}, torch::kLong);
    std::vector<std::size_t> rows;
    auto xa = x.accessor<std::int64_t, 2>();
    auto ya = y.accessor<std::int64_t, 2>();
    for (std::int64_t b = 0; b < batch; ++b) {
      const std::size_t d = pick(rng_);
      const auto& ids = corpus_.train.at(domains_[d]);
      std::uniform_int_distribution<std::size_t> start(0, ids.size() - context_ - 2);
      const std::size_t s = start(rng_);
      for (std::int64_t t = 0; t < context_; ++t) {
        xa[b][t] = ids[s + t];
        ya[b][t] = ids[s + t + 1];
      }
      rows.push_back(d);
    }
    return {x, y, rows};
  }

 private:
  const orbit::TextCorpus& corpus_;
  std::int64_t context_;
  std::mt19937_64 rng_;
  std::vector<std::string> domains_;
};

double evaluate(CharTransformer& model, const orbit::TextCorpus& corpus, std::int64_t context,
                std::int64_t windows, std::int64_t batch) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto& val = corpus.val;
  const std::int64_t last = static_cast<std::int64_t>(val.size()) - context - 2;
  if (last <= 0) return NAN;
  double total = 0.0;
  std::int64_t count = 0;
  for (std::int64_t k = 0; k < windows; k += batch) {
    const std::int64_t n = std::min(batch, windows - k);
    auto x = torch::empty({n, context}, torch::kLong);
    auto y = torch::empty({n, context}, torch::kLong);
    for (std::int64_t b = 0; b < n; ++b) {
      const std::int64_t s = (k + b) * last / std::max<std::int64_t>(windows - 1, 1);
      for (std::int64_t t = 0; t < context; ++t) {
        x[b][t] = val[s + t];
        y[b][t] = val[s + t + 1];
      }
    }
    auto logits = model->forward(x);
    total += torch::nn::functional::cross_entropy(
                 logits.reshape({-1, logits.size(-1)}), y.reshape({-1}),
                 torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                 .item<double>();
    count += y.numel();
  }
  model->train();
  return total / static_cast<double>(count);
}

void print_burn(const orbit::BurnRecord& r) {
  std::printf("burn seq %lld at step %lld: lr x%.3f -> %.3e  (%s, %s: %s)%s",
              static_cast<long long>(r.seq), static_cast<long long>(r.step), r.lr_scale, r.lr,
              r.state.c_str(), r.basin.c_str(), r.reason.c_str(), r.late ? " late" : "");
  if (r.rollback_to_step) {
    if (r.restored_step)
      std::printf("  rollback to <= %lld: restored step %lld", static_cast<long long>(*r.rollback_to_step),
                  static_cast<long long>(*r.restored_step));
    else
      std::printf("  rollback to <= %lld: no checkpoint that old", static_cast<long long>(*r.rollback_to_step));
  }
  std::printf("\n");
}

int run(const Flags& f) {
  torch::set_num_threads(static_cast<int>(f.threads));
  torch::manual_seed(f.seed);
  const auto t0 = std::chrono::steady_clock::now();
  const orbit::TextCorpus corpus = orbit::load_text_corpus(f.corpus);
  Batcher batcher(corpus, f.context, f.seed);

  CharTransformer model(orbit::vocabulary_size(), f.d, f.layers, f.heads, f.context);
  torch::optim::AdamW optimizer(
      model->parameters(),
      torch::optim::AdamWOptions(f.lr).betas({0.9, 0.99}).weight_decay(0.0));

  std::optional<orbit::LibTorchOrbit> orbit;
  if (f.control) {
    orbit.emplace(orbit::LibTorchOrbitOptions{.endpoint = f.endpoint,
                                              .run = f.run,
                                              .rank = 0,
                                              .world_size = 1,
                                              .domains = batcher.domains(),
                                              .applies_domain_weights = true,
                                              .probe_every = f.probe_every,
                                              .checkpoint_every = f.checkpoint_every});
    orbit->attach(*model, optimizer);
    const bool up = orbit->connect(std::chrono::milliseconds(f.connect_ms));
    std::printf("orbit: %s %s\n", up ? "connected to" : "no welcome yet from (training goes on; it keeps trying)",
                f.endpoint.c_str());
  }
  std::printf("corpus %zu documents, %zu domains, %zu val chars; model d=%lld layers=%lld heads=%lld "
              "context=%lld; %lld steps at lr %.2e (warmup %lld), control %s\n",
              corpus.documents, batcher.domains().size(), corpus.val.size(),
              static_cast<long long>(f.d), static_cast<long long>(f.layers),
              static_cast<long long>(f.heads), static_cast<long long>(f.context),
              static_cast<long long>(f.steps), f.lr, static_cast<long long>(f.warmup),
              f.control ? "on" : "off");
  std::fflush(stdout);

  std::size_t burns_seen = 0;
  double smoothed = NAN;
  for (std::int64_t step = 0; step < f.steps; ++step) {
    // The trainer's own schedule, written straight into the optimizer.
    const double lr = f.warmup > 0 && step < f.warmup ? f.lr * double(step + 1) / double(f.warmup) : f.lr;
    for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);

    const bool probe = orbit && orbit->probe_due(step);
    std::vector<torch::Tensor> probs, hidden;
    auto [x, y, rows] = batcher.next(f.batch, orbit ? orbit->domain_weights() : std::map<std::string, double>{});
    for (std::int64_t skip = orbit ? orbit->take_skip_batches() : 0; skip > 0; --skip)
      std::tie(x, y, rows) = batcher.next(f.batch, orbit->domain_weights());

    auto logits = model->forward(x, probe ? &probs : nullptr, probe ? &hidden : nullptr);
    auto per_token = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), y.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    auto loss = per_token.mean();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    const double loss_value = loss.item<double>();
    smoothed = std::isnan(smoothed) ? loss_value : 0.9 * smoothed + 0.1 * loss_value;

    if (orbit) {
      // Per-domain loss of this batch.
      auto per_row = per_token.detach().view({f.batch, f.context}).mean(1);
      std::map<std::string, std::pair<double, int>> by_domain;
      for (std::int64_t b = 0; b < f.batch; ++b) {
        auto& acc = by_domain[batcher.domains()[rows[b]]];
        acc.first += per_row[b].item<double>();
        acc.second += 1;
      }
      for (const auto& [name, acc] : by_domain) orbit->set_domain_loss(name, acc.first / acc.second);
      orbit->set_tokens((step + 1) * f.batch * f.context);
      if (probe) {
        for (std::size_t l = 0; l < probs.size(); ++l) {
          orbit->probe_attention(std::to_string(l), probs[l]);
          orbit->probe_hidden(std::to_string(l), hidden[l]);
        }
        orbit->probe_weight("head", model->head->weight);
      }
      orbit->step(step, loss_value);
      // A burn is printed once acknowledged: after the first step it governed ran.
      for (const auto& burns = orbit->applied_burns(); burns_seen < burns.size() && burns[burns_seen].acked; ++burns_seen)
        print_burn(burns[burns_seen]);
    }

    if ((step + 1) % f.log_every == 0 || step + 1 == f.steps) {
      std::printf("step %5lld  loss %.4f  (ema %.4f)  lr %.3e", static_cast<long long>(step + 1),
                  loss_value, smoothed, optimizer.param_groups()[0].options().get_lr());
      if (orbit) {
        std::printf("  scale %.3f", orbit->lr_scale());
        if (const auto& st = orbit->last_state()) std::printf("  %s %s", st->state.c_str(), st->basin.c_str());
        else std::printf("  %s", orbit->connected() ? "connected" : "no daemon");
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  const double val = evaluate(model, corpus, f.context, f.val_windows, f.batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("done: %lld steps in %.1f s, final val loss %.4f\n", static_cast<long long>(f.steps), seconds, val);
  if (orbit) {
    const auto c = orbit->counters();
    std::printf("orbit: %zu burns applied; snapshots sent %llu, dropped %llu, states %llu, burns %llu, errors %llu\n",
                orbit->applied_burns().size(), static_cast<unsigned long long>(c.snapshots_sent),
                static_cast<unsigned long long>(c.dropped), static_cast<unsigned long long>(c.states),
                static_cast<unsigned long long>(c.burns), static_cast<unsigned long long>(c.errors));
    std::size_t rollbacks = 0, restored = 0, unreached = 0;
    for (const auto& r : orbit->applied_burns()) {
      rollbacks += r.rollback_to_step ? 1 : 0;
      restored += r.restored_step ? 1 : 0;
      unreached += r.acked ? 0 : 1;
    }
    std::printf("orbit: %zu rollbacks asked, %zu restored a checkpoint; %zu burn(s) due after the last step\n",
                rollbacks, restored, unreached);
    if (orbit->internal_errors() > 0)
      std::printf("orbit: %llu internal errors, last: %s\n",
                  static_cast<unsigned long long>(orbit->internal_errors()), orbit->last_internal_error().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orbit_libtorch_example: %s\n", e.what());
    return 2;
  }
}
