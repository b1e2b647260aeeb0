// SPDX-License-Identifier: MIT
/*
 * protocol.c - framing and descriptor passing for vhost-user messages, used
 * by both the back-end and the front-end.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/ufd.h"
#include "protocol.h"

/*
 * Room for every descriptor one message can carry (the kernel's SCM_MAX_FD):
 * descriptors that do not fit are dropped by the kernel on our thread, and
 * the last close of a hostile one (a lingering socket) can sleep there.
 * Received, they go through ufd_close(), which never blocks.
 */
#define RX_MAX_FDS 253

static const char *const request_names[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_NONE] = "NONE",
	[VHOST_USER_GET_FEATURES] = "GET_FEATURES",
	[VHOST_USER_SET_FEATURES] = "SET_FEATURES",
	[VHOST_USER_SET_OWNER] = "SET_OWNER",
	[VHOST_USER_RESET_OWNER] = "RESET_OWNER",
	[VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
	[VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
	[VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
	[VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
	[VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
	[VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
	[VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
	[VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
	[VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VHOST_USER_SEND_RARP] = "SEND_RARP",
	[VHOST_USER_NET_SET_MTU] = "NET_SET_MTU",
	[VHOST_USER_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
	[VHOST_USER_IOTLB_MSG] = "IOTLB_MSG",
	[VHOST_USER_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
	[VHOST_USER_GET_CONFIG] = "GET_CONFIG",
	[VHOST_USER_SET_CONFIG] = "SET_CONFIG",
	[VHOST_USER_CREATE_CRYPTO_SESSION] = "CREATE_CRYPTO_SESSION",
	[VHOST_USER_CLOSE_CRYPTO_SESSION] = "CLOSE_CRYPTO_SESSION",
	[VHOST_USER_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
	[VHOST_USER_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
	[VHOST_USER_POSTCOPY_END] = "POSTCOPY_END",
	[VHOST_USER_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
	[VHOST_USER_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
	[VHOST_USER_GPU_SET_SOCKET] = "GPU_SET_SOCKET",
	[VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
	[VHOST_USER_VRING_KICK] = "VRING_KICK",
	[VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
	[VHOST_USER_ADD_MEM_REG] = "ADD_MEM_REG",
	[VHOST_USER_REM_MEM_REG] = "REM_MEM_REG",
	[VHOST_USER_SET_STATUS] = "SET_STATUS",
	[VHOST_USER_GET_STATUS] = "GET_STATUS",
};

const char *vhost_user_request_name(uint32_t request)
{
	if (request < VHOST_USER_REQUEST_MAX && request_names[request])
		return request_names[request];
	return "unknown";
}

void vhost_user_close_fds(int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		/* The peer sent them: closing must not wait on what they are. */
		if (fds[i] >= 0)
			ufd_close(fds[i]);
		fds[i] = -1;
	}
}

/* Milliseconds left until @deadline (CLOCK_MONOTONIC); -1 means no deadline. */
static int ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	if (!deadline)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline->tv_sec - now.tv_sec) * 1000LL + (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : (int)ms;
}

static void deadline_set(struct timespec *deadline, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, deadline);
	deadline->tv_sec += timeout_ms / 1000;
	deadline->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline->tv_nsec >= 1000000000) {
		deadline->tv_sec++;
		deadline->tv_nsec -= 1000000000;
	}
}

/* Wait for @events on @sock until @deadline; 0, -ETIMEDOUT or -errno. */
static int wait_sock(int sock, short events, const struct timespec *deadline)
{
	struct pollfd pfd = {.fd = sock, .events = events};
	int r;

	do {
		r = poll(&pfd, 1, ms_left(deadline));
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r ? 0 : -ETIMEDOUT;
}

int vhost_user_sendv(int sock, const struct iovec *iov, unsigned int iovcnt, const int *fds,
		     unsigned int nfds, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec left[4];
	struct timespec deadline, *dl = NULL;
	bool first = true;

	if (nfds > VHOST_USER_MAX_FDS || iovcnt > 4)
		return -EINVAL;
	memcpy(left, iov, iovcnt * sizeof(*iov));
	if (timeout_ms >= 0) {
		deadline_set(&deadline, timeout_ms);
		dl = &deadline;
	}

	while (iovcnt) {
		struct msghdr mh = {.msg_iov = left, .msg_iovlen = iovcnt};
		ssize_t n;

		if (!left[0].iov_len) {
			memmove(left, left + 1, --iovcnt * sizeof(*left));
			continue;
		}
		/* Descriptors ride on the first byte only, whatever the split. */
		if (first && nfds) {
			struct cmsghdr *cmsg;

			memset(&control, 0, sizeof(control));
			mh.msg_control = control.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			cmsg = CMSG_FIRSTHDR(&mh);
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
		}

		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			r = wait_sock(sock, POLLOUT, dl);
			if (r)
				return r;
			continue;
		}
		first = false;
		/* Drop what went out from the front of the vector. */
		while (n > 0) {
			size_t step = (size_t)n < left[0].iov_len ? (size_t)n : left[0].iov_len;

			left[0].iov_base = (uint8_t *)left[0].iov_base + step;
			left[0].iov_len -= step;
			n -= (ssize_t)step;
			if (!left[0].iov_len)
				memmove(left, left + 1, --iovcnt * sizeof(*left));
		}
	}
	return 0;
}

int vhost_user_send(int sock, const struct vhost_user_msg *msg, const int *fds, unsigned int nfds,
		    int timeout_ms)
{
	struct iovec iov[2] = {
		{.iov_base = (void *)&msg->hdr, .iov_len = VHOST_USER_HDR_SIZE},
		{.iov_base = (void *)&msg->payload, .iov_len = msg->hdr.size},
	};

	if (msg->hdr.size > VHOST_USER_MAX_PAYLOAD)
		return -EMSGSIZE;
	return vhost_user_sendv(sock, iov, 2, fds, nfds, timeout_ms);
}

void vhost_user_rx_init(struct vhost_user_rx *rx)
{
	/* No byte of an earlier message can be read as part of this one. */
	memset(&rx->msg, 0, sizeof(rx->msg));
	rx->got = 0;
	rx->nfds = 0;
	for (unsigned int i = 0; i < VHOST_USER_MAX_FDS; i++)
		rx->fds[i] = -1;
}

void vhost_user_rx_reset(struct vhost_user_rx *rx)
{
	vhost_user_close_fds(rx->fds, rx->nfds);
	vhost_user_rx_init(rx);
}

/* Keep the SCM_RIGHTS descriptors of @mh; false if any had to be dropped. */
static bool rx_take_fds(struct vhost_user_rx *rx, struct msghdr *mh)
{
	bool ok = !(mh->msg_flags & MSG_CTRUNC);

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (rx->nfds < VHOST_USER_MAX_FDS) {
				rx->fds[rx->nfds++] = fd;
			} else {
				/* Not ours to keep: close, never leak, never wait. */
				ufd_close(fd);
				ok = false;
			}
		}
	}
	return ok;
}

int vhost_user_recv_step(int sock, struct vhost_user_rx *rx)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * RX_MAX_FDS)];
		struct cmsghdr align;
	} control;

	for (;;) {
		struct iovec iov;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		size_t want;
		ssize_t n;

		/*
		 * Read the 12-byte header first, then exactly the payload it
		 * announces, so that bytes (and descriptors) of the next
		 * message stay in the socket.  The size is checked before a
		 * single payload byte is read: a hostile size never reaches
		 * a buffer.
		 */
		if (rx->got < VHOST_USER_HDR_SIZE) {
			want = VHOST_USER_HDR_SIZE - rx->got;
		} else {
			if (rx->msg.hdr.size > VHOST_USER_MAX_PAYLOAD)
				return -EMSGSIZE;
			want = VHOST_USER_HDR_SIZE + rx->msg.hdr.size - rx->got;
			if (!want)
				return 1;
		}

		/* Wire offset to memory: the payload starts at its own alignment. */
		if (rx->got < VHOST_USER_HDR_SIZE)
			iov.iov_base = (uint8_t *)&rx->msg.hdr + rx->got;
		else
			iov.iov_base =
				(uint8_t *)&rx->msg.payload + (rx->got - VHOST_USER_HDR_SIZE);
		iov.iov_len = want;
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);

		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		if (!rx_take_fds(rx, &mh))
			return -ETOOMANYREFS;
		if (n == 0)
			return rx->got ? -EPIPE : -ECONNRESET;
		rx->got += (size_t)n;
	}
}

int vhost_user_recv(int sock, struct vhost_user_rx *rx, int timeout_ms)
{
	struct timespec deadline, *dl = NULL;

	if (timeout_ms >= 0) {
		deadline_set(&deadline, timeout_ms);
		dl = &deadline;
	}
	for (;;) {
		int r = vhost_user_recv_step(sock, rx);

		if (r)
			return r;
		r = wait_sock(sock, POLLIN, dl);
		if (r)
			return r;
	}
}
