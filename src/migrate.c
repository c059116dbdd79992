/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * migrate: see migrate.h.
 *
 * A move keeps three configs: start (the running one when it began, where a
 * rollback ends), target (where it ends) and base (target plus the
 * backends being removed: every step's config is a copy of base with each
 * moving backend's weight set for its step). Each moving backend steps on
 * its own clock (its ramp over its steps); one timer wakes for the earliest
 * step due.
 */
#include "autoconf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "backend.h"
#include "config.h"
#include "copier.h"
#include "log.h"
#include "migrate.h"
#include "ring.h"
#include "topology.h"
#include "util.h"

#define MIGRATE_NS 1000000000ull
/* How often a waiting move looks at its backend again. */
#define MIGRATE_WAIT_NS (250 * 1000000ull)

struct migrate_move {
    char *name;
    double from, to;        /* weights at the start and at the end; 0: not
                               in that config */
    unsigned ramp;          /* seconds */
    unsigned steps;
    unsigned step;          /* weight = from + (to - from) * step / steps */
    uint64_t interval_ns;
    uint64_t next_ns;       /* when its next step is due */
    bool waiting;           /* it gains weight and its backend is not UP */
};

struct migrate {
    struct event_base *base;
    struct copier *copier;
    bool cleaning;                      /* the copy's last pass is out:
                                           then the window ends */
    struct migrate_ops ops;
    struct event *timer;
    enum migrate_state state;
    enum migrate_state paused_from;     /* RUNNING or ROLLBACK */
    struct config *start;
    struct config *target;
    struct config *base_cfg;
    struct config *final;               /* warm-up: the target, which the
                                           snapshot without its removed
                                           backends (weight 0) ends on */
    struct topology *origin[TOPOLOGY_ORIGINS];  /* references, or NULL:
                                           [0] before the move, [1] where
                                           its rollback began */
    struct migrate_move *moves;
    size_t nmoves;
    unsigned warmup_s;
    uint64_t paused_ns;
    uint64_t warm_until_ns;
    int64_t started_wall;
    int64_t warm_until_wall;
    double moved_share;
    char why[64];
    struct migrate_summary sum;
};

static const char *const migrate_state_names[] = {
    [MIGRATE_IDLE] = "idle",
    [MIGRATE_RUNNING] = "running",
    [MIGRATE_PAUSED] = "paused",
    [MIGRATE_ROLLBACK] = "rollback",
    [MIGRATE_WARMUP] = "warmup",
};

const char *
migrate_state_name(enum migrate_state s)
{
    return migrate_state_names[s];
}

static double
migrate_weight(const struct migrate_move *mv)
{
    if (mv->step == mv->steps) {
        return mv->to;
    }
    return mv->from + (mv->to - mv->from) * mv->step / mv->steps;
}

/* Whether mv is where the move is heading (its end, or 0 in a rollback). */
static bool
migrate_move_done(const struct migrate *m, const struct migrate_move *mv)
{
    return m->state == MIGRATE_ROLLBACK ||
                   (m->state == MIGRATE_PAUSED &&
                    m->paused_from == MIGRATE_ROLLBACK)
               ? mv->step == 0
               : mv->step == mv->steps;
}

static void
migrate_free_moves(struct migrate *m)
{
    for (size_t i = 0; i < m->nmoves; i++) {
        free(m->moves[i].name);
    }
    free(m->moves);
    m->moves = NULL;
    m->nmoves = 0;
    config_destroy(m->start);
    config_destroy(m->target);
    config_destroy(m->base_cfg);
    m->start = m->target = m->base_cfg = NULL;
}

/* Expected end of the steps (wall clock), 0 when none is left. */
static int64_t
migrate_expected_end(const struct migrate *m)
{
    uint64_t now = util_now_ns(), left = 0;

    if (m->state != MIGRATE_RUNNING && m->state != MIGRATE_ROLLBACK) {
        return 0;
    }
    for (size_t i = 0; i < m->nmoves; i++) {
        const struct migrate_move *mv = &m->moves[i];
        unsigned n = m->state == MIGRATE_ROLLBACK ? mv->step
                                                  : mv->steps - mv->step;
        uint64_t l;

        if (n == 0) {
            continue;
        }
        l = (mv->next_ns > now ? mv->next_ns - now : 0) +
            (uint64_t)(n - 1) * mv->interval_ns;
        left = l > left ? l : left;
    }
    return (int64_t)time(NULL) + (int64_t)((left + MIGRATE_NS - 1) / MIGRATE_NS);
}

static void
migrate_update_summary(struct migrate *m)
{
    uint32_t done = 0, steps = 0;

    for (size_t i = 0; i < m->nmoves; i++) {
        done += m->moves[i].step;
        steps += m->moves[i].steps;
    }
    atomic_store_explicit(&m->sum.state, (int)m->state, memory_order_relaxed);
    atomic_store_explicit(&m->sum.moves, (uint32_t)m->nmoves,
                          memory_order_relaxed);
    atomic_store_explicit(&m->sum.steps_done, done, memory_order_relaxed);
    atomic_store_explicit(&m->sum.steps, steps, memory_order_relaxed);
    atomic_store_explicit(&m->sum.moved_ppm,
                          isfinite(m->moved_share)
                              ? (uint64_t)llround(m->moved_share * 1e6)
                              : 1000000,
                          memory_order_relaxed);
    atomic_store_explicit(&m->sum.expected_end, migrate_expected_end(m),
                          memory_order_relaxed);
}

/* Publishes cfg (taken) with the move's origin (NULL: none). */
static int
migrate_publish(struct migrate *m, struct config *cfg, bool with_origin,
                char *err, size_t errlen)
{
    struct topology *none[TOPOLOGY_ORIGINS] = {NULL};

    if (m->ops.publish(m->ops.arg, cfg, with_origin ? m->origin : none, err,
                       errlen) != 0) {
        return -1;
    }
    m->moved_share =
        with_origin && m->origin[0] != NULL
            ? topology_moved_share(m->origin[0], m->ops.current(m->ops.arg))
            : 0.0;
    return 0;
}

/* The config of the current step: base with each move's weight. */
static struct config *
migrate_step_config(const struct migrate *m)
{
    struct config *cfg = config_clone(m->base_cfg);

    for (size_t i = 0; i < m->nmoves; i++) {
        int b = config_backend_index(cfg, m->moves[i].name);

        if (b >= 0) {
            cfg->backends[b].weight = migrate_weight(&m->moves[i]);
        }
    }
    return cfg;
}

static void
migrate_schedule(struct migrate *m, uint64_t at_ns)
{
    uint64_t now = util_now_ns();
    uint64_t d = at_ns > now ? at_ns - now : 0;
    struct timeval tv = {(time_t)(d / MIGRATE_NS),
                         (suseconds_t)(d % MIGRATE_NS / 1000)};

    evtimer_add(m->timer, &tv);
}

static void
migrate_drop_origin(struct migrate *m)
{
    for (unsigned o = 0; o < TOPOLOGY_ORIGINS; o++) {
        topology_unref(m->origin[o]);
        m->origin[o] = NULL;
    }
    m->moved_share = 0.0;
}

/*
 * final with every other backend of the move (of base, or of start for a
 * move made at once) kept at weight 0: they own no key but still serve
 * warm-up reads and hold keys the copy has still to move, until the move
 * is over.
 */
static struct config *
migrate_linger_config(const struct migrate *m, const struct config *final)
{
    const struct config *all = m->base_cfg != NULL ? m->base_cfg : m->start;
    struct config *cfg = config_clone(final);

    for (size_t i = 0; i < all->nbackends; i++) {
        if (config_backend_index(final, all->backends[i].name) < 0) {
            config_copy_backend(cfg, &all->backends[i]);
            cfg->backends[config_backend_index(cfg, all->backends[i].name)]
                .weight = 0.0;
        }
    }
    return cfg;
}

/*
 * The steps are over, at final (the target, or the start after a
 * rollback): the window in which the origin stays (warm-up reads, deletes
 * after writes) while warm_s seconds pass and the copy moves what is left.
 * Without warm-up and copy, final at once.
 */
static void
migrate_end_move(struct migrate *m, const struct config *final,
                 unsigned warm_s, const char *what)
{
    char err[256];
    bool window = warm_s > 0 || final->migrate_rate > 0;
    struct config *cfg = window ? migrate_linger_config(m, final)
                                : config_clone(final);

    if (migrate_publish(m, cfg, window, err, sizeof(err)) != 0) {
        log_error("migration: cannot apply its end: %s", err);
    }
    config_destroy(m->final);
    m->final = window ? config_clone(final) : NULL;
    migrate_free_moves(m);
    if (!window) {
        m->state = MIGRATE_IDLE;
        migrate_drop_origin(m);
        log_notice("migration: %s", what);
        migrate_update_summary(m);
        return;
    }
    m->state = MIGRATE_WARMUP;
    m->warm_until_ns = util_now_ns() + (uint64_t)warm_s * MIGRATE_NS;
    m->warm_until_wall = (int64_t)time(NULL) + warm_s;
    m->cleaning = false;
    copier_start(m->copier, m->ops.current(m->ops.arg), final->migrate_rate,
                 true);
    migrate_schedule(m, m->warm_until_ns);
    log_notice("migration: %s, %.4f of the keys moved; warm-up from their "
               "previous owners for %u s%s",
               what, m->moved_share, warm_s,
               final->migrate_rate > 0 ? " and until the copy is done" : "");
    migrate_update_summary(m);
}

static void
migrate_end_steps(struct migrate *m)
{
    struct config *target = m->target;

    m->target = NULL;
    migrate_end_move(m, target, m->warmup_s, "done");
    config_destroy(target);
}

static void
migrate_end_rollback(struct migrate *m)
{
    struct config *start = m->start;

    m->start = NULL;
    migrate_end_move(m, start, 0, "rolled back to where it started");
    config_destroy(start);
}

/* The window is over once its time has passed and the copy is done (a
 * last pass of it too). */
static void
migrate_end_warmup(struct migrate *m)
{
    char err[256];

    evtimer_del(m->timer);
    if (copier_busy(m->copier)) {
        migrate_schedule(m, util_now_ns() + MIGRATE_WAIT_NS);
        return;
    }
    if (!m->cleaning && m->final != NULL && m->final->migrate_rate > 0) {
        /* A last pass, for what the others missed, then the window
         * closes. */
        m->cleaning = true;
        copier_start(m->copier, m->ops.current(m->ops.arg),
                     m->final->migrate_rate, true);
        migrate_schedule(m, util_now_ns() + MIGRATE_WAIT_NS);
        return;
    }
    if (migrate_publish(m, m->final, false, err, sizeof(err)) != 0) {
        log_error("migration: cannot end the warm-up: %s", err);
    }
    m->final = NULL;
    migrate_drop_origin(m);
    m->state = MIGRATE_IDLE;
    m->warm_until_wall = 0;
    migrate_update_summary(m);
    log_notice("migration: warm-up over");
}

/* Whether mv's backend can take more keys now. */
static bool
migrate_target_up(struct migrate *m, const struct migrate_move *mv)
{
    struct backend *be = topology_find(m->ops.current(m->ops.arg), mv->name);

    return be != NULL && backend_is_up(be);
}

/* Steps every move that is due; schedules the next wake-up. */
static void
migrate_tick(struct migrate *m)
{
    bool back = m->state == MIGRATE_ROLLBACK;
    uint64_t now = util_now_ns(), next = UINT64_MAX;
    bool changed = false, all_done = true;
    char err[256];

    for (size_t i = 0; i < m->nmoves; i++) {
        struct migrate_move *mv = &m->moves[i];
        bool gains = back ? mv->from > mv->to : mv->to > mv->from;

        if (migrate_move_done(m, mv)) {
            continue;
        }
        if (now >= mv->next_ns) {
            if (gains && !migrate_target_up(m, mv)) {
                if (!mv->waiting) {
                    log_notice("migration: %s is not up; its move waits",
                               mv->name);
                }
                mv->waiting = true;
                mv->next_ns = now + MIGRATE_WAIT_NS;
            } else {
                if (mv->waiting) {
                    log_notice("migration: %s is up; its move goes on",
                               mv->name);
                }
                mv->waiting = false;
                mv->step = back ? mv->step - 1 : mv->step + 1;
                mv->next_ns = now + mv->interval_ns;
                changed = true;
                log_info("migration: %s at step %u of %u, weight %g",
                         mv->name, mv->step, mv->steps, migrate_weight(mv));
            }
        }
        if (!migrate_move_done(m, mv)) {
            all_done = false;
            next = mv->next_ns < next ? mv->next_ns : next;
        }
    }
    if (all_done) {
        if (back) {
            migrate_end_rollback(m);
        } else {
            migrate_end_steps(m);
        }
        return;
    }
    if (changed) {
        if (migrate_publish(m, migrate_step_config(m), true, err,
                            sizeof(err)) != 0) {
            log_error("migration: cannot apply a step: %s", err);
        }
        copier_start(m->copier, m->ops.current(m->ops.arg),
                     m->base_cfg->migrate_rate, false);
    }
    migrate_update_summary(m);
    migrate_schedule(m, next);
}

static void
migrate_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct migrate *m = arg;

    (void)fd;
    (void)what;
    if (m->state == MIGRATE_WARMUP) {
        migrate_end_warmup(m);
    } else if (m->state == MIGRATE_RUNNING || m->state == MIGRATE_ROLLBACK) {
        migrate_tick(m);
    }
}

struct migrate *
migrate_create(struct event_base *base, const struct migrate_ops *ops)
{
    struct migrate *m = util_xcalloc(1, sizeof(*m));

    m->base = base;
    m->ops = *ops;
    m->timer = evtimer_new(base, migrate_timer_cb, m);
    m->copier = copier_create();
    if (m->timer == NULL || m->copier == NULL) {
        if (m->timer != NULL) {
            event_free(m->timer);
        }
        copier_destroy(m->copier);
        free(m);
        return NULL;
    }
    migrate_update_summary(m);
    return m;
}

void
migrate_destroy(struct migrate *m)
{
    if (m == NULL) {
        return;
    }
    event_free(m->timer);
    copier_destroy(m->copier);
    migrate_free_moves(m);
    config_destroy(m->final);
    migrate_drop_origin(m);
    free(m);
}

static void
migrate_add_move(struct migrate *m, const char *name, double from, double to,
                 unsigned ramp)
{
    struct migrate_move *mv;

    m->moves = util_xrealloc(m->moves, m->nmoves + 1, sizeof(*m->moves));
    mv = &m->moves[m->nmoves++];
    memset(mv, 0, sizeof(*mv));
    mv->name = util_xstrdup(name);
    mv->from = from;
    mv->to = to;
    mv->ramp = ramp;
    mv->steps = ramp == 0 ? 1
                : ramp > MIGRATE_MAX_STEPS ? MIGRATE_MAX_STEPS
                                           : ramp;
    mv->interval_ns = (uint64_t)ramp * MIGRATE_NS / mv->steps;
    /* A move at once is at its end from the first snapshot on. */
    mv->step = ramp == 0 ? mv->steps : 0;
}

/*
 * The moves from cur to target: added, removed and reweighted backends,
 * with their ramps. Returns whether the change moves keys at all (an
 * address or the ring's shape may change with no weight changing).
 */
static bool
migrate_plan(struct migrate *m, const struct config *cur,
             const struct config *target, int ramp)
{
    bool moves = cur->hash != target->hash || cur->vnodes != target->vnodes ||
                 !config_pools_same_placement(cur, target);

    for (size_t i = 0; i < target->nbackends; i++) {
        const struct config_backend *b = &target->backends[i];
        int c = config_backend_index(cur, b->name);

        if (c < 0) {
            unsigned r = ramp >= 0     ? (unsigned)ramp
                         : b->ramp >= 0 ? (unsigned)b->ramp
                                        : target->ramp;

            migrate_add_move(m, b->name, 0.0, b->weight, r);
            continue;
        }
        if (cur->backends[c].port != b->port ||
            strcmp(cur->backends[c].host, b->host) != 0) {
            moves = true; /* another server under that name */
        }
        if (cur->backends[c].weight != b->weight) {
            migrate_add_move(m, b->name, cur->backends[c].weight, b->weight,
                             ramp >= 0     ? (unsigned)ramp
                             : b->ramp >= 0 ? (unsigned)b->ramp
                                            : 0);
        }
    }
    for (size_t i = 0; i < cur->nbackends; i++) {
        if (config_backend_index(target, cur->backends[i].name) < 0) {
            migrate_add_move(m, cur->backends[i].name, cur->backends[i].weight,
                             0.0, ramp >= 0 ? (unsigned)ramp : 0);
        }
    }
    return moves || m->nmoves > 0;
}

int
migrate_change(struct migrate *m, struct config *target, int ramp,
               const char *why, char *err, size_t errlen)
{
    struct topology *cur = m->ops.current(m->ops.arg);
    unsigned max_ramp = 0;
    uint64_t now;

    if (m->state == MIGRATE_RUNNING || m->state == MIGRATE_PAUSED ||
        m->state == MIGRATE_ROLLBACK) {
        config_destroy(target);
        snprintf(err, errlen, "a migration is in progress (POST "
                              "/migration/finish or /migration/rollback "
                              "first)");
        return MIGRATE_EBUSY;
    }
    /* Where it starts: during a warm-up window, without the removed
     * backends that still serve warm-up reads. */
    m->start = config_clone(m->final != NULL ? m->final : cur->cfg);
    if (!migrate_plan(m, m->start, target, ramp)) {
        /* Nothing moves: a warm-up window in progress goes on. */
        if (m->state == MIGRATE_WARMUP) {
            struct config *kept = target;

            config_destroy(m->final);
            m->final = config_clone(kept);
            config_destroy(m->start);
            m->start = config_clone(cur->cfg);
            target = migrate_linger_config(m, kept);
            config_destroy(kept);
        }
        migrate_free_moves(m);
        return m->ops.publish(m->ops.arg, target, m->origin, err, errlen);
    }
    if (m->state == MIGRATE_WARMUP) {
        log_notice("migration: %s: a new change ends the warm-up window", why);
        evtimer_del(m->timer);
        migrate_drop_origin(m);
        config_destroy(m->final);
        m->final = NULL;
        m->state = MIGRATE_IDLE;
    }
    m->origin[0] = topology_without_origin(cur, err, errlen);
    if (m->origin[0] == NULL) {
        migrate_free_moves(m);
        config_destroy(target);
        return -1;
    }
    for (size_t i = 0; i < m->nmoves; i++) {
        max_ramp = m->moves[i].ramp > max_ramp ? m->moves[i].ramp : max_ramp;
    }
    m->warmup_s = target->warmup == 0        ? 0
                  : target->warmup > max_ramp ? target->warmup
                                              : max_ramp;
    snprintf(m->why, sizeof(m->why), "%s", why);
    m->started_wall = (int64_t)time(NULL);
    m->warm_until_wall = 0;
    atomic_fetch_add(&m->sum.started, 1);
    m->target = target;
    if (max_ramp == 0) {
        migrate_end_steps(m);
        return 0;
    }
    m->base_cfg = config_clone(target);
    for (size_t i = 0; i < m->start->nbackends; i++) {
        if (config_backend_index(target, m->start->backends[i].name) < 0) {
            config_copy_backend(m->base_cfg, &m->start->backends[i]);
            /* It keeps its keys while its weight steps down. */
            config_copy_memberships(m->base_cfg, m->start,
                                    m->start->backends[i].name);
        }
    }
    now = util_now_ns();
    for (size_t i = 0; i < m->nmoves; i++) {
        struct migrate_move *mv = &m->moves[i];

        mv->next_ns = now + mv->interval_ns;
        if (mv->ramp > 0) {
            log_notice("migration: %s: %s weight %g -> %g over %u s in %u "
                       "steps",
                       why, mv->name, mv->from, mv->to, mv->ramp, mv->steps);
        }
    }
    m->state = MIGRATE_RUNNING;
    if (migrate_publish(m, migrate_step_config(m), true, err, errlen) != 0) {
        m->state = MIGRATE_IDLE;
        migrate_free_moves(m);
        migrate_drop_origin(m);
        return -1;
    }
    migrate_tick(m);
    return 0;
}

int
migrate_control(struct migrate *m, const char *verb, char *err, size_t errlen)
{
    uint64_t now = util_now_ns();
    bool moving = m->state == MIGRATE_RUNNING ||
                  m->state == MIGRATE_ROLLBACK;

    if (strcmp(verb, "pause") == 0) {
        if (!moving) {
            snprintf(err, errlen, "no migration is moving (state %s)",
                     migrate_state_name(m->state));
            return MIGRATE_EBUSY;
        }
        evtimer_del(m->timer);
        copier_pause(m->copier, true);
        m->paused_from = m->state;
        m->paused_ns = now;
        m->state = MIGRATE_PAUSED;
        log_notice("migration: paused");
    } else if (strcmp(verb, "resume") == 0) {
        if (m->state != MIGRATE_PAUSED) {
            snprintf(err, errlen, "the migration is not paused (state %s)",
                     migrate_state_name(m->state));
            return MIGRATE_EBUSY;
        }
        for (size_t i = 0; i < m->nmoves; i++) {
            m->moves[i].next_ns += now - m->paused_ns;
        }
        m->state = m->paused_from;
        copier_pause(m->copier, false);
        log_notice("migration: resumed");
        migrate_tick(m);
        return 0;
    } else if (strcmp(verb, "rollback") == 0) {
        if (m->state != MIGRATE_RUNNING && m->state != MIGRATE_PAUSED) {
            snprintf(err, errlen, "no migration to roll back (state %s)",
                     migrate_state_name(m->state));
            return MIGRATE_EBUSY;
        }
        evtimer_del(m->timer);
        copier_pause(m->copier, false);
        /* Keys moved (and copied) since the start live where the move
         * got to: the second origin, asked when the first gives the key's
         * current owner. */
        topology_unref(m->origin[1]);
        m->origin[1] = topology_without_origin(m->ops.current(m->ops.arg),
                                               err, errlen);
        if (m->origin[1] == NULL) {
            return -1;
        }
        for (size_t i = 0; i < m->nmoves; i++) {
            /* Moves made at once go back at once. */
            m->moves[i].next_ns =
                m->moves[i].ramp == 0 ? now : now + m->moves[i].interval_ns;
        }
        m->state = MIGRATE_ROLLBACK;
        log_notice("migration: rolling back");
        migrate_tick(m);
        return 0;
    } else if (strcmp(verb, "finish") == 0) {
        if (m->state == MIGRATE_IDLE) {
            snprintf(err, errlen, "no migration in progress");
            return MIGRATE_EBUSY;
        }
        evtimer_del(m->timer);
        copier_pause(m->copier, false);
        log_notice("migration: finish, by the operator");
        if (m->state == MIGRATE_WARMUP) {
            /* The copy stops; a last pass goes, then the window
             * closes. */
            copier_cancel(m->copier);
            migrate_end_warmup(m);
        } else if (m->state == MIGRATE_ROLLBACK ||
                   (m->state == MIGRATE_PAUSED &&
                    m->paused_from == MIGRATE_ROLLBACK)) {
            migrate_end_rollback(m);
        } else {
            migrate_end_steps(m);
        }
        return 0;
    } else {
        snprintf(err, errlen, "unknown action '%s' (expected pause, resume, "
                              "rollback or finish)",
                 verb);
        return -1;
    }
    migrate_update_summary(m);
    return 0;
}

const struct config *
migrate_target(struct migrate *m)
{
    if (m->target != NULL) {
        return m->target;
    }
    return m->final != NULL ? m->final : m->ops.current(m->ops.arg)->cfg;
}

static json_t *
migrate_time_json(int64_t t)
{
    return t > 0 ? json_integer(t) : json_null();
}

json_t *
migrate_json(struct migrate *m)
{
    json_t *moves = json_array();
    const struct copier_progress *cp = copier_progress(m->copier);
    json_t *o;

    migrate_update_summary(m);
    for (size_t i = 0; i < m->nmoves; i++) {
        const struct migrate_move *mv = &m->moves[i];

        json_array_append_new(
            moves, json_pack("{s:s, s:f, s:f, s:f, s:i, s:i, s:i, s:b}",
                             "backend", mv->name, "from_weight", mv->from,
                             "to_weight", mv->to, "weight",
                             migrate_weight(mv), "step", (json_int_t)mv->step,
                             "steps", (json_int_t)mv->steps, "ramp",
                             (json_int_t)mv->ramp, "waiting", mv->waiting));
    }
    o = json_pack("{s:s, s:o, s:o, s:o, s:i, s:o}", "state",
                  migrate_state_name(m->state), "started",
                  migrate_time_json(m->state == MIGRATE_IDLE ? 0
                                                             : m->started_wall),
                  "expected_end",
                  migrate_time_json(atomic_load(&m->sum.expected_end)),
                  "warmup_until",
                  migrate_time_json(m->state == MIGRATE_WARMUP
                                        ? m->warm_until_wall
                                        : 0),
                  "warmup_seconds",
                  (json_int_t)(m->state == MIGRATE_IDLE ? 0 : m->warmup_s),
                  "moves", moves);
    json_object_set_new(o, "moved_share",
                        isfinite(m->moved_share) ? json_real(m->moved_share)
                                                 : json_null());
    json_object_set_new(
        o, "copy",
        json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "running",
                  atomic_load(&cp->running), "passes",
                  (json_int_t)atomic_load(&cp->passes), "scanned",
                  (json_int_t)atomic_load(&cp->scanned), "copied",
                  (json_int_t)atomic_load(&cp->copied), "skipped",
                  (json_int_t)atomic_load(&cp->skipped), "orphans",
                  (json_int_t)atomic_load(&cp->orphans), "failed",
                  (json_int_t)atomic_load(&cp->failed)));
    json_object_set_new(o, "why",
                        m->state == MIGRATE_IDLE ? json_null()
                                                 : json_string(m->why));
    return o;
}

const struct migrate_summary *
migrate_summary(const struct migrate *m)
{
    return &m->sum;
}

const struct copier_progress *
migrate_copy_progress(const struct migrate *m)
{
    return copier_progress(m->copier);
}
