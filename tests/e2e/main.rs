//! End-to-end tests: the real `host` binary, the real example plugins
//! (built by `make plugins` into `target/plugins/`), and, where the point is
//! Redis, a private `redis-server` on a free port.

mod util;

mod call;
mod celery;
mod events;
mod languages;
mod reload;
mod worker;
