/* SPDX-License-Identifier: BSD-3-Clause */
/* notify: see notify.h. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"

bool
notify_enabled(void)
{
#ifdef HAVE_LIBSYSTEMD
    const char *s = getenv("NOTIFY_SOCKET");

    return s != NULL && *s != '\0';
#else
    return false;
#endif
}

void
notify_send(const char *state, const char *status)
{
#ifdef HAVE_LIBSYSTEMD
    char text[512];

    if (!notify_enabled()) {
        return;
    }
    snprintf(text, sizeof(text), "%s%s%s%s", state,
             *state != '\0' && status != NULL ? "\n" : "",
             status != NULL ? "STATUS=" : "", status != NULL ? status : "");
    (void)sd_notify(0, text);
#else
    (void)state;
    (void)status;
#endif
}
