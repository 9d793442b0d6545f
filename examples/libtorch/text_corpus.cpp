// SPDX-License-Identifier: Apache-2.0
#include "examples/libtorch/text_corpus.hpp"

#include <array>
#include <cctype>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace orbit {
namespace {

const std::array<std::int64_t, 256>& lookup() {
  static const std::array<std::int64_t, 256> table = [] {
    std::array<std::int64_t, 256> t{};
    t.fill(-1);
    t['\t'] = 0;
    t['\n'] = 1;
    for (int c = 32; c < 127; ++c) t[static_cast<std::size_t>(c)] = c - 32 + 2;
    return t;
  }();
  return table;
}

// Just enough JSON for one flat object per line: string values are decoded, every
// other value is skipped.
class FlatJsonObject {
 public:
  FlatJsonObject(const std::string& line, std::size_t line_number) : s_(line), line_(line_number) {}

  std::map<std::string, std::string> strings() {
    std::map<std::string, std::string> out;
    skip_space();
    expect('{');
    skip_space();
    if (peek() == '}') return out;
    for (;;) {
      skip_space();
      std::string key = string_value();
      skip_space();
      expect(':');
      skip_space();
      if (peek() == '"') {
        out[key] = string_value();
      } else {
        skip_value();
      }
      skip_space();
      if (peek() == ',') { ++i_; continue; }
      expect('}');
      return out;
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("corpus line " + std::to_string(line_) + ": " + what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  std::string string_value() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') { out += c; continue; }
      if (i_ >= s_.size()) fail("unfinished escape");
      char e = s_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) fail("short \\u escape");
          int code = 0;
          for (int k = 0; k < 4; ++k) {
            int h = hex(s_[i_++]);
            if (h < 0) fail("bad \\u escape");
            code = code * 16 + h;
          }
          out += code < 128 ? static_cast<char>(code) : '?';  // the vocabulary is ASCII
          break;
        }
        default: out += e;  // \" \\ \/
      }
    }
    expect('"');
    return out;
  }
  void skip_value() {
    int depth = 0;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '"') { string_value(); continue; }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (depth == 0) return;
        --depth;
      }
      if (c == ',' && depth == 0) return;
      ++i_;
    }
  }

  const std::string& s_;
  std::size_t line_;
  std::size_t i_ = 0;
};

void append(std::vector<std::int64_t>& ids, const std::string& text) {
  const auto& table = lookup();
  for (unsigned char c : text) {
    const std::int64_t id = table[c];
    ids.push_back(id >= 0 ? id : table['?']);
  }
}

}  // namespace

std::int64_t vocabulary_size() { return 2 + (127 - 32); }

std::vector<std::int64_t> encode_chars(const std::string& text) {
  std::vector<std::int64_t> ids;
  ids.reserve(text.size());
  append(ids, text);
  return ids;
}

TextCorpus load_text_corpus(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read corpus '" + path + "'");
  TextCorpus corpus;
  const bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  if (!jsonl) {
    std::stringstream all;
    all << in.rdbuf();
    const std::string text = all.str();
    const std::size_t cut = text.size() - text.size() / 10;
    append(corpus.train["text"], text.substr(0, cut));
    append(corpus.val, text.substr(cut));
    corpus.documents = 1;
    return corpus;
  }
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto fields = FlatJsonObject(line, number).strings();
    const std::string& text = fields["text"];
    if (fields["split"] == "val") {
      append(corpus.val, text);
    } else {
      const std::string domain = fields["domain"].empty() ? "text" : fields["domain"];
      append(corpus.train[domain], text);
    }
    ++corpus.documents;
  }
  return corpus;
}

}  // namespace orbit
