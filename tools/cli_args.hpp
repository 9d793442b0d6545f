// SPDX-License-Identifier: Apache-2.0
#pragma once
// A small command-line parser for the `orbit` subcommands: `--name VALUE`,
// `--name=VALUE`, repeatable options, flags, positionals, and generated --help.

#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace orbit {

// A bad command line; the message says what to change. Exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ParsedArgs {
 public:
  bool has(std::string_view name) const;
  // The last value given for `name`, or `fallback`.
  std::string get(std::string_view name, std::string_view fallback = {}) const;
  std::optional<std::string> maybe(std::string_view name) const;
  const std::vector<std::string>& all(std::string_view name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  bool help() const { return help_; }

  // Typed getters: a value that does not parse is a UsageError naming the option.
  long long integer(std::string_view name, long long fallback) const;
  double number(std::string_view name, double fallback) const;

 private:
  friend class ArgParser;
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> positionals_;
  bool help_ = false;
};

class ArgParser {
 public:
  ArgParser(std::string usage, std::string summary);

  // `name` without dashes. A value option takes one value; `repeatable` keeps every one.
  ArgParser& option(std::string name, std::string metavar, std::string help, bool repeatable = false);
  ArgParser& flag(std::string name, std::string help);
  ArgParser& positional(std::string name, std::string help, std::size_t min = 1,
                        std::size_t max = 1);
  ArgParser& epilog(std::string text);

  // Throws UsageError. `--help`/`-h` sets help() and skips the required checks.
  ParsedArgs parse(std::span<const std::string> args) const;
  std::string help_text() const;

 private:
  struct Option {
    std::string name, metavar, help;
    bool takes_value = true;
    bool repeatable = false;
  };
  struct Positional {
    std::string name, help;
    std::size_t min = 1, max = 1;
  };
  const Option* find(std::string_view name) const;

  std::string usage_, summary_, epilog_;
  std::vector<Option> options_;
  std::vector<Positional> positionals_;
};

// "key=value" split; UsageError when there is no '='.
std::pair<std::string, std::string> split_assignment(std::string_view text, std::string_view option);

}  // namespace orbit
