/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench/relay: the cheapest extra hop a proxy can be, as a yardstick for
 * bench/run.sh (system "relay"). It accepts clients on a loopback port and
 * pumps each one's bytes to one backend and back: for every client a
 * connection of its own to the backend, and two threads, each a blocking
 * read() and write() loop in one direction. It parses nothing, routes
 * nothing, never polls: a request with one round trip costs it one read
 * and one write each way, the fewest system calls and wake-ups a process
 * in the middle can make with kernel TCP. What it adds to direct memcached
 * is therefore a floor for the latency any proxy adds on the same machine.
 *
 *   bench/relay LISTEN_PORT BACKEND_PORT
 *
 * Not a proxy: no limits, no timeouts, one backend; for benchmarks only.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int backend_port;

struct pump {
    int from, to;
};

/* Copies from -> to until either side closes, then shuts both down. */
static void *
pump_run(void *arg)
{
    struct pump *p = arg;
    char buf[65536];

    for (;;) {
        ssize_t n = read(p->from, buf, sizeof(buf));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(p->to, buf + off, (size_t)(n - off));

            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                goto out;
            }
            off += w;
        }
    }
out:
    shutdown(p->from, SHUT_RDWR);
    shutdown(p->to, SHUT_RDWR);
    return NULL;
}

static int
tcp_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* One client: its backend connection and its two pumps. */
static void *
client_run(void *arg)
{
    int cfd = (int)(intptr_t)arg;
    int bfd = tcp_socket();
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)backend_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct pump up = {cfd, bfd}, down = {bfd, cfd};
    pthread_t t;

    if (bfd < 0 || connect(bfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("relay: connect");
        goto done;
    }
    if (pthread_create(&t, NULL, pump_run, &down) != 0) {
        goto done;
    }
    pump_run(&up);
    pthread_join(t, NULL);
done:
    close(cfd);
    if (bfd >= 0) {
        close(bfd);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    int lfd, one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    if (argc != 3) {
        fprintf(stderr, "usage: relay LISTEN_PORT BACKEND_PORT\n");
        return 2;
    }
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    backend_port = atoi(argv[2]);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 1024) != 0) {
        perror("relay: listen");
        return 1;
    }
    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        pthread_attr_t attr;
        pthread_t t;

        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            perror("relay: accept");
            return 1;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&t, &attr, client_run, (void *)(intptr_t)cfd) != 0) {
            close(cfd);
        }
        pthread_attr_destroy(&attr);
    }
}
