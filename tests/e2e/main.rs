//! End-to-end tests: the real `host` binary, the real example plugins
//! (built by `make plugins` into `target/plugins/`), and, where the point is
//! Redis, a private `redis-server` on a free port.

mod util;

mod beat;
mod call;
mod capabilities;
mod celery;
mod fleet;
mod events;
mod guest_io;
mod languages;
mod manifest;
mod reload;
mod routing;
mod worker;
