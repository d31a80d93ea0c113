"""Minimal `wasi:http/incoming-handler` in Python, built with componentize-py.

GET (or any method) on any path answers 200 text/plain:

    Hello from Python (componentize-py)
    path=<path with query>
    method=<method>
"""

from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method,
    Method_Other,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Ok


def method_name(method: Method) -> str:
    if isinstance(method, Method_Other):
        return method.value
    # Method_Get -> "GET", Method_Post -> "POST", ...
    return type(method).__name__.removeprefix("Method_").upper()


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        body = (
            "Hello from Python (componentize-py)\n"
            f"path={request.path_with_query() or '/'}\n"
            f"method={method_name(request.method())}\n"
        ).encode()

        headers = Fields.from_list(
            [
                ("content-type", b"text/plain"),
                ("content-length", str(len(body)).encode()),
            ]
        )
        response = OutgoingResponse(headers)
        response.set_status_code(200)
        response_body = response.body()
        ResponseOutparam.set(response_out, Ok(response))

        # blocking-write-and-flush accepts at most 4096 bytes per call.
        with response_body.write() as stream:
            for i in range(0, len(body), 4096):
                stream.blocking_write_and_flush(body[i : i + 4096])
        OutgoingBody.finish(response_body, None)
