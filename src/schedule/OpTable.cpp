// The op table's one mutator.
#include "schedule/OpTable.h"

namespace sw {

void OpTable::set(Op op, OpHandler h, OpTime time) { entries_[index(op)] = Entry{std::move(h), time}; }

}  // namespace sw
