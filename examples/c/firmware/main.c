/*
 * The smallest useful C firmware over ferry-c, to measure what the
 * library costs on a Cortex-M4F (.ci/c-size): a Ferry server with an
 * anonymous login and a RAM store of C callbacks, fed from a UART and
 * ticked by SysTick. With -DWITH_CLIENT it also pushes a file to a peer
 * as a client, so the figure covers the whole library.
 *
 * No libc at all (-nostdlib): no heap, no printf; memcpy and memset come
 * from the Rust library's compiler-builtins. Built plainly it is measured,
 * not run (the UART is a placeholder address). With -DSELFTEST (and
 * -DWITH_CLIENT) it runs on QEMU's mps2-an386 instead: FERRY_ABI_CHECK(),
 * then a client and the server wired together in RAM put a file and get
 * it back, verified; the exit status (semihosting) says whether all held.
 */
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

/* ---- board: a UART data/status register pair and a millisecond tick ---- */

#define UART_SR (*(volatile uint32_t *)0x40011000u)
#define UART_DR (*(volatile uint32_t *)0x40011004u)
#define UART_RXNE (1u << 5)
#define UART_TXE (1u << 7)

static volatile uint64_t ticks_ms;

void systick_handler(void) { ticks_ms++; }

#ifndef SELFTEST
static int uart_read(uint8_t *b) {
    if (!(UART_SR & UART_RXNE))
        return 0;
    *b = (uint8_t)UART_DR;
    return 1;
}

static void uart_write(const uint8_t *p, size_t n) {
    while (n--) {
        while (!(UART_SR & UART_TXE)) {
        }
        UART_DR = *p++;
    }
}
#endif

/* A hardware RNG would go here; a xorshift stands in. */
static uint32_t rng_state = 0x2545f491u;

static int st_random(void *ctx, uint8_t *buf, size_t len) {
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 17;
        rng_state ^= rng_state << 5;
        buf[i] = (uint8_t)rng_state;
    }
    return FERRY_OK;
}

#ifndef SELFTEST
/* The library hit a bug: reset, as firmware does. */
void ferry_panic(void) {
    *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u; /* AIRCR: SYSRESETREQ */
    for (;;) {
    }
}
#endif

/* ---- the store: FILES files of up to FILE_SIZE bytes ---- */

#define FILES 4
#define FILE_SIZE 4096

struct file {
    uint8_t used, committed;
    char name[64];
    size_t len;
    uint8_t data[FILE_SIZE];
};

static struct file files[FILES];
static size_t list_cursor;

static int same(const char *a, const char *b) {
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static const char *flat(const char *path) { return path[0] == '/' ? path + 1 : path; }

static struct file *find(const char *name) {
    for (size_t i = 0; i < FILES; i++)
        if (files[i].used && files[i].committed && same(files[i].name, name))
            return &files[i];
    return NULL;
}

static int st_open(void *ctx, const char *path, void **file, uint64_t *size) {
    (void)ctx;
    struct file *f = find(flat(path));
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
    size_t k = offset < f->len ? f->len - (size_t)offset : 0;
    k = k < len ? k : len;
    for (size_t i = 0; i < k; i++)
        buf[i] = f->data[offset + i];
    *n = k;
    return FERRY_OK;
}

static int st_begin_upload(void *ctx, const char *path, uint64_t size, uint32_t overwrite,
                           uint8_t resume, void **upload, uint64_t *offset) {
    (void)ctx, (void)resume, (void)offset;
    const char *name = flat(path);
    size_t n = 0;
    while (name[n])
        n++;
    if (n == 0 || n >= sizeof files[0].name)
        return FERRY_ERROR_INVALID_PATH;
    if (find(name) && overwrite != FERRY_OVERWRITE_REPLACE)
        return FERRY_ERROR_EXISTS;
    if (size > FILE_SIZE)
        return FERRY_ERROR_TOO_LARGE;
    for (size_t i = 0; i < FILES; i++) {
        if (!files[i].used) {
            files[i].used = 1;
            files[i].committed = 0;
            files[i].len = 0;
            for (size_t j = 0; j <= n; j++)
                files[i].name[j] = name[j];
            *upload = &files[i];
            return FERRY_OK;
        }
    }
    return FERRY_ERROR_NO_SPACE;
}

static int st_write(void *ctx, void *upload, const uint8_t *data, size_t len) {
    (void)ctx;
    struct file *f = upload;
    if (len > FILE_SIZE - f->len)
        return FERRY_ERROR_NO_SPACE;
    for (size_t i = 0; i < len; i++)
        f->data[f->len + i] = data[i];
    f->len += len;
    return FERRY_OK;
}

static int st_commit(void *ctx, void *upload, const ferry_sum *sum) {
    (void)ctx, (void)sum;
    struct file *f = upload, *old = find(f->name);
    if (old)
        old->used = 0;
    f->committed = 1;
    return FERRY_OK;
}

static void st_abort(void *ctx, void *upload, int why) {
    (void)ctx, (void)why;
    ((struct file *)upload)->used = 0;
}

static int st_list(void *ctx, const char *path, void **listing) {
    (void)ctx, (void)path;
    list_cursor = 0;
    *listing = &list_cursor;
    return FERRY_OK;
}

static int st_next_entry(void *ctx, void *listing, ferry_entry *e, uint8_t *more) {
    (void)ctx;
    size_t *i = listing;
    for (*more = 0; *i < FILES && !*more; (*i)++) {
        struct file *f = &files[*i];
        if (f->used && f->committed) {
            size_t j = 0;
            for (; f->name[j]; j++)
                e->name[j] = f->name[j];
            e->name[j] = 0;
            e->kind = FERRY_KIND_FILE;
            e->size = f->len;
            e->modified = 0;
            e->mode = 0644;
            *more = 1;
        }
    }
    return FERRY_OK;
}

/* ---- one connection: object memory and 2 KiB frame buffers ---- */

#define FRAME_BUF 2048

static _Alignas(FERRY_OBJECT_ALIGN) uint8_t server_mem[FERRY_SERVER_STORAGE];
static uint8_t server_in[FRAME_BUF], server_out[FRAME_BUF];
#ifndef SELFTEST
static uint8_t tx[256];

static void transmit(ferry_server *s) {
    size_t n;
    while (ferry_server_transmit(s, tx, sizeof tx, &n) == FERRY_OK && n > 0)
        uart_write(tx, n);
}

static void serve(void) {
    static const ferry_store store = {
        .random = st_random,
        .open = st_open,
        .read_at = st_read_at,
        .begin_upload = st_begin_upload,
        .write = st_write,
        .commit = st_commit,
        .abort = st_abort,
        .list = st_list,
        .next_entry = st_next_entry,
    };
    ferry_server_config config;
    ferry_server_config_default(&config);
    config.allow_anonymous = 1;
    config.conn.chunk_size = 1024;
    st_random(NULL, config.secret, sizeof config.secret);
    ferry_server *s;
    if (ferry_server_init(server_mem, sizeof server_mem, &config, &store, server_in,
                          sizeof server_in, server_out, sizeof server_out, ticks_ms,
                          &s) != FERRY_OK)
        ferry_panic();
    for (;;) {
        ferry_progress p;
        if (ferry_server_progress(s, &p) != FERRY_OK)
            break;
        transmit(s);
        if (p.action == FERRY_ACTION_TRANSMIT)
            continue;
        if (p.action == FERRY_ACTION_CLOSE)
            break;
        uint8_t b;
        size_t took;
        uint64_t at;
        if (uart_read(&b)) {
            ferry_server_input(s, ticks_ms, &b, 1, &took);
        } else if (ferry_server_next_timeout(s, &at) == FERRY_OK && ticks_ms >= at) {
            ferry_server_timeout(s, ticks_ms);
        }
    }
    ferry_server_deinit(s);
}
#endif

#ifdef WITH_CLIENT
static _Alignas(FERRY_OBJECT_ALIGN) uint8_t client_mem[FERRY_CLIENT_STORAGE];
static uint8_t client_in[FRAME_BUF], client_out[FRAME_BUF];

#ifndef SELFTEST
/* Pushes the first file to a peer as a client (anonymous put). */
static void push(void) {
    ferry_client *c;
    if (ferry_client_size() > sizeof client_mem)
        ferry_panic();
    if (ferry_client_init(client_mem, sizeof client_mem, NULL, client_in, sizeof client_in,
                          client_out, sizeof client_out, ticks_ms, &c) != FERRY_OK)
        ferry_panic();
    ferry_client_login_anonymous(c);
    size_t sent = 0, n;
    for (int done = 0; !done;) {
        while (ferry_client_transmit(c, tx, sizeof tx, &n) == FERRY_OK && n > 0)
            uart_write(tx, n);
        uint8_t b;
        size_t took;
        if (uart_read(&b))
            ferry_client_input(c, ticks_ms, &b, 1, &took);
        ferry_client_event ev;
        while (ferry_client_poll_event(c, &ev) == FERRY_OK && ev.kind != FERRY_EVENT_NONE) {
            if (ev.kind == FERRY_EVENT_LOGGED_IN)
                ferry_client_put(c, files[0].name, files[0].len, FERRY_OVERWRITE_REPLACE, 0);
            else if (ev.kind == FERRY_EVENT_TRANSFER_END || ev.kind == FERRY_EVENT_FAILED ||
                     ev.kind == FERRY_EVENT_CLOSED)
                done = 1;
        }
        if (ferry_client_send(c, files[0].data + sent, files[0].len - sent, &n) == FERRY_OK)
            sent += n;
    }
    ferry_client_deinit(c);
}
#endif
#endif

#ifdef SELFTEST
/* Semihosting SYS_EXIT_EXTENDED: QEMU exits with `code`. */
static void qemu_exit(uint32_t code) {
    uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, code};
    register uint32_t r0 __asm__("r0") = 0x20;
    register uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

void ferry_panic(void) { qemu_exit(3); }

/* One direction of the in-RAM wire: a chunk taken from one side's
 * output, offered to the other's input until it took it all (an input
 * buffer that is full takes nothing until its side moves on). */
struct lane {
    uint8_t buf[256];
    size_t len, off;
};

static struct lane c2s, s2c;

static uint8_t sample[3000], fetched[3000];

static int selftest(void) {
    if (FERRY_ABI_CHECK() != FERRY_OK)
        return 2;
    static const ferry_store store = {
        .random = st_random, .open = st_open, .read_at = st_read_at,
        .begin_upload = st_begin_upload, .write = st_write, .commit = st_commit,
        .abort = st_abort, .list = st_list, .next_entry = st_next_entry,
    };
    ferry_server_config config;
    ferry_server_config_default(&config);
    config.allow_anonymous = 1;
    config.conn.chunk_size = 1024;
    ferry_server *s;
    ferry_client *c;
    if (ferry_server_init(server_mem, sizeof server_mem, &config, &store, server_in,
                          sizeof server_in, server_out, sizeof server_out, 0, &s) != FERRY_OK ||
        ferry_client_init(client_mem, sizeof client_mem, NULL, client_in, sizeof client_in,
                          client_out, sizeof client_out, 0, &c) != FERRY_OK ||
        ferry_client_login_anonymous(c) != FERRY_OK)
        return 4;
    for (size_t i = 0; i < sizeof sample; i++)
        sample[i] = (uint8_t)(i * 7 + 3);
    size_t sent = 0, got = 0, n;
    int step = 0, verified = 0;
    for (int round = 0; round < 20000 && verified < 2; round++) {
        size_t took;
        ferry_progress p;
        if (c2s.off == c2s.len) {
            c2s.off = c2s.len = 0;
            if (ferry_client_transmit(c, c2s.buf, sizeof c2s.buf, &c2s.len) != FERRY_OK)
                return 11;
        }
        if (ferry_server_input(s, 0, c2s.buf + c2s.off, c2s.len - c2s.off, &took) != FERRY_OK)
            return 12;
        c2s.off += took;
        if (ferry_server_progress(s, &p) != FERRY_OK)
            return 13;
        if (s2c.off == s2c.len) {
            s2c.off = s2c.len = 0;
            if (ferry_server_transmit(s, s2c.buf, sizeof s2c.buf, &s2c.len) != FERRY_OK)
                return 14;
        }
        if (ferry_client_input(c, 0, s2c.buf + s2c.off, s2c.len - s2c.off, &took) != FERRY_OK)
            return 15;
        s2c.off += took;
        ferry_client_event ev;
        while (ferry_client_poll_event(c, &ev) == FERRY_OK && ev.kind != FERRY_EVENT_NONE) {
            if (ev.kind == FERRY_EVENT_LOGGED_IN && step == 0) {
                ferry_client_put(c, "/sample.bin", sizeof sample, FERRY_OVERWRITE_FAIL, 0);
                step = 1;
            } else if (ev.kind == FERRY_EVENT_TRANSFER_END) {
                if (!ev.verified || ev.sum.algorithm != 1 || ev.sum.len != 16)
                    return 5;
                if (++verified == 1)
                    ferry_client_get(c, "sample.bin");
            } else if (ev.kind == FERRY_EVENT_OFFER) {
                ferry_client_accept(c, 0);
            } else if (ev.kind == FERRY_EVENT_DATA) {
                if (got + ev.len > sizeof fetched)
                    return 6;
                for (size_t i = 0; i < ev.len; i++)
                    fetched[got++] = ev.data[i];
            } else if (ev.kind == FERRY_EVENT_FAILED || ev.kind == FERRY_EVENT_CLOSED) {
                return 7;
            }
        }
        if (step == 1 && sent < sizeof sample &&
            ferry_client_send(c, sample + sent, sizeof sample - sent, &n) == FERRY_OK)
            sent += n;
    }
    if (verified != 2 || got != sizeof sample)
        return 8;
    for (size_t i = 0; i < sizeof sample; i++)
        if (fetched[i] != sample[i])
            return 9;
    /* The store holds it too, and handles went back: deinit is clean. */
    if (find("sample.bin") == NULL || ferry_client_deinit(c) != FERRY_OK ||
        ferry_server_deinit(s) != FERRY_OK)
        return 10;
    return 0;
}

int main(void) { qemu_exit((uint32_t)selftest()); }
#else
int main(void) {
    if (FERRY_ABI_CHECK() != FERRY_OK || ferry_server_size() > sizeof server_mem)
        ferry_panic();
    for (;;) {
        serve();
#ifdef WITH_CLIENT
        push();
#endif
    }
}
#endif

/* ---- start-up: copy .data, zero .bss, run main ---- */

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

void reset_handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;
    /* The FPU on, for the hard-float ABI (CPACR: CP10, CP11 full access). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    main();
    for (;;) {
    }
}

static void default_handler(void) {
    for (;;) {
    }
}

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&_estack, reset_handler, default_handler, default_handler,
    default_handler,          default_handler, default_handler, 0,
    0,                        0,               0,               default_handler,
    default_handler,          0,               default_handler, systick_handler,
};
