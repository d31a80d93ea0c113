// A serverless-wasm handler in JavaScript: a standard `wasi:http/proxy`
// component built by componentize-js (SpiderMonkey compiled to wasm, with
// this file's source inside), answering through the web's fetch-event API.
//
// Build (samples/languages/build.sh does it):
//   componentize-js --wit ../wit --world-name hello --out js-handler.wasm app.js
//
// Served behind a prefix route (`url_path = "/js/*"`), it answers by the
// last part of the path: hello, json (POST), sleep, fail.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// {"name": "..."} in, a greeting out.
async function jsonApi(request) {
  let input;
  try {
    input = await request.json();
  } catch {
    input = null;
  }
  if (!input || typeof input.name !== "string") {
    return Response.json({ error: 'send {"name": "..."}' }, { status: 400 });
  }
  return Response.json({ language: "javascript", greeting: `Hello, ${input.name}`, keys: Object.keys(input) });
}

async function handle(request) {
  const path = new URL(request.url).pathname;
  switch (path.slice(path.lastIndexOf("/") + 1)) {
    case "json":
      return jsonApi(request);
    case "sleep":
      await sleep(1500);
      return new Response("slept 1500 ms\n");
    case "fail":
      throw new Error("the handler failed on purpose");
    default:
      console.log(`hello from JavaScript: ${request.method} ${path}`);
      return new Response("Hello from JavaScript\n", { headers: { "content-type": "text/plain" } });
  }
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
