// Typed errors for all of stagewise. Library code throws; only app/main.cpp turns an error into an
// exit status: InputError (bad config, data file, rank count) -> 2, everything else -> 3.
#pragma once
#include <stdexcept>
#include <string>

namespace sw {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Bad input from the user: config keys/values, data files, topology. Exit status 2.
class InputError : public Error {
 public:
  using Error::Error;
};
class ConfigError : public InputError {
 public:
  using InputError::InputError;
};
class DataError : public InputError {
 public:
  using InputError::InputError;
};
// A file that is not what it claims to be: a checksum, size or structure that does not match
// (a damaged or truncated checkpoint). Bad input, exit status 2; resume may fall back.
class DamagedError : public InputError {
 public:
  using InputError::InputError;
};
// Failures while running: I/O, numerics, communication, device. Exit status 3.
class IoError : public Error {
 public:
  using Error::Error;
};
class ShapeError : public Error {
 public:
  using Error::Error;
};
class NumericError : public Error {
 public:
  using Error::Error;
};
class CommError : public Error {
 public:
  using Error::Error;
};
class DeviceError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] void fail(const char* cond, const std::string& msg, const char* file, int line);
}  // namespace detail

}  // namespace sw

// Internal invariant: throws sw::Error with the failed condition and location.
#define SW_CHECK(cond, msg)                                                          \
  do {                                                                               \
    if (!(cond)) ::sw::detail::fail(#cond, (msg), __FILE__, __LINE__);               \
  } while (0)
