// SPDX-License-Identifier: Apache-2.0
#include "protocol/curve_keys.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <sys/stat.h>

namespace orbit {
namespace {

constexpr std::string_view kZ85 =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::string read_text(const std::filesystem::path& file, const char* what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(std::string(what) + " " + file.string() + ": cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (1u << 20)) throw std::runtime_error(std::string(what) + " " + file.string() + ": over 1 MiB");
  return text.str();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

struct KeyLine {
  std::string name;  // "" for a bare key
  std::string value;
};

// One meaningful line: `NAME = "VALUE"` or a bare value; nullopt for blank and comment lines.
std::optional<KeyLine> parse_line(std::string_view line, const std::filesystem::path& file, int number) {
  line = trim(line);
  if (line.empty() || line.front() == '#') return std::nullopt;
  const auto eq = line.find('=');
  // Z85 has '=' in its alphabet: a bare key is exactly 40 characters without spaces.
  if (eq == std::string_view::npos || (line.size() == 40 && line.find(' ') == std::string_view::npos))
    return KeyLine{"", std::string(line)};
  std::string_view value = trim(line.substr(eq + 1));
  if (value.size() < 2 || value.front() != '"' || value.back() != '"') {
    throw std::runtime_error(file.string() + ":" + std::to_string(number) + ": expected NAME = \"Z85 KEY\"");
  }
  return KeyLine{std::string(trim(line.substr(0, eq))), std::string(value.substr(1, value.size() - 2))};
}

std::string checked_key(const std::string& key, const std::filesystem::path& file, int number) {
  if (!is_z85_key(key)) {
    throw std::runtime_error(file.string() + ":" + std::to_string(number) +
                             ": not a CURVE key (40 Z85 characters; `orbit keygen` writes them)");
  }
  return key;
}

}  // namespace

bool is_z85_key(std::string_view key) {
  return key.size() == 40 && std::all_of(key.begin(), key.end(), [](char c) { return kZ85.find(c) != kZ85.npos; });
}

CurveKeyPair read_secret_key_file(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw std::runtime_error("CURVE secret key " + file.string() + ": cannot open file");
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    throw std::runtime_error("CURVE secret key " + file.string() +
                             ": group or others may read it; chmod 600 it (orbit keygen writes it so)");
  }
  std::istringstream in(read_text(file, "CURVE secret key"));
  CurveKeyPair keys;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    auto kv = parse_line(line, file, n);
    if (!kv) continue;
    if (kv->name == "public-key") keys.public_key = checked_key(kv->value, file, n);
    else if (kv->name == "secret-key") keys.secret_key = checked_key(kv->value, file, n);
    else throw std::runtime_error(file.string() + ":" + std::to_string(n) + ": expected public-key or secret-key");
  }
  if (keys.public_key.empty() || keys.secret_key.empty()) {
    throw std::runtime_error("CURVE secret key " + file.string() +
                             ": needs both public-key and secret-key lines (orbit keygen writes NAME.key)");
  }
  return keys;
}

std::string read_public_key_file(const std::filesystem::path& file) {
  std::istringstream in(read_text(file, "CURVE public key"));
  std::string line, key;
  for (int n = 1; std::getline(in, line); ++n) {
    auto kv = parse_line(line, file, n);
    if (!kv || kv->name == "secret-key") continue;  // a NAME.key file names its public key too
    if (!kv->name.empty() && kv->name != "public-key")
      throw std::runtime_error(file.string() + ":" + std::to_string(n) + ": expected public-key");
    if (!key.empty()) throw std::runtime_error(file.string() + ":" + std::to_string(n) + ": a second key");
    key = checked_key(kv->value, file, n);
  }
  if (key.empty()) throw std::runtime_error("CURVE public key " + file.string() + ": no public-key line");
  return key;
}

std::vector<std::string> read_allowed_keys_file(const std::filesystem::path& file) {
  std::istringstream in(read_text(file, "CURVE allow-list"));
  std::vector<std::string> keys;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    auto kv = parse_line(line, file, n);
    if (!kv) continue;
    if (kv->name == "secret-key")
      throw std::runtime_error(file.string() + ":" + std::to_string(n) +
                               ": a secret key in an allow-list; list public keys only (NAME.pub)");
    if (!kv->name.empty() && kv->name != "public-key")
      throw std::runtime_error(file.string() + ":" + std::to_string(n) + ": expected a public key");
    std::string key = checked_key(kv->value, file, n);
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(std::move(key));
  }
  if (keys.empty()) throw std::runtime_error("CURVE allow-list " + file.string() + ": no keys");
  return keys;
}

std::optional<CurveClientKeys> curve_client_keys(std::string server_key, std::string key_file) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  if (server_key.empty()) server_key = env("ORBIT_CURVE_SERVER_KEY");
  if (key_file.empty()) key_file = env("ORBIT_CURVE_KEY");
  if (server_key.empty() && key_file.empty()) return std::nullopt;
  if (server_key.empty() || key_file.empty()) {
    throw std::runtime_error(std::string("CURVE needs both keys; ") +
                             (server_key.empty() ? "orbitd's public key (NAME.pub, $ORBIT_CURVE_SERVER_KEY)"
                                                 : "the client's key pair (NAME.key, $ORBIT_CURVE_KEY)") +
                             " is missing");
  }
  CurveClientKeys keys;
  std::error_code ec;
  keys.server_public_key = is_z85_key(server_key) && !std::filesystem::exists(server_key, ec)
                               ? server_key
                               : read_public_key_file(server_key);
  keys.own = read_secret_key_file(key_file);
  return keys;
}

std::string format_secret_key_file(const CurveKeyPair& keys) {
  return "# Orbit CURVE key pair (orbit keygen). Keep it private: mode 0600, never in an allow-list.\n"
         "public-key = \"" + keys.public_key + "\"\nsecret-key = \"" + keys.secret_key + "\"\n";
}

std::string format_public_key_file(const std::string& public_key) {
  return "# Orbit CURVE public key (orbit keygen); add it to an allow-list to let its holder in.\n"
         "public-key = \"" + public_key + "\"\n";
}

}  // namespace orbit
