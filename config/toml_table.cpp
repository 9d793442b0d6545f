// SPDX-License-Identifier: Apache-2.0
#include "config/toml_table.hpp"

#include <fstream>

namespace orbit {

toml::table parse_toml(std::string_view text, const std::string& source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << "line " << e.source().begin.line << ", column " << e.source().begin.column;
    throw ConfigError(source, "", "TOML syntax error at " + where.str() + ": " + std::string(e.description()));
  }
}

toml::table load_toml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "", "cannot read the file (does it exist?)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_toml(text.str(), path);
}

}  // namespace orbit
