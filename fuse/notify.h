/*
 * notify.h - readiness and status for a service manager (systemd's
 * Type=notify): "READY=1" once the cold start is done and the mount
 * serves, "STOPPING=1" when shutdown begins, "STATUS=..." lines between.
 *
 * Sent to the datagram socket named by $NOTIFY_SOCKET (a path, or "@name"
 * for the abstract namespace); without that variable every call does
 * nothing.  Built with libsystemd (configure --with-libsystemd, the
 * default when libsystemd-dev is installed) it is sd_notify(); without
 * it, the same one-datagram protocol (sd_notify(3), "Protocol") sent here,
 * so readiness does not depend on a build option.
 */
#ifndef RECFS_FUSE_NOTIFY_H
#define RECFS_FUSE_NOTIFY_H

/*
 * Send one notification ("READY=1", "STATUS=cold start", several lines
 * separated by '\n').  1 sent, 0 no $NOTIFY_SOCKET, -errno when it could
 * not be sent (a bad $NOTIFY_SOCKET, nobody listening).
 */
int notify_send(const char *message);

#endif
