/*
 * device_header.c - encoding and checking the device header (layout in
 * device_header.h).
 *
 * The header is one 4 KiB page with a CRC so a torn or overwritten header
 * is told apart from a fresh (all-zero) device and from another program's
 * data.  A fresh device is the only thing the engine ever formats on its
 * own; anything else that is not a valid header is refused, so a typo in a
 * devices: line cannot wipe an unrelated disk.
 */
#include <stdio.h>
#include <string.h>

#include "../base/bytes.h"
#include "../base/crc32c.h"
#include "../base/error.h"
#include "device_header.h"

static const uint8_t header_magic[8] = { 'R', 'E', 'C', 'F', 'S', 'D', 'V', '1' };

void
device_header_encode(const struct device_header *h, uint8_t *page)
{
	memset(page, 0, DEVICE_HEADER_PAGE);
	memcpy(page, header_magic, 8);
	le_put32(page + 8, h->version);
	le_put32(page + 12, h->write_block_size);
	memcpy(page + 16, h->ns_name, strnlen(h->ns_name, CONFIG_NAME_MAX));
	le_put32(page + 48, h->n_devices);
	le_put32(page + 52, h->device_index);
	le_put32(page + 56, h->flags);
	le_put64(page + 64, h->signature);
	le_put64(page + 72, h->device_size);
	le_put32(page + 80, h->high_water);
	le_put64(page + 88, h->created_ms);
	le_put64(page + 96, h->opens);
	le_put32(page + DEVICE_HEADER_PAGE - 4, crc32c(0, page, DEVICE_HEADER_PAGE - 4));
}

int
device_header_decode(const uint8_t *page, struct device_header *h, char *why, size_t why_size)
{
	static const uint8_t zero[64];
	bool all_zero = true;

	for (size_t i = 0; i < DEVICE_HEADER_PAGE && all_zero; i += sizeof(zero))
		all_zero = memcmp(page + i, zero, sizeof(zero)) == 0;
	if (all_zero)
		return 1;
	if (memcmp(page, header_magic, 8) != 0) {
		if (why != NULL)
			snprintf(why, why_size, "not a recfs device (no header magic) and not empty");
		return RECFS_EFORMAT;
	}
	bool crc_ok = le_get32(page + DEVICE_HEADER_PAGE - 4) == crc32c(0, page, DEVICE_HEADER_PAGE - 4);

	memset(h, 0, sizeof(*h));
	h->version = le_get32(page + 8);
	/* The version before the checksum: another version may keep its
	 * checksum elsewhere, and is then still named for what it is. */
	if (h->version < DEVICE_HEADER_VERSION_MIN || h->version > DEVICE_HEADER_VERSION) {
		if (why != NULL)
			snprintf(why, why_size, "device format version %u, this build reads versions %u to %u%s",
			    h->version, DEVICE_HEADER_VERSION_MIN, DEVICE_HEADER_VERSION, crc_ok ? "" :
			    " (or a damaged header: its checksum does not match this version's layout)");
		return RECFS_EVERSION;
	}
	if (!crc_ok) {
		if (why != NULL)
			snprintf(why, why_size, "device header checksum mismatch (damaged header)");
		return RECFS_EFORMAT;
	}
	h->write_block_size = le_get32(page + 12);
	memcpy(h->ns_name, page + 16, CONFIG_NAME_MAX);
	h->ns_name[CONFIG_NAME_MAX] = '\0';
	h->n_devices = le_get32(page + 48);
	h->device_index = le_get32(page + 52);
	h->flags = le_get32(page + 56);
	h->signature = le_get64(page + 64);
	h->device_size = le_get64(page + 72);
	h->high_water = le_get32(page + 80);
	h->created_ms = le_get64(page + 88);
	h->opens = le_get64(page + 96);
	if (h->n_devices == 0 || h->n_devices > CONFIG_FILES_MAX || h->device_index >= h->n_devices ||
	    h->write_block_size == 0 || (h->write_block_size & (h->write_block_size - 1)) != 0) {
		if (why != NULL)
			snprintf(why, why_size, "device header fields out of range");
		return RECFS_EFORMAT;
	}
	return 0;
}

void
device_pmeta_slot_encode3(const struct device_pmeta *s, uint8_t slot[DEVICE_PMETA_SLOT])
{
	memset(slot, 0, DEVICE_PMETA_SLOT);
	if (s->version == 0 && s->drop_ms == 0 && s->mark == 0 && !s->regained)
		return;
	le_put64(slot, s->version);
	le_put64(slot + 8, s->drop_ms);
	le_put16(slot + 16, s->mark);
	le_put32(slot + 20, s->regained ? DEVICE_PMETA_F_REGAINED : 0);
	le_put32(slot + 28, crc32c(0, slot, 28));
}

int
device_pmeta_slot_decode3(const uint8_t slot[DEVICE_PMETA_SLOT], struct device_pmeta *s)
{
	static const uint8_t zero[DEVICE_PMETA_SLOT];
	uint32_t flags;

	memset(s, 0, sizeof(*s));
	if (memcmp(slot, zero, sizeof(zero)) == 0)
		return 0;
	flags = le_get32(slot + 20);
	if ((flags & ~DEVICE_PMETA_F_REGAINED) != 0 || le_get16(slot + 18) != 0 ||
	    le_get32(slot + 24) != 0 || le_get32(slot + 28) != crc32c(0, slot, 28))
		return RECFS_ECHECKSUM;
	s->version = le_get64(slot);
	s->drop_ms = le_get64(slot + 8);
	s->mark = le_get16(slot + 16);
	s->regained = (flags & DEVICE_PMETA_F_REGAINED) != 0;
	return 0;
}

int
device_pmeta_slot_decode_v2(const uint8_t slot[DEVICE_PMETA_SLOT_V2], struct device_pmeta *s)
{
	static const uint8_t zero[DEVICE_PMETA_SLOT_V2];
	uint32_t flags;

	memset(s, 0, sizeof(*s));
	if (memcmp(slot, zero, sizeof(zero)) == 0)
		return 0;
	flags = le_get32(slot + 8);
	if ((flags & ~DEVICE_PMETA_F_DROPPED_V2) != 0 || le_get32(slot + 12) != crc32c(0, slot, 12))
		return RECFS_ECHECKSUM;
	if (flags & DEVICE_PMETA_F_DROPPED_V2)
		s->drop_ms = le_get64(slot);
	else
		s->version = le_get64(slot);
	return 0;
}

int
device_pmeta_area_decode(const uint8_t *area, uint32_t hdr_version, uint32_t p, struct device_pmeta *s)
{
	if (hdr_version >= 3)
		return device_pmeta_slot_decode3(area + (size_t)p * DEVICE_PMETA_SLOT, s);
	return device_pmeta_slot_decode_v2(area + (size_t)p * DEVICE_PMETA_SLOT_V2, s);
}

void
device_pmeta_slot_encode(uint64_t version, uint8_t slot[DEVICE_PMETA_SLOT])
{
	struct device_pmeta s = { .version = version };

	device_pmeta_slot_encode3(&s, slot);
}

int
device_pmeta_slot_decode(const uint8_t slot[DEVICE_PMETA_SLOT], uint64_t *version)
{
	struct device_pmeta s;
	int rc = device_pmeta_slot_decode3(slot, &s);

	*version = s.version;
	return rc;
}
