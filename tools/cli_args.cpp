// SPDX-License-Identifier: Apache-2.0
#include "tools/cli_args.hpp"

#include <charconv>
#include <cstdlib>

namespace orbit {

namespace {
const std::vector<std::string> kNone;
}

bool ParsedArgs::has(std::string_view name) const { return values_.find(name) != values_.end(); }

std::string ParsedArgs::get(std::string_view name, std::string_view fallback) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::string(fallback);
  return it->second.back();
}

std::optional<std::string> ParsedArgs::maybe(std::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

const std::vector<std::string>& ParsedArgs::all(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? kNone : it->second;
}

long long ParsedArgs::integer(std::string_view name, long long fallback) const {
  auto v = maybe(name);
  if (!v) return fallback;
  long long out = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || ptr != v->data() + v->size())
    throw UsageError("--" + std::string(name) + " expects an integer, got '" + *v + "'");
  return out;
}

double ParsedArgs::number(std::string_view name, double fallback) const {
  auto v = maybe(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double out = std::strtod(v->c_str(), &end);
  if (v->empty() || end != v->c_str() + v->size())
    throw UsageError("--" + std::string(name) + " expects a number, got '" + *v + "'");
  return out;
}

ArgParser::ArgParser(std::string usage, std::string summary)
    : usage_(std::move(usage)), summary_(std::move(summary)) {}

ArgParser& ArgParser::option(std::string name, std::string metavar, std::string help, bool repeatable) {
  options_.push_back({std::move(name), std::move(metavar), std::move(help), true, repeatable});
  return *this;
}

ArgParser& ArgParser::flag(std::string name, std::string help) {
  options_.push_back({std::move(name), "", std::move(help), false, false});
  return *this;
}

ArgParser& ArgParser::positional(std::string name, std::string help, std::size_t min, std::size_t max) {
  positionals_.push_back({std::move(name), std::move(help), min, max});
  return *this;
}

ArgParser& ArgParser::epilog(std::string text) {
  epilog_ = std::move(text);
  return *this;
}

const ArgParser::Option* ArgParser::find(std::string_view name) const {
  for (const auto& o : options_)
    if (o.name == name) return &o;
  return nullptr;
}

ParsedArgs ArgParser::parse(std::span<const std::string> args) const {
  ParsedArgs out;
  bool only_positionals = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positionals || a.size() < 2 || a[0] != '-' || a == "-") {
      out.positionals_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      out.help_ = true;
      continue;
    }
    if (!a.starts_with("--")) throw UsageError("unknown option '" + a + "' (options are spelled --name)");
    std::string name = a.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Option* o = find(name);
    if (!o) throw UsageError("unknown option '--" + name + "'; see --help");
    if (!o->takes_value) {
      if (value) throw UsageError("--" + name + " takes no value");
      out.values_[name].push_back("1");
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size()) throw UsageError("--" + name + " needs a value (" + o->metavar + ")");
      value = args[++i];
    }
    auto& slot = out.values_[name];
    if (!o->repeatable) slot.clear();
    slot.push_back(*value);
  }
  if (out.help_) return out;

  std::size_t min_total = 0, max_total = 0;
  for (const auto& p : positionals_) {
    min_total += p.min;
    max_total += p.max;
  }
  if (out.positionals_.size() < min_total) {
    std::string missing;
    for (const auto& p : positionals_) missing += (missing.empty() ? "" : " ") + p.name;
    throw UsageError("missing argument: " + missing);
  }
  if (out.positionals_.size() > max_total)
    throw UsageError("unexpected argument '" + out.positionals_[max_total] + "'");
  return out;
}

std::string ArgParser::help_text() const {
  std::string s = "usage: " + usage_ + "\n\n" + summary_ + "\n";
  if (!positionals_.empty()) {
    s += "\narguments:\n";
    for (const auto& p : positionals_) s += "  " + p.name + std::string(p.name.size() < 22 ? 22 - p.name.size() : 1, ' ') + p.help + "\n";
  }
  s += "\noptions:\n";
  auto line = [&](const std::string& left, const std::string& help) {
    s += "  " + left + std::string(left.size() < 22 ? 22 - left.size() : 1, ' ');
    // Continuation lines of the help text line up under the first.
    std::size_t start = 0;
    bool first = true;
    while (start <= help.size()) {
      const auto nl = help.find('\n', start);
      const std::string part = help.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      s += (first ? "" : std::string(24, ' ')) + part + "\n";
      first = false;
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  };
  for (const auto& o : options_) {
    std::string left = "--" + o.name + (o.takes_value ? " " + o.metavar : "");
    line(left, o.help + (o.repeatable ? " (repeatable)" : ""));
  }
  line("-h, --help", "show this help");
  if (!epilog_.empty()) s += "\n" + epilog_;
  if (!s.ends_with('\n')) s += '\n';
  return s;
}

std::pair<std::string, std::string> split_assignment(std::string_view text, std::string_view option) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw UsageError("--" + std::string(option) + " expects key=value, got '" + std::string(text) + "'");
  return {std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

}  // namespace orbit
