// SPDX-License-Identifier: Apache-2.0
#pragma once
// The bundled corpus (examples/corpus/corpus.jsonl, see its SOURCES.md) as
// character-id streams: one per domain for the train split, one for the val split.
// Torch-free, so it compiles fast.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace orbit {

// Tab, newline and printable ASCII, in the order the Python example uses, so both
// trainers see the same ids.
std::int64_t vocabulary_size();
std::vector<std::int64_t> encode_chars(const std::string& text);

struct TextCorpus {
  std::map<std::string, std::vector<std::int64_t>> train;  // by domain
  std::vector<std::int64_t> val;
  std::size_t documents = 0;
};

// Reads JSON Lines records with string fields `domain`, `split` ("train"/"val") and
// `text`. A file without `.jsonl` records (any other text file) becomes one "text"
// domain whose last tenth is the val split. Throws std::runtime_error with the
// line number on malformed input.
TextCorpus load_text_corpus(const std::string& path);

}  // namespace orbit
