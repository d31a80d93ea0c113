//! Module addresses (`file_path` forms) and the `[sources]` table on
//! arbitrary text. The first line is an address: parsing it never panics,
//! and an address that parses prints back to itself (what logs and `check`
//! show is what was configured; a URL's query is the exception: it is a
//! credential, and never shown). The rest is a `[sources]` table, parsed
//! with the address as a route's `file_path`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serverless_wasm::sources::ModuleSource;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (address, table) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(source) = ModuleSource::parse(address) {
        let shown = source.to_string();
        let hidden = match &source {
            ModuleSource::Http(a) => a.url.query().map(|q| format!("?{q}")),
            _ => None,
        };
        let fragment = matches!(&source, ModuleSource::Http(a) if a.url.fragment().is_some());
        if let Some(query) = hidden.filter(|q| q.len() > 1) {
            assert!(!shown.contains(&query), "the query was shown: {shown}");
        } else if source.is_remote() && !fragment {
            assert_eq!(ModuleSource::parse(&shown).as_ref(), Ok(&source), "{address:?} shown as {shown:?}");
        }
    }
    let file_path = toml::Value::String(address.to_string());
    let config = format!(
        "listen_address = \"127.0.0.1:1\"\n[sources]\n{table}\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/\"\nfile_path = {file_path}\n"
    );
    let _ = serverless_wasm::config::parse(std::path::Path::new("/nonexistent/fuzz/config.toml"), &config);
});
