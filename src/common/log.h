/* SPDX-License-Identifier: MIT */
/*
 * log.h - one-line log messages to stderr with a level filter.
 *
 * Every module logs through here so that a hostile peer's refusal is one
 * clear line ("vda:q0: broken: chain longer than queue") and the daemon's
 * --log-level applies everywhere.
 */
#ifndef VHOSTD_COMMON_LOG_H
#define VHOSTD_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Name the program at the start of each line (default "vhostd"); call before threads. */
void log_set_ident(const char *name);

enum log_format {
	LOG_FMT_TEXT, /* "vhostd: info: vda: ..." */
	LOG_FMT_JSON, /* {"time", "level", "ident", "subject" (the leading id), "msg"} */
};

void log_set_format(enum log_format fmt);
/* "text" or "json"; -1 for anything else. */
int log_format_parse(const char *name);

/*
 * Lines go to stderr until log_set_file(): a file opened for appending,
 * which log_reopen() (on SIGHUP, after logrotate moved it) opens again
 * by name.  0 or -errno.
 */
int log_set_file(const char *path);
int log_reopen(void);

/*
 * Under systemd with stderr connected to the journal (JOURNAL_STREAM),
 * text lines carry a "<N>" syslog priority prefix journald reads.
 */
void log_detect_journal(void);

/* Messages above this level are dropped (default: LOG_LVL_INFO). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "error|warn|info|debug"; returns -1 for anything else. */
int log_level_parse(const char *name);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Format a message into a caller's error buffer (@err may be NULL or @len
 * 0: nothing is written).  For functions that report why they failed.
 */
void errbuf_printf(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void errbuf_vprintf(char *err, size_t len, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif /* VHOSTD_COMMON_LOG_H */
