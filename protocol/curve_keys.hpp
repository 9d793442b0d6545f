// SPDX-License-Identifier: Apache-2.0
#pragma once
// ZeroMQ CURVE keys in files: `orbit keygen` writes them; orbitd and the adapters
// read them. Keys are Z85 text (40 characters for 32 bytes), as libzmq takes them.
//
//   NAME.key (mode 0600)            NAME.pub
//   public-key = "Z85..."           public-key = "Z85..."
//   secret-key = "Z85..."
//
// An allow-list file holds one public key per line, either bare or as a
// `public-key = "..."` line (so `cat *.pub > allowed` makes one); blank lines and
// `#` comments are ignored.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orbit {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// Whether `key` is 40 characters of the Z85 alphabet.
bool is_z85_key(std::string_view key);

// Each throws std::runtime_error naming the file (and line) and what is wrong.
// A secret key file that group or others may read is refused, as ssh refuses one.
CurveKeyPair read_secret_key_file(const std::filesystem::path& file);
std::string read_public_key_file(const std::filesystem::path& file);
// At least one key; duplicates are kept once.
std::vector<std::string> read_allowed_keys_file(const std::filesystem::path& file);

// What a CURVE client needs: orbitd's public key and its own pair (all Z85).
struct CurveClientKeys {
  std::string server_public_key;
  CurveKeyPair own;
};
// `server_key` is orbitd's public key (Z85) or its NAME.pub; `key_file` the client's
// NAME.key. An empty one takes $ORBIT_CURVE_SERVER_KEY / $ORBIT_CURVE_KEY. nullopt
// when neither is given anywhere (a plain connection); std::runtime_error when only
// one is, or a file is wrong.
std::optional<CurveClientKeys> curve_client_keys(std::string server_key, std::string key_file);

std::string format_secret_key_file(const CurveKeyPair& keys);
std::string format_public_key_file(const std::string& public_key);

}  // namespace orbit
