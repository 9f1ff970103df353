// Error helpers: formats a failed check as "msg (cond at file:line)".
#include "core/Error.h"

#include <cstring>

namespace sw::detail {

void fail(const char* cond, const std::string& msg, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  throw Error(msg + " (check '" + cond + "' failed at " + (base ? base + 1 : file) + ":" +
              std::to_string(line) + ")");
}

}  // namespace sw::detail
