//! End-to-end tests: the real `host` binary, the real example plugins
//! (built by `make plugins` into `target/plugins/`), and, where the point is
//! Redis, a private `redis-server` on a free port.

mod util;

mod beat;
mod call;
mod celery;
mod fleet;
mod events;
mod frozen;
mod languages;
mod manifest;
mod policy;
mod reload;
mod routing;
mod sentinel;
mod worker;
