/* SPDX-License-Identifier: MIT */
/*
 * control.h - the daemon's JSON-RPC 2.0 control socket.
 *
 * A unix stream socket served from the daemon's event loop.  Framing is one
 * request per line and one reply per line: a request is a JSON-RPC 2.0
 * object or a batch (array); a request without "id" is a notification and
 * gets no reply.  Whatever arrives on the socket is untrusted: malformed
 * JSON or an ill-formed request gets a JSON-RPC error reply and the
 * connection goes on; a line longer than CTL_MAX_LINE, or a client that
 * stops reading its replies, is closed.  Nothing a client sends can make the
 * daemon allocate without bound or block.
 *
 * The server knows nothing about devices: the daemon hands it a table of
 * methods (struct ctl_method).
 */
#ifndef VHOSTD_DAEMON_CONTROL_H
#define VHOSTD_DAEMON_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

struct evloop;
struct json_object;

/* Error codes from the JSON-RPC 2.0 specification, section 5.1. */
#define CTL_ERR_PARSE		 -32700
#define CTL_ERR_INVALID_REQUEST	 -32600
#define CTL_ERR_METHOD_NOT_FOUND -32601
#define CTL_ERR_INVALID_PARAMS	 -32602
#define CTL_ERR_INTERNAL	 -32603

/* Longest request line; a longer one gets an error and the connection closes. */
#define CTL_MAX_LINE (64 * 1024)
/*
 * Calls in one batch.  Replies are bounded per line (CTL_MAX_PENDING_OUT
 * stops reading), but a batch's come at once: one line of "stats" calls
 * would build hundreds of MiB.
 */
#define CTL_MAX_BATCH 64
/* Replies queued for a client that does not read them before it is dropped. */
#define CTL_MAX_PENDING_OUT (256 * 1024)
/*
 * Connections served at once.  One more is accepted only in place of the
 * connection that has gone longest without a complete request, if that is
 * at least CTL_IDLE_EVICT_MS: leaked or trickling (slowloris) connections
 * can never lock every client out.  Otherwise the new one is closed.
 */
#define CTL_MAX_CLIENTS	  16
#define CTL_IDLE_EVICT_MS 10000

/*
 * One method.  @params is the request's "params" (an object, an array, or
 * NULL when absent).  On success store a new reference in *@result (NULL
 * means JSON null) and return 0; on failure return a CTL_ERR_* code (or an
 * application code) and write a message into @err.
 */
struct ctl_method {
	const char *name;
	int (*call)(void *opaque, struct json_object *params, struct json_object **result,
		    char *err, size_t err_len);
};

struct ctl_server;

/*
 * Listen on @path (mode 0600) and serve @methods (terminated by a NULL
 * name) from @loop.  A stale socket left by a dead daemon is replaced; a
 * live one is not.  NULL with a message in @err.
 */
struct ctl_server *ctl_server_new(const char *path, struct evloop *loop,
				  const struct ctl_method *methods, void *opaque, char *err,
				  size_t err_len);

/*
 * Could a listening unix socket be made at @path?  The path fits, its
 * folder exists and is writable, and nothing is there but perhaps a stale
 * socket nobody listens on (*@stale: the caller may unlink it).  0, or -1
 * with a message in @err.  The daemon checks every socket with this before
 * it starts anything.
 */
int ctl_socket_path_check(const char *path, bool *stale, char *err, size_t err_len);

/* Change CTL_IDLE_EVICT_MS for @srv (the tests use a short one). */
void ctl_server_set_idle_evict_ms(struct ctl_server *srv, unsigned int ms);

/* Close every connection, remove the socket, free. */
void ctl_server_free(struct ctl_server *srv);

/*
 * Handle one request line (@len bytes, no newline) against @methods.
 * Returns the reply as a malloc'd NUL-terminated string without newline, or
 * NULL when no reply is due (notifications only).  Used by the server and
 * directly by the tests.
 */
char *ctl_dispatch(const struct ctl_method *methods, void *opaque, const char *line, size_t len);

/*
 * Does @text (@len bytes, parsed into @v) give a key twice in one object?
 * json-c keeps the last silently; a request or a config file that does
 * is refused instead.
 */
bool ctl_json_dup_keys(const char *text, size_t len, struct json_object *v);

#endif /* VHOSTD_DAEMON_CONTROL_H */
