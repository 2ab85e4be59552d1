//! End-to-end tests: the real `host` binary, the real example plugins
//! (built by `make plugins` into `target/plugins/`), and, where the point is
//! Redis, a private `redis-server` on a free port.

mod util;

mod bad_plugins;
mod beat;
mod call;
mod canvas;
mod chord_join;
mod capabilities;
mod celery;
mod error_texts;
mod fleet;
mod events;
mod fuzz;
mod hostile;
mod guest_io;
mod guest_http;
mod frozen;
mod languages;
mod manifest;
mod names;
mod policy;
mod new_project;
mod redis_reach;
mod ops;
mod reload;
mod routing;
mod sentinel;
mod worker;
