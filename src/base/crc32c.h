/*
 * crc32c.h - CRC32C (Castagnoli), the checksum of every stored record.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it, else a table.
 * crc32c(0, buf, len) gives the standard CRC32C of buf (e.g. "123456789" ->
 * 0xE3069283); pass a previous result to continue over more bytes.
 */
#ifndef RECFS_BASE_CRC32C_H
#define RECFS_BASE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * The two implementations behind crc32c(), exported so tests can hold them
 * against each other.  Same contract as crc32c().  crc32c_hw() may only be
 * called when crc32c_hw_available() is true (it executes SSE4.2
 * instructions); on CPUs without it, and on non-x86 builds, only the table
 * version exists and crc32c_hw_available() is false.
 */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool crc32c_hw_available(void);

#endif
