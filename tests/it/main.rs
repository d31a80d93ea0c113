//! Integration tests: the real server binary, real TCP on 127.0.0.1, real
//! backend processes. One test binary, one module per concern.

mod harness;

mod backends;
mod components;
mod components_p3;
mod config_check;
mod foundation;
mod hostile;
mod isolation;
mod key_value;
mod languages;
mod outbound_tls;
mod protocol;
mod reload;
mod service;
mod sources;
