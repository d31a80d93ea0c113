// A serverless-wasm handler in C: a core module speaking the original ABI
// (imports from `env`) and using wasi-libc for everything else, so that
// printf reaches the route's log and usleep sleeps on the shard's timers.
//
// Build (samples/languages/build.sh does it), as a reactor whose entry is
// `handle` (the libc starts once per instance):
//   clang --target=wasm32-wasi -O2 -mexec-model=reactor -o c-handler.wasm handler.c
// or as an ordinary command, served with `function = "_start"` (`main`
// runs once per request, in a fresh instance):
//   clang --target=wasm32-wasi -O2 -o c-command.wasm handler.c
//
// Served behind a prefix route (`url_path = "/c/*"`), it answers by the
// last part of the path: hello, json (POST), sleep, exit, exit-3, fail.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))

IMPORT(response_set_status_line) void response_set_status_line(int32_t status, const char *reason, int64_t len);
IMPORT(response_set_header) void response_set_header(const char *name, int64_t name_len, const char *value, int64_t value_len);
IMPORT(response_set_body) void response_set_body(const char *body, int64_t len);
IMPORT(request_method) int64_t request_method(char *buf, int64_t cap);
IMPORT(request_path) int64_t request_path(char *buf, int64_t cap);
IMPORT(request_body) int64_t request_body(char *buf, int64_t cap);

static void set_header(const char *name, const char *value) {
    response_set_header(name, strlen(name), value, strlen(value));
}

static void answer(int status, const char *content_type, const char *body, size_t len) {
    response_set_status_line(status, "", 0);
    set_header("content-type", content_type);
    response_set_body(body, len);
}

// The request body, asking for its size first (a zero-capacity buffer is
// never touched), in a buffer the caller frees.
static char *read_body(size_t *len) {
    int64_t size = request_body(NULL, 0);
    char *body = malloc(size > 0 ? size : 1);
    *len = size > 0 ? (size_t)request_body(body, size) : 0;
    return body;
}

// {"language":"c","bytes":N,"received":<the JSON body as sent>}
static void json_api(void) {
    size_t len;
    char *body = read_body(&len);
    if (len == 0 || (body[0] != '{' && body[0] != '[')) {
        const char *error = "{\"error\":\"send a JSON object or array\"}";
        answer(400, "application/json", error, strlen(error));
        free(body);
        return;
    }
    size_t cap = len + 64;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "{\"language\":\"c\",\"bytes\":%zu,\"received\":", len);
    memcpy(out + n, body, len);
    out[n + len] = '}';
    answer(200, "application/json", out, n + len + 1);
    free(out);
    free(body);
}

__attribute__((export_name("handle"))) void handle(void) {
    char method[16] = {0}, path[256] = {0};
    request_method(method, sizeof method - 1);
    request_path(path, sizeof path - 1);
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;

    if (strcmp(last, "json") == 0) {
        json_api();
    } else if (strcmp(last, "sleep") == 0) {
        usleep(1500 * 1000);
        answer(200, "text/plain", "slept 1500 ms\n", 14);
    } else if (strcmp(last, "exit") == 0) {
        answer(200, "text/plain", "answered, then exit(0)\n", 23);
        exit(0);
    } else if (strcmp(last, "exit-3") == 0) {
        answer(200, "text/plain", "never sent\n", 11);
        exit(3);
    } else if (strcmp(last, "fail") == 0) {
        fprintf(stderr, "about to abort\n");
        abort();
    } else {
        printf("hello from C: %s %s\n", method, path);
        answer(200, "text/plain", "Hello from C\n", 13);
    }
}

// A command's entry: the same handler as an ordinary C program.
int main(void) {
    handle();
    return 0;
}
