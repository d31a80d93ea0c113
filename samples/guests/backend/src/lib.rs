//! The original project's backend sample: reads its backend's address from
//! env key `/env/backend`, connects, writes `hello\n`, reads up to 100 bytes
//! and returns them in the body. A backend that cannot be reached is a 502
//! (504 when it times out).

use serverless_api::{self as api, TcpStream, response};

#[no_mangle]
pub extern "C" fn handle() {
    let key = "/env/backend";
    let Some(address) = api::db_get(key) else {
        return response::send(500, "Server Error", &format!("no value for key {key} in the route's env\n"));
    };
    api::log(&format!("connecting to backend at {address}"));
    match round_trip(&address) {
        Ok(answer) => response::send(200, "OK", &format!("Hello world from wasm!\nanswer from backend:\n{answer}\n")),
        Err((what, e)) => {
            let (status, reason) = e.status();
            let body = format!("could not {what} backend at {address}: {e}\n");
            api::log(&body);
            response::send(status, reason, &body);
        }
    }
}

fn round_trip(address: &str) -> Result<String, (&'static str, api::NetError)> {
    let mut socket = TcpStream::connect(address).map_err(|e| ("connect to", e))?;
    socket.write(b"hello\n").map_err(|e| ("write to", e))?;
    let mut answer = [0u8; 100];
    let n = socket.read(&mut answer).map_err(|e| ("read from", e))?;
    Ok(String::from_utf8_lossy(&answer[..n]).into_owned())
}
