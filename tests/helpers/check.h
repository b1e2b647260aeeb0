/* SPDX-License-Identifier: MIT */
/*
 * check.h - the checks every test uses.  A failed check prints one line,
 * "FAIL file:line: function: ..." with the expression (and both values for
 * CHECK_EQ), and exits 1 at once, from any thread or process; meson counts
 * the exit status.
 */
#ifndef VHOSTD_TESTS_CHECK_H
#define VHOSTD_TESTS_CHECK_H

#include "common/util.h"	/* ARRAY_SIZE, container_of */

/* Report "file:line: func: message" (%m works) and _exit(1), stdout flushed first. */
void check_fail(const char *file, int line, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));
/* The same, for a failed @expr with a message of its own. */
void check_fail_expr(const char *file, int line, const char *func, const char *expr,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6), noreturn));

/*
 * Where failures are reported: @fd, or stderr again with -1.  For a test
 * that redirects fd 2 to look at what the code under test logs.
 */
void check_report_fd(int fd);

/*
 * abort() instead of _exit(1) after the report: for fuzz harnesses, whose
 * fuzzer saves the input that crashed and not one that exited.
 */
void check_abort_on_failure(void);

#define FAIL(...) check_fail(__FILE__, __LINE__, __func__, __VA_ARGS__)

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			FAIL("check failed: %s", #cond);                                           \
	} while (0)

/* CHECK() with a printf-style explanation after the expression. */
#define CHECK_MSG(cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_fail_expr(__FILE__, __LINE__, __func__, #cond, __VA_ARGS__);         \
	} while (0)

/* Compare two integers and print both values when they differ. */
#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			FAIL("%s == %s: %lld != %lld", #a, #b, _a, _b);                            \
	} while (0)

#endif /* VHOSTD_TESTS_CHECK_H */
