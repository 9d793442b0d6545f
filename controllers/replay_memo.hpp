// SPDX-License-Identifier: Apache-2.0
#pragma once
// The calls one deterministic filter received in one replay of a recording, with
// what it answered: for a caller that replays the same recording through many
// Navigators whose configs differ elsewhere (tune). A filter that follows the memo
// answers from it while its own calls are the recorded calls (the same inputs and
// params, bit for bit, with resets at the same places: its state is then the
// recorded filter's state); at the first call that differs it rebuilds its state by
// replaying the recorded inputs since its last reset and computes for itself from
// there on. So decisions are the same as without the memo, whatever the config or
// the decisions do to the filter's inputs; a memo only saves work where they do not.
//
// A memo is written by one filter (record_into) and then only read (follow), by any
// number of threads.

#include <cstddef>
#include <utility>
#include <vector>

namespace orbit {

template <class Input, class Output, class Params>
class ReplayMemo {
 public:
  struct Call {
    Input input;
    Output output;
    bool fresh = false;  // the first call after a reset (or the filter's first call)
  };

  const std::vector<Call>& calls() const { return calls_; }
  const Params& params() const { return params_; }

  // Recording: one call. All calls share the params of the first; a call with others
  // ends the recording there (a follower leaves the memo at that call).
  void add(const Input& input, const Output& output, const Params& params, bool fresh) {
    if (closed_) return;
    if (calls_.empty()) params_ = params;
    else if (!same(params, params_)) {
      closed_ = true;
      return;
    }
    calls_.push_back(Call{input, output, fresh});
  }

 private:
  std::vector<Call> calls_;
  Params params_{};
  bool closed_ = false;
};

// A filter's side of a memo: records into one, or follows one. `same(a, b)` must
// hold only when a and b are equal bit for bit (Input and Params).
template <class Input, class Output, class Params>
class MemoCursor {
 public:
  using Memo = ReplayMemo<Input, Output, Params>;

  void record_into(Memo* memo) { recording_ = memo; }
  // The memo ends here: what comes next is a change it does not record.
  void stop_recording() { recording_ = nullptr; }
  // Only on a filter in its reset state (as constructed or just reset).
  void follow(const Memo* memo) {
    following_ = memo;
    next_ = 0;
  }
  bool following() const { return following_ != nullptr; }

  // The filter was reset: its next call starts a history.
  void on_reset() { fresh_ = true; }

  // While following: the recorded output of this call when it is the next recorded
  // call (and the calls since the last reset were the recorded ones), else nullptr.
  const Output* recorded(const Input& input, const Params& params) {
    const auto& calls = following_->calls();
    if (next_ >= calls.size()) return nullptr;
    const auto& call = calls[next_];
    if (call.fresh != fresh_ || !same(call.input, input) || !same(params, following_->params())) return nullptr;
    if (fresh_) segment_ = next_;
    fresh_ = false;
    ++next_;
    return &call.output;
  }

  // Stops following. `replay(input, params)` is called with every recorded call
  // since the filter's last reset, in order: on a filter in its reset state they
  // rebuild the state the followed calls stand for.
  template <class Replay>
  void leave(Replay&& replay) {
    const Memo* memo = std::exchange(following_, nullptr);
    if (fresh_) return;
    for (std::size_t i = segment_; i < next_; ++i) replay(memo->calls()[i].input, memo->params());
  }

  // The filter computed this call itself.
  void computed(const Input& input, const Output& output, const Params& params) {
    if (recording_) recording_->add(input, output, params, fresh_);
    fresh_ = false;
  }

 private:
  Memo* recording_ = nullptr;
  const Memo* following_ = nullptr;
  std::size_t next_ = 0;     // the recorded call the next call must equal
  std::size_t segment_ = 0;  // the first recorded call since the last reset
  bool fresh_ = true;
};

}  // namespace orbit
