// SPDX-License-Identifier: Apache-2.0
#pragma once
// The one TOML reader of the project: orbitd's sections, the controller's
// sections, basin maps, curriculum phases and replay labels all read their tables
// through TomlTable. Every error is a ConfigError naming the file, the dotted key
// and the reason, and a key nobody asked for is an error (done()), so a typo
// never silently becomes a default.

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "config/config_error.hpp"

namespace orbit {

// Parses TOML text; a syntax error is a ConfigError with its line and column.
toml::table parse_toml(std::string_view text, const std::string& source);
// The same for a file; one that cannot be read is a ConfigError too.
toml::table load_toml_file(const std::string& path);

// One TOML table being read: remembers which keys were asked for, so anything
// else can be rejected as unknown (a typo never silently becomes a default).
class TomlTable {
 public:
  TomlTable(const toml::table* table, std::string path, const std::string& file)
      : table_(table), path_(std::move(path)), file_(file) {}

  std::string key(std::string_view k) const { return path_.empty() ? std::string(k) : path_ + "." + std::string(k); }
  [[noreturn]] void fail(std::string_view k, const std::string& why) const { throw ConfigError(file_, key(k), why); }
  const std::string& file() const { return file_; }

  const toml::node* node(std::string_view k) {
    known_.insert(std::string(k));
    return table_ ? table_->get(k) : nullptr;
  }

  void number(std::string_view k, double& out, double lo, double hi, bool lo_open = false) {
    const toml::node* n = node(k);
    if (!n) return;
    auto v = n->value<double>();  // integers are numbers too
    if (!v || !(n->is_floating_point() || n->is_integer())) fail(k, "must be a number");
    if (!std::isfinite(*v) || *v < lo || *v > hi || (lo_open && *v == lo)) {
      std::ostringstream range;
      range << "must be in " << (lo_open ? "(" : "[") << lo << ", " << hi << "], got " << *v;
      fail(k, range.str());
    }
    out = *v;
  }
  template <class Int>
  void integer(std::string_view k, Int& out, std::int64_t lo, std::int64_t hi) {
    const toml::node* n = node(k);
    if (!n) return;
    if (!n->is_integer()) fail(k, "must be an integer");
    const std::int64_t v = n->as_integer()->get();
    if (v < lo || v > hi) {
      fail(k, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
    }
    out = static_cast<Int>(v);
  }
  void boolean(std::string_view k, bool& out) {
    const toml::node* n = node(k);
    if (!n) return;
    if (!n->is_boolean()) fail(k, "must be true or false");
    out = n->as_boolean()->get();
  }
  std::optional<std::string> string(std::string_view k) {
    const toml::node* n = node(k);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(k, "must be a string");
    return n->as_string()->get();
  }
  void string(std::string_view k, std::string& out) {
    if (auto v = string(k)) out = std::move(*v);
  }
  // One of `allowed`, or an error that lists them.
  void choice(std::string_view k, std::string& out, std::initializer_list<std::string_view> allowed) {
    auto v = string(k);
    if (!v) return;
    for (auto a : allowed) {
      if (*v == a) {
        out = std::move(*v);
        return;
      }
    }
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string("\"") + std::string(a) + "\"";
    fail(k, "must be one of " + list + ", got \"" + *v + "\"");
  }
  void strings(std::string_view k, std::vector<std::string>& out, bool allow_empty_list = true) {
    const toml::node* n = node(k);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) fail(k, "must be an array of strings");
    std::vector<std::string> v;
    for (const auto& e : *a) {
      if (!e.is_string()) fail(k, "must be an array of strings");
      if (e.as_string()->get().empty()) fail(k, "must not contain empty strings");
      v.push_back(e.as_string()->get());
    }
    if (!allow_empty_list && v.empty()) fail(k, "must not be empty");
    out = std::move(v);
  }
  const toml::table* table(std::string_view k) {
    const toml::node* n = node(k);
    if (!n) return nullptr;
    if (!n->is_table()) fail(k, "must be a table ([" + key(k) + "])");
    return n->as_table();
  }
  const toml::array* tables(std::string_view k) {
    const toml::node* n = node(k);
    if (!n) return nullptr;
    const toml::array* a = n->as_array();
    if (!a || !a->is_array_of_tables()) fail(k, "must be an array of tables ([[" + key(k) + "]])");
    return a;
  }
  // Unknown keys are errors; `what` lists the known ones for the message.
  void done() const {
    if (!table_) return;
    for (const auto& [k, v] : *table_) {
      if (!known_.count(std::string(k.str()))) {
        std::string list;
        for (const auto& name : known_) list += (list.empty() ? "" : ", ") + name;
        throw ConfigError(file_, key(k.str()), "unknown key; known keys here: " + list);
      }
    }
  }

 private:
  const toml::table* table_;
  std::string path_;
  const std::string& file_;
  std::set<std::string> known_;
};

}  // namespace orbit
