// SPDX-License-Identifier: Apache-2.0
// A program a C++ user of Orbit would write: encode a SNAPSHOT with Orbit::protocol,
// decode it back, and check that bad bytes come back as an error, not a crash.
// Built by both consumer projects beside this file; exit status 0 means it all held.
#include <cstdio>
#include <string>
#include <variant>

#include "protocol/codec.hpp"
#include "protocol/messages.hpp"

int main() {
  orbit::Snapshot sent;
  sent.run = "consumer-run";
  sent.rank = 1;
  sent.step = 42;
  sent.time = 1700000000.5;
  sent.loss = 2.25;
  sent.grad_norm = 0.75;
  sent.lr = 3e-4;
  sent.spectra["attn.0"] = {4.0f, 2.0f, 1.0f, 0.5f};

  const std::string bytes = orbit::encode(orbit::Message{sent});
  const orbit::DecodeResult decoded = orbit::decode(bytes);
  if (!decoded.ok()) {
    std::fprintf(stderr, "decode failed: %s\n", decoded.error.message.c_str());
    return 1;
  }
  const auto* got = std::get_if<orbit::Snapshot>(&*decoded.message);
  if (!got || got->run != sent.run || got->rank != sent.rank || got->step != sent.step || got->loss != sent.loss ||
      got->grad_norm != sent.grad_norm || got->lr != sent.lr || got->spectra != sent.spectra) {
    std::fprintf(stderr, "the decoded snapshot differs from the one encoded\n");
    return 1;
  }

  const orbit::DecodeResult garbage = orbit::decode(std::string_view("\xc1 not msgpack"));
  if (garbage.ok() || garbage.error.message.empty()) {
    std::fprintf(stderr, "bad bytes were not reported as an error\n");
    return 1;
  }
  std::printf("snapshot round trip: %zu bytes, type %s; bad bytes: \"%s\"\n", bytes.size(),
              std::string(orbit::type_name(*decoded.message)).c_str(), garbage.error.message.c_str());
  return 0;
}
