/*
 * recfsd.c - the recfs daemon: options, configuration, start-up, signals
 * and shutdown.  See docs/recfsd.8 for the user's view.
 *
 * Start-up order, and why:
 *   1. options and configuration (--help, --version, --check-config exit here);
 *   2. fork into the background unless -f, but keep the terminal: the
 *      parent waits for the child to say "mounted" and exits with the
 *      child's status, so a failed cold start or mount is reported on the
 *      terminal with a non-zero exit.  libfuse's fuse_daemonize() is not
 *      used: it forks (the engine's threads would not survive if it ran
 *      after node_open) and its parent always exits 0;
 *   3. block SIGTERM, SIGINT and SIGHUP, so every engine thread inherits
 *      the block: only the main thread takes TERM/INT (libfuse's handler
 *      ends the session loop) and one thread sigwait()s for HUP;
 *   4. check that /dev/fuse can be opened (before anything is created),
 *      create the log file's directory, lock the work directory
 *      (workdir.h: one daemon per store; the storage files are locked by
 *      the engine), node_open (cold start), then the FUSE session and the
 *      mount; then READY=1 to a service manager (notify.h);
 *   5. the session loop until fusermount3 -u, SIGTERM or SIGINT;
 *   6. mark the lock closing (a restart waits for us), store every dirty
 *      open file, unmount, node_close(node, true) (flush and mark storage
 *      clean), and only then release the work directory's lock.
 *
 * Nothing said at start-up is lost: until the mount is up, errors and
 * warnings are echoed to the terminal whatever the log target (so a failed
 * start names its file there), and in the background with no logging.file
 * the log goes to syslog only when a syslog daemon listens on /dev/log,
 * else to WORKDIR/recfsd.log (said on the terminal).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic.h"
#include "base/log.h"
#include "dir.h"
#include "handle.h"
#include "info.h"
#include "inode.h"
#include "notify.h"
#include "ops.h"
#include "readahead.h"
#include "workdir.h"

struct recfsd recfsd;

static struct recfs_config recfsd_config;   /* large: kept out of main's stack */
static int daemon_pipe = -1;                 /* to the waiting parent, until ready */

struct recfsd_options {
	char *config;
	int check_config;
	int help;
	int version;
};

static const struct fuse_opt recfsd_opt_spec[] = {
	{ "-c %s", offsetof(struct recfsd_options, config), 0 },
	{ "--config=%s", offsetof(struct recfsd_options, config), 0 },
	{ "--check-config", offsetof(struct recfsd_options, check_config), 1 },
	{ "-h", offsetof(struct recfsd_options, help), 1 },
	{ "--help", offsetof(struct recfsd_options, help), 1 },
	{ "-V", offsetof(struct recfsd_options, version), 1 },
	{ "--version", offsetof(struct recfsd_options, version), 1 },
	FUSE_OPT_END
};

int64_t
recfsd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
usage(FILE *out, const char *prog)
{
	fprintf(out,
	    "usage: %s [-c FILE] [-f] [-d] [-o OPTS] MOUNTPOINT\n"
	    "       %s [-c FILE] --check-config\n"
	    "       %s --help | --version\n"
	    "\n"
	    "Mount a recfs record store: one directory per namespace, one per set,\n"
	    "one file per record, statistics under MOUNTPOINT/.info.\n"
	    "\n"
	    "recfsd options:\n"
	    "    -c FILE, --config=FILE  YAML configuration (default: the built-in one:\n"
	    "                            namespace test on a 4 GiB file in the work directory)\n"
	    "    --check-config          validate the configuration, print it, exit\n"
	    "    -h, --help              this help\n"
	    "    -V, --version           version\n"
	    "\n"
	    "Mount options default to default_permissions,fsname=recfs,subtype=recfs;\n"
	    "-o adds to them (allow_other only when asked).  See recfsd(8).\n"
	    "\n", prog, prog, prog);
}

/*
 * libfuse's option help, without its -h/--help and -V/--version lines:
 * usage() has recfsd's own, and two of each confused.  libfuse prints to
 * stdout, so its text goes through a memory file and is copied line by
 * line; if that fails it is printed whole.
 */
static void
fuse_help(void)
{
	int fd = memfd_create("recfsd-help", 0), saved = -1;
	FILE *f = NULL;
	char line[256];

	fflush(stdout);
	if (fd >= 0)
		saved = dup(STDOUT_FILENO);
	if (saved < 0 || dup2(fd, STDOUT_FILENO) < 0) {
		if (saved >= 0)
			close(saved);
		if (fd >= 0)
			close(fd);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return;
	}
	fuse_cmdline_help();
	fuse_lowlevel_help();
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	if (lseek(fd, 0, SEEK_SET) == 0)
		f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line + strspn(line, " ");

		if (strncmp(p, "-h ", 3) == 0 || strncmp(p, "-V ", 3) == 0)
			continue;
		fputs(line, stdout);
	}
	fclose(f);
}

/* ---- background start ------------------------------------------------------- */

/* Fork; the parent waits for the child's start-up status and exits with it. */
static int
daemon_start(void)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds) != 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		char status = 1;
		ssize_t n;

		close(fds[1]);
		do
			n = read(fds[0], &status, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? status : 1);
	}
	close(fds[0]);
	(void)setsid();
	daemon_pipe = fds[1];
	return 0;
}

/* Tell the waiting parent how start-up went; on success detach from the terminal. */
static void
daemon_ready(int status)
{
	char c = (char)status;
	int null;

	if (daemon_pipe < 0)
		return;
	if (status == 0) {
		if (chdir("/") != 0)
			log_warn("recfsd", "chdir /: %s", strerror(errno));
		null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			(void)dup2(null, 0);
			(void)dup2(null, 1);
			(void)dup2(null, 2);
			if (null > 2)
				close(null);
		}
	}
	if (write(daemon_pipe, &c, 1) != 1)
		log_warn("recfsd", "cannot report start-up to the parent: %s", strerror(errno));
	close(daemon_pipe);
	daemon_pipe = -1;
}

/*
 * Does a syslog daemon listen on /dev/log (where syslog(3) writes)?  A
 * socket file with nobody behind it counts as no.  The journal takes
 * syslog(3) lines through /dev/log too; its native socket alone would not
 * help, as syslog(3) never writes there.
 */
static bool
syslog_listening(void)
{
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	bool ok = false;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", "/dev/log");
	for (size_t i = 0; i < 2 && !ok; i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);

		if (fd < 0)
			continue;
		ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
	}
	return ok;
}

/* The mount point must be a directory: the kernel would mount anyway. */
static int
mountpoint_check(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0) {
		int err = errno;

		fprintf(stderr, "recfsd: mount point %s: %s%s\n", path, strerror(err),
		    err == ENOTCONN ? " (a recfsd that served it has died: fusermount3 -u it first)" : "");
		return -err;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "recfsd: mount point %s is not a directory\n", path);
		return -ENOTDIR;
	}
	return 0;
}

/*
 * Can this user use FUSE at all?  libfuse opens /dev/fuse itself, as the
 * calling user, before it would ever try fusermount3, and gives up when
 * that fails; so a user who cannot open it would get a bare "failed to
 * open /dev/fuse" only after the cold start created and formatted the
 * storage files.  Asked first, the answer says what to change.
 */
static int
fuse_device_check(void)
{
	static const char dev[] = "/dev/fuse";
	const struct passwd *pw;
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	int err = errno;

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (err == ENOENT || err == ENODEV || err == ENXIO) {
		fprintf(stderr, "recfsd: cannot open %s: %s: FUSE is not available on this machine.\n"
		    "recfsd: fix: load the module (modprobe fuse) and install fuse3; in a container, "
		    "pass the device in (docker run --device /dev/fuse --cap-add SYS_ADMIN).\n"
		    "recfsd: nothing was created; see docs/operations.md, \"Running as a non-root user\".\n",
		    dev, strerror(err));
		return -err;
	}
	if (getuid() == 0) {
		fprintf(stderr, "recfsd: cannot open %s as root: %s: a device policy refuses it.\n"
		    "recfsd: fix: in a container or a systemd unit with DevicePolicy=, allow the device "
		    "(docker run --device /dev/fuse; DeviceAllow=/dev/fuse rw).\n"
		    "recfsd: nothing was created.\n", dev, strerror(err));
		return -err;
	}
	pw = getpwuid(getuid());
	fprintf(stderr, "recfsd: cannot open %s: %s: user %s (uid %u) may not use FUSE.\n"
	    "recfsd: fix: run recfsd as root (the systemd unit recfsd.service does), or let users "
	    "mount FUSE file systems: /dev/fuse mode 0666 (as Debian's fuse3 package sets it: "
	    "chmod 0666 /dev/fuse) and fusermount3 installed setuid root.\n"
	    "recfsd: nothing was created; see docs/operations.md, \"Running as a non-root user\".\n",
	    dev, strerror(err), pw != NULL ? pw->pw_name : "?", (unsigned)getuid());
	return -err;
}

/* ---- signals ---------------------------------------------------------------- */

static void
signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* SIGHUP stays blocked in every thread; this one takes it. */
static void *
sighup_main(void *arg)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0 || sig != SIGHUP)
			continue;
		int rc = log_reopen();

		if (rc != 0)
			log_error("recfsd", "SIGHUP: cannot reopen the log: %s", strerror(-rc));
		else
			log_info("recfsd", "SIGHUP: log reopened");
	}
	return NULL;
}

/* ---- configuration ------------------------------------------------------------ */

static int
mkdir_p(const char *path, mode_t mode)
{
	char buf[CONFIG_PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, mode) != 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

/*
 * The node id: the configured one, or (node-id: auto) one generated once
 * and kept in WORKDIR/node_id.  The engine has no accessor for it yet, so
 * the daemon resolves it for /.info/node.
 */
static void
node_id_resolve(const struct recfs_config *cfg, char out[17])
{
	char path[CONFIG_PATH_MAX + 16];
	unsigned char raw[8];
	int fd;

	if (strcmp(cfg->node_id, "auto") != 0) {
		snprintf(out, 17, "%s", cfg->node_id);
		return;
	}
	snprintf(path, sizeof(path), "%s/node_id", cfg->work_directory);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, out, 16);

		close(fd);
		if (n == 16 && strspn(out, "0123456789abcdefABCDEF") >= 16) {
			out[16] = '\0';
			return;
		}
	}
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		memset(raw, 0, sizeof(raw));
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, out, 16) != 16 || write(fd, "\n", 1) != 1)
			log_warn("recfsd", "%s: cannot store the node id", path);
		close(fd);
	} else {
		log_warn("recfsd", "%s: %s (node id not kept)", path, strerror(errno));
	}
}

/* Default mount options, unless the user gave their own. */
static int
mount_defaults(struct fuse_args *args)
{
	bool fsname = false, subtype = false;
	char opts[128] = "-odefault_permissions";

	for (int i = 1; i < args->argc; i++) {
		fsname = fsname || strstr(args->argv[i], "fsname=") != NULL;
		subtype = subtype || strstr(args->argv[i], "subtype=") != NULL;
	}
	if (!fsname)
		strcat(opts, ",fsname=recfs");
	if (!subtype)
		strcat(opts, ",subtype=recfs");
	return fuse_opt_add_arg(args, opts);
}

static bool
args_have(const struct fuse_args *args, const char *what)
{
	for (int i = 1; i < args->argc; i++)
		if (strstr(args->argv[i], what) != NULL)
			return true;
	return false;
}

/* ---- main ------------------------------------------------------------------------ */

int
main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct recfsd_options o = { 0 };
	struct fuse_cmdline_opts fo = { 0 };
	struct recfs_config *cfg = &recfsd_config;
	struct fuse_loop_config *loop_cfg = NULL;
	struct fuse_session *se = NULL;
	struct node *node = NULL;
	struct txn_network *network = NULL;
	pthread_t hup_thread;
	bool hup_started = false, table = false, user_threads;
	char err[1024] = "", node_id[17];
	sigset_t sigs;
	int level, rc, status = 1;

	if (fuse_opt_parse(&args, &o, recfsd_opt_spec, NULL) != 0) {
		usage(stderr, argv[0]);
		fuse_opt_free_args(&args);
		return 2;
	}
	if (o.help || o.version) {
		if (o.help) {
			usage(stdout, argv[0]);
			printf("FUSE options:\n");
			fuse_help();
		} else {
			printf("recfsd %s (libfuse %s)\n", RECFS_VERSION, fuse_pkgversion());
		}
		free(o.config);
		fuse_opt_free_args(&args);
		return 0;
	}

	/* Configuration: a file, or the built-in default. */
	if (o.config != NULL) {
		rc = config_load_file(cfg, o.config, err, sizeof(err));
		if (rc != 0) {
			if (err[0] != '\0')
				fprintf(stderr, "%s\n", err);
			else
				fprintf(stderr, "%s: %s\n", o.config, recfs_strerror(rc));
			config_free(cfg);
			free(o.config);
			fuse_opt_free_args(&args);
			return 1;
		}
	} else {
		config_default(cfg);
	}
	if (o.check_config) {
		config_print(cfg, stdout);
		config_free(cfg);
		free(o.config);
		fuse_opt_free_args(&args);
		return 0;
	}

	/* fuse_parse_cmdline consumes it: look before. */
	user_threads = args_have(&args, "max_threads=");
	if (mount_defaults(&args) != 0 || fuse_parse_cmdline(&args, &fo) != 0) {
		/* libfuse said why above (an unknown option, a missing mount point). */
		fprintf(stderr, "recfsd: bad command line or mount point (see above, and %s --help)\n",
		    argv[0]);
		status = 2;
		goto out_config;
	}
	if (fo.show_help || fo.show_version) {
		/* Spelled in a way fuse_opt_parse did not catch: answer anyway. */
		usage(stdout, argv[0]);
		status = 0;
		goto out_config;
	}
	if (fo.mountpoint == NULL) {
		fprintf(stderr, "recfsd: no mount point given (see %s --help)\n", argv[0]);
		status = 2;
		goto out_config;
	}
	if (mountpoint_check(fo.mountpoint) != 0)
		goto out_config;
	/* Before the work directory and any storage file exist. */
	if (fuse_device_check() != 0)
		goto out_config;

	/* The work directory holds storage files and the node id. */
	rc = mkdir_p(cfg->work_directory, 0755);
	if (rc != 0) {
		fprintf(stderr, "recfsd: work directory %s: %s\n", cfg->work_directory, strerror(-rc));
		goto out_config;
	}
	level = log_level_parse(cfg->log_level);
	if (fo.debug)
		level = LOG_LEVEL_DEBUG;
	/* In the background stderr goes to /dev/null: syslog if one listens,
	 * else a file in the work directory (never nowhere). */
	if (!fo.foreground && strcmp(cfg->log_file, "stderr") == 0) {
		if (syslog_listening()) {
			fprintf(stderr, "recfsd: logging to syslog while in the background "
			    "(set logging.file or use -f to keep stderr)\n");
			snprintf(cfg->log_file, sizeof(cfg->log_file), "syslog");
		} else {
			if (snprintf(cfg->log_file, sizeof(cfg->log_file), "%s/recfsd.log",
			    cfg->work_directory) >= (int)sizeof(cfg->log_file)) {
				fprintf(stderr, "recfsd: work directory %s: path too long for the log\n",
				    cfg->work_directory);
				goto out_config;
			}
			fprintf(stderr, "recfsd: logging to %s (no syslog listens on /dev/log; set "
			    "logging.file, or use -f to keep stderr)\n", cfg->log_file);
		}
	}
	/* A log file's directory is created (0750, like /var/log/recfs under
	 * the systemd unit's LogsDirectory=): a fresh machine has no
	 * /var/log/recfs, and refusing would only make people create it. */
	if (strcmp(cfg->log_file, "stderr") != 0 && strcmp(cfg->log_file, "syslog") != 0) {
		char dir[sizeof(cfg->log_file)];
		size_t n = strnlen(cfg->log_file, sizeof(dir) - 1);

		memcpy(dir, cfg->log_file, n);
		dir[n] = '\0';
		rc = mkdir_p(dirname(dir), 0750);
		if (rc != 0) {
			fprintf(stderr, "recfsd: cannot create the directory of logging.file %s: %s\n",
			    cfg->log_file, strerror(-rc));
			goto out_config;
		}
	}
	rc = log_open(cfg->log_file, level < 0 ? LOG_LEVEL_INFO : (enum log_level)level);
	if (rc != 0) {
		fprintf(stderr, "recfsd: log %s: %s\n", cfg->log_file, strerror(-rc));
		goto out_config;
	}
	log_echo_stderr(true);
	if (!fo.foreground) {
		rc = daemon_start();
		if (rc != 0) {
			fprintf(stderr, "recfsd: cannot fork: %s\n", strerror(-rc));
			goto out_log;
		}
	}
	signals_block(&sigs);

	recfsd.cfg = cfg;
	recfsd.entry_timeout = cfg->entry_timeout;
	recfsd.attr_timeout = cfg->attr_timeout;
	recfsd.file_mode = cfg->file_mode & 07777;
	recfsd.dir_mode = cfg->dir_mode & 07777;
	recfsd.uid = getuid();
	recfsd.gid = getgid();
	recfsd.start_ns = recfsd_now_ns();
	rc = workdir_lock(cfg->work_directory, cfg->lock_wait, err, sizeof(err));
	if (rc != 0) {
		log_error("recfsd", "%s; refusing to start", err);
		goto out_log;
	}
	node_id_resolve(cfg, node_id);
	info_set_node_id(node_id);
	log_info("recfsd", "recfsd %s starting: config %s, node %s, mount point %s",
	    RECFS_VERSION, cfg->source, node_id, fo.mountpoint);

	(void)notify_send("STATUS=cold start: reading storage");
	rc = node_open(&node, cfg);
	if (rc != 0) {
		/* On the terminal too (the start-up echo), after the line naming the file. */
		log_error("recfsd", "cannot open the store (config %s): %s", cfg->source,
		    recfs_strerror(rc));
		goto out_log;
	}
	recfsd.node = node;
	txn_node_id_set(node, strtoull(node_id, NULL, 16));
	/* seeds given: the fabric and heartbeat (none: a single node, no socket) */
	rc = txn_network_start(cfg, strtoull(node_id, NULL, 16), &network);
	if (rc != 0) {
		log_error("recfsd", "cannot start the network side (config %s): %s", cfg->source,
		    recfs_strerror(rc));
		goto out_node;
	}
	txn_node_network_set(node, network);
	rc = inode_table_init(node);
	table = true;
	if (rc != 0) {
		fprintf(stderr, "recfsd: out of memory\n");
		goto out_node;
	}

	se = fuse_session_new(&args, &ops_table, sizeof(ops_table), NULL);
	if (se == NULL) {
		fprintf(stderr, "recfsd: cannot start a FUSE session (unknown -o option?)\n");
		goto out_node;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "recfsd: cannot install signal handlers\n");
		goto out_session;
	}
	if (fuse_session_mount(se, fo.mountpoint) != 0) {
		log_error("recfsd", "cannot mount on %s", fo.mountpoint);
		goto out_signals;
	}
	atomic_store_release(&recfsd.se, se);
	/* Before the session loop answers INIT (readahead.c says why). */
	(void)readahead_set(fo.mountpoint, cfg->read_ahead);
	if ((rc = handle_timer_start()) != 0) {
		log_error("recfsd", "cannot start the flush-max-ms timer for open files: %s", strerror(-rc));
		fprintf(stderr, "recfsd: cannot start a thread: %s\n", strerror(-rc));
		status = 1;
		goto out_unmount;
	}
	printf("recfsd: mounted on %s (config: %s)\n", fo.mountpoint, cfg->source);
	fflush(stdout);
	log_info("recfsd", "mounted on %s (config: %s)", fo.mountpoint, cfg->source);
	workdir_set_state("serving", fo.mountpoint);
	log_echo_stderr(false);
	daemon_ready(0);
	/* systemd (Type=notify): the cold start is done and the mount is up. */
	snprintf(err, sizeof(err), "READY=1\nSTATUS=serving on %s", fo.mountpoint);
	if ((rc = notify_send(err)) < 0)
		log_warn("recfsd", "cannot send READY=1 to $NOTIFY_SOCKET: %s", strerror(-rc));

	if (pthread_create(&hup_thread, NULL, sighup_main, NULL) == 0)
		hup_started = true;
	else
		log_warn("recfsd", "no SIGHUP thread: the log cannot be reopened");

	/* Only this thread takes TERM/INT (libfuse's workers block them). */
	sigdelset(&sigs, SIGHUP);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	if (fo.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		loop_cfg = fuse_loop_cfg_create();
		if (loop_cfg == NULL) {
			log_error("recfsd", "out of memory");
			rc = -ENOMEM;
			goto out_unmount;
		}
		fuse_loop_cfg_set_clone_fd(loop_cfg, (unsigned)fo.clone_fd);
		fuse_loop_cfg_set_max_threads(loop_cfg, user_threads ? fo.max_threads
		    : cfg->fuse_threads);
		/* 3.14 leaves UINT_MAX here when unset and logs a warning if passed on. */
		if (fo.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(loop_cfg, fo.max_idle_threads);
		rc = fuse_session_loop_mt(se, loop_cfg);
	}
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	/* From here a daemon starting on this store waits for us (lock-wait). */
	workdir_set_state("closing", NULL);
	(void)notify_send("STOPPING=1\nSTATUS=flushing and closing storage");
	if (rc < 0)
		log_error("recfsd", "session loop failed: %s", strerror(-rc));
	else if (rc > 0)
		log_info("recfsd", "signal %d: shutting down", rc);
	else
		log_info("recfsd", "unmounted: shutting down");
	status = rc < 0 ? 1 : 0;

out_unmount:
	/* Open files may still hold data (a signal ends the session under them). */
	handle_timer_stop();
	atomic_store_release(&recfsd.se, NULL);
	handle_flush_all();
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_node:
	if (table) {
		dir_release_all();
		inode_table_fini();
	}
	txn_node_network_set(node, NULL);
	txn_network_stop(network);
	node_close(node, true);
	if (status == 0)
		log_info("recfsd", "stopped cleanly");
out_log:
	/* Last: the storage is flushed and marked clean (or never opened). */
	workdir_unlock();
	if (hup_started) {
		pthread_cancel(hup_thread);
		pthread_join(hup_thread, NULL);
	}
	daemon_ready(status == 0 ? 0 : 1);
	if (loop_cfg != NULL)
		fuse_loop_cfg_destroy(loop_cfg);
	log_close();
out_config:
	config_free(cfg);
	free(o.config);
	free(fo.mountpoint);
	fuse_opt_free_args(&args);
	return status;
}
