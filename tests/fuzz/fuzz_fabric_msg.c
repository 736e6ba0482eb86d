/*
 * fuzz_fabric_msg.c - fuzz target for the fabric's decoders: frame
 * headers, messages (typed fields), the handshake's HELLO/AUTH, and the
 * messages of the layers above (heartbeat pulses, clustering proposals).
 *
 * The input is read as a stream of frames, the way a connection reads it:
 * each header is parsed, its length bounded (handshake or message limit),
 * and each whole frame's message decoded.  Every getter is then asked for
 * every id of every type, which must never read outside the input (ASan)
 * and must agree with the decoder; a HELLO that parses must encode back to
 * a HELLO that parses to the same values.  The whole input is also decoded
 * as one message.
 *
 * Built two ways: with clang -fsanitize=fuzzer by scripts/fuzz.sh, and with
 * tests/fuzz/fuzz_fabric_main.c as a plain program that `make check` runs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "fabric/fabric.h"
#include "fabric/fabric_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_fabric_counts(unsigned long *frames, unsigned long *decoded);

static unsigned long fuzz_frames;  /* frames whose header parsed, whole */
static unsigned long fuzz_decoded; /* messages that decoded */
static uint8_t pulse_buf[HEARTBEAT_PULSE_MAX];

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_fabric_msg: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

void
fuzz_fabric_counts(unsigned long *frames, unsigned long *decoded)
{
	*frames = fuzz_frames;
	*decoded = fuzz_decoded;
}

static void
check_message(const uint8_t *p, size_t len)
{
	struct fabric_msg m;
	struct fabric_hello h, h2;
	uint8_t buf[512];
	unsigned id;

	if (fabric_msg_decode(p, len, &m) != 0)
		return;
	fuzz_decoded++;
	fuzz_assert(m.fields == p + 2 && m.fields_len == len - 2);
	for (id = 0; id < 10; id++) {
		const uint8_t *b;
		size_t bl;
		uint32_t v32;
		uint64_t v64;
		int rc;

		rc = fabric_msg_get_u32(&m, (uint16_t)id, &v32);
		fuzz_assert(rc == 0 || rc == -ENOENT || rc == -EBADMSG);
		rc = fabric_msg_get_u64(&m, (uint16_t)id, &v64);
		fuzz_assert(rc == 0 || rc == -ENOENT || rc == -EBADMSG);
		rc = fabric_msg_get_bytes(&m, (uint16_t)id, &b, &bl);
		fuzz_assert(rc == 0 || rc == -ENOENT || rc == -EBADMSG);
		if (rc == 0)
			fuzz_assert(b >= m.fields && b + bl <= m.fields + m.fields_len);
	}
	/* a message of any type is also offered to the pulse decoder */
	{
		struct fabric_msg pm = m;
		struct heartbeat_pulse pulse, again;
		struct fabric_msg_writer w;

		pm.type = FABRIC_MSG_HEARTBEAT;
		if (heartbeat_pulse_decode(&pm, &pulse) == 0) {
			fuzz_assert(pulse.n_adjacent <= CLUSTER_NODES_MAX);
			fuzz_assert(heartbeat_pulse_encode(&pulse, &w, pulse_buf, sizeof(pulse_buf)) == 0);
			fuzz_assert(fabric_msg_decode(pulse_buf, w.len, &pm) == 0);
			fuzz_assert(heartbeat_pulse_decode(&pm, &again) == 0);
			fuzz_assert(again.node_id == pulse.node_id && again.n_adjacent == pulse.n_adjacent);
			fuzz_assert(strcmp(again.address, pulse.address) == 0);
		}
	}
	/* and to the clustering decoder: what decodes encodes back the same */
	{
		struct fabric_msg cm = m;
		struct clustering_msg cl, again;
		struct fabric_msg_writer w;
		uint8_t cbuf[CLUSTERING_MSG_MAX];

		cm.type = FABRIC_MSG_CLUSTERING;
		if (clustering_msg_decode(&cm, &cl) == 0) {
			fuzz_assert(cl.n <= CLUSTER_NODES_MAX);
			fuzz_assert(clustering_msg_encode(&cl, &w, cbuf, sizeof(cbuf)) == 0);
			fuzz_assert(fabric_msg_decode(cbuf, w.len, &cm) == 0);
			fuzz_assert(clustering_msg_decode(&cm, &again) == 0);
			fuzz_assert(again.op == cl.op && again.proposal_id == cl.proposal_id &&
			    again.cluster_key == cl.cluster_key && again.n == cl.n);
			fuzz_assert(memcmp(again.succession, cl.succession, sizeof(cl.succession)) == 0);
		}
	}
	if (fabric_hello_parse(&m, &h) == 0) {
		int n = fabric_hello_encode(&h, buf, sizeof(buf));

		fuzz_assert(n > 0);
		fuzz_assert(fabric_msg_decode(buf, (size_t)n, &m) == 0);
		fuzz_assert(fabric_hello_parse(&m, &h2) == 0);
		fuzz_assert(h.node_id == h2.node_id && h.listen_port == h2.listen_port);
		fuzz_assert(strcmp(h.cluster_name, h2.cluster_name) == 0);
		fuzz_assert(strcmp(h.listen_address, h2.listen_address) == 0);
		fuzz_assert(memcmp(h.nonce, h2.nonce, FABRIC_NONCE_LEN) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	int authed = 0;

	check_message(data, size);
	while (size - pos >= FABRIC_FRAME_HEADER) {
		uint8_t kind;
		uint32_t len;
		size_t total, limit = authed ? FABRIC_MSG_MAX : FABRIC_HANDSHAKE_MSG_MAX;

		if (fabric_frame_header_parse(data + pos, FABRIC_PROTOCOL_VERSION, &kind, &len) != 0)
			break;
		fuzz_assert(kind >= FABRIC_KIND_HELLO && kind <= FABRIC_KIND_MSG);
		if (len > limit)
			break;
		total = FABRIC_FRAME_HEADER + len + (kind == FABRIC_KIND_MSG ? FABRIC_MAC_LEN : 0);
		if (size - pos < total)
			break;
		fuzz_frames++;
		check_message(data + pos + FABRIC_FRAME_HEADER, len);
		if (kind == FABRIC_KIND_AUTH)
			authed = 1;
		pos += total;
	}
	return 0;
}
