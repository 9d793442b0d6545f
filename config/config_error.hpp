// SPDX-License-Identifier: Apache-2.0
#pragma once
// The one exception type of configuration loading: it names the file, the key
// (dotted TOML path) and what is wrong, so a person can fix it without guessing.

#include <stdexcept>
#include <string>

namespace orbit {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, std::string key, std::string reason)
      : std::runtime_error(file + ": " + (key.empty() ? std::string() : "key '" + key + "': ") + reason),
        file_(std::move(file)), key_(std::move(key)), reason_(std::move(reason)) {}

  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string file_;
  std::string key_;
  std::string reason_;
};

}  // namespace orbit
