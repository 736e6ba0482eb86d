/*
 * shard.c - assigning threads their shard (see shard.h).
 */
#include "shard.h"

static unsigned shard_next;                      /* atomic */
__thread unsigned shard_mine = UINT32_MAX;

unsigned
shard_assign(void)
{
	shard_mine = (atomic_add(&shard_next, 1) - 1) % SHARDS;
	return shard_mine;
}
