//! How a request to a guest can fail, and the one status each failure
//! answers with (both guest kinds).

use wasmtime::Trap;

use crate::stats::GuestFailure;

/// Why a request to a wasm route got no response from its guest. Each maps
/// to one status, in one place: [`InvokeError::status`].
#[derive(Clone, Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("route busy: {0}")]
    Busy(&'static str),
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    #[error("guest ran out of fuel")]
    OutOfFuel,
    #[error("guest exceeded its timeout")]
    Timeout,
    #[error("guest trapped: {0}")]
    Trap(String),
    #[error("guest exited with status {0} (proc_exit)")]
    Exited(i32),
    #[error("invalid guest response: {0}")]
    BadResponse(String),
    #[error("request cannot be given to the guest: {0}")]
    BadRequest(String),
    /// A WASI 0.3 instance serving several requests at once failed because
    /// of another of them.
    #[error("ended with its guest instance, which another request failed: {0}")]
    SharedFailure(String),
}

impl InvokeError {
    pub fn status(&self) -> u16 {
        match self {
            InvokeError::Busy(_) | InvokeError::OutOfFuel | InvokeError::SharedFailure(_) => 503,
            InvokeError::Timeout => 504,
            InvokeError::Instantiate(_)
            | InvokeError::Trap(_)
            | InvokeError::Exited(_)
            | InvokeError::BadResponse(_) => 500,
            InvokeError::BadRequest(_) => 400,
        }
    }

    /// How the statistics count a guest that ran and failed; `None` for
    /// requests that never reached a guest.
    pub fn guest_failure(&self) -> Option<GuestFailure> {
        match self {
            InvokeError::OutOfFuel => Some(GuestFailure::Fuel),
            InvokeError::Timeout => Some(GuestFailure::Timeout),
            InvokeError::Trap(_) | InvokeError::Exited(_) => Some(GuestFailure::Trap),
            InvokeError::BadResponse(_) => Some(GuestFailure::BadResponse),
            InvokeError::Busy(_)
            | InvokeError::Instantiate(_)
            | InvokeError::BadRequest(_)
            | InvokeError::SharedFailure(_) => None,
        }
    }
}

/// Why an instance could not be made: a full pool is a 503, anything else
/// a 500.
pub fn instantiate_error(e: wasmtime::Error) -> InvokeError {
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
        InvokeError::Busy("no free instance slot on this shard (raise server.instance_slots_per_shard)")
    } else {
        InvokeError::Instantiate(format!("{e:#}"))
    }
}

/// What a trap means for the request (fuel is its own answer).
pub fn classify_trap(e: &wasmtime::Error) -> InvokeError {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => InvokeError::OutOfFuel,
            other => InvokeError::Trap(other.to_string()),
        };
    }
    InvokeError::Trap(e.to_string())
}
