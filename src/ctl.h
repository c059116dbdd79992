/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ctl: `mcring ctl`, a small client of the admin API for operators.
 */
#ifndef MCRING_CTL_H
#define MCRING_CTL_H

#define CTL_DEFAULT_ADDR "127.0.0.1:11312"

/*
 * Runs `mcring ctl ...`; argv[0] is "ctl". Returns the exit status: 0 on
 * success, 1 when the API answered with an error (printed to stderr), 2 on
 * a usage error or when the API cannot be reached.
 */
int ctl_main(int argc, char **argv);

#endif
