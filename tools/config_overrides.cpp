// SPDX-License-Identifier: Apache-2.0
#include "tools/config_overrides.hpp"

#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "config/config_error.hpp"

namespace orbit {

namespace {

std::vector<std::string> split_dots(const std::string& key) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : key) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

}  // namespace

std::string full_config_key(const std::string& key) {
  static const std::set<std::string> sections = {"daemon", "limits", "logging", "journal", "controller"};
  const auto dot = key.find('.');
  const std::string first = key.substr(0, dot);
  return sections.count(first) ? key : "controller." + key;
}

std::string apply_overrides(const std::string& toml_text, const Overrides& overrides, const std::string& source) {
  if (overrides.empty()) return toml_text;
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    throw ConfigError(source, "", std::string(e.description()));
  }
  for (const auto& [raw_key, raw_value] : overrides) {
    const std::string key = full_config_key(raw_key);
    const auto parts = split_dots(key);
    for (const auto& p : parts)
      if (p.empty()) throw ConfigError("--set", key, "empty part in the key");
    toml::table* t = &root;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      toml::node* n = t->get(parts[i]);
      if (!n) n = &t->insert_or_assign(parts[i], toml::table{}).first->second;
      t = n->as_table();
      if (!t) throw ConfigError("--set", key, "'" + parts[i] + "' is not a table");
    }
    toml::table parsed;
    bool is_toml = true;
    try {
      parsed = toml::parse("v = " + raw_value);
    } catch (const toml::parse_error&) {
      is_toml = false;
    }
    if (is_toml && parsed.contains("v")) {
      parsed.get("v")->visit([&](auto&& node) { t->insert_or_assign(parts.back(), node); });
    } else {
      t->insert_or_assign(parts.back(), raw_value);
    }
  }
  std::ostringstream out;
  out << root;
  return out.str();
}

DaemonConfig config_with_overrides(const std::string& toml_text, const Overrides& overrides,
                                   const std::string& source) {
  DaemonConfig c = parse_daemon_config(apply_overrides(toml_text, overrides, source), source);
  return c;
}

}  // namespace orbit
