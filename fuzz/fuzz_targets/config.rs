//! The configuration loader on arbitrary text: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = serverless_wasm::config::parse(std::path::Path::new("/nonexistent/fuzz/config.toml"), &text);
});
