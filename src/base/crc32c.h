/*
 * crc32c.h - CRC32C (Castagnoli), the checksum of every stored record.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it, else a table.
 * crc32c(0, buf, len) gives the standard CRC32C of buf (e.g. "123456789" ->
 * 0xE3069283); pass a previous result to continue over more bytes.
 */
#ifndef RECFS_BASE_CRC32C_H
#define RECFS_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
