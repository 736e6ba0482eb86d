/*
 * fabric_auth.c - the cluster secret, the handshake proofs and frame MACs.
 *
 * Both sides of a connection send HELLO (node id, cluster name, a fresh
 * 32-byte nonce, listen address), then AUTH with a proof of the secret over
 * both hellos.  Each side derives one session key per direction from the
 * secret and both hellos; every later frame carries a GMAC (AES-256-GCM
 * tag, no plaintext) under its direction's key and sequence number.  The secret
 * never crosses the wire, a recorded session cannot be replayed into a new
 * one (fresh nonces), and frames cannot be forged, replayed or reordered.
 *
 * Confidentiality is TLS's (network.tls: fabric.c runs the handshake
 * before HELLO; these proofs and MACs then run inside it unchanged).
 * Rejected: encrypting each frame (confidentiality is TLS's job).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "../base/error.h"
#include "../base/log.h"
#include "fabric.h"
#include "fabric_i.h"

static const char proof_label[] = "recfs fabric proof v1";
static const char key_label[] = "recfs fabric session key v1";

int
fabric_secret_load(const char *path, uint8_t out[FABRIC_SECRET_MAX], size_t *len)
{
	struct stat st;
	ssize_t n;
	int fd, rc = RECFS_ECONFIG;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		log_error("fabric", "cluster-secret-file %s: %s", path, strerror(errno));
		return RECFS_ECONFIG;
	}
	if (fstat(fd, &st) != 0) {
		log_error("fabric", "cluster-secret-file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("fabric", "cluster-secret-file %s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		log_error("fabric", "cluster-secret-file %s: owned by uid %u, not by this daemon's uid %u",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		log_error("fabric", "cluster-secret-file %s: mode %04o lets group or others read it; "
		    "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	n = read(fd, out, FABRIC_SECRET_MAX);
	if (n < 0) {
		log_error("fabric", "cluster-secret-file %s: %s", path, strerror(errno));
		goto out;
	}
	if (n == FABRIC_SECRET_MAX) {
		uint8_t extra;

		if (read(fd, &extra, 1) != 0) {
			log_error("fabric", "cluster-secret-file %s: longer than %d bytes", path,
			    FABRIC_SECRET_MAX);
			goto out;
		}
	}
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	if (n < FABRIC_SECRET_MIN) {
		log_error("fabric", "cluster-secret-file %s: %zd bytes; a secret needs at least %d",
		    path, n, FABRIC_SECRET_MIN);
		goto out;
	}
	*len = (size_t)n;
	rc = 0;
out:
	close(fd);
	return rc;
}

/* HMAC-SHA256(secret, label || from || to || cluster name). */
static int
derive(const char *label, const uint8_t *secret, size_t secret_len, const struct fabric_hello *from,
    const struct fabric_hello *to, uint8_t out[32])
{
	uint8_t buf[64 + 2 * (FABRIC_NONCE_LEN + 8) + 64];
	size_t n = 0, l = strlen(label), c = strlen(from->cluster_name);
	unsigned olen = 0;

	memcpy(buf, label, l + 1); /* the NUL separates label and data */
	n = l + 1;
	memcpy(buf + n, from->nonce, FABRIC_NONCE_LEN);
	n += FABRIC_NONCE_LEN;
	fabric_put64(buf + n, from->node_id);
	n += 8;
	memcpy(buf + n, to->nonce, FABRIC_NONCE_LEN);
	n += FABRIC_NONCE_LEN;
	fabric_put64(buf + n, to->node_id);
	n += 8;
	memcpy(buf + n, from->cluster_name, c);
	n += c;
	if (HMAC(EVP_sha256(), secret, (int)secret_len, buf, n, out, &olen) == NULL || olen != 32)
		return -EIO;
	return 0;
}

int
fabric_auth_proof(const uint8_t *secret, size_t secret_len, const struct fabric_hello *from,
    const struct fabric_hello *to, uint8_t proof[FABRIC_PROOF_LEN])
{
	return derive(proof_label, secret, secret_len, from, to, proof);
}

int
fabric_auth_session_key(const uint8_t *secret, size_t secret_len, const struct fabric_hello *from,
    const struct fabric_hello *to, uint8_t key[FABRIC_KEY_LEN])
{
	return derive(key_label, secret, secret_len, from, to, key);
}

int
fabric_auth_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

int
fabric_auth_random(uint8_t *p, size_t len)
{
	return RAND_bytes(p, (int)len) == 1 ? 0 : -EIO;
}

/*
 * Frame MACs are GMAC: AES-256-GCM under the direction's session key with
 * no plaintext, the frame header and message as additional data, and a
 * 96-bit nonce of 32 zero bits and the frame's 64-bit sequence number.
 * The key is fresh per connection and direction (both hellos' nonces), and
 * the sequence number never repeats under it, so no nonce is ever used
 * twice.  With AES-NI and carry-less multiply it costs about a third of
 * SHA-256 (with SHA-NI) per byte: 64 KiB and larger messages (replica
 * writes and proxied writes of file content) were bound by HMAC-SHA256.
 * Rejected: HMAC-SHA256 (protocol version 1; the handshake proofs and
 * session keys still use it), encrypting the frames (confidentiality is
 * TLS's job).
 */
int
fabric_mac_init(struct fabric_mac *m, const uint8_t key[FABRIC_KEY_LEN])
{
	m->seq = 0;
	m->ctx = EVP_CIPHER_CTX_new();
	if (m->ctx == NULL)
		return -ENOMEM;
	if (EVP_EncryptInit_ex(m->ctx, EVP_aes_256_gcm(), NULL, key, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(m->ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1) {
		fabric_mac_fini(m);
		return -EIO;
	}
	return 0;
}

void
fabric_mac_fini(struct fabric_mac *m)
{
	EVP_CIPHER_CTX_free(m->ctx);
	m->ctx = NULL;
}

int
fabric_mac_compute_tail(struct fabric_mac *m, const uint8_t *hdr, const struct iovec *piece,
    unsigned n, uint8_t mac[FABRIC_MAC_LEN])
{
	uint8_t iv[12] = { 0 }, none[16];
	int k;

	fabric_put64(iv + 4, m->seq++);
	if (EVP_EncryptInit_ex(m->ctx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(m->ctx, NULL, &k, hdr, FABRIC_FRAME_HEADER) != 1)
		return -EIO;
	for (unsigned i = 0; i < n; i++)
		if (piece[i].iov_len > INT_MAX || (piece[i].iov_len != 0 &&
		    EVP_EncryptUpdate(m->ctx, NULL, &k, piece[i].iov_base, (int)piece[i].iov_len) != 1))
			return -EIO;
	if (EVP_EncryptFinal_ex(m->ctx, none, &k) != 1 ||
	    EVP_CIPHER_CTX_ctrl(m->ctx, EVP_CTRL_GCM_GET_TAG, FABRIC_MAC_LEN, mac) != 1)
		return -EIO;
	return 0;
}

int
fabric_mac_compute(struct fabric_mac *m, const uint8_t *hdr, const uint8_t *msg, size_t len,
    uint8_t mac[FABRIC_MAC_LEN])
{
	struct iovec piece = { .iov_base = (void *)msg, .iov_len = len };

	return fabric_mac_compute_tail(m, hdr, &piece, 1, mac);
}
