// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the adapter protocol decoder and the control decoder.
// Any input must give a message or an error, never a crash or a sanitizer report;
// a message that decodes must encode to bytes that decode again to the same bytes
// (the canonical encoding is a fixed point, protocol/SPEC.md section 7).
// Seeds: protocol/vectors (valid, lenient and invalid golden messages).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "protocol/codec.hpp"
#include "protocol/control.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  orbit::DecodeLimits limits;
  limits.max_spectrum_length = 4096;  // small limits reach the too_large paths with small inputs
  limits.max_spectra = 8;
  limits.max_domains = 16;
  limits.max_scalars = 16;
  const orbit::DecodeResult decoded = orbit::decode(bytes, limits);
  if (decoded.ok()) {
    const std::string canonical = orbit::encode(*decoded.message);
    const orbit::DecodeResult again = orbit::decode(canonical, limits);
    if (!again.ok()) {
      std::fprintf(stderr, "re-decoding the encoded message failed: %s\n", again.error.message.c_str());
      std::abort();
    }
    if (orbit::encode(*again.message) != canonical) {
      std::fprintf(stderr, "encode(decode(encode(m))) differs from encode(m)\n");
      std::abort();
    }
  }
  (void)orbit::decode_control(bytes, limits);
  return 0;
}
