#pragma once

#include "args.hpp"

namespace cli {
int bench(const Args& args);  // siamese-cli bench
}
