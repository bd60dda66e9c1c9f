// Deprecated name of server/requests.h + server/recipe_options.h, kept only until
// server/store_impl.h includes server/requests.h itself; new code includes those two.
#ifndef CALIBD_SERVER_RECIPE_BUILDER_H_
#define CALIBD_SERVER_RECIPE_BUILDER_H_

#include "server/recipe_options.h"
#include "server/requests.h"

#endif  // CALIBD_SERVER_RECIPE_BUILDER_H_
