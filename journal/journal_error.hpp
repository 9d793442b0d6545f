// SPDX-License-Identifier: Apache-2.0
#pragma once
// The exception of the journal writer and reader: a failed system call, with the
// path and the errno text, so the log line says what to fix.

#include <stdexcept>

namespace orbit {

class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace orbit
