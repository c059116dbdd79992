/*
 * net: connection I/O helpers shared by every connection type (client,
 * backend, health): reading into an evbuffer, framing lines in place, and
 * comparing and printing socket addresses.
 */
#ifndef MCRING_NET_H
#define MCRING_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct evbuffer;

/*
 * Reads what the socket has (up to 64 KiB) into buf without an extra copy.
 * Returns bytes read, 0 at EOF, -1 with errno.
 */
ssize_t net_read(int fd, struct evbuffer *buf);

/*
 * The first chain of buf: *len bytes at the returned address (NULL and 0
 * when buf is empty). Valid until buf is changed.
 */
const char *net_head(struct evbuffer *buf, size_t *len);

/*
 * The first line of buf, made contiguous: returns its start, its length
 * without the terminator in *len and the terminator's ("\n" or "\r\n") in
 * *eollen; NULL if buf holds no complete line. Found in the first chain
 * with memchr in the common case; only a line that spans chains is pulled
 * up. Valid until buf is changed.
 */
const char *net_line(struct evbuffer *buf, size_t *len, size_t *eollen);

/*
 * The line from p to the '\n' at nl: its length without the terminator in
 * *len, the terminator's ("\n" or "\r\n") in *eollen.
 */
static inline void
net_eol(const char *p, const char *nl, size_t *len, size_t *eollen)
{
    *len = (size_t)(nl - p);
    *eollen = 1;
    if (*len > 0 && p[*len - 1] == '\r') {
        (*len)--;
        *eollen = 2;
    }
}

/* Whether a and b are the same address and port (IPv4, IPv6 with its
 * scope, else byte for byte). */
bool net_same_addr(const struct sockaddr_storage *a, socklen_t alen,
                   const struct sockaddr_storage *b, socklen_t blen);

/* "IP:PORT" ("[IPv6]:PORT") of sa in buf; returns buf. */
const char *net_addr_text(const struct sockaddr_storage *sa, socklen_t salen,
                          char *buf, size_t len);

#endif
