/*
 * notify.c - service-manager notifications (notify.h).
 *
 * With libsystemd: sd_notify(), which knows every socket kind systemd may
 * hand out.  Without it: one datagram on an AF_UNIX socket, which is all
 * systemd's Type=notify needs (the protocol is documented and stable:
 * sd_notify(3)).  The built-in sender is kept rather than making
 * libsystemd-dev a hard dependency: it is thirty lines, and a build
 * without libsystemd must not silently lose readiness (a Type=notify unit
 * would then time out at every start).
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"

int
notify_send(const char *message)
{
#ifdef HAVE_LIBSYSTEMD
	int rc = sd_notify(0, message);

	return rc < 0 ? rc : rc > 0 ? 1 : 0;
#else
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	ssize_t n;
	int fd;

	if (path == NULL || path[0] == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = sendto(fd, message, strlen(message), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	if (n < 0)
		n = -errno;
	close(fd);
	return n < 0 ? (int)n : 1;
#endif
}
