/*
 * fuzz_fabric_main.c - plain driver for fuzz_fabric_msg.c, used when not
 * building with libFuzzer, so `make check` runs the fabric decoders under
 * the build's sanitizers (and scripts/fuzz.sh uses it to write seeds).
 *
 *   fuzz_fabric_msg                  ~200k generated inputs, a few s at most
 *   fuzz_fabric_msg -n N -t SECONDS  other bounds
 *   fuzz_fabric_msg FILE...          replay inputs (e.g. a libFuzzer crash)
 *   fuzz_fabric_msg --write-corpus DIR [N]  write N valid frame streams
 *
 * Inputs come from a seeded PRNG (a failure reproduces exactly): streams
 * of valid frames (HELLO, AUTH, messages with random fields), then byte
 * flips, interesting values in length fields, truncation and splices.
 * Each input sits in a heap buffer of exactly its size so ASan sees any
 * over-read.  A separate driver from fuzz_main.c because that one
 * generates records.
 */
#include "fuzz_plain.h"
#include "cluster/cluster.h"
#include "fabric/fabric.h"
#include "fabric/fabric_i.h"

void fuzz_fabric_counts(unsigned long *frames, unsigned long *decoded);

#define GEN_CAP (16 * 1024)

/* One frame of kind around the message in msg[0..len). */
static size_t
frame(uint8_t *out, size_t cap, uint8_t kind, const uint8_t *msg, size_t len)
{
	size_t total = FABRIC_FRAME_HEADER + len + (kind == FABRIC_KIND_MSG ? FABRIC_MAC_LEN : 0);

	if (total > cap)
		return 0;
	fabric_frame_header_write(out, FABRIC_PROTOCOL_VERSION, kind, (uint32_t)len);
	memcpy(out + FABRIC_FRAME_HEADER, msg, len);
	if (kind == FABRIC_KIND_MSG)
		memset(out + FABRIC_FRAME_HEADER + len, 0xa5, FABRIC_MAC_LEN);
	return total;
}

/* A stream: HELLO, AUTH, then a few messages of random fields. */
static size_t
gen_stream(uint8_t *buf, size_t cap)
{
	struct fabric_hello h = { .listen_port = (uint16_t)rng() };
	struct fabric_msg_writer w;
	uint8_t msg[2048];
	size_t len = 0, n;
	int hl, i, k;

	h.node_id = rng() | 1;
	snprintf(h.cluster_name, sizeof(h.cluster_name), "c%u", (unsigned)rng_below(1000));
	snprintf(h.listen_address, sizeof(h.listen_address), "127.0.0.%u", (unsigned)rng_below(255));
	for (i = 0; i < FABRIC_NONCE_LEN; i++)
		h.nonce[i] = (uint8_t)rng();
	hl = fabric_hello_encode(&h, msg, sizeof(msg));
	if (hl < 0)
		abort();
	len += frame(buf + len, cap - len, FABRIC_KIND_HELLO, msg, (size_t)hl);
	fabric_msg_writer_init(&w, msg, sizeof(msg), FABRIC_MSG_AUTH);
	fabric_msg_put_bytes(&w, FABRIC_FIELD_PROOF, h.nonce, FABRIC_PROOF_LEN);
	len += frame(buf + len, cap - len, FABRIC_KIND_AUTH, msg, w.len);
	for (k = (int)rng_below(4); k > 0; k--) {
		if (rng_below(3) == 0) { /* a heartbeat pulse */
			struct heartbeat_pulse p = { .node_id = rng() | 1, .cluster_key = rng() };

			snprintf(p.address, sizeof(p.address), "127.0.0.%u:%u", (unsigned)rng_below(255), (unsigned)rng_below(65536));
			p.n_adjacent = rng_below(8);
			for (i = 0; i < (int)p.n_adjacent; i++) {
				p.adjacent[i].node_id = rng() | 1;
				snprintf(p.adjacent[i].address, sizeof(p.adjacent[i].address), "10.0.0.%d:3001", i);
			}
			if (heartbeat_pulse_encode(&p, &w, msg, sizeof(msg)) == 0)
				len += frame(buf + len, cap - len, FABRIC_KIND_MSG, msg, w.len);
			continue;
		}
		if (rng_below(3) == 0) { /* a clustering message */
			struct clustering_msg c = { .op = 1 + rng_below(4), .proposal_id = rng() | 1,
				.cluster_key = rng() | 1, .n = 1 + rng_below(CLUSTER_NODES_MAX) };

			for (i = 0; i < (int)c.n; i++)
				c.succession[i] = ((uint64_t)(c.n - (unsigned)i) << 32) | (rng() & 0xffff);
			if (clustering_msg_encode(&c, &w, msg, sizeof(msg)) == 0)
				len += frame(buf + len, cap - len, FABRIC_KIND_MSG, msg, w.len);
			continue;
		}
		fabric_msg_writer_init(&w, msg, 1 + rng_below(sizeof(msg)), (uint16_t)rng_below(260));
		for (i = (int)rng_below(8); i > 0; i--) {
			uint16_t id = (uint16_t)rng_below(12);

			switch (rng_below(3)) {
			case 0: fabric_msg_put_u32(&w, id, (uint32_t)rng()); break;
			case 1: fabric_msg_put_u64(&w, id, rng()); break;
			default: {
				uint8_t b[64];

				memset(b, (int)rng(), sizeof(b));
				fabric_msg_put_bytes(&w, id, b, rng_below(sizeof(b)));
			}
			}
		}
		if (w.err == 0) {
			n = frame(buf + len, cap - len, FABRIC_KIND_MSG, msg, w.len);
			len += n;
		}
	}
	return len;
}

static const uint32_t interesting[] = { 0, 1, 2, 6, 7, 8, 0x7f, 0xff, 0x100, 0x3ff, 0x400, 0x401,
	0xfffff, 0x100000, 0x100001, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff };

static size_t
mutate(uint8_t *buf, size_t len, size_t cap)
{
	if (len == 0)
		return 0;
	switch (rng_below(5)) {
	case 0: /* flip bits */
		for (int k = 1 + (int)rng_below(4); k > 0; k--)
			buf[rng_below((uint32_t)len)] ^= (uint8_t)(1u << rng_below(8));
		break;
	case 1: /* an interesting u32 anywhere (length fields) */
		if (len >= 4)
			fabric_put32(buf + rng_below((uint32_t)(len - 3)),
			    interesting[rng_below(sizeof(interesting) / sizeof(interesting[0]))]);
		break;
	case 2: /* truncate */
		len = rng_below((uint32_t)len + 1);
		break;
	case 3: /* extend with random bytes */
		for (int k = (int)rng_below(32); k > 0 && len < cap; k--)
			buf[len++] = (uint8_t)rng();
		break;
	default: { /* delete a byte */
		size_t at = rng_below((uint32_t)len);

		memmove(buf + at, buf + at + 1, len - at - 1);
		len--;
	}
	}
	return len;
}

static int
write_corpus(const char *dir, long count)
{
	static uint8_t buf[GEN_CAP];

	for (long i = 0; i < count; i++)
		if (write_seed("fuzz_fabric_msg", dir, (unsigned long)i, buf,
		    gen_stream(buf, sizeof(buf))) != 0)
			return 2;
	return 0;
}

int
main(int argc, char **argv)
{
	static uint8_t buf[GEN_CAP];
	long iterations = 200000, i;
	double seconds = 4.0, start;
	unsigned long frames, decoded;
	size_t len = 0;
	int opt = 1;

	if (argc >= 3 && strcmp(argv[1], "--write-corpus") == 0)
		return write_corpus(argv[2], argc >= 4 ? atol(argv[3]) : 64);
	while (opt + 1 < argc && argv[opt][0] == '-') {
		if (strcmp(argv[opt], "-n") == 0)
			iterations = atol(argv[opt + 1]);
		else if (strcmp(argv[opt], "-t") == 0)
			seconds = atof(argv[opt + 1]);
		else
			break;
		opt += 2;
	}
	if (opt < argc)
		return replay_files("fuzz_fabric_msg", argc - opt, argv + opt);

	start = now_s();
	for (i = 0; i < iterations; i++) {
		if (len == 0 || rng_below(4) == 0)
			len = gen_stream(buf, sizeof(buf));
		for (uint32_t m = rng_below(3); m > 0; m--)
			len = mutate(buf, len, sizeof(buf));
		run_exact(buf, len);
		if ((i & 1023) == 1023 && now_s() - start > seconds) {
			i++;
			break;
		}
	}
	fuzz_fabric_counts(&frames, &decoded);
	printf("fuzz_fabric_msg: %ld inputs in %.2f s: %lu whole frames, %lu messages decoded\n",
	    i, now_s() - start, frames, decoded);
	/* a generator that stopped making valid frames would test nothing */
	if (frames < (unsigned long)i / 2 || decoded < (unsigned long)i / 2) {
		fprintf(stderr, "fuzz_fabric_msg: too few inputs reached the decoders\n");
		return 1;
	}
	return 0;
}
