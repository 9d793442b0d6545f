// SPDX-License-Identifier: Apache-2.0
// `orbit keygen`: a ZeroMQ CURVE key pair for orbitd, an adapter or an operator,
// as NAME.key (both keys, mode 0600) and NAME.pub (the public key, for allow-lists
// and for clients that must know the server).

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "protocol/curve_keys.hpp"
#include "tools/cli_args.hpp"
#include "tools/commands.hpp"
#include "tools/exit_codes.hpp"

namespace orbit {
namespace {

const ArgParser& parser() {
  static const ArgParser p = [] {
    ArgParser a("orbit keygen NAME [--force]",
                "Writes a new CURVE key pair: NAME.key holds the public and the secret key (mode 0600;\n"
                "orbitd's [security] curve_secret_key_file, or an adapter's client key) and NAME.pub the\n"
                "public key alone (add it to orbitd's adapter_keys_file or control_keys_file, or give\n"
                "orbitd's to its clients as the server key). Refuses to overwrite without --force.");
    a.positional("NAME", "path prefix of the two files");
    a.flag("force", "replace existing files");
    a.epilog(kExitCodeHelp);
    return a;
  }();
  return p;
}

// Written in place with `mode` from the first byte: a secret key is never readable by others.
void write_file(const std::filesystem::path& path, const std::string& text, mode_t mode, bool force) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    const int err = errno;
    throw std::runtime_error(path.string() + ": " + std::strerror(err) +
                             (err == EEXIST ? " (use --force to replace it)" : ""));
  }
  // An existing file keeps its mode on O_TRUNC: set it explicitly.
  bool ok = ::fchmod(fd, mode) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  const int err = errno;
  ::close(fd);
  if (!ok) throw std::runtime_error(path.string() + ": write failed: " + std::strerror(err));
}

}  // namespace

int keygen_command(std::span<const std::string> args) {
  const ParsedArgs a = parser().parse(args);
  if (a.help()) {
    std::fputs(parser().help_text().c_str(), stdout);
    return kExitOk;
  }
  if (!zmq_has("curve")) throw std::runtime_error("this libzmq was built without CURVE");
  const std::string name = a.positionals().at(0);
  char public_key[41] = {}, secret_key[41] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0)
    throw std::runtime_error(std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno()));
  const bool force = a.has("force");
  write_file(name + ".key", format_secret_key_file({public_key, secret_key}), 0600, force);
  write_file(name + ".pub", format_public_key_file(public_key), 0644, force);
  std::printf("%s.key (secret, 0600) and %s.pub written; public key %s\n", name.c_str(), name.c_str(), public_key);
  return kExitOk;
}

}  // namespace orbit
