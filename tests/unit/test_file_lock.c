/*
 * test_file_lock.c - the store lock (base/file_lock.h): one holder per
 * file even within a process, the holder's pid and "closing" state seen
 * from another process, a closing holder waited for (bounded), a live one
 * refused at once.  Other processes are forked children holding the lock,
 * driven through a pipe.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/file_lock.h"

static char path[64];

static int
setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/recfs-test-lock.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static int
open_rw(void)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/*
 * A child that takes the lock, says so ('L' on the pipe), marks it closing
 * if asked, then waits for a byte on cmd (or hold_ms, if > 0) and exits.
 */
struct child {
	pid_t pid;
	int cmd;          /* parent -> child */
};

static struct child
child_hold(bool closing, int hold_ms)
{
	int up[2], down[2];
	struct child c;
	char ch;

	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		struct file_lock_holder h;
		int fd = open(path, O_RDWR);

		close(up[0]);
		close(down[1]);
		if (fd < 0 || file_lock_try(fd, &h) != 0)
			_exit(2);
		if (closing && file_lock_mark_closing(fd) != 0)
			_exit(3);
		if (write(up[1], "L", 1) != 1)
			_exit(4);
		if (hold_ms > 0) {
			struct timespec ts = { hold_ms / 1000, (hold_ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		} else if (read(down[0], &ch, 1) < 0) {
			_exit(5);
		}
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	assert_int_equal(read(up[0], &ch, 1), 1);
	close(up[0]);
	c.cmd = down[1];
	return c;
}

static void
child_end(struct child *c)
{
	int status;

	close(c->cmd);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static double
elapsed_s(uint64_t since)
{
	return (double)(clock_mono_ns() - since) / 1e9;
}

static void
test_file_lock_second_open_in_the_same_process_is_refused(void **state)
{
	struct file_lock_holder h;
	int a = open_rw(), b = open_rw();

	(void)state;
	assert_int_equal(file_lock_try(a, &h), 0);
	assert_false(h.held);
	assert_int_equal(file_lock_try(b, &h), -EBUSY);
	assert_true(h.held);
	assert_false(h.closing);
	/* Closing the descriptor that holds it is what releases it. */
	close(a);
	assert_int_equal(file_lock_try(b, &h), 0);
	close(b);
}

static void
test_file_lock_names_the_pid_and_state_of_another_process(void **state)
{
	struct file_lock_holder h;
	struct child c = child_hold(false, 0);
	int fd = open(path, O_RDONLY);   /* as recfs-check opens it */
	char text[64];

	(void)state;
	assert_int_equal(file_lock_query(fd, &h), 0);
	assert_true(h.held);
	assert_int_equal(h.pid, c.pid);
	assert_false(h.closing);
	snprintf(text, sizeof(text), "pid %ld", (long)c.pid);
	assert_string_equal(file_lock_holder_text(&h, (char[64]){ 0 }, 64), text);
	child_end(&c);
	assert_int_equal(file_lock_query(fd, &h), 0);
	assert_false(h.held);
	close(fd);

	c = child_hold(true, 0);
	fd = open_rw();
	assert_int_equal(file_lock_try(fd, &h), -EBUSY);
	assert_int_equal(h.pid, c.pid);
	assert_true(h.closing);
	snprintf(text, sizeof(text), "pid %ld, shutting down", (long)c.pid);
	assert_string_equal(file_lock_holder_text(&h, (char[64]){ 0 }, 64), text);
	child_end(&c);
	close(fd);
}

static void
test_file_lock_acquire_refuses_a_holder_that_is_not_closing_at_once(void **state)
{
	struct file_lock_holder h;
	struct child c = child_hold(false, 0);
	int fd = open_rw();
	uint64_t t0 = clock_mono_ns();

	(void)state;
	assert_int_equal(file_lock_acquire(fd, path, 10, NULL, NULL, &h), -EBUSY);
	assert_true(elapsed_s(t0) < 1.0);
	assert_int_equal(h.pid, c.pid);
	child_end(&c);
	close(fd);
}

static void
test_file_lock_acquire_waits_for_a_closing_holder_to_exit(void **state)
{
	struct file_lock_holder h;
	struct child c = child_hold(true, 300);
	int fd = open_rw();
	uint64_t t0 = clock_mono_ns();

	(void)state;
	assert_int_equal(file_lock_acquire(fd, path, 10, NULL, NULL, &h), 0);
	/* Taken once the child exited (300 ms), not after the 10 s bound. */
	assert_true(elapsed_s(t0) > 0.2);
	assert_true(elapsed_s(t0) < 5.0);
	child_end(&c);
	close(fd);
}

static bool
always_exiting(void *arg, const struct file_lock_holder *h)
{
	(void)h;
	++*(int *)arg;
	return true;
}

static void
test_file_lock_acquire_gives_up_after_lock_wait(void **state)
{
	struct file_lock_holder h;
	struct child c = child_hold(false, 0);
	int fd = open_rw(), asked = 0;
	uint64_t t0 = clock_mono_ns();

	(void)state;
	/* Not closing, but the caller knows it is on its way out: waited for. */
	assert_int_equal(file_lock_acquire(fd, path, 1, always_exiting, &asked, &h), -EBUSY);
	assert_true(elapsed_s(t0) >= 1.0);
	assert_true(elapsed_s(t0) < 3.0);
	assert_true(asked > 1);
	assert_int_equal(h.pid, c.pid);
	child_end(&c);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_lock_second_open_in_the_same_process_is_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_lock_names_the_pid_and_state_of_another_process,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_lock_acquire_refuses_a_holder_that_is_not_closing_at_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_lock_acquire_waits_for_a_closing_holder_to_exit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_lock_acquire_gives_up_after_lock_wait,
		    setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
