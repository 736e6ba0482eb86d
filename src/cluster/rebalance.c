/*
 * rebalance.c - partition versions and the rebalance of one partition
 * (rebalance.h, docs/cluster.md "Rebalance and migration").
 *
 * Pure: no state, no lock, no allocation; every node runs it on the same
 * inputs and gets the same plan.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rebalance.h"

#define KEY_MASK ((1ULL << (64 - PVERSION_KEY_SHIFT)) - 1)

uint64_t
pversion_make(uint64_t cluster_key, bool master, bool subset)
{
	uint64_t k = cluster_key & KEY_MASK;

	if (k == 0)
		k = 1;
	return (k << PVERSION_KEY_SHIFT) | (master ? PVERSION_MASTER : 0) | (subset ? PVERSION_SUBSET : 0);
}

uint64_t
pversion_isolate(uint64_t v)
{
	if (!pversion_has_data(v))
		return 0;
	return (v & ~PVERSION_MASTER) | PVERSION_SUBSET;
}

void
pversion_format(uint64_t v, char *buf, size_t cap)
{
	if (!pversion_has_data(v)) {
		snprintf(buf, cap, "null");
		return;
	}
	snprintf(buf, cap, "%012" PRIx64 ".%c%c", v >> PVERSION_KEY_SHIFT,
	    (v & PVERSION_MASTER) ? 'm' : '-', (v & PVERSION_SUBSET) ? 's' : 'p');
}

uint64_t
rebalance_final_version(uint64_t cluster_key, bool final_master)
{
	return pversion_make(cluster_key, final_master, false);
}

/* Best first: full master 3, full 2, subset 1, none 0. */
static int
version_score(uint64_t v)
{
	if (!pversion_has_data(v))
		return 0;
	if (v & PVERSION_SUBSET)
		return 1;
	return (v & PVERSION_MASTER) ? 3 : 2;
}

/* Two copies hold the same data: the same version but for the master bit. */
static bool
same_copy(uint64_t a, uint64_t b)
{
	return (a & ~PVERSION_MASTER) == (b & ~PVERSION_MASTER);
}

int
rebalance_partition(const struct rebalance_in *in, struct rebalance_out *out)
{
	unsigned n = in->n, rf = in->rf, fm;
	uint8_t order[PARTITION_NODES_MAX];
	unsigned n_order = 0;
	rebalance_nodes replicas = 0, holders = 0, dups = 0, receivers = 0;
	int best = -1, best_score = 0;

	if (n < 1 || n > PARTITION_NODES_MAX || rf < 1 || rf > n || rf > PARTITION_REPLICAS_MAX)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (unsigned k = 0; k < rf; k++) {
		unsigned i = in->sequence[k];

		if (i >= n || (replicas & (1ULL << i)))
			return -EINVAL;
		replicas |= 1ULL << i;
		order[n_order++] = (uint8_t)i;
	}
	fm = in->sequence[0];
	/* The candidates' order: replicas in sequence order, then the rest. */
	for (unsigned i = 0; i < n; i++)
		if (!(replicas & (1ULL << i)))
			order[n_order++] = (uint8_t)i;
	for (unsigned i = 0; i < n; i++) {
		out->versions[i] = in->versions[i];
		if (pversion_has_data(in->versions[i]))
			holders |= 1ULL << i;
	}
	out->replicas = replicas;

	if (holders == 0) {
		out->fresh = true;
		out->working_master = fm;
		for (unsigned k = 0; k < rf; k++)
			out->versions[in->sequence[k]] = rebalance_final_version(in->cluster_key, k == 0);
		return 0;
	}
	for (unsigned k = 0; k < n_order; k++) {
		int s = version_score(in->versions[order[k]]);

		if (s > best_score) {
			best_score = s;
			best = order[k];
		}
	}
	/* A replica earlier in the sequence with the same full copy serves
	 * instead (the final master first). */
	if (pversion_full(in->versions[best]))
		for (unsigned k = 0; k < rf; k++) {
			unsigned i = in->sequence[k];

			if (same_copy(in->versions[i], in->versions[best])) {
				best = (int)i;
				break;
			}
		}
	out->working_master = (unsigned)best;
	uint64_t wv = in->versions[best];

	for (unsigned i = 0; i < n; i++)
		if ((holders & (1ULL << i)) && i != (unsigned)best && !same_copy(in->versions[i], wv))
			dups |= 1ULL << i;
	out->sources = (1ULL << best) | dups;
	if (dups != 0) {
		receivers = replicas;
	} else {
		for (unsigned k = 0; k < rf; k++) {
			unsigned i = in->sequence[k];

			if (!same_copy(in->versions[i], wv))
				receivers |= 1ULL << i;
		}
	}
	/* A receiver needs a source other than itself. */
	for (unsigned i = 0; i < n; i++)
		if ((receivers & (1ULL << i)) && (out->sources & ~(1ULL << i)) == 0)
			receivers &= ~(1ULL << i);
	out->receivers = receivers;

	if (receivers == 0) {
		out->sources = 0;
		for (unsigned k = 0; k < rf; k++)
			out->versions[in->sequence[k]] = rebalance_final_version(in->cluster_key, k == 0);
		for (unsigned i = 0; i < n; i++)
			if (!(replicas & (1ULL << i)) && (holders & (1ULL << i))) {
				out->drop_now |= 1ULL << i;
				out->versions[i] = 0;
			}
		out->working_master = fm;
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		uint64_t bit = 1ULL << i;

		if (i == (unsigned)best)
			out->versions[i] = pversion_make(in->cluster_key, true, false);
		else if (receivers & bit)
			out->versions[i] = pversion_has_data(in->versions[i])
			    ? pversion_isolate(in->versions[i])
			    : pversion_make(in->cluster_key, false, true);
		else if (!(replicas & bit) && (holders & bit) && !(out->sources & bit)) {
			out->drop_now |= bit;
			out->versions[i] = 0;
		}
	}
	return 0;
}

unsigned
rebalance_rx(const struct rebalance_out *o, unsigned i)
{
	if (!(o->receivers & (1ULL << i)))
		return 0;
	return rebalance_count(o->sources & ~(1ULL << i));
}

unsigned
rebalance_tx(const struct rebalance_out *o, unsigned i)
{
	if (!(o->sources & (1ULL << i)))
		return 0;
	return rebalance_count(o->receivers & ~(1ULL << i));
}
