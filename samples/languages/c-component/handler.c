// A `wasi:http/proxy` component in C. Debian's clang and wasi-libc build
// WASI preview 1 core modules, so the path to a component is: bindings
// from wit-bindgen's C generator, a reactor core module from clang, then
// `wasm-tools component new` with the preview-1 adapter, which turns the
// libc's preview-1 calls (printf) into WASI 0.2 ones.
//
// Build (samples/languages/build.sh does it):
//   wit-bindgen c ../wit --world hello --out-dir gen
//   clang --target=wasm32-wasi -O2 -mexec-model=reactor -Igen \
//         -o core.wasm handler.c gen/hello.c gen/hello_component_type.o
//   wasm-tools component new core.wasm \
//         --adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm \
//         -o c-component.wasm
//
// Served behind a prefix route (`url_path = "/c-component/*"`): a path
// ending in `json` answers a small JSON document, one ending in `fail`
// aborts (a trap: the server answers 500), anything else is a hello.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hello.h"

typedef wasi_http_types_own_response_outparam_t outparam_t;

static hello_list_u8_t bytes(const char *text, size_t len) {
    return (hello_list_u8_t){.ptr = (uint8_t *)text, .len = len};
}

static const char *method_name(const wasi_http_types_method_t *method) {
    static const char *names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    return method->tag < WASI_HTTP_TYPES_METHOD_OTHER ? names[method->tag] : "OTHER";
}

// Sends `status`, one content-type header and `body` as the response.
static void respond(outparam_t out, uint16_t status, const char *content_type, const char *body, size_t len) {
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    wasi_http_types_field_name_t name;
    hello_string_set(&name, "content-type");
    wasi_http_types_field_value_t value = {.ptr = (uint8_t *)content_type, .len = strlen(content_type)};
    wasi_http_types_header_error_t header_error;
    wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name, &value, &header_error);

    wasi_http_types_own_outgoing_response_t response = wasi_http_types_constructor_outgoing_response(headers);
    wasi_http_types_borrow_outgoing_response_t borrowed = wasi_http_types_borrow_outgoing_response(response);
    wasi_http_types_method_outgoing_response_set_status_code(borrowed, status);
    wasi_http_types_own_outgoing_body_t body_handle;
    wasi_http_types_method_outgoing_response_body(borrowed, &body_handle);

    // The response goes out first; its body follows on the stream.
    wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false, .val.ok = response};
    wasi_http_types_static_response_outparam_set(out, &result);

    wasi_http_types_own_output_stream_t stream;
    if (wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body_handle), &stream)) {
        hello_list_u8_t contents = bytes(body, len);
        wasi_io_streams_stream_error_t stream_error;
        wasi_io_streams_method_output_stream_blocking_write_and_flush(
            wasi_io_streams_borrow_output_stream(stream), &contents, &stream_error);
        wasi_io_streams_output_stream_drop_own(stream);
    }
    wasi_http_types_error_code_t finish_error;
    wasi_http_types_static_outgoing_body_finish(body_handle, NULL, &finish_error);
}

void exports_wasi_http_incoming_handler_handle(
    exports_wasi_http_incoming_handler_own_incoming_request_t request, outparam_t out) {
    wasi_http_types_borrow_incoming_request_t borrowed = wasi_http_types_borrow_incoming_request(request);
    wasi_http_types_method_t method;
    wasi_http_types_method_incoming_request_method(borrowed, &method);
    hello_string_t path = {0};
    wasi_http_types_method_incoming_request_path_with_query(borrowed, &path);
    char path_text[256];
    snprintf(path_text, sizeof path_text, "%.*s", (int)path.len, (const char *)path.ptr);
    const char *method_text = method_name(&method);
    hello_string_free(&path);
    wasi_http_types_method_free(&method);
    wasi_http_types_incoming_request_drop_own(request);

    size_t len = strlen(path_text);
    if (len >= 4 && strcmp(path_text + len - 4, "fail") == 0) {
        fprintf(stderr, "C component about to abort\n");
        abort();
    } else if (len >= 4 && strcmp(path_text + len - 4, "json") == 0) {
        char json[400];
        int n = snprintf(json, sizeof json, "{\"language\":\"c\",\"kind\":\"component\",\"method\":\"%s\",\"path\":\"%s\"}",
                         method_text, path_text);
        respond(out, 200, "application/json", json, (size_t)n);
    } else {
        printf("hello from a C component: %s %s\n", method_text, path_text);
        const char *hello = "Hello from a C component\n";
        respond(out, 200, "text/plain", hello, strlen(hello));
    }
}
