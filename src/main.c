/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * main: the command line. Everything else lives in libmcring.a.
 *
 *   mcring [-c FILE] [-t] [-d] [-p PIDFILE] [-o LOG] [-u USER] [-v] [-V]
 *   mcring -c FILE --route KEY...
 *   mcring -c FILE --analyze [--keys N] [--json]
 *   mcring --plan OLD.ini NEW.ini [--keys N] [--json]
 *   mcring ctl [-a ADDR] [-T TOKEN] [--json] COMMAND...   (see ctl.c)
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze.h"
#include "plan.h"
#include "config.h"
#include "ctl.h"
#include "log.h"
#include "mem.h"
#include "proxy.h"
#include "spool.h"
#include "ring.h"
#include "util.h"

#define MAIN_DEFAULT_CONFIG MCRING_CONFIG_FILE

/* What -V lists after "built with:". */
#ifdef HAVE_LIBSYSTEMD
#define MAIN_FEATURE_NOTIFY " sd_notify"
#else
#define MAIN_FEATURE_NOTIFY ""
#endif
#define MAIN_FEATURES MAIN_FEATURE_NOTIFY
#define MAIN_DEFAULT_SAMPLE 100000

enum main_opt {
    MAIN_OPT_ROUTE = 256,
    MAIN_OPT_ANALYZE,
    MAIN_OPT_KEYS,
    MAIN_OPT_JSON,
    MAIN_OPT_PLAN,
};

struct main_args {
    const char *config;
    const char *pidfile;
    const char *logfile;
    const char *user;
    bool test;
    bool daemonize;
    bool route;
    bool analyze;
    bool plan;
    bool json;
    uint64_t keys;
    int verbose;
};

static void
main_usage(FILE *out)
{
    fprintf(out,
            "Usage: mcring [OPTION]...\n"
            "       mcring -c FILE --route KEY...\n"
            "       mcring -c FILE --analyze [--keys N] [--json]\n"
            "       mcring --plan OLD.ini NEW.ini [--keys N] [--json]\n"
            "       mcring ctl [-a ADDR] [-T TOKEN] [--json] COMMAND...\n"
            "A memcached proxy with a weighted consistent-hash ring.\n"
            "\n"
            "  -c, --config FILE    configuration file (default %s)\n"
            "  -t, --test           check the configuration, print a "
            "summary, exit\n"
            "  -d, --daemonize      run in the background, log to syslog (or -o)\n"
            "  -p, --pidfile FILE   write the process id to FILE\n"
            "  -o, --log-file FILE  log to FILE (SIGUSR1 reopens it), also "
            "with -d\n"
            "  -u, --user USER      started as root: run as USER once "
            "listening\n"
            "  -v, --verbose        log more (repeat for debug)\n"
            "  -V, --version        print the version and exit\n"
            "  -h, --help           print this help and exit\n"
            "      --route          print owner and fallback order of each "
            "KEY\n"
            "      --analyze        report how evenly the ring spreads keys\n"
            "      --plan OLD NEW   the share of keys a change from one "
            "config file\n"
            "                       to the other moves, per pair and per "
            "backend\n"
            "      --keys N         sample keys for --analyze and --plan "
            "(default %d)\n"
            "      --json           --analyze or --plan output as JSON\n"
            "\n`mcring ctl` talks to the admin API of a running mcring; "
            "see mcring ctl -h.\n"
            "See mcring(8) and mcring.ini(5).\n",
            MAIN_DEFAULT_CONFIG, MAIN_DEFAULT_SAMPLE);
}

static int
main_parse(int argc, char **argv, struct main_args *a)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"daemonize", no_argument, NULL, 'd'},
        {"pidfile", required_argument, NULL, 'p'},
        {"log-file", required_argument, NULL, 'o'},
        {"user", required_argument, NULL, 'u'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"route", no_argument, NULL, MAIN_OPT_ROUTE},
        {"analyze", no_argument, NULL, MAIN_OPT_ANALYZE},
        {"keys", required_argument, NULL, MAIN_OPT_KEYS},
        {"json", no_argument, NULL, MAIN_OPT_JSON},
        {"plan", no_argument, NULL, MAIN_OPT_PLAN},
        {NULL, 0, NULL, 0},
    };
    int ch;

    memset(a, 0, sizeof(*a));
    a->config = MAIN_DEFAULT_CONFIG;
    a->keys = MAIN_DEFAULT_SAMPLE;
    while ((ch = getopt_long(argc, argv, "c:tdp:o:u:vVh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            a->config = optarg;
            break;
        case 't':
            a->test = true;
            break;
        case 'd':
            a->daemonize = true;
            break;
        case 'p':
            a->pidfile = optarg;
            break;
        case 'o':
            a->logfile = optarg;
            break;
        case 'u':
            a->user = optarg;
            break;
        case 'v':
            a->verbose++;
            break;
        case 'V':
            printf("mcring %s (answers version with %s)\n", PACKAGE_VERSION,
                   PROTO_VERSION_STRING);
            printf("built with:%s\n", MAIN_FEATURES);
            exit(0);
        case 'h':
            main_usage(stdout);
            exit(0);
        case MAIN_OPT_ROUTE:
            a->route = true;
            break;
        case MAIN_OPT_ANALYZE:
            a->analyze = true;
            break;
        case MAIN_OPT_KEYS:
            if (util_parse_u64(optarg, strlen(optarg), &a->keys) != 0 ||
                a->keys == 0 || a->keys > 100000000) {
                fprintf(stderr, "mcring: --keys: expected 1..100000000\n");
                return -1;
            }
            break;
        case MAIN_OPT_JSON:
            a->json = true;
            break;
        case MAIN_OPT_PLAN:
            a->plan = true;
            break;
        default:
            main_usage(stderr);
            return -1;
        }
    }
    if (a->route + a->analyze + a->test + a->plan > 1) {
        fprintf(stderr, "mcring: --route, --analyze, --plan and -t exclude "
                        "each other\n");
        return -1;
    }
    if (a->plan && argc - optind != 2) {
        fprintf(stderr, "mcring: --plan needs OLD.ini and NEW.ini\n");
        return -1;
    }
    if (a->route && optind >= argc) {
        fprintf(stderr, "mcring: --route needs at least one KEY\n");
        return -1;
    }
    if (!a->route && !a->plan && optind < argc) {
        fprintf(stderr, "mcring: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if ((a->json || a->keys != MAIN_DEFAULT_SAMPLE) && !a->analyze &&
        !a->plan) {
        fprintf(stderr, "mcring: --keys and --json go with --analyze or "
                        "--plan\n");
        return -1;
    }
    return 0;
}

/* *path made absolute in buf (len bytes) when it is relative (NULL: left
 * alone). Returns 0, or -1 with a message. */
static int
main_absolute(const char **path, char *buf, size_t len)
{
    char cwd[3072];

    if (*path == NULL || (*path)[0] == '/') {
        return 0;
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        fprintf(stderr, "mcring: getcwd: %s\n", strerror(errno));
        return -1;
    }
    snprintf(buf, len, "%s/%s", cwd, *path);
    *path = buf;
    return 0;
}

static int
main_write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        log_error("pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0) {
        log_error("pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Detaches into the background. The parent waits on a pipe until the
 * daemon reports that it is serving (it closes *ready) or why it is not
 * (it writes a message), and exits 0 or 1 accordingly, so that an init
 * script sees start-up errors. Returns 0 in the daemon with *ready set.
 */
static int
main_daemonize(int *ready)
{
    int fds[2];
    pid_t pid;
    int fd;

    if (pipe(fds) != 0) {
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid > 0) {
        char msg[600];
        ssize_t n, len = 0;

        close(fds[1]);
        while ((n = read(fds[0], msg + len, sizeof(msg) - 1 - (size_t)len)) >
               0) {
            len += n;
        }
        if (len > 0) {
            msg[len] = '\0';
            fprintf(stderr, "mcring: %s\n", msg);
            _exit(1);
        }
        _exit(0);
    }
    close(fds[0]);
    if (setsid() < 0) {
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid > 0) {
        _exit(0);
    }
    if (chdir("/") != 0) {
        return -1;
    }
    umask(022);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO) {
            close(fd);
        }
    }
    if (!log_has_file()) {
        log_use_syslog(true);
    }
    *ready = fds[1];
    return 0;
}

/*
 * -u USER: the user to become once listening, looked up before anything
 * starts (so that a wrong name is an error on the terminal). Returns 0
 * with *pw filled, or -1 with a message in err. Not started as root, -u
 * is ignored (pw->pw_name NULL), as memcached ignores it.
 */
static int
main_lookup_user(const char *name, struct passwd *pw, char *buf,
                 size_t buflen, char *err, size_t errlen)
{
    struct passwd *found = NULL;
    int rc;

    memset(pw, 0, sizeof(*pw));
    if (name == NULL || geteuid() != 0) {
        if (name != NULL) {
            log_warn("-u %s: not started as root, running as uid %u",
                     name, (unsigned)geteuid());
        }
        return 0;
    }
    rc = getpwnam_r(name, pw, buf, buflen, &found);
    if (found == NULL) {
        snprintf(err, errlen, "-u %s: %s", name,
                 rc != 0 ? strerror(rc) : "no such user");
        return -1;
    }
    if (pw->pw_uid == 0) {
        snprintf(err, errlen, "-u %s: that is root", name);
        return -1;
    }
    return 0;
}

/* Becomes pw's user (its groups, then its uid), for good. */
static int
main_drop_privileges(const struct passwd *pw, char *err, size_t errlen)
{
    if (pw->pw_name == NULL) {
        return 0;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        snprintf(err, errlen, "-u %s: %s", pw->pw_name, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        snprintf(err, errlen, "-u %s: root could be regained", pw->pw_name);
        return -1;
    }
    log_notice("running as %s (uid %u, gid %u)", pw->pw_name,
               (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
    return 0;
}

/* Tells a waiting parent why the daemon could not start. */
static void
main_report(int ready, const char *msg)
{
    if (ready >= 0) {
        ssize_t n = write(ready, msg, strlen(msg));

        (void)n;
        close(ready);
    }
}

/* The config file at path, or NULL after a message. */
static struct config *
main_load(const char *path)
{
    char err[512];
    struct config *cfg = config_load(path, err, sizeof(err));

    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
    }
    return cfg;
}

/*
 * --plan OLD NEW: what a change from one file to the other moves, per pool
 * both files have (after a "pool NAME:" line when either has several;
 * JSON: an array of the reports, each with its "pool").
 */
static int
main_plan(const char *old_path, const char *new_path,
          const struct main_args *a)
{
    struct config *ca = main_load(old_path);
    struct config *cb = ca != NULL ? main_load(new_path) : NULL;
    bool many = cb != NULL && (ca->npools > 1 || cb->npools > 1);
    json_t *all = many && a->json ? json_array() : NULL;
    char err[512];
    int rc = cb != NULL ? 0 : 1;

    for (size_t i = 0; cb != NULL && i < cb->npools && rc == 0; i++) {
        int k = config_pool_index(ca, cb->pools[i].name);
        struct ring *ra, *rb;

        if (k < 0) {
            if (many && !a->json) {
                printf("%spool %s: new\n", i > 0 ? "\n" : "",
                       cb->pools[i].name);
            }
            continue;
        }
        ra = config_build_pool_ring(ca, (size_t)k, NULL, err, sizeof(err));
        rb = ra != NULL ? config_build_pool_ring(cb, i, NULL, err,
                                                 sizeof(err))
                        : NULL;
        if (rb == NULL) {
            fprintf(stderr, "mcring: pool '%s': %s\n", cb->pools[i].name,
                    err);
            rc = 1;
        } else if (all != NULL) {
            json_t *doc = plan_json(ra, rb, a->keys, err, sizeof(err));

            if (doc == NULL) {
                fprintf(stderr, "mcring: %s\n", err);
                rc = 1;
            } else {
                json_object_set_new(doc, "pool",
                                    json_string(cb->pools[i].name));
                json_array_append_new(all, doc);
            }
        } else {
            if (many) {
                printf("%spool %s:\n", i > 0 ? "\n" : "", cb->pools[i].name);
            }
            if (plan_report(ra, rb, a->keys, a->json, stdout, err,
                            sizeof(err)) != 0) {
                fprintf(stderr, "mcring: %s\n", err);
                rc = 1;
            }
        }
        ring_destroy(rb);
        ring_destroy(ra);
    }
    for (size_t i = 0; cb != NULL && many && !a->json && i < ca->npools;
         i++) {
        if (config_pool_index(cb, ca->pools[i].name) < 0) {
            printf("\npool %s: removed\n", ca->pools[i].name);
        }
    }
    if (all != NULL) {
        if (rc == 0) {
            json_dumpf(all, stdout, ANALYZE_JSON_FLAGS);
            fputc('\n', stdout);
        }
        json_decref(all);
    }
    config_destroy(cb);
    config_destroy(ca);
    return rc;
}

/* --route KEY...: each key's pool (when there are several), owner and
 * fallbacks. */
static int
main_route(const struct config *cfg, char *const *keys, size_t nkeys)
{
    char err[512];
    struct ring **rings = util_xcalloc(cfg->npools, sizeof(*rings));
    int rc = 0;

    for (size_t i = 0; i < cfg->npools && rc == 0; i++) {
        rings[i] = config_build_pool_ring(cfg, i, NULL, err, sizeof(err));
        if (rings[i] == NULL) {
            fprintf(stderr, "mcring: %s\n", err);
            rc = 1;
        }
    }
    for (size_t k = 0; k < nkeys && rc == 0; k++) {
        int pool = config_route_key(cfg, keys[k], strlen(keys[k]));

        analyze_route(rings[pool],
                      cfg->npools > 1 ? cfg->pools[pool].name : NULL,
                      &keys[k], 1, stdout);
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        ring_destroy(rings[i]);
    }
    free(rings);
    return rc;
}

/*
 * --analyze and -t: fn on each pool's view (config_pool_view()) and ring,
 * after a "pool NAME:" line when there are several (JSON: an array of the
 * reports, each with its "pool"). Returns 0, or 1 after a message.
 */
static int
main_each_pool(const struct config *cfg, const struct main_args *a,
               bool summary)
{
    char err[512];
    bool many = cfg->npools > 1;
    json_t *all = many && a->json && !summary ? json_array() : NULL;
    int rc = 0;

    for (size_t i = 0; i < cfg->npools && rc == 0; i++) {
        struct config *view = config_pool_view(cfg, i);
        struct ring *ring = config_build_ring(view, err, sizeof(err));

        if (ring == NULL) {
            fprintf(stderr, "mcring: pool '%s': %s\n", cfg->pools[i].name,
                    err);
            rc = 1;
        } else if (summary) {
            if (many) {
                printf("pool %s: ", cfg->pools[i].name);
            }
            analyze_summary(view, ring, stdout);
        } else if (all != NULL) {
            json_t *doc = analyze_ring_json(view, ring, a->keys, true, err,
                                            sizeof(err));

            if (doc == NULL) {
                fprintf(stderr, "mcring: %s\n", err);
                rc = 1;
            } else {
                json_object_set_new(doc, "pool",
                                    json_string(cfg->pools[i].name));
                json_array_append_new(all, doc);
            }
        } else {
            if (many) {
                printf("%spool %s:\n", i > 0 ? "\n" : "", cfg->pools[i].name);
            }
            if (analyze_report(view, ring, a->keys, a->json, stdout, err,
                               sizeof(err)) != 0) {
                fprintf(stderr, "mcring: %s\n", err);
                rc = 1;
            }
        }
        ring_destroy(ring);
        config_destroy(view);
    }
    if (all != NULL) {
        if (rc == 0) {
            json_dumpf(all, stdout, ANALYZE_JSON_FLAGS);
            fputc('\n', stdout);
        }
        json_decref(all);
    }
    return rc;
}

int
main(int argc, char **argv)
{
    struct main_args a;
    struct config *cfg;
    struct proxy proxy;
    char err[512];
    int ready = -1;
    static char abspid[4096], abslog[4096], pwbuf[4096];
    struct passwd pw;

    if (argc > 1 && strcmp(argv[1], "ctl") == 0) {
        return ctl_main(argc - 1, argv + 1);
    }
    if (main_parse(argc, argv, &a) != 0) {
        return 2;
    }
    log_set_level(LOG_LEVEL_NOTICE + a.verbose);
    if (a.plan) {
        return main_plan(argv[optind], argv[optind + 1], &a);
    }

    cfg = config_load(a.config, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (config_check_rings(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", a.config, err);
        config_destroy(cfg);
        return 1;
    }

    if (a.route || a.analyze) {
        int rc = a.route ? main_route(cfg, argv + optind,
                                      (size_t)(argc - optind))
                         : main_each_pool(cfg, &a, false);

        config_destroy(cfg);
        return rc;
    }
    if (a.test) {
        int rc;

        /* A name that does not resolve now is a warning: the daemon starts
         * that backend DOWN and keeps trying. */
        if (config_resolve(cfg, stderr, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s\n", err);
            config_destroy(cfg);
            return 1;
        }
        if (cfg->delete_spool != NULL &&
            spool_check(cfg->delete_spool, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", a.config, err);
            config_destroy(cfg);
            return 1;
        }
        printf("%s: configuration OK\n", a.config);
        rc = main_each_pool(cfg, &a, true);
        config_destroy(cfg);
        return rc;
    }

    if (main_lookup_user(a.user, &pw, pwbuf, sizeof(pwbuf), err,
                         sizeof(err)) != 0) {
        fprintf(stderr, "mcring: %s\n", err);
        config_destroy(cfg);
        return 1;
    }
    /* The daemon runs in /: a relative pidfile stays where it was meant;
     * the log file is reopened by its absolute path. */
    if ((a.daemonize && main_absolute(&a.pidfile, abspid, sizeof(abspid)) !=
                            0) ||
        main_absolute(&a.logfile, abslog, sizeof(abslog)) != 0) {
        config_destroy(cfg);
        return 1;
    }
    if (a.logfile != NULL && log_open_file(a.logfile) != 0) {
        fprintf(stderr, "mcring: log file %s: %s\n", a.logfile,
                strerror(errno));
        config_destroy(cfg);
        return 1;
    }
    if (a.daemonize && main_daemonize(&ready) != 0) {
        fprintf(stderr, "mcring: cannot daemonize: %s\n", strerror(errno));
        return 1;
    }
    /* Before libevent allocates anything. */
    mem_init();
    if (proxy_start(&proxy, cfg, err, sizeof(err)) != 0) {
        log_error("%s", err);
        main_report(ready, err);
        proxy_stop(&proxy);
        mem_thread_release();
        return 1;
    }
    if (a.pidfile != NULL && main_write_pidfile(a.pidfile) != 0) {
        snprintf(err, sizeof(err), "cannot write pidfile %s", a.pidfile);
        main_report(ready, err);
        proxy_stop(&proxy);
        mem_thread_release();
        return 1;
    }
    if (main_drop_privileges(&pw, err, sizeof(err)) != 0) {
        log_error("%s", err);
        main_report(ready, err);
        proxy_stop(&proxy);
        mem_thread_release();
        return 1;
    }
    if (ready >= 0) {
        close(ready);
    }
    proxy_run(&proxy);
    proxy_stop(&proxy);
    mem_thread_release();
    if (a.pidfile != NULL) {
        unlink(a.pidfile);
    }
    return 0;
}
