#ifndef CUPLINK_LZ4_SHIM_H
#define CUPLINK_LZ4_SHIM_H

#include <lz4.h>
#include <lz4hc.h>

#endif
