// SPDX-License-Identifier: Apache-2.0
#pragma once
// A streaming JSON writer for reports, exports and orbitd's HTTP /status: objects, arrays, strings with
// escaping, numbers in shortest round-trip form. JSON has no NaN or infinity: they
// are written as null (the text formats keep them as nan/inf).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace orbit {

class JsonWriter {
 public:
  explicit JsonWriter(bool pretty = false) : pretty_(pretty) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);

  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(double v);
  JsonWriter& value(std::int64_t v);
  JsonWriter& value(int v) { return value(static_cast<std::int64_t>(v)); }
  JsonWriter& value(std::uint64_t v);
  JsonWriter& value(bool v);
  JsonWriter& null();
  // Inserts already-encoded JSON.
  JsonWriter& raw(std::string_view json);

  template <class T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void before_value();
  void newline();
  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written yet
  bool after_key_ = false;
  bool pretty_;
};

void append_json_string(std::string& out, std::string_view s);
// Shortest text that reads back as the same double ("nan"/"inf"/"-inf" for non-finite).
std::string format_double(double v);

}  // namespace orbit
