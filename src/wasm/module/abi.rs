//! The guest ABI: every function the host offers in import module `env`,
//! with its exact wasm signature, and the codes it returns. Definitions
//! only: `linker` and `net` implement them.
//!
//! The first eight are the original serverless-wasm ABI, unchanged (sizes
//! are i64 because the original declared them `u64`). The rest extend it.
//! `docs/guest-abi.md` documents each one for guest authors.

use wasmtime::ValType;

/// Returned by lookups (`db_get`, `request_*`) when the value is absent.
pub const ABSENT: i64 = -1;

/// Import module of every host function.
pub const MODULE: &str = "env";

use ValType::{I32, I64};

/// A host function's name and signature, for checking guest imports
/// before anything runs.
pub struct Signature {
    pub name: &'static str,
    pub params: &'static [ValType],
    pub results: &'static [ValType],
}

pub const HOST_FUNCTIONS: &[Signature] = &[
    // The original ABI.
    Signature {
        name: "log",
        params: &[I32, I64],
        results: &[],
    },
    Signature {
        name: "response_set_status_line",
        params: &[I32, I32, I64],
        results: &[],
    },
    Signature {
        name: "response_set_header",
        params: &[I32, I64, I32, I64],
        results: &[],
    },
    Signature {
        name: "response_set_body",
        params: &[I32, I64],
        results: &[],
    },
    Signature {
        name: "tcp_connect",
        params: &[I32, I64],
        results: &[I32],
    },
    Signature {
        name: "tcp_read",
        params: &[I32, I32, I64],
        results: &[I64],
    },
    Signature {
        name: "tcp_write",
        params: &[I32, I32, I64],
        results: &[I64],
    },
    Signature {
        name: "db_get",
        params: &[I32, I64, I32, I64],
        results: &[I64],
    },
    // Extensions.
    Signature {
        name: "response_add_header",
        params: &[I32, I64, I32, I64],
        results: &[],
    },
    Signature {
        name: "request_method",
        params: &[I32, I64],
        results: &[I64],
    },
    Signature {
        name: "request_path",
        params: &[I32, I64],
        results: &[I64],
    },
    Signature {
        name: "request_header",
        params: &[I32, I64, I32, I64],
        results: &[I64],
    },
    Signature {
        name: "request_body",
        params: &[I32, I64],
        results: &[I64],
    },
    Signature {
        name: "tcp_close",
        params: &[I32],
        results: &[I32],
    },
];

/// Renders a signature the way the docs write it: `(i32, i64) -> i64`.
pub fn describe(params: impl Iterator<Item = ValType>, results: impl Iterator<Item = ValType>) -> String {
    let list = |types: Vec<ValType>| types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
    let results: Vec<ValType> = results.collect();
    let results = match results.len() {
        0 => "()".to_string(),
        1 => results[0].to_string(),
        _ => format!("({})", list(results)),
    };
    format!("({}) -> {}", list(params.collect()), results)
}

/// Error codes of the TCP functions (`net`), returned to guests (negative; a handle or a count is >= 0).
pub mod tcp_error {
    /// An I/O error other than those below (reset by the backend, ...).
    pub const IO: i64 = -1;
    /// The address is not on the route's `allowed_outbound` list.
    pub const DENIED: i64 = -2;
    /// The backend refused the connection.
    pub const REFUSED: i64 = -3;
    /// Connect, read or write took longer than its timeout.
    pub const TIMED_OUT: i64 = -4;
    /// Not `host:port`, or the name does not resolve.
    pub const BAD_ADDRESS: i64 = -5;
    /// Not an open handle of this request.
    pub const BAD_HANDLE: i64 = -6;
    /// `max_backend_connections` or `max_backend_bytes` reached.
    pub const LIMIT: i64 = -7;
    /// Backends cannot be used here (while the module is checked at start-up).
    pub const UNAVAILABLE: i64 = -8;
    /// `tls://`: the backend's certificate was not accepted (unknown
    /// authority, wrong name, expired) or the handshake failed; logged.
    pub const TLS: i64 = -9;
}

/// Import module of the key-value host functions (version 1). A module
/// that imports none of them is exactly an original-ABI guest.
pub const KV_MODULE: &str = "kv_v1";

/// `kv_v1`: open a store by name, then get, set, delete, increment and
/// list its keys (`docs/guest-abi.md`).
pub const KV_FUNCTIONS: &[Signature] = &[
    Signature {
        name: "open",
        params: &[I32, I64],
        results: &[I32],
    },
    Signature {
        name: "get",
        params: &[I32, I32, I64, I32, I64],
        results: &[I64],
    },
    Signature {
        name: "set",
        params: &[I32, I32, I64, I32, I64],
        results: &[I32],
    },
    Signature {
        name: "delete",
        params: &[I32, I32, I64],
        results: &[I32],
    },
    Signature {
        name: "increment",
        params: &[I32, I32, I64, I64, I32],
        results: &[I32],
    },
    Signature {
        name: "list_keys",
        params: &[I32, I64, I32, I64, I32],
        results: &[I64],
    },
];

/// Every import module a core module may import functions from.
pub const IMPORT_MODULES: &[(&str, &[Signature])] = &[(MODULE, HOST_FUNCTIONS), (KV_MODULE, KV_FUNCTIONS)];

/// The codes the `kv_v1` functions return (negative; `get` also returns
/// [`ABSENT`] for a key that is not there).
pub mod kv_error {
    /// No store of that name is declared.
    pub const NO_SUCH_STORE: i64 = -2;
    /// The store exists but is not in the route's `key_value_stores`.
    pub const ACCESS_DENIED: i64 = -3;
    /// A key or value is larger than the store allows, or 16 stores are
    /// open already.
    pub const TOO_LARGE: i64 = -4;
    /// Not a handle `open` returned to this instance.
    pub const BAD_HANDLE: i64 = -5;
    /// `increment` on a value that is not a decimal 64-bit integer.
    pub const NOT_A_NUMBER: i64 = -6;
    /// `increment` would overflow a signed 64-bit integer.
    pub const OVERFLOW: i64 = -7;
    /// The store failed or did not answer in time (logged with the reason).
    pub const UNAVAILABLE: i64 = -8;
    /// A key or store name that is not UTF-8.
    pub const BAD_KEY: i64 = -9;
}
