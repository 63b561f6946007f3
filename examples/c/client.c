/*
 * client HOST PORT USER PASSWORD LOCAL REMOTE
 *
 * Ferry's C API as a client over a POSIX TCP socket: logs in with SCRAM
 * (anonymously when USER is "-"), puts LOCAL to REMOTE, gets REMOTE back
 * into LOCAL.back, and exits 0 only if both transfers were verified (the
 * digests matched at both ends) and the copy equals LOCAL. Exit 1: a
 * transfer failed; 2: usage.
 *
 * The library never blocks, allocates or touches the socket: this file
 * owns the memory (static arrays), reads and writes the socket, reads
 * the clock, and feeds bytes in and out (docs/C-API.md).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferry.h"

/* The client object and its frame buffers: the caller's memory. Frames
 * up to 64 KiB (the default chunk) fit with room for headers. */
static _Alignas(FERRY_OBJECT_ALIGN) uint8_t client_mem[FERRY_CLIENT_STORAGE];
static uint8_t inbuf[70000];
static uint8_t outbuf[70000];
static uint8_t wire[16384];
static uint8_t chunk[16384];

static int sock = -1;

enum phase { LOGIN, PUT_ASKED, PUT_BODY, GET_ASKED, GET_BODY, DONE };

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "client: %s: %s\n", what, why);
    exit(1);
}

/* Every call returns a ferry_error: anything but FERRY_OK ends the run. */
static void check(const char *what, ferry_error e) {
    if (e != FERRY_OK)
        die(what, ferry_error_str(e));
}

static int tcp_connect(const char *host, const char *port) {
    struct addrinfo hints = {0}, *res, *ai;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        die(host, gai_strerror(rc));
    int fd = -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        die(host, "cannot connect");
    return fd;
}

/* Writes everything the client has queued to the socket. */
static void flush_output(ferry_client *c) {
    for (;;) {
        size_t n = 0;
        check("transmit", ferry_client_transmit(c, wire, sizeof wire, &n));
        if (n == 0)
            return;
        for (size_t off = 0; off < n;) {
            ssize_t w = send(sock, wire + off, n - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                die("send", strerror(errno));
            off += (size_t)w;
        }
    }
}

struct run {
    const char *local, *remote;
    char back[4096];
    FILE *in, *out;
    uint64_t size, sent, got;
    enum phase phase;
    int put_verified, get_verified;
};

/* Answers every event the input so far completes. */
static void handle_events(ferry_client *c, struct run *r) {
    for (;;) {
        ferry_client_event ev;
        check("poll_event", ferry_client_poll_event(c, &ev));
        switch (ev.kind) {
        case FERRY_EVENT_NONE:
            return;
        case FERRY_EVENT_CONNECTED:
            break; /* the login went out with our hello */
        case FERRY_EVENT_LOGGED_IN:
            check("put", ferry_client_put(c, r->remote, r->size, FERRY_OVERWRITE_REPLACE, 0));
            r->phase = PUT_ASKED;
            break;
        case FERRY_EVENT_LOGIN_FAILED:
            die("login", ferry_error_str(ev.error));
            break;
        case FERRY_EVENT_ACCEPTED:
            if (ev.value != 0)
                die("put", "unexpected resume offset");
            r->phase = PUT_BODY;
            break;
        case FERRY_EVENT_TRANSFER_END:
            if (!ev.verified)
                die(r->phase == PUT_BODY ? "put" : "get", "digest mismatch");
            if (r->phase == PUT_BODY) {
                r->put_verified = 1;
                check("get", ferry_client_get(c, r->remote));
                r->phase = GET_ASKED;
            } else {
                r->get_verified = 1;
                r->phase = DONE;
            }
            break;
        case FERRY_EVENT_OFFER:
            if (ev.value != r->size)
                die("get", "the server offers another size");
            r->out = fopen(r->back, "wb");
            if (r->out == NULL)
                die(r->back, strerror(errno));
            check("accept", ferry_client_accept(c, 0));
            r->phase = GET_BODY;
            break;
        case FERRY_EVENT_DATA:
            /* ev.data points into the input buffer: use it before the
             * next call on the client. */
            if (fwrite(ev.data, 1, ev.len, r->out) != ev.len)
                die(r->back, "write failed");
            r->got += ev.len;
            break;
        case FERRY_EVENT_FAILED:
        case FERRY_EVENT_REFUSED:
            die(r->phase <= PUT_BODY ? "put" : "get", ferry_error_str(ev.error));
            break;
        case FERRY_EVENT_CLOSED:
            if (r->phase != DONE)
                die("connection", ferry_error_str(ev.error));
            break;
        default:
            break;
        }
    }
}

/* Streams the put body as far as output room allows. */
static void send_body(ferry_client *c, struct run *r) {
    static size_t have = 0, used = 0;
    while (r->phase == PUT_BODY && r->sent < r->size) {
        if (used == have) {
            have = fread(chunk, 1, sizeof chunk, r->in);
            used = 0;
            if (have == 0)
                die(r->local, "file shrank while it was sent");
        }
        size_t taken = 0;
        check("send", ferry_client_send(c, chunk + used, have - used, &taken));
        if (taken == 0)
            return; /* output full: transmit, then come back */
        used += taken;
        r->sent += taken;
    }
}

static int same_files(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa != NULL && fb != NULL;
    while (same) {
        int x = fgetc(fa), y = fgetc(fb);
        same = x == y;
        if (x == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: client HOST PORT USER PASSWORD LOCAL REMOTE (USER - for anonymous)\n");
        return 2;
    }
    if (FERRY_ABI_CHECK() != FERRY_OK) {
        fprintf(stderr, "client: ferry.h and libferry_c are from different releases\n");
        return 2;
    }
    const char *user = argv[3], *password = argv[4];
    struct run r = {.local = argv[5], .remote = argv[6], .phase = LOGIN};
    snprintf(r.back, sizeof r.back, "%s.back", r.local);
    r.in = fopen(r.local, "rb");
    if (r.in == NULL)
        die(r.local, strerror(errno));
    fseek(r.in, 0, SEEK_END);
    r.size = (uint64_t)ftell(r.in);
    rewind(r.in);

    sock = tcp_connect(argv[1], argv[2]);

    ferry_client *c = NULL;
    check("init", ferry_client_init(client_mem, sizeof client_mem, NULL, inbuf, sizeof inbuf,
                                    outbuf, sizeof outbuf, now_ms(), &c));
    /* The login may go before the server's hello: one round trip less. */
    if (strcmp(user, "-") == 0) {
        check("login", ferry_client_login_anonymous(c));
    } else {
        uint8_t nonce[24];
        FILE *rnd = fopen("/dev/urandom", "rb");
        if (rnd == NULL || fread(nonce, 1, sizeof nonce, rnd) != sizeof nonce)
            die("/dev/urandom", "cannot read");
        fclose(rnd);
        check("login", ferry_client_login(c, user, password, nonce, sizeof nonce));
    }

    while (r.phase != DONE) {
        send_body(c, &r);
        flush_output(c);
        /* Wait for the server, or its deadline; not at all while a body
         * is still going out. */
        uint64_t deadline = UINT64_MAX, now = now_ms();
        check("next_timeout", ferry_client_next_timeout(c, &deadline));
        int wait = -1;
        if (r.phase == PUT_BODY && r.sent < r.size)
            wait = 0;
        else if (deadline != UINT64_MAX)
            wait = deadline > now ? (int)(deadline - now) : 0;
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        int ready = poll(&pfd, 1, wait);
        if (ready < 0 && errno != EINTR)
            die("poll", strerror(errno));
        if (ready > 0) {
            ssize_t n = recv(sock, wire, sizeof wire, 0);
            if (n < 0 && errno != EINTR)
                die("recv", strerror(errno));
            if (n == 0)
                check("eof", ferry_client_eof(c, now_ms()));
            /* Feed it all; the client takes less when its input buffer is
             * full, and events free it. */
            for (size_t off = 0; n > 0 && off < (size_t)n;) {
                size_t took = 0;
                check("input", ferry_client_input(c, now_ms(), wire + off, (size_t)n - off, &took));
                off += took;
                handle_events(c, &r);
            }
        } else if (ready == 0 && deadline != UINT64_MAX && now_ms() >= deadline) {
            check("timeout", ferry_client_timeout(c, now_ms()));
        }
        handle_events(c, &r);
    }
    flush_output(c);
    check("deinit", ferry_client_deinit(c));
    close(sock);
    fclose(r.in);
    if (fclose(r.out) != 0)
        die(r.back, "write failed");

    if (!(r.put_verified && r.get_verified && r.got == r.size && same_files(r.local, r.back))) {
        fprintf(stderr, "client: %s differs from %s\n", r.back, r.local);
        return 1;
    }
    printf("client: put %s and got it back into %s, %llu bytes, both verified\n", r.remote,
           r.back, (unsigned long long)r.size);
    return 0;
}
