// Shared pieces of the libFuzzer targets: a private scratch directory for the files a reader takes
// by path, splitting one fuzz input into several files, and the outcome rule.
//
// Outcome rule: bad input must end in the project's own error types - sw::InputError (ConfigError,
// DataError, DamagedError) or sw::IoError - and the message should name the file. Anything else is a
// finding: a crash or sanitizer report (ASan/UBSan abort on their own), a hang (libFuzzer -timeout),
// an allocation beyond -rss_limit_mb / -malloc_limit_mb, or another exception (std::out_of_range,
// std::invalid_argument, std::bad_alloc, nlohmann's, a bare sw::Error from SW_CHECK...), which
// expect() reports and turns into an abort so libFuzzer saves the input.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "core/Error.h"

namespace swfuzz {

// Between the files of a multi-file input (also in each target's dictionary).
inline constexpr std::string_view kSplit = "\n%%SWFUZZ%%\n";

// Up to `n` parts of the input, split at kSplit; the last part takes the rest (missing parts are empty).
inline std::vector<std::string> split(const uint8_t* data, size_t size, size_t n) {
  std::vector<std::string> parts;
  std::string_view s(reinterpret_cast<const char*>(data), size);
  while (parts.size() + 1 < n) {
    const size_t at = s.find(kSplit);
    if (at == std::string_view::npos) break;
    parts.emplace_back(s.substr(0, at));
    s.remove_prefix(at + kSplit.size());
  }
  parts.emplace_back(s);
  while (parts.size() < n) parts.emplace_back();
  return parts;
}

// This process's scratch directory (RAM-backed when /dev/shm exists); removed at exit. Heap-held so
// it outlives the static destructors that run before the atexit handler.
inline const std::string& scratch() {
  static const std::string* dir = [] {
    namespace fs = std::filesystem;
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    const fs::path d = base / ("swfuzz_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    auto* s = new std::string(d.string());
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch(), ec);
    });
    return s;
  }();
  return *dir;
}

inline void writeFile(const std::string& path, std::string_view bytes) {
  std::ofstream o(path, std::ios::binary | std::ios::trunc);
  o.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!o) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
}

[[noreturn]] inline void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "\n==FINDING== %s: %s\n", what, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

// Runs `f`; the project's input/IO errors are the expected outcome for bad input. When `names` is
// not empty, the message must contain one of them (the file the error is about).
template <class F>
void expect(F&& f, std::initializer_list<std::string> names = {}) {
  auto named = [&](const std::exception& e, const char* type) {
    if (names.size() == 0) return;
    const std::string msg = e.what();
    for (const std::string& n : names)
      if (msg.find(n) != std::string::npos) return;
    std::string all;
    for (const std::string& n : names) all += (all.empty() ? "" : " or ") + n;
    finding("error message names no file", std::string(type) + " '" + msg + "' (expected " + all + ")");
  };
  static const bool verbose = std::getenv("SWFUZZ_VERBOSE") != nullptr;  // print each outcome
  try {
    f();
    if (verbose) std::fprintf(stderr, "  ok\n");
  } catch (const sw::DamagedError& e) {
    if (verbose) std::fprintf(stderr, "  DamagedError: %s\n", e.what());
    named(e, "sw::DamagedError");
  } catch (const sw::InputError& e) {
    if (verbose) std::fprintf(stderr, "  InputError: %s\n", e.what());
    named(e, "sw::InputError");
  } catch (const sw::IoError& e) {
    if (verbose) std::fprintf(stderr, "  IoError: %s\n", e.what());
    named(e, "sw::IoError");
  } catch (const sw::Error& e) {
    finding("internal check failed (sw::Error that is not InputError/IoError)", e.what());
  } catch (const std::exception& e) {
    finding((std::string("foreign exception ") + typeid(e).name()).c_str(), e.what());
  } catch (...) {
    finding("non-std exception", "?");
  }
}

}  // namespace swfuzz
