/*
 * device PORT
 *
 * A minimal Ferry server in C, as firmware would write it: one
 * connection at a time on 127.0.0.1:PORT (0 picks a free port; the line
 * "device: listening on 127.0.0.1:N" says which), anonymous logins, and a
 * store of C callbacks over files in a static array. The `ferry` CLI can
 * put to it, list it and get from it:
 *
 *   ferry put notes.txt ferry://127.0.0.1:N/notes.txt
 *   ferry ls ferry://127.0.0.1:N/
 *   ferry get ferry://127.0.0.1:N/notes.txt copy.txt
 *
 * Nothing is allocated: the server object, its buffers and the files
 * are static arrays (docs/C-API.md).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferry.h"

#define MAX_FILES 8
#define MAX_FILE_SIZE (1u << 20)

/* One slot of the store. An upload fills a free slot and becomes a file
 * only at commit, once its digest matched: a client that vanishes
 * mid-put leaves the store as it was. */
struct file {
    int used;      /* holds a file or an upload in progress */
    int committed; /* a file (else an upload) */
    char name[FERRY_MAX_NAME + 1];
    size_t len;
    uint8_t data[MAX_FILE_SIZE];
};

static struct file files[MAX_FILES];
static size_t list_cursor;

static _Alignas(FERRY_OBJECT_ALIGN) uint8_t server_mem[FERRY_SERVER_STORAGE];
static uint8_t inbuf[70000];
static uint8_t outbuf[70000];
static uint8_t wire[16384];

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void check(const char *what, ferry_error e) {
    if (e != FERRY_OK) {
        fprintf(stderr, "device: %s: %s\n", what, ferry_error_str(e));
        exit(1);
    }
}

/* A flat name: an optional leading '/', then one component. */
static int file_name(const char *path, const char **name) {
    if (path[0] == '/')
        path++;
    if (path[0] == '\0')
        return FERRY_ERROR_IS_A_DIRECTORY;
    if (strchr(path, '/') != NULL || strcmp(path, ".") == 0 || strcmp(path, "..") == 0 ||
        strlen(path) > FERRY_MAX_NAME)
        return FERRY_ERROR_INVALID_PATH;
    *name = path;
    return FERRY_OK;
}

static struct file *find(const char *name) {
    for (size_t i = 0; i < MAX_FILES; i++)
        if (files[i].used && files[i].committed && strcmp(files[i].name, name) == 0)
            return &files[i];
    return NULL;
}

/* ---- the store's callbacks ---- */

static int st_random(void *ctx, uint8_t *buf, size_t len) {
    (void)ctx;
    FILE *f = fopen("/dev/urandom", "rb");
    size_t n = f ? fread(buf, 1, len, f) : 0;
    if (f)
        fclose(f);
    return n == len ? FERRY_OK : FERRY_ERROR_IO;
}

static int st_open(void *ctx, const char *path, void **file, uint64_t *size) {
    (void)ctx;
    const char *name;
    int rc = file_name(path, &name);
    if (rc != FERRY_OK)
        return rc;
    struct file *f = find(name);
    if (f == NULL)
        return FERRY_ERROR_NOT_FOUND;
    *file = f;
    *size = f->len;
    return FERRY_OK;
}

static int st_read_at(void *ctx, void *file, uint64_t offset, uint8_t *buf, size_t len,
                      size_t *n) {
    (void)ctx;
    struct file *f = file;
    if (offset > f->len)
        return FERRY_ERROR_BAD_OFFSET;
    size_t k = f->len - (size_t)offset;
    if (k > len)
        k = len;
    memcpy(buf, f->data + offset, k);
    *n = k;
    return FERRY_OK;
}

static int st_begin_upload(void *ctx, const char *path, uint64_t size, uint32_t overwrite,
                           uint8_t resume, void **upload, uint64_t *offset) {
    (void)ctx;
    (void)resume; /* no partial uploads are kept: a resume starts over */
    (void)offset;
    const char *name;
    int rc = file_name(path, &name);
    if (rc != FERRY_OK)
        return rc;
    if (find(name) != NULL && overwrite != FERRY_OVERWRITE_REPLACE)
        return FERRY_ERROR_EXISTS;
    if (size > MAX_FILE_SIZE)
        return FERRY_ERROR_TOO_LARGE;
    for (size_t i = 0; i < MAX_FILES; i++) {
        if (!files[i].used) {
            struct file *f = &files[i];
            f->used = 1;
            f->committed = 0;
            f->len = 0;
            snprintf(f->name, sizeof f->name, "%s", name);
            *upload = f;
            return FERRY_OK;
        }
    }
    return FERRY_ERROR_NO_SPACE;
}

static int st_write(void *ctx, void *upload, const uint8_t *data, size_t len) {
    (void)ctx;
    struct file *f = upload;
    if (len > MAX_FILE_SIZE - f->len)
        return FERRY_ERROR_NO_SPACE;
    memcpy(f->data + f->len, data, len);
    f->len += len;
    return FERRY_OK;
}

static int st_commit(void *ctx, void *upload, const ferry_sum *sum) {
    (void)ctx;
    (void)sum; /* a store could keep it to vouch for the file later */
    struct file *f = upload, *old = find(f->name);
    if (old != NULL)
        old->used = 0; /* replaced (the overwrite was allowed at begin) */
    f->committed = 1;
    return FERRY_OK;
}

static void st_abort(void *ctx, void *upload, int why) {
    (void)ctx;
    (void)why;
    ((struct file *)upload)->used = 0;
}

static int st_list(void *ctx, const char *path, void **listing) {
    (void)ctx;
    if (strcmp(path, "") != 0 && strcmp(path, "/") != 0 && strcmp(path, ".") != 0)
        return FERRY_ERROR_NOT_FOUND;
    list_cursor = 0; /* one connection at a time: one listing */
    *listing = &list_cursor;
    return FERRY_OK;
}

static void fill_entry(const struct file *f, ferry_entry *e) {
    snprintf(e->name, sizeof e->name, "%s", f->name);
    e->kind = FERRY_KIND_FILE;
    e->size = f->len;
    e->modified = 0;
    e->mode = 0644;
}

static int st_next_entry(void *ctx, void *listing, ferry_entry *entry, uint8_t *more) {
    (void)ctx;
    size_t *i = listing;
    *more = 0;
    for (; *i < MAX_FILES; (*i)++) {
        if (files[*i].used && files[*i].committed) {
            fill_entry(&files[*i], entry);
            (*i)++;
            *more = 1;
            break;
        }
    }
    return FERRY_OK;
}

static int st_stat(void *ctx, const char *path, ferry_entry *entry) {
    (void)ctx;
    if (strcmp(path, "/") == 0 || strcmp(path, "") == 0 || strcmp(path, ".") == 0) {
        snprintf(entry->name, sizeof entry->name, "/");
        entry->kind = FERRY_KIND_DIR;
        entry->size = 0;
        entry->modified = 0;
        entry->mode = 0755;
        return FERRY_OK;
    }
    const char *name;
    int rc = file_name(path, &name);
    if (rc != FERRY_OK)
        return rc;
    struct file *f = find(name);
    if (f == NULL)
        return FERRY_ERROR_NOT_FOUND;
    fill_entry(f, entry);
    return FERRY_OK;
}

static int st_remove(void *ctx, const char *path) {
    (void)ctx;
    const char *name;
    int rc = file_name(path, &name);
    if (rc != FERRY_OK)
        return rc;
    struct file *f = find(name);
    if (f == NULL)
        return FERRY_ERROR_NOT_FOUND;
    f->used = 0;
    return FERRY_OK;
}

/* ---- the server loop ---- */

static int send_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Transmits everything queued; -1 when the socket failed. */
static int flush_output(ferry_server *s, int fd) {
    for (;;) {
        size_t n = 0;
        check("transmit", ferry_server_transmit(s, wire, sizeof wire, &n));
        if (n == 0)
            return 0;
        if (send_all(fd, wire, n) < 0)
            return -1;
    }
}

/* Runs the session until it waits for news; 1 once the connection is
 * over. */
static int drive(ferry_server *s, int fd) {
    for (;;) {
        ferry_progress p;
        check("progress", ferry_server_progress(s, &p));
        if (flush_output(s, fd) < 0)
            return 1;
        if (p.action == FERRY_ACTION_CLOSE) {
            fprintf(stderr, "device: connection closed: %s\n", ferry_error_str(p.reason));
            return 1;
        }
        if (p.action == FERRY_ACTION_WAIT)
            return 0;
    }
}

static void serve(int fd, const ferry_server_config *config, const ferry_store *store) {
    ferry_server *s = NULL;
    check("init", ferry_server_init(server_mem, sizeof server_mem, config, store, inbuf,
                                    sizeof inbuf, outbuf, sizeof outbuf, now_ms(), &s));
    int over = drive(s, fd);
    while (!over) {
        uint64_t deadline = UINT64_MAX, now = now_ms();
        check("next_timeout", ferry_server_next_timeout(s, &deadline));
        int wait = deadline == UINT64_MAX ? -1 : deadline > now ? (int)(deadline - now) : 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, wait);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready > 0) {
            ssize_t n = recv(fd, wire, sizeof wire, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                check("eof", ferry_server_eof(s, now_ms()));
            }
            /* The server takes less when its input buffer is full; the
             * session's progress frees it. */
            for (size_t off = 0; n > 0 && off < (size_t)n && !over;) {
                size_t took = 0;
                check("input", ferry_server_input(s, now_ms(), wire + off, (size_t)n - off, &took));
                off += took;
                over = drive(s, fd);
            }
        } else if (ready == 0) {
            check("timeout", ferry_server_timeout(s, now_ms()));
        }
        if (!over)
            over = drive(s, fd);
    }
    /* Hands back any handle still open (an upload cut short is aborted). */
    check("deinit", ferry_server_deinit(s));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: device PORT\n");
        return 2;
    }
    if (ferry_server_size() > sizeof server_mem || FERRY_ABI_CHECK() != FERRY_OK) {
        fprintf(stderr, "device: ferry.h and libferry_c are from different releases\n");
        return 2;
    }
    ferry_server_config config;
    check("config", ferry_server_config_default(&config));
    config.allow_anonymous = 1;
    if (st_random(NULL, config.secret, sizeof config.secret) != FERRY_OK)
        check("random", FERRY_ERROR_IO);
    ferry_store store = {
        .ctx = NULL,
        .random = st_random,
        .open = st_open,
        .read_at = st_read_at,
        .begin_upload = st_begin_upload,
        .write = st_write,
        .commit = st_commit,
        .abort = st_abort,
        .list = st_list,
        .next_entry = st_next_entry,
        .stat = st_stat,
        .remove = st_remove,
    };

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        fprintf(stderr, "device: listen: %s\n", strerror(errno));
        return 1;
    }
    printf("device: listening on 127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "device: accept: %s\n", strerror(errno));
            return 1;
        }
        serve(fd, &config, &store);
        close(fd);
    }
}
