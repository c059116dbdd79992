/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * notify: tells systemd how mcring is (sd_notify(3)): READY=1 once it
 * listens and after each reload, RELOADING=1 before one, STOPPING=1, and a
 * STATUS= line. Without libsystemd, or when not started by systemd with
 * Type=notify ($NOTIFY_SOCKET unset), nothing is sent.
 */
#ifndef MCRING_NOTIFY_H
#define MCRING_NOTIFY_H

#include <stdbool.h>

/* Whether there is anyone to tell ($NOTIFY_SOCKET is set). */
bool notify_enabled(void);
/* Sends state (such as "READY=1", or "" for none) and, if status is not
 * NULL, "STATUS=status". */
void notify_send(const char *state, const char *status);

#endif
