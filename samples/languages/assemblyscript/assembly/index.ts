// A serverless-wasm handler in AssemblyScript: a core module speaking the
// original ABI (imports from `env`) and nothing else, the lightest way to
// write a guest: no WASI, no libc, a few KiB of wasm.
//
// Build (samples/languages/build.sh does it):
//   asc assembly/index.ts -O3 --use abort=assembly/index/abort -o as-handler.wasm
//
// Served behind a prefix route (`url_path = "/as/*"`), it answers by the
// last part of the path: hello, json (POST), fail.

@external("env", "log")
declare function log(text: usize, length: i64): void;
@external("env", "response_set_status_line")
declare function response_set_status_line(status: i32, reason: usize, length: i64): void;
@external("env", "response_set_header")
declare function response_set_header(name: usize, nameLength: i64, value: usize, valueLength: i64): void;
@external("env", "response_set_body")
declare function response_set_body(body: usize, length: i64): void;
@external("env", "request_path")
declare function request_path(buffer: usize, capacity: i64): i64;
@external("env", "request_body")
declare function request_body(buffer: usize, capacity: i64): i64;

function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

function say(text: string): void {
  const bytes = utf8(text);
  log(changetype<usize>(bytes), bytes.byteLength);
}

// A request value: its length first, then the value.
function lookup(read: (buffer: usize, capacity: i64) => i64): ArrayBuffer {
  const size = read(0, 0);
  const buffer = new ArrayBuffer(size > 0 ? <i32>size : 0);
  if (size > 0) read(changetype<usize>(buffer), size);
  return buffer;
}

function answer(status: i32, contentType: string, body: ArrayBuffer): void {
  response_set_status_line(status, 0, 0);
  const name = utf8("content-type");
  const value = utf8(contentType);
  response_set_header(changetype<usize>(name), name.byteLength, changetype<usize>(value), value.byteLength);
  response_set_body(changetype<usize>(body), body.byteLength);
}

// {"language":"assemblyscript","bytes":N,"received":<the JSON body as sent>}
function jsonApi(): void {
  const body = String.UTF8.decode(lookup(request_body));
  if (!body.startsWith("{") && !body.startsWith("[")) {
    answer(400, "application/json", utf8('{"error":"send a JSON object or array"}'));
    return;
  }
  const bytes = String.UTF8.byteLength(body);
  answer(200, "application/json", utf8(`{"language":"assemblyscript","bytes":${bytes},"received":${body}}`));
}

export function handle(): void {
  const path = String.UTF8.decode(lookup(request_path));
  const last = path.substring(path.lastIndexOf("/") + 1);
  if (last == "json") {
    jsonApi();
  } else if (last == "fail") {
    throw new Error("the handler failed on purpose");
  } else {
    say(`hello from AssemblyScript: ${path}`);
    answer(200, "text/plain", utf8("Hello from AssemblyScript\n"));
  }
}

// Replaces the `env.abort` import AssemblyScript would otherwise need: the
// message goes to the route's log, then the guest traps (a 500).
export function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  say(`abort: ${message ? message : ""} at ${file ? file : "?"}:${line}:${column}`);
  unreachable();
}
